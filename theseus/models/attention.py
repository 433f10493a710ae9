"""Causal self-attention with document masking, and the attention layers models compose.

Kernels (``causal_attention``, chosen by ``model.attention``):

- ``reference``: einsums with a float32 softmax; the definition the others are tested against.
- ``manual_vjp``: the same einsums with a hand-written backward pass laid out for XLA:CPU's
  dot library (``theseus.models.manual_vjp``); the fastest on CPU, and the default.
- ``dot_product``: ``jax.nn.dot_product_attention``; cuDNN flash attention on GPU for
  bfloat16/float16 inputs, XLA elsewhere.
- ``splash``: the Pallas splash-attention kernel (TPU only; see ``theseus.models.splash``).

Every kernel is causal; with ``segment_ids_BT`` (packed documents) a query attends only to
keys of the same segment. Each query can always attend to itself, so padding (segment 0)
gives finite, unused outputs rather than NaNs. Keys and values may have fewer heads than
queries (grouped-query attention): query head ``h`` reads key/value head ``h // (H / G)``,
as HF's ``repeat_kv``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models.layers import Dense
from theseus.models.manual_vjp import manual_vjp_attention
from theseus.models.rope import rope


def attention_mask(T: int, segment_ids_BT: jax.Array | None) -> jax.Array:
    """Where a query may attend: causal ``[T, S]``, and with segments ``[B, 1, T, S]``."""
    mask_TS = jnp.tril(jnp.ones((T, T), dtype=bool))
    if segment_ids_BT is None:
        return mask_TS
    same_BTS = segment_ids_BT[:, :, None] == segment_ids_BT[:, None, :]
    return (mask_TS[None] & same_BTS)[:, None]


def reference_attention(q_BTHK: jax.Array, k_BSGK: jax.Array, v_BSGK: jax.Array,
                        segment_ids_BT: jax.Array | None = None) -> jax.Array:
    """Plain einsum attention with a float32 softmax (grouped when ``G < H``)."""
    B, T, H, K = q_BTHK.shape
    G = k_BSGK.shape[2]
    if G == H:
        scores_BHTS = jnp.einsum("bthk,bshk->bhts", q_BTHK, k_BSGK,
                                 preferred_element_type=jnp.float32) / math.sqrt(K)
    else:
        q_BTGRK = q_BTHK.reshape(B, T, G, H // G, K)
        scores_BHTS = jnp.einsum("btgrk,bsgk->bgrts", q_BTGRK, k_BSGK,
                                 preferred_element_type=jnp.float32).reshape(B, H, T, T)
        scores_BHTS = scores_BHTS / math.sqrt(K)
    mask = attention_mask(T, segment_ids_BT)
    scores_BHTS = jnp.where(mask, scores_BHTS, jnp.finfo(jnp.float32).min)
    probs_BHTS = jax.nn.softmax(scores_BHTS, axis=-1).astype(v_BSGK.dtype)
    if G == H:
        return jnp.einsum("bhts,bshk->bthk", probs_BHTS, v_BSGK)
    probs_BGRTS = probs_BHTS.reshape(B, G, H // G, T, T)
    return jnp.einsum("bgrts,bsgk->btgrk", probs_BGRTS, v_BSGK).reshape(B, T, H, K)


def dot_product_attention(q_BTHK: jax.Array, k_BSGK: jax.Array, v_BSGK: jax.Array,
                          segment_ids_BT: jax.Array | None = None) -> jax.Array:
    """``jax.nn.dot_product_attention``: cuDNN on GPU for 16-bit inputs, else XLA."""
    mask = None
    if segment_ids_BT is not None:
        mask = segment_ids_BT[:, None, :, None] == segment_ids_BT[:, None, None, :]
    cudnn = (jax.default_backend() == "gpu"
             and q_BTHK.dtype in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)))
    return jax.nn.dot_product_attention(q_BTHK, k_BSGK, v_BSGK, mask=mask, is_causal=True,
                                        implementation="cudnn" if cudnn else None)


def causal_attention(q_BTHK: jax.Array, k_BSGK: jax.Array, v_BSGK: jax.Array,
                     impl: str = "manual_vjp", *, segment_ids: jax.Array | None = None
                     ) -> jax.Array:
    """Causal (and, with ``segment_ids``, document-masked) attention by kernel ``impl``."""
    if impl == "reference":
        return reference_attention(q_BTHK, k_BSGK, v_BSGK, segment_ids)
    if impl == "manual_vjp":
        return manual_vjp_attention(q_BTHK, k_BSGK, v_BSGK,
                                    attention_mask(q_BTHK.shape[1], segment_ids))
    if impl == "dot_product":
        return dot_product_attention(q_BTHK, k_BSGK, v_BSGK, segment_ids)
    if impl == "splash":
        from theseus.models.splash import splash_attention

        return splash_attention(q_BTHK, k_BSGK, v_BSGK, segment_ids)
    raise ValueError(f"unknown attention kernel {impl!r}; use 'manual_vjp', 'reference', "
                     f"'dot_product' or 'splash'.")


class FusedAttention(nnx.Module):
    """Multi-head attention with one fused QKV projection (GPT): ``qkv`` and ``out``."""

    def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs, out_std: float,
                 use_bias: bool = True, rope_base: float | None = None,
                 impl: str = "manual_vjp", dtype: str = "float32", param_dtype: str = "float32",
                 matmul_precision: str = "float32"):
        kw = {"rngs": rngs, "use_bias": use_bias, "dtype": dtype, "param_dtype": param_dtype,
              "matmul_precision": matmul_precision}
        self.qkv = Dense(d_model, 3 * d_model, ("embed", "heads"), **kw)
        self.out = Dense(d_model, d_model, ("heads", "embed"), std=out_std, **kw)
        self.num_heads, self.rope_base, self.impl = num_heads, rope_base, impl

    def __call__(self, x_BTD: jax.Array, segment_ids: jax.Array | None = None,
                 positions: jax.Array | None = None) -> jax.Array:
        B, T, D = x_BTD.shape
        H = self.num_heads
        q_BTHK, k_BTHK, v_BTHK = jnp.split(self.qkv(x_BTD).reshape(B, T, 3 * H, D // H), 3, axis=2)
        if self.rope_base is not None:
            q_BTHK = rope(q_BTHK, self.rope_base, positions)
            k_BTHK = rope(k_BTHK, self.rope_base, positions)
        y_BTHK = causal_attention(q_BTHK, k_BTHK, v_BTHK, self.impl, segment_ids=segment_ids)
        return self.out(y_BTHK.reshape(B, T, D))


class GroupedAttention(nnx.Module):
    """Grouped-query attention with rotary positions and separate ``q``, ``k``, ``v``, ``o``
    projections (Llama): ``num_kv_heads`` key/value heads shared by ``num_heads`` queries."""

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, *, rngs: nnx.Rngs,
                 out_std: float, rope_base: float, impl: str = "manual_vjp",
                 use_bias: bool = False, dtype: str = "float32", param_dtype: str = "float32",
                 matmul_precision: str = "float32"):
        K = d_model // num_heads
        kw = {"rngs": rngs, "use_bias": use_bias, "dtype": dtype, "param_dtype": param_dtype,
              "matmul_precision": matmul_precision}
        self.q = Dense(d_model, num_heads * K, ("embed", "heads"), **kw)
        self.k = Dense(d_model, num_kv_heads * K, ("embed", "heads"), **kw)
        self.v = Dense(d_model, num_kv_heads * K, ("embed", "heads"), **kw)
        self.o = Dense(num_heads * K, d_model, ("heads", "embed"), std=out_std, **kw)
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, K
        self.rope_base, self.impl = rope_base, impl

    def __call__(self, x_BTD: jax.Array, segment_ids: jax.Array | None = None,
                 positions: jax.Array | None = None) -> jax.Array:
        B, T, _ = x_BTD.shape
        H, G, K = self.num_heads, self.num_kv_heads, self.head_dim
        q_BTHK = rope(self.q(x_BTD).reshape(B, T, H, K), self.rope_base, positions)
        k_BTGK = rope(self.k(x_BTD).reshape(B, T, G, K), self.rope_base, positions)
        v_BTGK = self.v(x_BTD).reshape(B, T, G, K)
        y_BTHK = causal_attention(q_BTHK, k_BTGK, v_BTGK, self.impl, segment_ids=segment_ids)
        return self.o(y_BTHK.reshape(B, T, H * K))
