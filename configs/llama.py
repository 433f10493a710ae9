"""Llama-style presets: RoPE, RMSNorm, SwiGLU, grouped-query attention, untied head.

Run one::

    uv run launch.py --config=configs/llama.py:tiny

``tiny`` trains on Shakespeare with the data, optimizer and trainer of ``configs/gpt.py``'s
tiny (``gpt.base``); only the model differs. ``llama1b``, ``llama3b`` and ``llama8b`` are
the shapes of Llama 3.2 1B / 3B and Llama 3 8B with their 128,256-token vocabulary: the
Llama 3 tokenizer is not shipped, so give its ``tokenizer.json`` with
``--fdl_set data.tokenizer.path=/path/to/tokenizer.json`` (and the corpus you train on).
"""

from __future__ import annotations

import fiddle as fdl

from configs.gpt import base, bf16, remat  # bf16, remat: fiddlers of these presets too
from theseus.data.tokenizers import HFTokenizerFile
from theseus.experiment import Experiment
from theseus.models.llama import LlamaConfig

LLAMA3_VOCAB = 128256
LLAMA3_TOKENIZER = "tokenizers/llama3/tokenizer.json"  # not shipped: provide your own copy


def _experiment(model: fdl.Config, **training) -> fdl.Config[Experiment]:
    """``gpt.base``'s experiment (data, AdamW, trainer) with ``model`` in place of GPT;
    ``training`` are ``base``'s batch/steps/learning-rate arguments."""
    cfg = base(num_layers=model.num_layers, d_model=model.d_model, num_heads=model.num_heads,
               seq_len=model.seq_len, vocab_size=model.vocab_size, **training)
    cfg.model = model
    return cfg


def tiny() -> fdl.Config[Experiment]:
    """Tiny Llama (1.31M parameters) on Shakespeare: 2 CPU cores, a few minutes.

    4 layers, d_model 128, 4 query heads sharing 2 key/value heads, SwiGLU width 384,
    untied 2,048-token BPE vocabulary, context 128; 800 steps x 16 sequences (1.6M tokens),
    the data and schedule of gpt:tiny.

    Hardware: a laptop or 2 CPU cores, in a few minutes.
    """
    model = fdl.Config(LlamaConfig, vocab_size=2048, seq_len=128, num_layers=4, d_model=128,
                       num_heads=4, num_kv_heads=2, ffn_dim=384, rope_theta=10000.0)
    return _experiment(model, batch_size=16, num_steps=800, learning_rate=3e-3, warmup_steps=50,
                      eval_every=200, checkpoint_every=200)


def _llama3(*, num_layers: int, d_model: int, num_heads: int, ffn_dim: int, tie: bool,
            learning_rate: float) -> fdl.Config[Experiment]:
    """A Llama 3 shape: 8 KV heads, RoPE base 500,000, context 8192, 512 x 8192 tokens per
    step (grad accumulation 8), bf16 compute, remat, and the Llama 3 tokenizer file."""
    model = fdl.Config(LlamaConfig, vocab_size=LLAMA3_VOCAB, seq_len=8192, num_layers=num_layers,
                       d_model=d_model, num_heads=num_heads, num_kv_heads=8, ffn_dim=ffn_dim,
                       rope_theta=500000.0, tie_embeddings=tie)
    cfg = _experiment(model, tokenizer_vocab=LLAMA3_VOCAB, batch_size=512, num_steps=20000,
                     learning_rate=learning_rate, warmup_steps=2000, eval_every=1000,
                     checkpoint_every=1000)
    cfg.data.tokenizer = fdl.Config(HFTokenizerFile, path=LLAMA3_TOKENIZER)
    cfg.trainer.grad_accum_steps = 8
    bf16(cfg)
    remat(cfg)
    return cfg


def llama1b() -> fdl.Config[Experiment]:
    """Llama 3.2 1B shape (1.24B parameters, tied embeddings), context 8192: a TPU v5p-32.

    16 layers, d_model 2048, 32 query / 8 KV heads, SwiGLU 8192, vocab 128,256; 20k steps x
    512 x 8192 = 84B tokens. Needs the Llama 3 tokenizer (data.tokenizer.path).
    Hardware: 8+ H100/H200 GPUs or a TPU v5p-32, FSDP; bf16 compute with remat.
    """
    return _llama3(num_layers=16, d_model=2048, num_heads=32, ffn_dim=8192, tie=True,
                   learning_rate=3e-4)


def llama3b() -> fdl.Config[Experiment]:
    """Llama 3.2 3B shape (3.21B parameters, tied embeddings), context 8192: a TPU v5p-64.

    28 layers, d_model 3072, 24 query / 8 KV heads, SwiGLU 8192, vocab 128,256; 84B tokens.
    Needs the Llama 3 tokenizer (data.tokenizer.path).
    Hardware: 16+ H100/H200 GPUs or a TPU v5p-64, FSDP; bf16 compute with remat.
    """
    return _llama3(num_layers=28, d_model=3072, num_heads=24, ffn_dim=8192, tie=True,
                   learning_rate=3e-4)


def llama8b() -> fdl.Config[Experiment]:
    """Llama 3 8B shape (8.03B parameters, untied head), context 8192: a TPU v5p-128.

    32 layers, d_model 4096, 32 query / 8 KV heads, SwiGLU 14336, vocab 128,256; 84B tokens.
    Needs the Llama 3 tokenizer (data.tokenizer.path).
    Hardware: 32+ H100/H200 GPUs or a TPU v5p-128, FSDP x tensor; bf16 compute with remat.
    """
    return _llama3(num_layers=32, d_model=4096, num_heads=32, ffn_dim=14336, tie=False,
                   learning_rate=3e-4)
