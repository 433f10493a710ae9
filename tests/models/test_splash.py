"""Tests for theseus.models.splash: the TPU splash kernel, run in the Pallas interpreter on
CPU, equals the reference attention (float32, atol 1e-5); a clear error off TPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.helpers import normal
from theseus.models.attention import reference_attention
from theseus.models.splash import splash_attention

T = 128  # the kernel's smallest tile


@pytest.mark.slow
@pytest.mark.parametrize("G, with_segments", [(2, False), (1, True)])
def test_splash_equals_reference(G, with_segments):
    q, k, v = normal(2, T, 2, 16, seed=0), normal(2, T, G, 16, seed=1), normal(2, T, G, 16, seed=2)
    seg = None
    if with_segments:
        seg = jnp.asarray(np.repeat([[1] * 50 + [2] * 70 + [0] * 8], 2, axis=0), jnp.int32)
    fast = jax.jit(lambda q, k, v, s: splash_attention(q, k, v, s, interpret=True))(q, k, v, seg)
    np.testing.assert_allclose(fast, reference_attention(q, k, v, seg), atol=1e-5)


@pytest.mark.skipif(jax.default_backend() == "tpu", reason="checks the error off TPU")
def test_splash_off_tpu_is_a_clear_error():
    q = normal(1, T, 2, 16)
    with pytest.raises(ValueError, match="runs only on TPU"):
        splash_attention(q, q, q)


def test_sequence_not_a_multiple_of_the_tile_is_an_error():
    q = normal(1, 100, 2, 16)
    with pytest.raises(ValueError, match="multiple of 128"):
        splash_attention(q, q, q, interpret=True)
