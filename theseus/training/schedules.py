"""Learning-rate schedules: small frozen dataclasses that fiddle configures.

Each schedule's ``make(peak_value, total_steps)`` returns an ``optax.Schedule``: a jit-friendly
function ``step -> learning rate`` built from ``jnp`` ops, so it works on traced integer steps.
Below, ``t`` is the optimizer step (0 for the first update), ``W`` is ``warmup_steps``, ``N`` is
``total_steps``, ``f`` is ``final_fraction`` and every formula gives the multiplier of
``peak_value``. Warmup is shared by all schedules and never starts at zero:

    warmup(t) = min(1, (t + 1) / W)          for t < W

so step 0 already trains at ``peak / W`` and step ``W - 1`` is the first at full peak.
The last decay reaches ``f`` exactly at step ``N`` and the multiplier stays ``f`` from there. Step boundaries computed from fractions are rounded to the nearest step.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import optax

Multiplier = Callable[[jnp.ndarray], jnp.ndarray]

DECAY_SHAPES: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + jnp.cos(jnp.pi * p)),
    "sqrt": lambda p: 1.0 - jnp.sqrt(p),
}
"""Decay shapes ``s(p)`` for progress ``p`` in [0, 1]: each goes from 1 at p=0 to 0 at p=1."""


def _check_int(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


def _check_fraction(name: str, value: float, *, allow_zero: bool = True) -> None:
    ok = isinstance(value, (int, float)) and (0 <= value <= 1 if allow_zero else 0 < value <= 1)
    if not ok or isinstance(value, bool):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}.")


def _check_shape(value: str) -> None:
    if value not in DECAY_SHAPES:
        raise ValueError(f"decay_shape must be one of {sorted(DECAY_SHAPES)}, got {value!r}.")


def _anneal(t: jnp.ndarray, start: int, length: int, final: float, shape: str) -> jnp.ndarray:
    """``f + (1 - f) * s(p)`` with ``p = clip((t - start) / length, 0, 1)``: 1 before ``start``."""
    p = jnp.clip((t - start) / length, 0.0, 1.0)
    return final + (1.0 - final) * DECAY_SHAPES[shape](p)


def _with_warmup(t: jnp.ndarray, warmup_steps: int, mult: jnp.ndarray) -> jnp.ndarray:
    """Replaces ``mult`` by the linear warmup ``(t + 1) / W`` for ``t < W``."""
    if warmup_steps == 0:
        return mult
    return jnp.where(t < warmup_steps, jnp.minimum(1.0, (t + 1.0) / warmup_steps), mult)


def _scaled(peak_value: float, multiplier: Multiplier) -> optax.Schedule:
    """Turns a multiplier of a float step into an ``optax.Schedule`` of the learning rate."""

    def schedule(step: jnp.ndarray) -> jnp.ndarray:
        return peak_value * multiplier(jnp.asarray(step, jnp.float32))

    return schedule


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


class Schedule(abc.ABC):
    """Base of all learning-rate schedules."""

    @abc.abstractmethod
    def make(self, peak_value: float, total_steps: int) -> optax.Schedule:
        """Returns ``step -> learning rate`` peaking at ``peak_value`` for a ``total_steps`` run."""


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    """Linear warmup, then constant: ``min(1, (t + 1) / W)`` (just 1 when ``W == 0``)."""

    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _check_int("warmup_steps", self.warmup_steps, 0)

    def make(self, peak_value: float, total_steps: int) -> optax.Schedule:
        """See the class docstring; ``total_steps`` is only validated."""
        _check_int("total_steps", total_steps, 1)
        return _scaled(peak_value, lambda t: _with_warmup(t, self.warmup_steps, jnp.ones_like(t)))


@dataclasses.dataclass(frozen=True)
class Cosine(Schedule):
    """Warmup, then cosine decay to ``f`` at ``N``, constant after.

    For ``t >= W``: ``f + (1 - f) * 0.5 * (1 + cos(pi * p))`` with ``p = min(1, (t - W) / (N - W))``.
    """

    warmup_steps: int = 0
    final_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_fraction("final_fraction", self.final_fraction)

    def make(self, peak_value: float, total_steps: int) -> optax.Schedule:
        """See the class docstring."""
        _check_int("total_steps", total_steps, 1)
        w = self.warmup_steps
        if w >= total_steps:
            raise ValueError(f"warmup_steps ({w}) must be less than total_steps ({total_steps}).")
        length = total_steps - w
        return _scaled(
            peak_value,
            lambda t: _with_warmup(t, w, _anneal(t, w, length, self.final_fraction, "cosine")),
        )


def _wsd_cycles(
    schedule: "WSD | WSDS", cycle_ends: Sequence[float], total_steps: int
) -> Multiplier:
    """Multiplier of warmup + WSD cycles ending at the fractions ``cycle_ends`` of ``N``."""
    _check_int("total_steps", total_steps, 1)
    ends = [_round(c * total_steps) for c in cycle_ends]
    starts = [0] + ends[:-1]
    cycles = []  # (end, decay_start, decay_steps)
    for start, end in zip(starts, ends):
        if end <= start:
            raise ValueError(
                f"total_steps ({total_steps}) is too small for cycle_ends {tuple(cycle_ends)}."
            )
        decay_steps = max(1, _round(schedule.decay_fraction * (end - start)))
        cycles.append((end, end - decay_steps, decay_steps))
    if schedule.warmup_steps > cycles[0][1]:
        raise ValueError(
            f"warmup_steps ({schedule.warmup_steps}) must end before the first decay starts "
            f"(step {cycles[0][1]} of {total_steps})."
        )
    final, shape = schedule.final_fraction, schedule.decay_shape

    def multiplier(t: jnp.ndarray) -> jnp.ndarray:
        out = jnp.full_like(t, final)
        for end, decay_start, decay_steps in reversed(cycles):
            out = jnp.where(t < end, _anneal(t, decay_start, decay_steps, final, shape), out)
        return _with_warmup(t, schedule.warmup_steps, out)

    return multiplier


@dataclasses.dataclass(frozen=True)
class WSD(Schedule):
    """Warmup-stable-decay: warmup, 1 until the last ``decay_fraction`` of the run, then decay.

    With ``n = round(decay_fraction * N)`` decay steps starting at ``d = N - n``:
    1 for ``W <= t < d``, then ``f + (1 - f) * s((t - d) / n)`` reaching ``f`` at ``N`` and
    staying there. ``s`` is ``decay_shape``: "linear" ``1 - p``, "cosine"
    ``(1 + cos(pi p)) / 2`` or "sqrt" ``1 - sqrt(p)`` (MiniCPM; Hägele et al. 2024).
    """

    warmup_steps: int = 0
    decay_fraction: float = 0.2
    final_fraction: float = 0.0
    decay_shape: str = "linear"

    def __post_init__(self) -> None:
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_fraction("decay_fraction", self.decay_fraction, allow_zero=False)
        _check_fraction("final_fraction", self.final_fraction)
        _check_shape(self.decay_shape)

    def make(self, peak_value: float, total_steps: int) -> optax.Schedule:
        """See the class docstring."""
        return _scaled(peak_value, _wsd_cycles(self, (1.0,), total_steps))


@dataclasses.dataclass(frozen=True)
class WSDS(Schedule):
    """WSD-S (Wen et al. 2024, "river valley"): WSD cycles sharing one warmup.

    Cycle ``i`` spans steps ``[e_{i-1}, e_i)`` with ``e_i = round(cycle_ends[i] * N)`` and
    ``e_{-1} = 0``. It is 1 until its decay of ``n_i = round(decay_fraction * (e_i - e_{i-1}))``
    steps starting at ``d_i = e_i - n_i``, then ``f + (1 - f) * s((t - d_i) / n_i)``, which
    would reach ``f`` at ``e_i``; step ``e_i`` starts the next cycle straight back at 1 (no
    rewarmup). The last cycle ends at ``N`` and the multiplier stays ``f`` from there.
    ``s`` is ``decay_shape`` as in ``WSD``. Warmup happens once, in the first cycle.
    """

    warmup_steps: int = 0
    cycle_ends: tuple[float, ...] = (0.5, 1.0)
    decay_fraction: float = 0.1
    final_fraction: float = 0.0
    decay_shape: str = "linear"

    def __post_init__(self) -> None:
        _check_int("warmup_steps", self.warmup_steps, 0)
        ends = tuple(self.cycle_ends)
        in_range = all(isinstance(c, (int, float)) and 0 < c <= 1 for c in ends)
        increasing = all(a < b for a, b in zip(ends, ends[1:]))
        if not ends or not in_range or not increasing or ends[-1] != 1.0:
            raise ValueError(
                "cycle_ends must be strictly increasing fractions in (0, 1] ending with 1.0, "
                f"got {self.cycle_ends!r}."
            )
        object.__setattr__(self, "cycle_ends", ends)
        _check_fraction("decay_fraction", self.decay_fraction, allow_zero=False)
        _check_fraction("final_fraction", self.final_fraction)
        _check_shape(self.decay_shape)

    def make(self, peak_value: float, total_steps: int) -> optax.Schedule:
        """See the class docstring."""
        return _scaled(peak_value, _wsd_cycles(self, self.cycle_ends, total_steps))


@dataclasses.dataclass(frozen=True)
class CosineRewarmup(Schedule):
    """SGDR with warmup: ``num_cycles`` equal cycles, each a warmup and a cosine decay.

    Cycle ``i`` spans ``[s_i, e_i)`` with ``e_i = (i + 1) * N // num_cycles``; with the local
    step ``u = t - s_i`` and length ``L = e_i - s_i`` it is ``min(1, (u + 1) / W)`` for
    ``u < W``, then ``f + (1 - f) * 0.5 * (1 + cos(pi * (u - W) / (L - W)))``. From ``N`` on it
    stays ``f``. Each cycle's warmup starts again from ``1 / W`` of the peak.
    """

    num_cycles: int = 2
    warmup_steps: int = 0
    final_fraction: float = 0.1

    def __post_init__(self) -> None:
        _check_int("num_cycles", self.num_cycles, 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        _check_fraction("final_fraction", self.final_fraction)

    def make(self, peak_value: float, total_steps: int) -> optax.Schedule:
        """See the class docstring."""
        _check_int("total_steps", total_steps, 1)
        k, w, final = self.num_cycles, self.warmup_steps, self.final_fraction
        ends = [(i + 1) * total_steps // k for i in range(k)]
        starts = [0] + ends[:-1]
        shortest = min(e - s for s, e in zip(starts, ends))
        if w >= shortest:
            raise ValueError(
                f"warmup_steps ({w}) must be shorter than each cycle ({shortest} steps: "
                f"total_steps {total_steps} / num_cycles {k})."
            )

        def multiplier(t: jnp.ndarray) -> jnp.ndarray:
            out = jnp.full_like(t, final)
            for start, end in reversed(list(zip(starts, ends))):
                u = t - start
                cycle = _with_warmup(u, w, _anneal(u, w, end - start - w, final, "cosine"))
                out = jnp.where(t < end, cycle, out)
            return out

        return _scaled(peak_value, multiplier)
