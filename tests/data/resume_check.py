"""A shared check for the data tests: a loader restored from its iterator state continues
at exactly the next batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def assert_resumes_at_the_next_batch(make_loader: Callable[[], Any], skip: int, check: int) -> None:
    """Reads ``skip`` batches, saves the state, and checks that a new loader set to that
    state yields the same next ``check`` batches (arrays or dicts of arrays)."""
    it = iter(make_loader())
    for _ in range(skip):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(check)]
    resumed = iter(make_loader())
    resumed.set_state(state)
    for want in expected:
        jax.tree.map(np.testing.assert_array_equal, next(resumed), want)
