"""Tests for theseus.models.mlp: the GELU MLP and SwiGLU equal their formulas."""

import jax
import numpy as np
from flax import nnx

from tests.models.helpers import normal
from theseus.models.mlp import GeluMLP, SwiGLU


def test_gelu_mlp_formula():
    mlp = GeluMLP(8, 16, rngs=nnx.Rngs(0), out_std=0.02)
    x = normal(3, 8)
    h = jax.nn.gelu(x @ mlp.up.kernel[...] + mlp.up.bias[...], approximate=True)
    np.testing.assert_allclose(mlp(x), h @ mlp.down.kernel[...] + mlp.down.bias[...], rtol=1e-5,
                               atol=1e-7)


def test_swiglu_formula_and_no_biases():
    mlp = SwiGLU(8, 16, rngs=nnx.Rngs(0), out_std=0.02)
    assert mlp.gate.bias is None and mlp.up.bias is None and mlp.down.bias is None
    x = normal(3, 8)
    h = jax.nn.silu(x @ mlp.gate.kernel[...]) * (x @ mlp.up.kernel[...])
    np.testing.assert_allclose(mlp(x), h @ mlp.down.kernel[...], rtol=1e-5, atol=1e-7)
    assert mlp.down.kernel.get_metadata()["out_sharding"] == ("mlp", "embed")
