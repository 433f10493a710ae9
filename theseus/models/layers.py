"""Shared transformer layers: dense, embeddings, layer norm, attention, MLP.

Parameters are created with logical axis names (``embed``, ``mlp``, ``heads``, ``kv``,
``vocab``) so that one table in ``theseus.training.sharding`` maps them onto any mesh.
Leaf parameter names follow one convention that the optimizer relies on:
``kernel`` (matrices, weight-decayed), ``bias``, ``scale`` (norm gains) and ``embedding``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

Initializer = jax.nn.initializers.Initializer


def _param(rngs: nnx.Rngs, init: Initializer, shape: tuple[int, ...], axes: tuple[str | None, ...],
           dtype: jnp.dtype) -> nnx.Param:
    """A parameter initialised by ``init`` and annotated with logical ``axes``."""
    return nnx.Param(init(rngs.params(), shape, dtype), out_sharding=axes, eager_sharding=False)


class Dense(nnx.Module):
    """``y = x @ kernel (+ bias)`` over the last axis, computed in ``dtype``."""

    def __init__(self, d_in: int, d_out: int, axes: tuple[str | None, str | None], *, rngs: nnx.Rngs,
                 use_bias: bool = True, std: float = 0.02, dtype: str = "float32",
                 param_dtype: str = "float32"):
        self.kernel = _param(rngs, jax.nn.initializers.normal(std), (d_in, d_out), axes, param_dtype)
        self.bias = (_param(rngs, jax.nn.initializers.zeros, (d_out,), (axes[1],), param_dtype)
                     if use_bias else None)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.dot(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class Embed(nnx.Module):
    """A lookup table ``[num, features]``; ``attend`` reuses it as the tied output head."""

    def __init__(self, num: int, features: int, axes: tuple[str | None, str | None], *,
                 rngs: nnx.Rngs, std: float = 0.02, dtype: str = "float32",
                 param_dtype: str = "float32"):
        self.embedding = _param(rngs, jax.nn.initializers.normal(std), (num, features), axes,
                                param_dtype)
        self.dtype = dtype

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)

    def attend(self, x_BTD: jax.Array) -> jax.Array:
        """Logits against every row of the table, in float32 for a stable softmax."""
        return jnp.dot(x_BTD.astype(self.dtype), self.embedding[...].astype(self.dtype).T,
                       preferred_element_type=jnp.float32)


class LayerNorm(nnx.Module):
    """Layer normalisation with a gain and a bias, statistics in float32."""

    def __init__(self, features: int, *, rngs: nnx.Rngs, eps: float = 1e-5,
                 param_dtype: str = "float32"):
        self.scale = _param(rngs, jax.nn.initializers.ones, (features,), ("embed",), param_dtype)
        self.bias = _param(rngs, jax.nn.initializers.zeros, (features,), ("embed",), param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...] + self.bias[...]).astype(x.dtype)


def rope(x_BTHK: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding (rotate-half form) over the head dimension."""
    T, K = x_BTHK.shape[1], x_BTHK.shape[-1]
    inv_freq = 1.0 / (base ** (jnp.arange(0, K, 2, dtype=jnp.float32) / K))
    angles_TK = jnp.arange(T, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    sin, cos = jnp.sin(angles_TK)[None, :, None, :], jnp.cos(angles_TK)[None, :, None, :]
    x1, x2 = jnp.split(x_BTHK.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BTHK.dtype)


def causal_attention(q_BTHK: jax.Array, k_BTHK: jax.Array, v_BTHK: jax.Array,
                     impl: str = "reference") -> jax.Array:
    """Causal softmax attention. ``reference`` is plain einsums with a float32 softmax;
    ``dot_product`` is ``jax.nn.dot_product_attention`` (cuDNN flash attention on GPU)."""
    if impl == "dot_product":
        return jax.nn.dot_product_attention(q_BTHK, k_BTHK, v_BTHK, is_causal=True)
    T, K = q_BTHK.shape[1], q_BTHK.shape[-1]
    scores_BHTS = jnp.einsum("bthk,bshk->bhts", q_BTHK, k_BTHK,
                             preferred_element_type=jnp.float32) / math.sqrt(K)
    mask_TS = jnp.tril(jnp.ones((T, T), dtype=bool))
    scores_BHTS = jnp.where(mask_TS, scores_BHTS, jnp.finfo(jnp.float32).min)
    probs_BHTS = jax.nn.softmax(scores_BHTS, axis=-1).astype(v_BTHK.dtype)
    return jnp.einsum("bhts,bshk->bthk", probs_BHTS, v_BTHK)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; the identity when ``key`` is None (evaluation) or ``rate`` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))
