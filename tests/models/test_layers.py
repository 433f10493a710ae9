"""Tests for theseus.models.layers: dense, embed (tied head), dropout."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from theseus.models import layers


def _normal(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


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


def test_attend_with_boundary_has_the_same_logits_and_gradients():
    emb = layers.Embed(12, 4, ("vocab", "embed"), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 3, 4))
    targets = jnp.arange(6).reshape(2, 3)

    graphdef, state = nnx.split(emb)

    def loss(state, boundary):
        logits = nnx.merge(graphdef, state).attend(x, boundary)
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1).mean()

    grad_fn = jax.jit(jax.grad(loss), static_argnums=1)
    grads = {b: grad_fn(state, b)["embedding"][...] for b in (False, True)}
    np.testing.assert_array_equal(emb.attend(x, True), emb.attend(x, False))
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-6)
    if jax.default_backend() == "cpu":
        text = grad_fn.lower(state, True).compile().as_text()
        assert "conditional(" in text


def test_head_boundary_only_on_float32_heads_and_only_when_enabled():
    logits = jax.random.normal(jax.random.key(2), (2, 3, 12))
    assert layers.head_boundary(logits, "bfloat16", True) is logits
    assert layers.head_boundary(logits, "float32", False) is logits
    weights = jnp.arange(12.0)

    def loss(x):
        return (jnp.sin(layers.head_boundary(x, "float32", True)) * weights).sum()

    np.testing.assert_allclose(jax.grad(loss)(logits), jnp.cos(logits) * weights, rtol=1e-6)
    if jax.default_backend() == "cpu":
        assert "conditional(" in jax.jit(jax.grad(loss)).lower(logits).compile().as_text()


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


def test_matmul_flattens_leading_axes_with_the_value_and_gradient_of_a_plain_dot():
    x = jax.random.normal(jax.random.key(0), (3, 5, 8))
    w = jax.random.normal(jax.random.key(1), (8, 6))
    y = layers.matmul(x, w)
    assert y.shape == (3, 5, 6)
    np.testing.assert_allclose(y, jnp.einsum("btd,df->btf", x, w), rtol=1e-6, atol=1e-6)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    ours = jax.grad(loss(layers.matmul), argnums=(0, 1))(x, w)
    plain = jax.grad(loss(lambda x, w: jnp.einsum("btd,df->btf", x, w)), argnums=(0, 1))(x, w)
    for a, b in zip(ours, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert layers.matmul(x, w, preferred_element_type=jnp.float32).dtype == jnp.float32
