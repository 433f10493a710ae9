"""Tests for theseus.training.optimizer: decay mask, AdamW behaviour, jit, fiddle round-trip."""

import dataclasses

import fiddle as fdl
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from fiddle.experimental import serialization

from theseus.training.optimizer import AdamW, decay_mask
from theseus.training.schedules import WSDS, Constant, Cosine


def tiny_params():
    """Nested plain dicts like nnx ``state.to_pure_dict()``, with int keys for layers."""
    return {
        "embed": {"embedding": jnp.ones((5, 4))},
        "layers": {
            0: {
                "attn": {"kernel": jnp.ones((4, 4)), "bias": jnp.ones((4,))},
                "norm": {"scale": jnp.ones((4,))},
            },
        },
        "blocks": [{"kernel": jnp.ones((4, 2))}],
        "other_matrix": jnp.ones((2, 3)),
        "other_vector": jnp.ones((3,)),
    }


def test_decay_mask_defaults():
    mask = decay_mask(tiny_params())
    assert mask == {
        "embed": {"embedding": False},
        "layers": {0: {"attn": {"kernel": True, "bias": False}, "norm": {"scale": False}}},
        "blocks": [{"kernel": True}],
        "other_matrix": True,
        "other_vector": False,
    }


@pytest.mark.parametrize(
    "flag, path",
    [
        ("decay_norms", ("layers", 0, "norm", "scale")),
        ("decay_biases", ("layers", 0, "attn", "bias")),
        ("decay_embeddings", ("embed", "embedding")),
    ],
)
def test_decay_mask_flags_flip_one_leaf(flag, path):
    base = jax.tree_util.tree_leaves(decay_mask(tiny_params()))
    mask = decay_mask(tiny_params(), **{flag: True})
    node = mask
    for key in path:
        node = node[key]
    assert node is True
    assert sum(jax.tree_util.tree_leaves(mask)) == sum(base) + 1


def test_decay_mask_attribute_and_sequence_paths():
    Params = dataclasses.make_dataclass("Params", ["kernel", "bias"])
    jax.tree_util.register_dataclass(Params, data_fields=["kernel", "bias"], meta_fields=[])
    tree = [Params(kernel=jnp.ones((2, 2)), bias=jnp.ones((2, 2))), jnp.ones((2, 2)), jnp.ones(2)]
    mask = decay_mask(tree)
    assert (mask[0].kernel, mask[0].bias, mask[1], mask[2]) == (True, False, True, False)


def named_params():
    return {
        "kernel": jnp.ones((2, 2)),
        "bias": jnp.ones((2,)),
        "scale": jnp.ones((2,)),
        "embedding": jnp.ones((3, 2)),
    }


@pytest.mark.parametrize("flags", [False, True])
def test_weight_decay_respects_mask(flags):
    opt = AdamW(
        learning_rate=0.1, weight_decay=0.5, schedule=Constant(),
        decay_norms=flags, decay_biases=flags, decay_embeddings=flags,
    )
    tx = opt.make(total_steps=10)
    params = named_params()
    grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["kernel"], 0.95)  # 1 - lr * wd * 1
    for name in ("bias", "scale", "embedding"):
        np.testing.assert_allclose(new[name], 0.95 if flags else 1.0)


def first_moment_norm(opt, grads, params):
    tx = opt.make(total_steps=10)
    _, state = tx.update(grads, tx.init(params), params)
    mu = optax.tree_utils.tree_get(state, "mu")
    return float(optax.tree.norm(mu)) / (1 - opt.b1)


