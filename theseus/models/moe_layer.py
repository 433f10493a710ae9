"""A mixture-of-experts SwiGLU layer: float32 top-k router, capacity or dropless dispatch,
and the Switch/GShard load-balancing loss.

Experts' weights are ``[E, d_in, d_out]`` with the logical axis ``expert`` on the first
dimension, so the sharding table can place experts on their own mesh axis.

- ``capacity`` dispatch (GShard): each batch row is a group of T tokens; expert ``e`` takes
  at most ``C = ceil(capacity_factor * T * k / E)`` of a group's assignments, first choices
  before second choices, earlier tokens first. Assignments over capacity are dropped (that
  token's output from the expert is 0; the residual carries it).
- ``dropless``: every assignment is computed; tokens are sorted by expert and the experts
  run as one grouped matmul (``jax.lax.ragged_dot``).

Gates: the router's softmax probabilities of the chosen experts, renormalised to sum to 1
when ``k > 1`` (with ``k = 1`` the raw probability is kept so the router gets a gradient).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from theseus.models.layers import matmul, param

DISPATCH_MODES = ("capacity", "dropless")


class ExpertDense(nnx.Module):
    """One ``[d_in, d_out]`` matrix per expert, stacked as ``kernel [E, d_in, d_out]``."""

    def __init__(self, num_experts: int, d_in: int, d_out: int, axes: tuple[str, str], *,
                 rngs: nnx.Rngs, std: float = 0.02, param_dtype: str = "float32"):
        self.kernel = param(rngs, jax.nn.initializers.normal(std), (num_experts, d_in, d_out),
                            ("expert", *axes), param_dtype)


def route(logits_NE: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(probs_NE, gates_Nk, experts_Nk)`` from float32 router logits."""
    probs_NE = jax.nn.softmax(logits_NE.astype(jnp.float32), axis=-1)
    gates_Nk, experts_Nk = jax.lax.top_k(probs_NE, k)
    if k > 1:
        gates_Nk = gates_Nk / gates_Nk.sum(-1, keepdims=True)
    return probs_NE, gates_Nk, experts_Nk


def balance_loss(probs_NE: jax.Array, experts_Nk: jax.Array) -> jax.Array:
    """Switch/GShard load balancing ``E * sum_e f_e * P_e``: ``f_e`` the fraction of
    assignments routed to expert ``e``, ``P_e`` its mean router probability. 1 when
    balanced, up to ``E`` when every token goes to one expert."""
    E = probs_NE.shape[-1]
    f_E = jax.nn.one_hot(experts_Nk, E, dtype=jnp.float32).sum(1).mean(0) / experts_Nk.shape[1]
    return E * jnp.sum(f_E * probs_NE.mean(0))


def capacity(tokens_per_group: int, k: int, num_experts: int, factor: float) -> int:
    """Slots per expert per group: ``ceil(factor * T * k / E)``, between 1 and T."""
    return max(1, min(tokens_per_group, math.ceil(factor * tokens_per_group * k / num_experts)))


def dispatch_masks(experts_BTk: jax.Array, gates_BTk: jax.Array, num_experts: int, slots: int
                   ) -> tuple[jax.Array, jax.Array]:
    """``(dispatch_BTEC, combine_BTEC)``: one-hot slot of each kept assignment, and the same
    weighted by its gate. Within a row, first choices take slots before second choices."""
    B, T, k = experts_BTk.shape
    onehot_BkTE = jax.nn.one_hot(experts_BTk.transpose(0, 2, 1), num_experts, dtype=jnp.int32)
    order_BME = onehot_BkTE.reshape(B, k * T, num_experts)
    slot_BkT = ((jnp.cumsum(order_BME, axis=1) - 1) * order_BME).sum(-1).reshape(B, k, T)
    keep_BkT = slot_BkT < slots
    slot_1h_BkTC = jax.nn.one_hot(jnp.where(keep_BkT, slot_BkT, slots), slots, dtype=jnp.float32)
    dispatch_BkTEC = onehot_BkTE.astype(jnp.float32)[..., None] * slot_1h_BkTC[:, :, :, None, :]
    gates_BkT = gates_BTk.transpose(0, 2, 1)
    combine_BTEC = (dispatch_BkTEC * gates_BkT[..., None, None]).sum(1)
    return dispatch_BkTEC.sum(1), combine_BTEC


