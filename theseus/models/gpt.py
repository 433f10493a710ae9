"""A GPT-2-style decoder: pre-norm blocks, tied embeddings, learned or rotary positions."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models import layers


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Hyperparameters of a GPT-2-style model; ``make`` builds the module.

    ``dtype`` is the compute dtype (use ``bfloat16`` on accelerators), ``param_dtype`` the
    storage dtype of parameters. ``attention`` picks the attention kernel: ``reference``
    (einsums) or ``dot_product`` (``jax.nn.dot_product_attention``). ``remat`` recomputes
    each block's activations in the backward pass to save memory.
    """

    vocab_size: int = 50304
    seq_len: int = 1024
    num_layers: int = 12
    d_model: int = 768
    num_heads: int = 12
    mlp_ratio: int = 4
    dropout: float = 0.0
    position: Literal["learned", "rope"] = "learned"
    dtype: str = "float32"
    param_dtype: str = "float32"
    attention: Literal["reference", "dot_product"] = "reference"
    remat: bool = False
    use_bias: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "seq_len", "num_layers", "d_model", "num_heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.d_model % self.num_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.num_heads "
                             f"({self.num_heads}).")
        if self.position == "rope" and (self.d_model // self.num_heads) % 2:
            raise ValueError(f"rotary positions need an even head dimension; "
                             f"d_model / num_heads = {self.d_model // self.num_heads}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}.")
        for name, allowed in (("position", ("learned", "rope")),
                              ("attention", ("reference", "dot_product"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"model.{name} must be one of {allowed}, "
                                 f"got {getattr(self, name)!r}.")
        for name in ("dtype", "param_dtype"):
            try:
                floating = jnp.issubdtype(jnp.dtype(getattr(self, name)), jnp.floating)
            except TypeError:
                floating = False
            if not floating:
                raise ValueError(f"model.{name} '{getattr(self, name)}' is not a floating-point "
                                 f"dtype; use e.g. 'float32' or 'bfloat16'.")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.num_heads

    def make(self, rngs: nnx.Rngs) -> "GPT":
        """Builds the module with freshly initialised parameters."""
        return GPT(self, rngs=rngs)

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N + 12·L·T·D (PaLM appendix B, causal mask not halved).

        N counts every matmul parameter, including the tied output head (vocab x d_model),
        and excludes the learned position table, which is a lookup.
        """
        d, f, L = self.d_model, self.mlp_ratio * self.d_model, self.num_layers
        n_matmul = L * (4 * d * d + 2 * d * f) + self.vocab_size * d
        return 6.0 * n_matmul + 12.0 * L * self.seq_len * d


class Attention(nnx.Module):
    """Multi-head causal self-attention with a fused QKV projection."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        D = cfg.d_model
        std_out = 0.02 / math.sqrt(2 * cfg.num_layers)
        kw = dict(rngs=rngs, use_bias=cfg.use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.qkv = layers.Dense(D, 3 * D, ("embed", "heads"), **kw)
        self.out = layers.Dense(D, D, ("heads", "embed"), std=std_out, **kw)
        self.cfg = cfg

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        B, T, _ = x_BTD.shape
        H, K = self.cfg.num_heads, self.cfg.head_dim
        q_BTHK, k_BTHK, v_BTHK = jnp.split(self.qkv(x_BTD).reshape(B, T, 3 * H, K), 3, axis=2)
        if self.cfg.position == "rope":
            q_BTHK, k_BTHK = layers.rope(q_BTHK), layers.rope(k_BTHK)
        y_BTHK = layers.causal_attention(q_BTHK, k_BTHK, v_BTHK, self.cfg.attention)
        return self.out(y_BTHK.reshape(B, T, H * K))


class MLP(nnx.Module):
    """Two dense layers with a GELU between them."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        D, F = cfg.d_model, cfg.mlp_ratio * cfg.d_model
        kw = dict(rngs=rngs, use_bias=cfg.use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.up = layers.Dense(D, F, ("embed", "mlp"), **kw)
        self.down = layers.Dense(F, D, ("mlp", "embed"), std=0.02 / math.sqrt(2 * cfg.num_layers),
                                 **kw)

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        return self.down(jax.nn.gelu(self.up(x_BTD), approximate=True))


class Block(nnx.Module):
    """Pre-norm residual block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        self.ln1 = layers.LayerNorm(cfg.d_model, rngs=rngs, param_dtype=cfg.param_dtype)
        self.attn = Attention(cfg, rngs=rngs)
        self.ln2 = layers.LayerNorm(cfg.d_model, rngs=rngs, param_dtype=cfg.param_dtype)
        self.mlp = MLP(cfg, rngs=rngs)
        self.rate = cfg.dropout

    def __call__(self, x_BTD: jax.Array, key: jax.Array | None) -> jax.Array:
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        x_BTD = x_BTD + layers.dropout(self.attn(self.ln1(x_BTD)), self.rate, k1)
        return x_BTD + layers.dropout(self.mlp(self.ln2(x_BTD)), self.rate, k2)


class GPT(nnx.Module):
    """The decoder: token (+ position) embeddings, blocks, final norm, tied output head."""

    def __init__(self, cfg: GPTConfig, *, rngs: nnx.Rngs):
        kw = dict(rngs=rngs, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.wte = layers.Embed(cfg.vocab_size, cfg.d_model, ("vocab", "embed"), **kw)
        self.wpe = (layers.Embed(cfg.seq_len, cfg.d_model, (None, "embed"), std=0.01, **kw)
                    if cfg.position == "learned" else None)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.ln_f = layers.LayerNorm(cfg.d_model, rngs=rngs, param_dtype=cfg.param_dtype)
        self.cfg = cfg

    def __call__(self, ids_BT: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Float32 logits ``[B, T, vocab]``; dropout is active only when a key is given."""
        T = ids_BT.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence of {T} tokens is longer than model.seq_len={self.cfg.seq_len}.")
        x_BTD = self.wte(ids_BT)
        if self.wpe is not None:
            x_BTD = x_BTD + self.wpe(jnp.arange(T))[None]
        keys = (jax.random.split(dropout_key, self.cfg.num_layers + 1) if dropout_key is not None
                else [None] * (self.cfg.num_layers + 1))
        x_BTD = layers.dropout(x_BTD, self.cfg.dropout, keys[0])
        for block, key in zip(self.blocks, keys[1:]):
            if self.cfg.remat:
                x_BTD = nnx.remat(lambda b, x, k: b(x, k))(block, x_BTD, key)
            else:
                x_BTD = block(x_BTD, key)
        return self.wte.attend(self.ln_f(x_BTD))

    def forward(self, ids_BT: jax.Array, dropout_key: jax.Array | None = None, *,
                segment_ids: jax.Array | None = None, positions: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
        """The training-step interface: ``(logits, aux_loss)``; a dense model has no auxiliary
        loss. Packed-document inputs (``segment_ids``, ``positions``) are not supported yet."""
        if segment_ids is not None or positions is not None:
            raise NotImplementedError("GPT does not take packed documents yet.")
        return self(ids_BT, dropout_key), jnp.zeros((), jnp.float32)


def count_params(state: nnx.State) -> int:
    """Number of scalars in a model state (or its abstract ``eval_shape``)."""
    return sum(int(math.prod(x.shape)) for x in jax.tree.leaves(state))