def test_clipping_caps_global_norm():
    params = named_params()
    grads = jax.tree.map(lambda p: 1e6 * jnp.ones_like(p), params)
    huge = float(optax.tree.norm(grads))
    assert first_moment_norm(AdamW(clip_norm=1.0), grads, params) == pytest.approx(1.0, rel=1e-5)
    assert first_moment_norm(AdamW(clip_norm=2.5), grads, params) == pytest.approx(2.5, rel=1e-5)
    assert first_moment_norm(AdamW(clip_norm=None), grads, params) == pytest.approx(huge, rel=1e-5)
    # Matches optax's reference clipping directly.
    clipped, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    assert float(optax.tree.norm(clipped)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("scale", [0.0, 0.01, 1e6])
def test_clipping_equals_optax_and_keeps_its_state(scale):
    from theseus.training.optimizer import clip_by_global_norm

    grads = jax.tree.map(lambda p: scale * jnp.arange(p.size, dtype=p.dtype).reshape(p.shape),
                         named_params())
    ours, state = jax.jit(clip_by_global_norm(1.0).update)(grads, optax.EmptyState())
    reference, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    assert state == optax.EmptyState() == clip_by_global_norm(1.0).init(named_params())


def test_small_gradients_are_not_clipped():
    params = named_params()
    grads = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
    norm = float(optax.tree.norm(grads))
    assert first_moment_norm(AdamW(clip_norm=1.0), grads, params) == pytest.approx(norm, rel=1e-5)


def test_transform_runs_under_jit_and_matches_eager():
    opt = AdamW(learning_rate=1e-2, schedule=Cosine(warmup_steps=2))
    tx = opt.make(total_steps=20)
    params = named_params()
    grads = jax.tree.map(lambda p: 0.3 * jnp.ones_like(p), params)
    state = jax.jit(tx.init)(params)
    jit_updates, _ = jax.jit(tx.update)(grads, state, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    for a, b in zip(jax.tree.leaves(jit_updates), jax.tree.leaves(updates)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_quadratic_loss_decreases():
    target = {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.array([1.0, -2.0, 3.0])}
    params = jax.tree.map(jnp.zeros_like, target)

    def loss(p):
        return sum(jnp.sum((p[k] - target[k]) ** 2) for k in p)

    tx = AdamW(learning_rate=0.3, weight_decay=0.0, schedule=Cosine(warmup_steps=5)).make(total_steps=60)

    @jax.jit
    def step(p, s):
        value, grads = jax.value_and_grad(loss)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    state, first = tx.init(params), float(loss(params))
    for _ in range(60):
        params, state, _ = step(params, state)
    assert float(loss(params)) < 0.01 * first


def test_learning_rate_at():
    opt = AdamW(learning_rate=1e-3, schedule=Cosine(warmup_steps=10, final_fraction=0.1))
    assert float(opt.learning_rate_at(0, 110)) == pytest.approx(1e-4)
    assert float(opt.learning_rate_at(60, 110)) == pytest.approx(5.5e-4)
    jitted = jax.jit(opt.learning_rate_at, static_argnums=1)
    assert float(jitted(jnp.int32(110), 110)) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"b1": 1.0}, "b1"),
        ({"b2": -0.1}, "b2"),
        ({"eps": 0.0}, "eps"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"schedule": "cosine"}, "schedule"),
    ],
)
def test_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AdamW(**kwargs)


def test_fiddle_round_trip_and_build():
    cfg = fdl.Config(
        AdamW, learning_rate=1e-3, clip_norm=None, decay_norms=True,
        schedule=fdl.Config(WSDS, warmup_steps=10, cycle_ends=(0.25, 1.0), decay_shape="sqrt"),
    )
    loaded = serialization.load_json(serialization.dump_json(cfg))
    assert loaded == cfg
    opt = fdl.build(loaded)
    assert opt == AdamW(
        learning_rate=1e-3, clip_norm=None, decay_norms=True,
        schedule=WSDS(warmup_steps=10, cycle_ends=(0.25, 1.0), decay_shape="sqrt"),
    )
    assert isinstance(opt.make(100), optax.GradientTransformation)


def test_fiddle_default_config_builds():
    cfg = fdl.Config(AdamW)
    assert cfg.schedule == Cosine()
    built = fdl.build(serialization.load_json(serialization.dump_json(cfg)))
    assert built == AdamW()
