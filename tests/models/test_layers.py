"""Tests for theseus.models.layers: dense, embed, layer norm, rope, attention, dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from theseus.models import layers

attention = jax.jit(layers.causal_attention, static_argnames="impl")


def _normal(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _qkv(T=8, H=2, K=4, B=2):
    return tuple(_normal(B, T, H, K, seed=s) for s in range(3))


def test_dense_computes_affine_map_and_annotates_axes():
    dense = layers.Dense(3, 5, ("embed", "mlp"), rngs=nnx.Rngs(0))
    dense.bias[...] = jnp.arange(5, dtype=jnp.float32)
    x = _normal(2, 3)
    np.testing.assert_allclose(dense(x), x @ dense.kernel[...] + dense.bias[...], rtol=1e-6)
    assert dense.kernel.get_metadata()["out_sharding"] == ("embed", "mlp")
    assert dense.bias.get_metadata()["out_sharding"] == ("mlp",)


def test_dense_without_bias_and_in_bfloat16():
    dense = layers.Dense(4, 4, ("embed", "heads"), rngs=nnx.Rngs(0), use_bias=False,
                         dtype="bfloat16", param_dtype="float32")
    assert dense.bias is None
    assert dense.kernel[...].dtype == jnp.float32
    assert dense(jnp.ones((1, 4))).dtype == jnp.bfloat16


def test_embed_lookup_and_attend_is_float32():
    emb = layers.Embed(10, 4, ("vocab", "embed"), rngs=nnx.Rngs(0), dtype="bfloat16")
    ids = jnp.array([[3, 7]])
    np.testing.assert_array_equal(emb(ids), emb.embedding[...][ids].astype(jnp.bfloat16))
    logits = emb.attend(jnp.ones((1, 2, 4), jnp.bfloat16))
    assert logits.shape == (1, 2, 10) and logits.dtype == jnp.float32


def test_layer_norm_normalises_and_keeps_dtype():
    ln = layers.LayerNorm(16, rngs=nnx.Rngs(0))
    x = 3.0 + 5.0 * _normal(4, 16)
    y = ln(x)
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(-1), 1.0, atol=1e-3)
    assert ln(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
    assert {ln.scale.get_metadata()["out_sharding"], ln.bias.get_metadata()["out_sharding"]} == {
        ("embed",)}


def test_rope_preserves_norm_and_position_zero():
    x = _normal(1, 6, 2, 8)
    y = layers.rope(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(y[:, 0], x[:, 0], rtol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
    """<rope(q)_i, rope(k)_j> is the same for every (i, j) with the same i - j."""
    q = jnp.tile(_normal(1, 1, 1, 8, seed=0), (1, 10, 1, 1))
    k = jnp.tile(_normal(1, 1, 1, 8, seed=1), (1, 10, 1, 1))
    s = jnp.einsum("bthk,bshk->ts", layers.rope(q), layers.rope(k))
    for offset in (0, 1, 3):
        diag = jnp.diagonal(s, offset=-offset)
        np.testing.assert_allclose(diag, diag[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", ["reference", "dot_product"])
def test_causal_attention_ignores_future_keys(impl):
    q, k, v = _qkv()
    out = attention(q, k, v, impl=impl)
    t = 5
    k2 = k.at[:, t:].set(100.0)
    v2 = v.at[:, t:].set(-100.0)
    out2 = attention(q, k2, v2, impl=impl)
    np.testing.assert_allclose(out2[:, :t], out[:, :t], atol=1e-6)
    assert not np.allclose(out2[:, t:], out[:, t:])
    # The first position can only attend to itself.
    np.testing.assert_allclose(out[:, 0], v[:, 0], atol=1e-6)


def test_attention_impls_agree():
    q, k, v = _qkv(T=12, H=3, K=8)
    np.testing.assert_allclose(attention(q, k, v, impl="reference"),
                               attention(q, k, v, impl="dot_product"), atol=1e-5)


def test_dropout_identity_without_key_or_rate():
    x = jnp.ones((4, 8))
    assert layers.dropout(x, 0.5, None) is x
    assert layers.dropout(x, 0.0, jax.random.key(0)) is x


def test_dropout_zeroes_and_rescales():
    x = jnp.ones((200, 200))
    y = layers.dropout(x, 0.25, jax.random.key(0))
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1.0 / 0.75, rtol=1e-6)
    assert 0.22 < 1.0 - float(kept.mean()) < 0.28
    np.testing.assert_array_equal(y, layers.dropout(x, 0.25, jax.random.key(0)))
    assert not np.array_equal(y, layers.dropout(x, 0.25, jax.random.key(1)))
