"""Mixture-of-experts presets: the Llama architecture with top-k routed SwiGLU experts.

Run one::

    uv run launch.py --config=configs/moe.py:tiny
    uv run launch.py --config=configs/moe.py:tiny --fdl_set=model.dispatch=dropless

Data, optimizer and trainer come from ``configs/gpt.py`` (``gpt.base``); the load-balancing
loss (``model.aux_loss_weight``) is added to the training loss.
"""

from __future__ import annotations

import fiddle as fdl

from configs.gpt import base, bf16, remat  # noqa: F401  (bf16, remat: fiddlers here too)
from theseus.experiment import Experiment
from theseus.models.moe import MoEConfig


def _experiment(model: fdl.Config, **training) -> fdl.Config[Experiment]:
    """``gpt.base``'s experiment with ``model`` in place of GPT; ``training`` are ``base``'s
    batch/steps/learning-rate arguments."""
    cfg = base(num_layers=model.num_layers, d_model=model.d_model, num_heads=model.num_heads,
               seq_len=model.seq_len, vocab_size=model.vocab_size, **training)
    cfg.model = model
    return cfg


def tiny() -> fdl.Config[Experiment]:
    """Tiny MoE (2.30M parameters, 1.25M active per token) on Shakespeare: 2 CPU cores.

    4 layers, d_model 128, 4 query / 2 KV heads, 4 SwiGLU experts of width 256 with top-2
    routing and capacity factor 1.25, untied 2,048-token BPE vocabulary, context 128;
    800 steps x 16 sequences (1.6M tokens), the data and schedule of gpt:tiny.

    Hardware: a laptop or 2 CPU cores, in a few minutes.
    """
    model = fdl.Config(MoEConfig, vocab_size=2048, seq_len=128, num_layers=4, d_model=128,
                       num_heads=4, num_kv_heads=2, ffn_dim=256, rope_theta=10000.0,
                       num_experts=4, experts_per_token=2)
    return _experiment(model, batch_size=16, num_steps=800, learning_rate=3e-3, warmup_steps=50,
                      eval_every=200, checkpoint_every=200)


def small() -> fdl.Config[Experiment]:
    """MoE 8x top-2 (1.25B parameters, 0.37B active per token), context 2048: 8 GPUs.

    16 layers, d_model 1024, 16 query / 4 KV heads, 8 SwiGLU experts of width 2816, top-2,
    capacity factor 1.25, vocab 50,304; 20k steps x 256 x 2048 = 10.5B tokens.
    Hardware: one 8-GPU node (H100/H200) or a TPU v5p-16, experts over trainer.mesh.expert;
    bf16 compute.
    """
    model = fdl.Config(MoEConfig, vocab_size=50304, seq_len=2048, num_layers=16, d_model=1024,
                       num_heads=16, num_kv_heads=4, ffn_dim=2816, rope_theta=10000.0,
                       num_experts=8, experts_per_token=2)
    cfg = _experiment(model, tokenizer_vocab=50257, batch_size=256, num_steps=20000,
                     learning_rate=3e-4, warmup_steps=700, eval_every=500, checkpoint_every=1000)
    bf16(cfg)
    return cfg
