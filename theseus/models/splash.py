"""Splash attention (``jax.experimental.pallas.ops.tpu.splash_attention``) for TPUs.

The kernel works on one example ``[heads, T, head_dim]``; it is vmapped over the batch.
Keys and values are repeated to the query heads (grouped-query attention), queries are
scaled by ``1 / sqrt(head_dim)`` (the kernel does not scale), and segment ids become the
kernel's ``SegmentIds``. ``interpret=True`` runs the kernel in the Pallas interpreter, which
is how the tests check it on CPU against the reference attention.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

BLOCK = 128  # the sequence length must be a multiple of this tile


def _block_size(T: int) -> int:
    """The largest tile (512, 256 or 128) that divides ``T``; ValueError if none does."""
    for block in (512, 256, BLOCK):
        if T % block == 0:
            return block
    raise ValueError(f"splash attention needs a sequence length that is a multiple of {BLOCK}, "
                     f"got {T}; change model.seq_len or use model.attention='dot_product'.")


@functools.lru_cache(maxsize=32)
def _kernel(num_heads: int, T: int, interpret: bool):
    """A causal splash-attention kernel for ``num_heads`` heads of length ``T`` (cached)."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    b = _block_size(T)
    mask = sm.MultiHeadMask([sm.CausalMask((T, T)) for _ in range(num_heads)])
    sizes = sk.BlockSizes(block_q=b, block_kv=b, block_kv_compute=b, block_q_dkv=b,
                          block_kv_dkv=b, block_kv_dkv_compute=b, block_q_dq=b, block_kv_dq=b)
    with jax.ensure_compile_time_eval():  # concrete mask tables, safe to cache across traces
        return sk.make_splash_mha(mask, head_shards=1, q_seq_shards=1, block_sizes=sizes,
                                  interpret=interpret)


def splash_attention(q_BTHK: jax.Array, k_BSGK: jax.Array, v_BSGK: jax.Array,
                     segment_ids_BT: jax.Array | None = None, *, interpret: bool = False
                     ) -> jax.Array:
    """Causal, document-masked attention by the splash kernel; same contract as
    ``theseus.models.attention.reference_attention``. Off TPU only with ``interpret=True``."""
    if not interpret and jax.default_backend() != "tpu":
        raise ValueError(f"model.attention='splash' runs only on TPU, but the JAX backend is "
                         f"'{jax.default_backend()}'; use model.attention='dot_product'.")
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk

    _, T, H, K = q_BTHK.shape
    repeat = H // k_BSGK.shape[2]
    k_BSHK = jnp.repeat(k_BSGK, repeat, axis=2) if repeat > 1 else k_BSGK
    v_BSHK = jnp.repeat(v_BSGK, repeat, axis=2) if repeat > 1 else v_BSGK
    q_BHTK = (q_BTHK.astype(jnp.float32) / math.sqrt(K)).astype(q_BTHK.dtype).transpose(0, 2, 1, 3)
    kernel = _kernel(H, T, interpret)

    def one(q_HTK, k_HSK, v_HSK, seg_T):
        segments = None if seg_T is None else sk.SegmentIds(q=seg_T, kv=seg_T)
        return kernel(q_HTK, k_HSK, v_HSK, segment_ids=segments)

    seg = None if segment_ids_BT is None else segment_ids_BT.astype(jnp.int32)
    y_BHTK = jax.vmap(one, in_axes=(0, 0, 0, None if seg is None else 0))(
        q_BHTK, k_BSHK.transpose(0, 2, 1, 3), v_BSHK.transpose(0, 2, 1, 3), seg)
    return y_BHTK.transpose(0, 2, 1, 3)