class MoE(nnx.Module):
    """Top-k routed SwiGLU experts: ``router``, ``gate``, ``up``, ``down``."""

    def __init__(self, d_model: int, ffn_dim: int, num_experts: int, k: int, *,
                 rngs: nnx.Rngs, out_std: float, capacity_factor: float = 1.25,
                 dispatch: str = "capacity", dtype: str = "float32", param_dtype: str = "float32"):
        E = num_experts
        self.router = ExpertRouter(d_model, E, rngs=rngs, param_dtype=param_dtype)
        self.gate = ExpertDense(E, d_model, ffn_dim, ("embed", "mlp"), rngs=rngs,
                                param_dtype=param_dtype)
        self.up = ExpertDense(E, d_model, ffn_dim, ("embed", "mlp"), rngs=rngs,
                              param_dtype=param_dtype)
        self.down = ExpertDense(E, ffn_dim, d_model, ("mlp", "embed"), rngs=rngs, std=out_std,
                                param_dtype=param_dtype)
        self.k, self.capacity_factor, self.dispatch, self.dtype = k, capacity_factor, dispatch, dtype

    def _kernels(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        return tuple(m.kernel[...].astype(self.dtype) for m in (self.gate, self.up, self.down))

    def __call__(self, x_BTD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(y_BTD, balance_loss)`` for the tokens of ``x_BTD``."""
        B, T, D = x_BTD.shape
        probs_NE, gates_Nk, experts_Nk = route(self.router(x_BTD).reshape(B * T, -1), self.k)
        loss = balance_loss(probs_NE, experts_Nk)
        x_BTD = x_BTD.astype(self.dtype)
        if self.dispatch == "dropless":
            y_ND = self._dropless(x_BTD.reshape(B * T, D), gates_Nk, experts_Nk)
            return y_ND.reshape(B, T, D), loss
        return self._capacity(x_BTD, gates_Nk.reshape(B, T, -1),
                              experts_Nk.reshape(B, T, -1)), loss

    def _capacity(self, x_BTD: jax.Array, gates_BTk: jax.Array, experts_BTk: jax.Array
                  ) -> jax.Array:
        T = x_BTD.shape[1]
        E = self.gate.kernel.shape[0]
        slots = capacity(T, self.k, E, self.capacity_factor)
        dispatch_BTEC, combine_BTEC = dispatch_masks(experts_BTk, gates_BTk, E, slots)
        gate_EDF, up_EDF, down_EFD = self._kernels()
        x_BECD = jnp.einsum("btec,btd->becd", dispatch_BTEC.astype(self.dtype), x_BTD)
        h_BECF = (jax.nn.silu(jnp.einsum("becd,edf->becf", x_BECD, gate_EDF))
                  * jnp.einsum("becd,edf->becf", x_BECD, up_EDF))
        y_BECD = jnp.einsum("becf,efd->becd", h_BECF, down_EFD)
        return jnp.einsum("btec,becd->btd", combine_BTEC.astype(self.dtype), y_BECD)

    def _dropless(self, x_ND: jax.Array, gates_Nk: jax.Array, experts_Nk: jax.Array
                  ) -> jax.Array:
        N, k = experts_Nk.shape
        E = self.gate.kernel.shape[0]
        experts_M = experts_Nk.reshape(-1)
        order_M = jnp.argsort(experts_M, stable=True)
        sizes_E = jnp.bincount(experts_M, length=E).astype(jnp.int32)
        xs_MD = x_ND[order_M // k]
        gate_EDF, up_EDF, down_EFD = self._kernels()
        h_MF = (jax.nn.silu(jax.lax.ragged_dot(xs_MD, gate_EDF, sizes_E))
                * jax.lax.ragged_dot(xs_MD, up_EDF, sizes_E))
        ys_MD = jax.lax.ragged_dot(h_MF, down_EFD, sizes_E)
        y_MD = jnp.zeros_like(ys_MD).at[order_M].set(ys_MD)
        weighted = y_MD.reshape(N, k, -1) * gates_Nk[..., None].astype(self.dtype)
        return weighted.sum(1)


class ExpertRouter(nnx.Module):
    """The router ``kernel [D, E]``; logits are computed in float32."""

    def __init__(self, d_model: int, num_experts: int, *, rngs: nnx.Rngs,
                 param_dtype: str = "float32"):
        self.kernel = param(rngs, jax.nn.initializers.normal(0.02), (d_model, num_experts),
                            ("embed", None), param_dtype)

    def __call__(self, x_BTD: jax.Array) -> jax.Array:
        return matmul(x_BTD.astype(jnp.float32), self.kernel[...].astype(jnp.float32))
