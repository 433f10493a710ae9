"""A fusion boundary on the residual stream's cotangent, for XLA:CPU.

Why: in the backward pass XLA:CPU puts a transposing copy in front of every weight-gradient
dot (``dW = xᵀ·dy``) and fuses into that copy the whole elementwise chain that produces
``dy``: the norm backward and the residual adds of every layer above. Each copy thus
recomputes the residual cotangent from the top of the network, so the backward pass grows
quadratically with depth (on the tiny preset the backward was 2.5x a PyTorch twin's while
the forward was equal; see docs/performance.md, "Earlier: the CPU fusion boundary").

``residual_boundary`` is an identity in the forward pass whose backward passes the
cotangent through ``jax.lax.cond`` with a predicate read from the cotangent itself. A
conditional with a runtime predicate is a boundary XLA:CPU's fusion passes keep, so the
cotangent is materialised once at that point and the chains above it are no longer
recomputed. ``optimization_barrier`` does not work here: the CPU compiler expands it
before fusion. Both branches return the cotangent unchanged (``a * 1.0`` only keeps the
branches distinct), so values and gradients are those of the plain identity.

Only on CPU: on GPUs a conditional reads its predicate back to the host, a sync per layer,
and their fusion heuristics do not have this problem. The backend is read at trace time.
"""

from __future__ import annotations

import jax


@jax.custom_vjp
def _boundary(x: jax.Array) -> jax.Array:
    """Identity whose cotangent crosses a conditional (a fusion boundary on XLA:CPU)."""
    return x


def _boundary_fwd(x: jax.Array) -> tuple[jax.Array, None]:
    return x, None


def _boundary_bwd(_: None, g: jax.Array) -> tuple[jax.Array]:
    g = jax.lax.cond(g.reshape(-1)[0] > 0, lambda a: a, lambda a: a * 1, g)
    return (g,)


_boundary.defvjp(_boundary_fwd, _boundary_bwd)


def residual_boundary(x: jax.Array, enabled: bool) -> jax.Array:
    """``x`` unchanged; when ``enabled`` and the default backend is CPU, its cotangent is
    materialised here in the backward pass instead of being fused (and recomputed) into
    every consumer below. A no-op on other backends or when ``enabled`` is false."""
    if not enabled or jax.default_backend() != "cpu":
        return x
    return _boundary(x)
