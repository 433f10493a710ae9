"""Basic layers every model family composes: dense, embeddings (with a tied head), dropout.

Norms live in ``norms``, rotary positions in ``rope``, attention in ``attention``, MLPs in
``mlp`` and mixture-of-experts layers in ``moe_layer``.

Parameters are created with logical axis names (``embed``, ``mlp``, ``heads`` (query and
key/value heads alike), ``vocab``, ``expert``) so that one table in ``theseus.training.sharding``
maps them onto any mesh.
Leaf parameter names follow one convention that the optimizer relies on:
``kernel`` (matrices, weight-decayed), ``bias``, ``scale`` (norm gains) and ``embedding``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models.bf16_matmul import bf16_matmul, bf16_matmul_nt
from theseus.models.fusion import residual_boundary

Initializer = jax.nn.initializers.Initializer


def param(rngs: nnx.Rngs, init: Initializer, shape: tuple[int, ...], axes: tuple[str | None, ...],
          dtype: jnp.dtype) -> nnx.Param:
    """A parameter initialised by ``init`` and annotated with logical ``axes``."""
    return nnx.Param(init(rngs.params(), shape, dtype), out_sharding=axes, eager_sharding=False)


class Dense(nnx.Module):
    """``y = x @ kernel (+ bias)`` over the last axis, computed in ``dtype``; the matmul at
    ``matmul_precision`` (``float32``, or ``bfloat16`` operands with float32 sums)."""

    def __init__(self, d_in: int, d_out: int, axes: tuple[str | None, str | None], *, rngs: nnx.Rngs,
                 use_bias: bool = True, std: float = 0.02, dtype: str = "float32",
                 param_dtype: str = "float32", matmul_precision: str = "float32"):
        self.kernel = param(rngs, jax.nn.initializers.normal(std), (d_in, d_out), axes, param_dtype)
        self.bias = (param(rngs, jax.nn.initializers.zeros, (d_out,), (axes[1],), param_dtype)
                     if use_bias else None)
        self.dtype, self.matmul_precision = dtype, matmul_precision

    def __call__(self, x: jax.Array) -> jax.Array:
        y = matmul(x.astype(self.dtype), self.kernel[...].astype(self.dtype),
                   precision=self.matmul_precision)
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


def matmul(x: jax.Array, kernel_IO: jax.Array, preferred_element_type: jnp.dtype | None = None,
           precision: str = "float32") -> jax.Array:
    """``x @ kernel`` over the last axis of ``x``, computed as one 2-D matmul; with
    ``precision='bfloat16'`` the operands are rounded to bfloat16 and the products summed in
    float32 (``bf16_matmul``).

    Why flatten: for a 3-D ``x`` XLA:CPU computes the weight gradient as a transposed-operand
    dot that its fast dot library does not take, plus a transposing copy into which it fuses
    (and recomputes) the norm that produced ``x``. As ``[rows, in] @ [in, out]`` the same
    gradient is a plain dot (tiny preset: forward + backward 215 -> 190 CPU ms, identical
    loss). Elsewhere the reshape is free.
    """
    x_MI = x.reshape(-1, x.shape[-1])
    if precision == "bfloat16":
        y = bf16_matmul(x_MI, kernel_IO, preferred_element_type or x.dtype)
    else:
        y = jnp.dot(x_MI, kernel_IO, preferred_element_type=preferred_element_type)
    return y.reshape(*x.shape[:-1], kernel_IO.shape[-1])


class Embed(nnx.Module):
    """A lookup table ``[num, features]``; ``attend`` reuses it as the tied output head."""

    def __init__(self, num: int, features: int, axes: tuple[str | None, str | None], *,
                 rngs: nnx.Rngs, std: float = 0.02, dtype: str = "float32",
                 param_dtype: str = "float32", matmul_precision: str = "float32"):
        self.embedding = param(rngs, jax.nn.initializers.normal(std), (num, features), axes,
                               param_dtype)
        self.dtype, self.matmul_precision = dtype, matmul_precision

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)

    def attend(self, x_BTD: jax.Array, boundary: bool = False) -> jax.Array:
        """Logits against every row of the table, in float32 for a stable softmax; with
        ``boundary`` (``cpu_fusion_boundary``) their float32 gradient is materialised once on
        CPU."""
        if self.matmul_precision == "bfloat16":
            x_MD = x_BTD.reshape(-1, x_BTD.shape[-1])
            logits_MV = bf16_matmul_nt(x_MD, self.embedding[...], jnp.float32)
            return logits_MV.reshape(*x_BTD.shape[:-1], -1)
        logits_BTV = jnp.dot(x_BTD.astype(self.dtype), self.embedding[...].astype(self.dtype).T,
                             preferred_element_type=jnp.float32)
        return head_boundary(logits_BTV, self.matmul_precision, boundary)


def head_boundary(logits: jax.Array, precision: str, enabled: bool) -> jax.Array:
    """An output head's logits, unchanged; with ``enabled`` (``cpu_fusion_boundary``) and a
    float32 head their gradient is materialised once on CPU (``residual_boundary``).

    Else XLA:CPU recomputes the cross-entropy's gradient (a fused select) inside the
    transposing copy before the head's weight-gradient dot: 30 ms against 6 ms on tiny. A
    bfloat16 head (``bf16_matmul``) casts that gradient first, and the select must stay
    fused with the cast, so it gets no boundary.
    """
    return logits if precision == "bfloat16" else residual_boundary(logits, enabled)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; the identity when ``key`` is None (evaluation) or ``rate`` is 0."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))
