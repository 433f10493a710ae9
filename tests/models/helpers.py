"""Shared helpers for the model tests: random inputs, jitted application, packing."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def normal(*shape: int, seed: int = 0) -> jax.Array:
    """Standard-normal float32 array of ``shape``."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def token_ids(B: int = 2, T: int = 16, vocab: int = 64, seed: int = 0) -> jax.Array:
    """Random int32 token ids ``[B, T]``."""
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, (B, T)), jnp.int32)


def build(cfg, seed: int = 0):
    """The module, its graphdef and its parameters as a plain nested dict."""
    model = cfg.make(nnx.Rngs(seed))
    graphdef, state = nnx.split(model)
    return model, graphdef, nnx.to_pure_dict(state)


@functools.partial(jax.jit, static_argnums=0)
def forward(graphdef, params, ids_BT, key=None, segment_ids=None, positions=None):
    """``model.forward`` of the merged module, jitted: ``(logits, aux_loss)``."""
    return nnx.merge(graphdef, params).forward(ids_BT, key, segment_ids=segment_ids,
                                               positions=positions)


def params_of(model) -> list:
    """``[(path, nnx.Param)]`` for every parameter of ``model``."""
    return [(path, v) for path, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)]


def packed(first: jax.Array, second: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Two documents ``[B, T1]`` and ``[B, T2]`` packed in one row: ids, segment ids (1, 2)
    and positions that restart at 0 for the second document."""
    T1, T2 = first.shape[1], second.shape[1]
    B = first.shape[0]
    ids = jnp.concatenate([first, second], axis=1)
    seg = jnp.concatenate([jnp.ones((B, T1), jnp.int32), jnp.full((B, T2), 2, jnp.int32)], 1)
    pos = jnp.concatenate([jnp.tile(jnp.arange(T1), (B, 1)), jnp.tile(jnp.arange(T2), (B, 1))], 1)
    return ids, seg, pos.astype(jnp.int32)


def pattern_losses(cfg, steps: int = 20) -> list[float]:
    """Losses of ``steps`` Adam steps (lr 1e-2) of a fresh ``cfg`` model on a repeating
    pattern of 8 tokens out of 64 (batch 4 x 17): a model that learns drives them down."""
    import optax

    from theseus.training.train_step import make_loss_fn

    _, graphdef, params = build(cfg)
    stream = np.tile(np.arange(8) * 7 % 64, 10)
    batch = jnp.asarray(np.stack([stream[o:o + 17] for o in range(4)]), jnp.int32)
    loss_fn, tx = make_loss_fn(graphdef), optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, None)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, losses = tx.init(params), []
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    return losses
