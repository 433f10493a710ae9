"""GPT-2: ``transformers``' ``GPT2LMHeadModel`` <-> ``theseus.models.gpt.GPT``.

Both store dense weights as ``[in, out]`` (HF's ``Conv1D``), fuse q/k/v in one projection in
the same order, use tanh-GELU, LayerNorm eps 1e-5 and a tied output head, so the mapping is a
renaming. theseus pads the vocabulary (50257 -> 50304): imported tables get zero rows, exported
ones are cut back to the HF vocabulary size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from theseus.convert.hf_io import fit_rows, take
from theseus.models.gpt import GPTConfig

# (theseus path inside a block, HF name inside transformer.h.N)
_BLOCK = [
    (("ln1", "scale"), "ln_1.weight"), (("ln1", "bias"), "ln_1.bias"),
    (("attn", "qkv", "kernel"), "attn.c_attn.weight"), (("attn", "qkv", "bias"), "attn.c_attn.bias"),
    (("attn", "out", "kernel"), "attn.c_proj.weight"), (("attn", "out", "bias"), "attn.c_proj.bias"),
    (("ln2", "scale"), "ln_2.weight"), (("ln2", "bias"), "ln_2.bias"),
    (("mlp", "up", "kernel"), "mlp.c_fc.weight"), (("mlp", "up", "bias"), "mlp.c_fc.bias"),
    (("mlp", "down", "kernel"), "mlp.c_proj.weight"), (("mlp", "down", "bias"), "mlp.c_proj.bias"),
]


def config_from_hf(hf: Mapping, vocab_size: int | None = None) -> GPTConfig:
    """The ``GPTConfig`` of an HF GPT-2 ``config.json`` (vocabulary padded to ``vocab_size``)."""
    if hf.get("model_type") != "gpt2":
        raise ValueError(f"expected a GPT-2 checkpoint (model_type 'gpt2'), got "
                         f"{hf.get('model_type')!r}.")
    inner = hf.get("n_inner") or 4 * hf["n_embd"]
    if inner % hf["n_embd"]:
        raise ValueError(f"n_inner={inner} is not a multiple of n_embd={hf['n_embd']}.")
    return GPTConfig(vocab_size=vocab_size or hf["vocab_size"], seq_len=hf["n_positions"],
                     num_layers=hf["n_layer"], d_model=hf["n_embd"], num_heads=hf["n_head"],
                     mlp_ratio=inner // hf["n_embd"])


def config_to_hf(cfg: GPTConfig, vocab_size: int | None = None) -> dict:
    """An HF ``config.json`` for ``cfg`` (``vocab_size``: the real, unpadded vocabulary)."""
    if cfg.position != "learned" or not cfg.use_bias:
        raise ValueError("only learned positions with biases map onto HF GPT-2; this model has "
                         f"position={cfg.position!r}, use_bias={cfg.use_bias}.")
    vocab = vocab_size or cfg.vocab_size
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": vocab,
            "n_positions": cfg.seq_len, "n_embd": cfg.d_model, "n_layer": cfg.num_layers,
            "n_head": cfg.num_heads, "n_inner": cfg.mlp_ratio * cfg.d_model,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "tie_word_embeddings": True, "bos_token_id": vocab - 1, "eos_token_id": vocab - 1}


def from_hf(tensors: Mapping[str, np.ndarray], cfg: GPTConfig) -> dict:
    """theseus parameters (nested dict of float32 arrays) from HF GPT-2 tensors."""
    prefix = "transformer." if "transformer.wte.weight" in tensors else ""
    get = lambda name: take(tensors, prefix + name)  # noqa: E731
    blocks = {}
    for i in range(cfg.num_layers):
        block: dict = {}
        for path, name in _BLOCK:
            node = block
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = get(f"h.{i}.{name}")
        blocks[i] = block
    return {"wte": {"embedding": fit_rows(get("wte.weight"), cfg.vocab_size)},
            "wpe": {"embedding": get("wpe.weight")},
            "blocks": blocks,
            "ln_f": {"scale": get("ln_f.weight"), "bias": get("ln_f.bias")}}


def to_hf(params: Mapping, cfg: GPTConfig, vocab_size: int | None = None) -> dict[str, np.ndarray]:
    """HF GPT-2 tensors (``GPT2LMHeadModel`` state-dict names) from theseus parameters."""
    vocab = vocab_size or cfg.vocab_size
    wte = fit_rows(np.asarray(params["wte"]["embedding"], np.float32), vocab)
    out = {"transformer.wte.weight": wte, "lm_head.weight": wte,
           "transformer.wpe.weight": np.asarray(params["wpe"]["embedding"], np.float32),
           "transformer.ln_f.weight": np.asarray(params["ln_f"]["scale"], np.float32),
           "transformer.ln_f.bias": np.asarray(params["ln_f"]["bias"], np.float32)}
    for i in range(cfg.num_layers):
        for path, name in _BLOCK:
            node = params["blocks"][i]
            for part in path:
                node = node[part]
            out[f"transformer.h.{i}.{name}"] = np.asarray(node, np.float32)
    return out
