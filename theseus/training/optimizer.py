"""The optimizer: AdamW with global-norm clipping, a schedule and a weight-decay mask.

``AdamW`` is a frozen dataclass that fiddle configures, e.g.
``fdl.Config(AdamW, learning_rate=3e-4, schedule=fdl.Config(Cosine, warmup_steps=100))``;
``AdamW(...).make(total_steps)`` gives the ``optax.GradientTransformation`` the trainer uses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from theseus.training.schedules import Cosine, Schedule

_FLAGGED_LEAVES = {"bias": "decay_biases", "scale": "decay_norms", "embedding": "decay_embeddings"}


def _leaf_name(path: tuple[Any, ...]) -> str | None:
    """The innermost string key of a pytree path (list indices and integer keys are skipped)."""
    for entry in reversed(path):
        if isinstance(entry, jax.tree_util.DictKey):
            key = entry.key
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            key = entry.name
        elif isinstance(entry, jax.tree_util.FlattenedIndexKey):
            key = entry.key
        else:  # SequenceKey and anything else without a name
            continue
        if isinstance(key, str):
            return key
    return None


def _ndim(leaf: Any) -> int:
    shape = getattr(leaf, "shape", None)
    return len(shape) if shape is not None else np.ndim(leaf)


def decay_mask(
    params: Any,
    *,
    decay_norms: bool = False,
    decay_biases: bool = False,
    decay_embeddings: bool = False,
) -> Any:
    """A pytree of bools like ``params``: True where weight decay applies.

    The leaf's name (its innermost string key) decides: ``kernel`` is always decayed; ``bias``,
    ``scale`` (norm gains) and ``embedding`` only when ``decay_biases``, ``decay_norms`` and
    ``decay_embeddings`` are set; any other leaf is decayed iff it has 2 or more dimensions.
    """
    flags = {
        "decay_biases": decay_biases,
        "decay_norms": decay_norms,
        "decay_embeddings": decay_embeddings,
    }

    def decide(path: tuple[Any, ...], leaf: Any) -> bool:
        name = _leaf_name(path)
        if name == "kernel":
            return True
        if name in _FLAGGED_LEAVES:
            return flags[_FLAGGED_LEAVES[name]]
        return _ndim(leaf) >= 2

    return jax.tree_util.tree_map_with_path(decide, params)


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` (same result and state) written as a multiplication.

    Why: optax divides each gradient by the norm, and XLA:CPU writes a divided array out
    before the two Adam moments read it (it does not copy a division into several
    consumers), one more pass over every gradient; a multiplication by a scalar it fuses
    into both moments' updates.
    """

    def update(updates: Any, state: optax.EmptyState, params: Any = None) -> tuple[Any, Any]:
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.minimum(1.0, max_norm / norm)  # a zero norm gives inf, so 1: unclipped
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _check(name: str, ok: bool, valid: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{name} must be {valid}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class AdamW:
    """AdamW (decoupled weight decay, scaled by the learning rate) with optional clipping.

    Attributes:
      learning_rate: the peak learning rate; ``schedule`` shapes it over the run.
      b1, b2, eps: Adam's moment decay rates and denominator epsilon.
      weight_decay: decoupled weight decay coefficient, applied where ``decay_mask`` says.
      clip_norm: clip gradients to this global norm before Adam; None disables clipping.
      decay_norms, decay_biases, decay_embeddings: also decay ``scale``/``bias``/``embedding``.
      schedule: the learning-rate schedule (a ``Schedule`` from ``theseus.training.schedules``).
    """

    learning_rate: float = 3e-4
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float | None = 1.0
    decay_norms: bool = False
    decay_biases: bool = False
    decay_embeddings: bool = False
    schedule: Schedule = Cosine()

    def __post_init__(self) -> None:
        _check("learning_rate", self.learning_rate > 0, "> 0", self.learning_rate)
        _check("b1", 0 <= self.b1 < 1, "in [0, 1)", self.b1)
        _check("b2", 0 <= self.b2 < 1, "in [0, 1)", self.b2)
        _check("eps", self.eps > 0, "> 0", self.eps)
        _check("weight_decay", self.weight_decay >= 0, ">= 0", self.weight_decay)
        clip_ok = self.clip_norm is None or self.clip_norm > 0
        _check("clip_norm", clip_ok, "None (no clipping) or > 0", self.clip_norm)
        schedule_ok = isinstance(self.schedule, Schedule)
        valid = "a Schedule (Constant, Cosine, WSD, WSDS or CosineRewarmup)"
        _check("schedule", schedule_ok, valid, self.schedule)

    def mask(self, params: Any) -> Any:
        """``decay_mask`` of ``params`` with this optimizer's flags."""
        return decay_mask(
            params,
            decay_norms=self.decay_norms,
            decay_biases=self.decay_biases,
            decay_embeddings=self.decay_embeddings,
        )

    def make(self, total_steps: int) -> optax.GradientTransformation:
        """``chain([clip_by_global_norm(clip_norm)], adamw(schedule, ..., mask=self.mask))``."""
        adamw = optax.adamw(
            self.schedule.make(self.learning_rate, total_steps),
            b1=self.b1,
            b2=self.b2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            mask=self.mask,
        )
        clip = [] if self.clip_norm is None else [clip_by_global_norm(self.clip_norm)]
        return optax.chain(*clip, adamw)

    def learning_rate_at(self, step: int | jax.Array, total_steps: int) -> jax.Array:
        """The scheduled learning rate at ``step`` (for logging; works on traced steps)."""
        return self.schedule.make(self.learning_rate, total_steps)(step)
