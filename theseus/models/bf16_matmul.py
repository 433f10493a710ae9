"""Matmuls at bfloat16 precision: operands rounded to bfloat16, products summed in float32.

``model.matmul_precision='bfloat16'`` routes every dense layer and the output head through
``bf16_matmul``; ``'auto'`` (the GPT tiny preset's setting) does so on CPUs with AMX only.
It is what a TPU does by default for a float32 matmul (one bfloat16 pass), and what
mixed-precision training does on GPUs; parameters, activations, norms, softmax and the loss
stay in the compute dtype (float32 by default).

Why it exists: on a CPU with AMX (Intel Sapphire Rapids and later) XLA:CPU runs a bfloat16
``[M, K] @ [K, N]`` dot with a float32 result on the AMX tiles, about 4-5x faster than the
float32 dot (GPT-2 small's ``[2048, 768] @ [768, 3072]``: 75-94 -> 19 ms on one core). It does
so only for that plain layout: a bfloat16 dot with a transposed operand, which JAX's
derived backward pass produces for both gradients, is converted to float32 first and gains
nothing. So the backward pass here is written out, each gradient a plain-layout dot of an
explicitly transposed copy (``materialized_transpose``).
"""

from __future__ import annotations

import functools
import itertools
import pathlib

import jax
import jax.numpy as jnp
from jax.experimental.layout import Layout, with_layout_constraint
from jax.typing import DTypeLike

MATMUL_PRECISIONS = ("float32", "bfloat16", "auto")
_CONTRACTION_PIECE = 1024


def resolve_matmul_precision(precision: str) -> str:
    """``float32`` or ``bfloat16``; ``auto`` is ``bfloat16`` on a CPU with AMX (where it was
    measured 4-5x faster) and ``float32`` elsewhere: CPUs without AMX (not measured), and
    accelerators, whose compute dtype (``model.dtype``) is the lever there."""
    if precision != "auto":
        return precision
    return "bfloat16" if jax.default_backend() == "cpu" and cpu_has_amx() else "float32"


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this machine's CPU has AMX bfloat16 tiles (Linux ``/proc/cpuinfo`` flags)."""
    try:
        return "amx_bf16" in pathlib.Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def materialized_transpose(x_AB: jax.Array) -> jax.Array:
    """``x.T`` as a row-major copy, so that the dot reading it has a plain layout.

    A bare ``x.T`` is folded into the consuming dot's dimension numbers by XLA (also through
    no-ops such as ``* 1`` or a float32 round trip), which gives back the transposed-operand
    dot this module avoids. A layout constraint on the transposed array pins it as its own
    copy: one pass over a weight or one layer's activations, small next to the dot.
    """
    return with_layout_constraint(x_AB.T, Layout(major_to_minor=(0, 1)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def bf16_matmul(x_MK: jax.Array, w_KN: jax.Array, out_dtype: DTypeLike) -> jax.Array:
    """``x @ w`` with bfloat16 operands and float32 accumulation, returned in ``out_dtype``.

    Gradients come back in the dtypes of ``x`` and ``w``; both gradient dots also take
    bfloat16 operands and accumulate in float32.
    """
    return _forward(x_MK, w_KN, out_dtype)[0]


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """The float32 product of two bfloat16 matrices, in row-major layout.

    Pinning the result matters as much as pinning the operands: were a consumer to transpose
    it, XLA:CPU would fold that transpose into a column-major dot output, which its AMX path
    does not take and its fallback cannot run ("Unsupported element type for DotThunk").
    """
    return with_layout_constraint(jnp.dot(a, b, preferred_element_type=jnp.float32),
                                  Layout(major_to_minor=(0, 1)))


def _dot_over_weight(a_MK: jax.Array, w_KN: jax.Array) -> jax.Array:
    """``_dot(a, w)`` with a long contraction (``K``, a weight's side) cut into even pieces of
    at most ``_CONTRACTION_PIECE`` whose products are summed.

    XLA:CPU's dot library loses speed with the contraction's length: on one core GPT-2 small's
    ``[512, 3072] @ [3072, 768]`` takes 5.8 ms whole and 4.1-4.5 ms as pieces of 512-1024
    (``[512, 768] @ [768, 768]`` takes 0.8). The pieces of ``a`` are column slices, which XLA
    fuses into the bfloat16 cast that makes ``a``; the partial sums are one fused add.
    """
    K = a_MK.shape[1]
    pieces = -(-K // _CONTRACTION_PIECE)
    if pieces == 1:
        return _dot(a_MK, w_KN)
    bounds = [K * i // pieces for i in range(pieces + 1)]
    return sum(_dot(a_MK[:, lo:hi], w_KN[lo:hi]) for lo, hi in itertools.pairwise(bounds))


def _rounded(x: jax.Array, w: jax.Array) -> tuple[jax.Array, ...]:
    """The residuals of both products: the operands in bfloat16 (half the memory of float32
    ones) and two zero scalars that carry the primal dtypes, which the cotangents must have."""
    return (x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), jnp.zeros((), x.dtype),
            jnp.zeros((), w.dtype))


def _forward(x_MK, w_KN, out_dtype):
    saved = _rounded(x_MK, w_KN)
    x16_MK, w16_KN = saved[:2]
    return _dot_over_weight(x16_MK, w16_KN).astype(out_dtype), saved


def _backward(out_dtype, saved, dy_MN):
    x16_MK, w16_KN, x_like, w_like = saved
    dy16_MN = dy_MN.astype(jnp.bfloat16)
    dx_MK = _dot_over_weight(dy16_MN, materialized_transpose(w16_KN)).astype(x_like.dtype)
    dw_KN = _dot(materialized_transpose(x16_MK), dy16_MN).astype(w_like.dtype)
    return dx_MK, dw_KN


bf16_matmul.defvjp(_forward, _backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def bf16_matmul_nt(x_MK: jax.Array, w_NK: jax.Array, out_dtype: DTypeLike) -> jax.Array:
    """``x @ w.T`` as ``bf16_matmul`` computes ``x @ w``: the tied output head, whose table is
    stored ``[vocab, features]``. Written out so that the table is transposed once in the
    forward pass and its gradient comes out in its own layout."""
    return _forward_nt(x_MK, w_NK, out_dtype)[0]


def _forward_nt(x_MK, w_NK, out_dtype):
    saved = _rounded(x_MK, w_NK)
    x16_MK, w16_NK = saved[:2]
    return _dot(x16_MK, materialized_transpose(w16_NK)).astype(out_dtype), saved


def _backward_nt(out_dtype, saved, dy_MN):
    x16_MK, w16_NK, x_like, w_like = saved
    dy16_MN = dy_MN.astype(jnp.bfloat16)
    dx_MK = _dot(dy16_MN, w16_NK).astype(x_like.dtype)
    dw_NK = _dot(materialized_transpose(dy16_MN), x16_MK).astype(w_like.dtype)
    return dx_MK, dw_NK


bf16_matmul_nt.defvjp(_forward_nt, _backward_nt)
