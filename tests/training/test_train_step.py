"""The train step: gradient accumulation equals one big batch; state advances."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from theseus.models.gpt import GPTConfig
from theseus.training.train_step import cross_entropy, make_eval_step, make_train_step, update_if_finite

CFG = GPTConfig(vocab_size=64, seq_len=16, num_layers=2, d_model=32, num_heads=2)


def _state(tx):
    graphdef, variables = nnx.split(CFG.make(nnx.Rngs(0)))
    params = nnx.to_pure_dict(variables)
    return graphdef, {"params": params, "opt_state": tx.init(params),
                      "step": jnp.zeros((), jnp.int32)}


def _batch(b=8):
    return jax.random.randint(jax.random.key(1), (b, CFG.seq_len + 1), 0, CFG.vocab_size)


def test_cross_entropy_of_uniform_logits_is_log_vocab():
    logits = jnp.zeros((2, 3, 64))
    assert float(cross_entropy(logits, jnp.zeros((2, 3), jnp.int32))) == pytest.approx(np.log(64))


@pytest.mark.parametrize("dropout", [False, True])
def test_gradient_accumulation_matches_one_batch(dropout):
    tx = optax.sgd(0.1)
    graphdef, state = _state(tx)
    sched = optax.constant_schedule(0.1)
    one = jax.jit(make_train_step(graphdef, tx, sched, 0, False, microbatches=1))
    four = jax.jit(make_train_step(graphdef, tx, sched, 0, False, microbatches=4))
    s1, m1 = one(state, _batch())
    s4, m4 = four(state, _batch())
    assert float(m4["train/loss"]) == pytest.approx(float(m1["train/loss"]), rel=1e-5)
    for a, b in zip(jax.tree.leaves(s1["params"]), jax.tree.leaves(s4["params"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert int(s4["step"]) == 1


def test_dropout_key_changes_with_step_and_eval_is_deterministic():
    cfg = GPTConfig(vocab_size=64, seq_len=16, num_layers=1, d_model=32, num_heads=2,
                    dropout=0.5)
    graphdef, variables = nnx.split(cfg.make(nnx.Rngs(0)))
    params = nnx.to_pure_dict(variables)
    tx = optax.sgd(0.0)
    step = jax.jit(make_train_step(graphdef, tx, optax.constant_schedule(0.0), 0, True))
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    state, m1 = step(state, _batch())
    _, m2 = step(state, _batch())
    assert float(m1["train/loss"]) != float(m2["train/loss"])  # lr 0: only dropout differs
    eval_step = jax.jit(make_eval_step(graphdef))
    assert float(eval_step(params, _batch())) == float(eval_step(params, _batch()))


def test_a_non_finite_loss_leaves_the_state_unchanged():
    tx = optax.adam(0.1)
    graphdef, state = _state(tx)
    state["params"]["wte"]["embedding"] = state["params"]["wte"]["embedding"].at[0, 0].set(jnp.nan)
    step = jax.jit(make_train_step(graphdef, tx, optax.constant_schedule(0.1), 0, False))
    batch = jnp.zeros((2, CFG.seq_len + 1), jnp.int32)  # token 0: the NaN row is used
    new, metrics = step(jax.tree.map(jnp.copy, state), batch)
    assert int(metrics["train/skipped"]) == 1 and not np.isfinite(float(metrics["train/loss"]))
    for a, b in zip(jax.tree.leaves(new["params"]), jax.tree.leaves(state["params"])):
        np.testing.assert_array_equal(a, b)
    assert int(new["step"]) == 1


@pytest.mark.parametrize("conditional", [True, False])
def test_update_if_finite_by_conditional_or_select_agree(conditional):
    """The CPU path (lax.cond) and the accelerator path (where) give the same new state,
    and both keep params and optimizer state when the step is not finite."""
    tx = optax.adamw(0.1)
    _, state = _state(tx)
    params, opt_state = state["params"], state["opt_state"]
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    fn = jax.jit(update_if_finite, static_argnums=(0, 5))
    updates, expected_opt = tx.update(grads, opt_state, params)
    expected = optax.apply_updates(params, updates)
    new_params, new_opt = fn(tx, grads, opt_state, params, jnp.bool_(True), conditional)
    for a, b in zip(jax.tree.leaves((new_params, new_opt)),
                    jax.tree.leaves((expected, expected_opt))):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    kept_params, kept_opt = fn(tx, grads, opt_state, params, jnp.bool_(False), conditional)
    for a, b in zip(jax.tree.leaves((kept_params, kept_opt)),
                    jax.tree.leaves((params, opt_state))):
        np.testing.assert_array_equal(a, b)
