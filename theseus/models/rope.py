"""Rotary position embeddings (RoPE), in the rotate-half form of HF Llama: the head
dimension is split into two halves ``x1, x2`` rotated by ``theta_i = position / base^(2i/K)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rope(x_BTHK: jax.Array, base: float = 10000.0, positions_BT: jax.Array | None = None
         ) -> jax.Array:
    """Rotates ``x`` by its positions: ``positions_BT`` if given (packed documents restart
    at 0), else ``0 .. T-1`` for every row. Computed in float32, returned in ``x``'s dtype."""
    T, K = x_BTHK.shape[1], x_BTHK.shape[-1]
    inv_freq = 1.0 / (base ** (jnp.arange(0, K, 2, dtype=jnp.float32) / K))
    if positions_BT is None:
        angles_TK = jnp.arange(T, dtype=jnp.float32)[:, None] * inv_freq[None, :]
        sin, cos = jnp.sin(angles_TK)[None, :, None, :], jnp.cos(angles_TK)[None, :, None, :]
    else:
        angles_BTK = positions_BT.astype(jnp.float32)[..., None] * inv_freq
        sin, cos = jnp.sin(angles_BTK)[:, :, None, :], jnp.cos(angles_BTK)[:, :, None, :]
    x1, x2 = jnp.split(x_BTHK.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BTHK.dtype)
