"""Llama: ``transformers``' ``LlamaForCausalLM`` <-> ``theseus.models.llama``.

HF ``nn.Linear`` weights are ``[out, in]``; theseus kernels are ``[in, out]``, so every
projection is transposed. Both apply rotary embeddings in the rotate-half form over each
head's two halves, so q/k need no permutation. Embeddings are untied (``lm_head``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from theseus.convert.hf_io import fit_rows, take

# (theseus path inside a block, HF name inside model.layers.N, transpose?)
_BLOCK = [
    (("attn_norm", "scale"), "input_layernorm.weight", False),
    (("attn", "q", "kernel"), "self_attn.q_proj.weight", True),
    (("attn", "k", "kernel"), "self_attn.k_proj.weight", True),
    (("attn", "v", "kernel"), "self_attn.v_proj.weight", True),
    (("attn", "o", "kernel"), "self_attn.o_proj.weight", True),
    (("mlp_norm", "scale"), "post_attention_layernorm.weight", False),
    (("mlp", "gate", "kernel"), "mlp.gate_proj.weight", True),
    (("mlp", "up", "kernel"), "mlp.up_proj.weight", True),
    (("mlp", "down", "kernel"), "mlp.down_proj.weight", True),
]


def _rope_theta(hf: Mapping) -> float:
    """``rope_theta`` from an HF config of any recent transformers version."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if params.get("rope_type", "default") not in ("default", None):
        raise ValueError(f"rope scaling {params.get('rope_type')!r} is not supported; only the "
                         f"default rotary embedding is.")
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def config_from_hf(hf: Mapping, vocab_size: int | None = None):
    """The ``LlamaConfig`` of an HF Llama ``config.json``."""
    from theseus.models.llama import LlamaConfig

    if hf.get("model_type") != "llama":
        raise ValueError(f"expected a Llama checkpoint (model_type 'llama'), got "
                         f"{hf.get('model_type')!r}.")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ValueError("Llama checkpoints with attention or MLP biases are not supported.")
    heads = hf["num_attention_heads"]
    head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
    if head_dim * heads != hf["hidden_size"]:
        raise ValueError(f"head_dim={head_dim} x {heads} heads != hidden_size={hf['hidden_size']}; "
                         f"theseus Llama needs hidden_size = heads x head_dim.")
    return LlamaConfig(vocab_size=vocab_size or hf["vocab_size"],
                       seq_len=hf.get("max_position_embeddings", 2048),
                       num_layers=hf["num_hidden_layers"], d_model=hf["hidden_size"],
                       num_heads=heads, num_kv_heads=hf.get("num_key_value_heads") or heads,
                       ffn_dim=hf["intermediate_size"], rope_theta=_rope_theta(hf),
                       norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
                       tie_embeddings=bool(hf.get("tie_word_embeddings", False)))


def config_to_hf(cfg, vocab_size: int | None = None) -> dict:
    """An HF ``config.json`` for a ``LlamaConfig``."""
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": vocab_size or cfg.vocab_size, "hidden_size": cfg.d_model,
            "intermediate_size": cfg.ffn_dim, "num_hidden_layers": cfg.num_layers,
            "num_attention_heads": cfg.num_heads, "num_key_value_heads": cfg.num_kv_heads,
            "head_dim": cfg.d_model // cfg.num_heads,
            "max_position_embeddings": cfg.seq_len, "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
            "tie_word_embeddings": cfg.tie_embeddings}


def from_hf(tensors: Mapping[str, np.ndarray], cfg) -> dict:
    """theseus Llama parameters from HF ``LlamaForCausalLM`` tensors."""
    blocks = {}
    for i in range(cfg.num_layers):
        block: dict = {}
        for path, name, transpose in _BLOCK:
            node = block
            for part in path[:-1]:
                node = node.setdefault(part, {})
            w = take(tensors, f"model.layers.{i}.{name}")
            node[path[-1]] = w.T.copy() if transpose else w
        blocks[i] = block
    params = {"embed": {"embedding": fit_rows(take(tensors, "model.embed_tokens.weight"),
                                              cfg.vocab_size)},
              "blocks": blocks, "norm": {"scale": take(tensors, "model.norm.weight")}}
    if not cfg.tie_embeddings:
        params["lm_head"] = {"kernel": fit_rows(take(tensors, "lm_head.weight"),
                                                cfg.vocab_size).T.copy()}
    return params


def to_hf(params: Mapping, cfg, vocab_size: int | None = None) -> dict[str, np.ndarray]:
    """HF ``LlamaForCausalLM`` tensors from theseus Llama parameters."""
    vocab = vocab_size or cfg.vocab_size
    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    embed = fit_rows(f32(params["embed"]["embedding"]), vocab)
    head = embed if cfg.tie_embeddings else fit_rows(f32(params["lm_head"]["kernel"]).T, vocab)
    out = {"model.embed_tokens.weight": embed, "model.norm.weight": f32(params["norm"]["scale"]),
           "lm_head.weight": head}
    for i in range(cfg.num_layers):
        for path, name, transpose in _BLOCK:
            node = params["blocks"][i]
            for part in path:
                node = node[part]
            out[f"model.layers.{i}.{name}"] = f32(node).T.copy() if transpose else f32(node)
    return out
