"""Normalisation layers: LayerNorm (GPT) and RMSNorm (Llama, MoE), statistics in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models.layers import param


class LayerNorm(nnx.Module):
    """Layer normalisation with a gain and a bias, statistics in float32."""

    def __init__(self, features: int, *, rngs: nnx.Rngs, eps: float = 1e-5,
                 param_dtype: str = "float32"):
        self.scale = param(rngs, jax.nn.initializers.ones, (features,), ("embed",), param_dtype)
        self.bias = param(rngs, jax.nn.initializers.zeros, (features,), ("embed",), param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.scale[...] + self.bias[...]).astype(x.dtype)


class RMSNorm(nnx.Module):
    """Root-mean-square normalisation with a gain and no bias (as HF ``LlamaRMSNorm``)."""

    def __init__(self, features: int, *, rngs: nnx.Rngs, eps: float = 1e-5,
                 param_dtype: str = "float32"):
        self.scale = param(rngs, jax.nn.initializers.ones, (features,), ("embed",), param_dtype)
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.eps)
        return (y * self.scale[...].astype(jnp.float32)).astype(x.dtype)
