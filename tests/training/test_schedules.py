"""Tests for theseus.training.schedules: exact values, jit, validation, fiddle round-trip."""

import math

import fiddle as fdl
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fiddle.experimental import serialization

from theseus.training.schedules import WSD, WSDS, Constant, Cosine, CosineRewarmup


def values(schedule, peak, total, steps):
    """The schedule's learning rates at ``steps``, eagerly."""
    fn = schedule.make(peak, total)
    return [float(fn(s)) for s in steps]


def check(schedule, total, expected, peak=1.0):
    """Asserts ``{step: multiplier}`` for a schedule with ``peak`` and ``total`` steps."""
    got = values(schedule, peak, total, list(expected))
    np.testing.assert_allclose(got, [peak * v for v in expected.values()], rtol=1e-6, atol=1e-7)


def cos_mult(p, final):
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p))


def test_constant():
    check(Constant(warmup_steps=4), 100, {0: 0.25, 1: 0.5, 3: 1.0, 4: 1.0, 50: 1.0, 1000: 1.0}, peak=2.0)
    check(Constant(), 100, {0: 1.0, 99: 1.0, 500: 1.0})


def test_cosine():
    s = Cosine(warmup_steps=10, final_fraction=0.1)
    expected = {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 35: cos_mult(0.25, 0.1), 60: 0.55, 110: 0.1, 500: 0.1}
    check(s, 110, expected, peak=3e-4)
    check(Cosine(final_fraction=0.0), 100, {0: 1.0, 50: 0.5, 100: 0.0, 101: 0.0})


@pytest.mark.parametrize(
    "shape, mid", [("linear", 0.5), ("cosine", 0.5), ("sqrt", 1 - math.sqrt(0.5))]
)
def test_wsd_shapes(shape, mid):
    s = WSD(warmup_steps=10, decay_fraction=0.2, final_fraction=0.0, decay_shape=shape)
    check(s, 100, {0: 0.1, 9: 1.0, 10: 1.0, 50: 1.0, 79: 1.0, 80: 1.0, 90: mid, 100: 0.0, 200: 0.0})


def test_wsd_final_fraction_and_sqrt_quarter():
    check(WSD(final_fraction=0.1), 100, {0: 1.0, 80: 1.0, 90: 0.55, 100: 0.1, 150: 0.1})
    check(WSD(decay_shape="sqrt"), 100, {85: 0.5, 100: 0.0})


def test_wsds_two_cycles():
    s = WSDS(warmup_steps=5, cycle_ends=(0.5, 1.0), decay_fraction=0.2, final_fraction=0.0)
    expected = {
        0: 0.2, 4: 1.0, 39: 1.0, 40: 1.0, 45: 0.5, 49: 0.1,  # first decay: steps 40..49
        50: 1.0, 51: 1.0, 89: 1.0, 90: 1.0, 95: 0.5, 99: 0.1,  # straight back to peak
        100: 0.0, 150: 0.0,
    }
    check(s, 100, expected)


def test_wsds_three_cycles_with_final_fraction():
    s = WSDS(cycle_ends=(0.25, 0.5, 1.0), decay_fraction=0.2, final_fraction=0.5, decay_shape="linear")
    # cycles [0,25) [25,50) [50,100); decays of 5, 5 and 10 steps start at 20, 45 and 90.
    expected = {
        0: 1.0, 19: 1.0, 20: 1.0, 22: 0.8, 24: 0.6, 25: 1.0, 45: 1.0, 47: 0.8,
        50: 1.0, 89: 1.0, 95: 0.75, 100: 0.5, 10_000: 0.5,
    }
    check(s, 100, expected)


def test_wsd_equals_single_cycle_wsds():
    wsd = WSD(warmup_steps=7, decay_fraction=0.3, final_fraction=0.05, decay_shape="cosine")
    wsds = WSDS(
        warmup_steps=7, cycle_ends=(1.0,), decay_fraction=0.3, final_fraction=0.05,
        decay_shape="cosine",
    )
    steps = list(range(0, 130, 3))
    np.testing.assert_allclose(values(wsd, 1.0, 120, steps), values(wsds, 1.0, 120, steps))


