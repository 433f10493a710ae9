"""Tests for theseus.models.rope: rotate-half RoPE, default and explicit positions."""

import jax.numpy as jnp
import numpy as np

from tests.models.helpers import normal
from theseus.models.rope import rope


def test_rope_preserves_norm_and_position_zero():
    x = normal(1, 6, 2, 8)
    y = rope(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(y[:, 0], x[:, 0], rtol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    """<rope(q)_i, rope(k)_j> is the same for every (i, j) with the same i - j."""
    q = jnp.tile(normal(1, 1, 1, 8, seed=0), (1, 10, 1, 1))
    k = jnp.tile(normal(1, 1, 1, 8, seed=1), (1, 10, 1, 1))
    s = jnp.einsum("bthk,bshk->ts", rope(q), rope(k))
    for offset in (0, 1, 3):
        diag = jnp.diagonal(s, offset=-offset)
        np.testing.assert_allclose(diag, diag[0], rtol=1e-4, atol=1e-5)


def test_rope_is_rotate_half_by_hand():
    """Position p rotates the pair (x[i], x[i + K/2]) by p / base^(2i/K), as HF Llama."""
    x = normal(1, 3, 1, 4)
    y = rope(x, base=100.0)
    for p in range(3):
        for i in range(2):
            theta = p / 100.0 ** (2 * i / 4)
            a, b = float(x[0, p, 0, i]), float(x[0, p, 0, i + 2])
            np.testing.assert_allclose(y[0, p, 0, i], a * np.cos(theta) - b * np.sin(theta),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(y[0, p, 0, i + 2], b * np.cos(theta) + a * np.sin(theta),
                                       rtol=1e-5, atol=1e-6)


def test_explicit_positions():
    x = normal(2, 6, 2, 8)
    default = rope(x)
    np.testing.assert_allclose(rope(x, positions_BT=jnp.tile(jnp.arange(6), (2, 1))), default,
                               rtol=1e-6)
    # A row whose positions restart at 0 at token 2 rotates tokens 2.. like a fresh sequence.
    restart = jnp.array([[0, 1, 0, 1, 2, 3]] * 2)
    out = rope(x, positions_BT=restart)
    np.testing.assert_allclose(out[:, 2:], rope(x[:, 2:]), rtol=1e-6)
    np.testing.assert_allclose(out[:, :2], default[:, :2], rtol=1e-6)
