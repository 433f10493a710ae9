"""Tests for theseus.models.norms: LayerNorm and RMSNorm."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from tests.models.helpers import normal
from theseus.models.norms import LayerNorm, RMSNorm


def test_layer_norm_normalises_and_keeps_dtype():
    ln = LayerNorm(16, rngs=nnx.Rngs(0))
    x = 3.0 + 5.0 * normal(4, 16)
    y = ln(x)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, atol=1e-3)
    assert ln(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    assert {ln.scale.get_metadata()["out_sharding"], ln.bias.get_metadata()["out_sharding"]} == {
        ("embed",)}


def test_rms_norm_matches_its_formula_and_keeps_dtype():
    norm = RMSNorm(16, rngs=nnx.Rngs(0), eps=1e-6)
    norm.scale[...] = jnp.linspace(0.5, 2.0, 16)
    x = 3.0 + 5.0 * normal(4, 16)
    expected = x / np.sqrt(np.mean(np.square(x), -1, keepdims=True) + 1e-6) * norm.scale[...]
    np.testing.assert_allclose(norm(x), expected, rtol=1e-5)
    assert norm(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    assert norm.scale.get_metadata()["out_sharding"] == ("embed",)
    assert not hasattr(norm, "bias")


def test_rms_norm_of_unit_gain_has_unit_rms():
    y = RMSNorm(32, rngs=nnx.Rngs(0))(7.0 * normal(3, 32))
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(jnp.square(y), -1)), 1.0, rtol=1e-4)