def test_cosine_rewarmup():
    s = CosineRewarmup(num_cycles=2, warmup_steps=10, final_fraction=0.0)
    expected = {
        0: 0.1, 9: 1.0, 10: 1.0, 55: 0.5, 99: cos_mult(89 / 90, 0.0),
        100: 0.1, 104: 0.5, 109: 1.0, 110: 1.0, 155: 0.5, 200: 0.0, 300: 0.0,
    }
    check(s, 200, expected)
    three = CosineRewarmup(num_cycles=3, final_fraction=0.1)
    check(three, 90, {0: 1.0, 15: 0.55, 30: 1.0, 60: 1.0, 75: 0.55, 90: 0.1})


def test_cosine_rewarmup_uneven_cycles():
    # total 101 in 2 cycles: [0, 50) and [50, 101).
    s = CosineRewarmup(num_cycles=2, final_fraction=0.0)
    check(s, 101, {0: 1.0, 25: 0.5, 50: 1.0, 101: 0.0})


ALL = [
    Constant(warmup_steps=3),
    Cosine(warmup_steps=5),
    WSD(warmup_steps=5, decay_shape="sqrt"),
    WSDS(warmup_steps=5, cycle_ends=(0.3, 0.6, 1.0), decay_shape="cosine"),
    CosineRewarmup(num_cycles=3, warmup_steps=4),
]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_jit_matches_eager(schedule):
    fn = schedule.make(1e-3, 100)
    steps = jnp.arange(0, 120, dtype=jnp.int32)
    jitted = jax.jit(jax.vmap(fn))(steps)
    eager = np.array([float(fn(int(s))) for s in steps])
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-5, atol=1e-10)
    assert float(jax.jit(fn)(jnp.int32(7))) == pytest.approx(eager[7], rel=1e-6)
    assert np.all(np.asarray(jitted) >= 0) and np.all(np.asarray(jitted) <= 1e-3 * (1 + 1e-6))


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Constant(warmup_steps=-1), "warmup_steps"),
        (lambda: Cosine(final_fraction=1.5), "final_fraction"),
        (lambda: WSD(decay_fraction=0.0), "decay_fraction"),
        (lambda: WSD(decay_shape="exp"), "decay_shape"),
        (lambda: WSDS(cycle_ends=(0.5, 0.4, 1.0)), "cycle_ends"),
        (lambda: WSDS(cycle_ends=(0.5, 0.9)), "cycle_ends"),
        (lambda: WSDS(cycle_ends=(0.0, 1.0)), "cycle_ends"),
        (lambda: WSDS(cycle_ends=()), "cycle_ends"),
        (lambda: CosineRewarmup(num_cycles=0), "num_cycles"),
        (lambda: Cosine(warmup_steps=100).make(1.0, 100), "warmup_steps"),
        (lambda: WSD(warmup_steps=90).make(1.0, 100), "warmup_steps"),
        (lambda: CosineRewarmup(warmup_steps=50).make(1.0, 100), "warmup_steps"),
        (lambda: Constant().make(1.0, 0), "total_steps"),
        (lambda: WSDS(cycle_ends=(0.001, 1.0)).make(1.0, 10), "total_steps"),
    ],
)
def test_validation(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_wsds_accepts_list_and_stores_tuple():
    s = WSDS(cycle_ends=[0.5, 1.0])
    assert s.cycle_ends == (0.5, 1.0)
    hash(s)


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_fiddle_round_trip(schedule):
    fields = {k: v for k, v in vars(schedule).items()}
    cfg = fdl.Config(type(schedule), **fields)
    loaded = serialization.load_json(serialization.dump_json(cfg))
    assert loaded == cfg
    assert fdl.build(loaded) == schedule
