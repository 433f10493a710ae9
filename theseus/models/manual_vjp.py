"""Causal attention with a hand-written backward pass: ``model.attention='manual_vjp'``.

The math is ``reference_attention``'s (float32 scores and softmax, causal and document masks,
grouped-query heads); only the backward pass is written out instead of derived by JAX. Why:
JAX's derived backward, as XLA:CPU lays it out, transposes the ``[T, S]`` probabilities and
score gradients of every head before its batched matmuls and fuses the softmax backward into
those copies; on the tiny preset attention took 50 of the 186 CPU ms of forward + backward.
Here the heads are moved in front once (``[B, G, R·T, K]``: the ``R`` query heads that share
a key/value head are stacked along the query axis, so every matmul is a plain batched one),
the probabilities are kept from the forward pass, and each gradient is one einsum in the
layout XLA's dot library takes. Forward + backward of the tiny preset: 186 -> 157 CPU ms.
Memory is about that of the reference: both keep the float32 probabilities for the backward
pass; this one also keeps the output (``[N, K]``, a ``K / S`` fraction of them), so that the
softmax backward's row sums read ``[N, K]`` arrays instead of ``[N, S]`` ones. With the
``1/sqrt(K)`` applied to q instead of the scores as well, GPT-2 small's attention at
``[2, 256]`` tokens went from 15.1-17.1 to 13.7-13.9 ms a layer, forward + backward, on one
CPU core.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _query_heads(x_BTHK: jax.Array, G: int) -> jax.Array:
    """``[B, T, H, K] -> [B, G, R·T, K]``: query head ``g·R + r`` at rows ``r·T .. r·T + T``."""
    B, T, H, K = x_BTHK.shape
    x_BGRTK = x_BTHK.reshape(B, T, G, H // G, K).transpose(0, 2, 3, 1, 4)
    return x_BGRTK.reshape(B, G, H // G * T, K)


def _from_query_heads(x_BGNK: jax.Array, T: int) -> jax.Array:
    """The inverse of ``_query_heads``: ``[B, G, R·T, K] -> [B, T, H, K]``."""
    B, G, N, K = x_BGNK.shape
    x_BTGRK = x_BGNK.reshape(B, G, N // T, T, K).transpose(0, 3, 1, 2, 4)
    return x_BTGRK.reshape(B, T, G * (N // T), K)


def _forward(q_BTHK, k_BSGK, v_BSGK, mask):
    """Output ``[B, T, H, K]`` and what the backward pass needs."""
    T, G, K = q_BTHK.shape[1], k_BSGK.shape[2], q_BTHK.shape[3]
    # The 1/sqrt(K) goes on q ([N, K]) rather than on the scores ([N, S]).
    q_BGNK = _query_heads(q_BTHK, G) * (1 / math.sqrt(K))
    k_BGSK, v_BGSK = k_BSGK.transpose(0, 2, 1, 3), v_BSGK.transpose(0, 2, 1, 3)
    scores_BGNS = jnp.einsum("bgnk,bgsk->bgns", q_BGNK, k_BGSK,
                             preferred_element_type=jnp.float32)
    # mask is [T, S] or [B, 1, T, S]; tile it over the R query heads stacked along N.
    mask_N = jnp.tile(mask, (1,) * (mask.ndim - 2) + (q_BGNK.shape[2] // T, 1))
    scores_BGNS = jnp.where(mask_N, scores_BGNS, jnp.finfo(jnp.float32).min)
    probs_BGNS = jax.nn.softmax(scores_BGNS, axis=-1)
    y_BGNK = jnp.einsum("bgns,bgsk->bgnk", probs_BGNS.astype(v_BSGK.dtype), v_BGSK)
    return _from_query_heads(y_BGNK, T), (q_BGNK, k_BGSK, v_BGSK, probs_BGNS, y_BGNK)


@jax.custom_vjp
def _attention(q_BTHK, k_BSGK, v_BSGK, mask):
    return _forward(q_BTHK, k_BSGK, v_BSGK, mask)[0]


def _attention_bwd(saved, dy_BTHK):
    q_BGNK, k_BGSK, v_BGSK, probs_BGNS, y_BGNK = saved
    T, K = dy_BTHK.shape[1], dy_BTHK.shape[3]
    dy_BGNK = _query_heads(dy_BTHK, k_BGSK.shape[1])
    dprobs_BGNS = jnp.einsum("bgnk,bgsk->bgns", dy_BGNK, v_BGSK,
                             preferred_element_type=jnp.float32)
    # Softmax backward. sum(dprobs * probs) over S equals sum(dy * y) over K (FlashAttention's
    # D). q was scaled by 1/sqrt(K) in the forward pass, so dk needs no scaling and dq takes
    # it after its matmul.
    rowsum_BGN1 = jnp.sum(dy_BGNK.astype(jnp.float32) * y_BGNK, -1, keepdims=True)
    dscores_BGNS = (probs_BGNS * (dprobs_BGNS - rowsum_BGN1)).astype(q_BGNK.dtype)
    dq_BGNK = jnp.einsum("bgns,bgsk->bgnk", dscores_BGNS, k_BGSK) * (1 / math.sqrt(K))
    dk_BSGK = jnp.einsum("bgns,bgnk->bsgk", dscores_BGNS, q_BGNK)
    dv_BSGK = jnp.einsum("bgns,bgnk->bsgk", probs_BGNS.astype(dy_BGNK.dtype), dy_BGNK)
    return _from_query_heads(dq_BGNK, T), dk_BSGK, dv_BSGK, None


_attention.defvjp(_forward, _attention_bwd)


def manual_vjp_attention(q_BTHK: jax.Array, k_BSGK: jax.Array, v_BSGK: jax.Array,
                         mask: jax.Array) -> jax.Array:
    """Causal attention over ``mask`` (``[T, S]``, or ``[B, 1, T, S]`` with documents) with
    the hand-written backward pass; values and gradients are ``reference_attention``'s."""
    return _attention(q_BTHK, k_BSGK, v_BSGK, mask)
