"""Tests for theseus.models.attention: causal and document masking, grouped-query heads,
and the fast paths (dot_product, manual_vjp) equal to the reference (float32, atol 1e-5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import normal
from theseus.models import attention as attn

attend = jax.jit(attn.causal_attention, static_argnames="impl")
TOL = 1e-5  # float32: fast paths vs reference


def _qkv(T=8, H=2, G=None, K=4, B=2):
    G = G or H
    return normal(B, T, H, K, seed=0), normal(B, T, G, K, seed=1), normal(B, T, G, K, seed=2)


def _segments(B, T, cut):
    """Two documents per row (ids 1 and 2) split at ``cut``, then one padding token (0)."""
    seg = np.ones((B, T), np.int32)
    seg[:, cut:] = 2
    seg[:, -1] = 0
    return jnp.asarray(seg)


@pytest.mark.parametrize("impl", ["reference", "dot_product", "manual_vjp"])
def test_causal_attention_ignores_future_keys(impl):
    q, k, v = _qkv()
    out = attend(q, k, v, impl=impl)
    t = 5
    out2 = attend(q, k.at[:, t:].set(100.0), v.at[:, t:].set(-100.0), impl=impl)
    np.testing.assert_allclose(out2[:, :t], out[:, :t], atol=1e-6)
    assert not np.allclose(out2[:, t:], out[:, t:])
    np.testing.assert_allclose(out[:, 0], v[:, 0], atol=1e-6)  # position 0 sees itself only


@pytest.mark.parametrize("impl", ["dot_product", "manual_vjp"])
@pytest.mark.parametrize("G", [3, 1])
@pytest.mark.parametrize("with_segments", [False, True])
def test_fast_paths_equal_reference(impl, G, with_segments):
    q, k, v = _qkv(T=12, H=3, G=G, K=8)
    seg = _segments(2, 12, 5) if with_segments else None
    ref = attend(q, k, v, impl="reference", segment_ids=seg)
    fast = attend(q, k, v, impl=impl, segment_ids=seg)
    np.testing.assert_allclose(fast, ref, atol=TOL)
    assert bool(jnp.isfinite(ref).all())


@pytest.mark.parametrize("impl", ["dot_product", "manual_vjp"])
@pytest.mark.parametrize(("H", "G", "with_segments"),
                         [(4, 2, True), (4, 4, False), (4, 1, True), (3, 3, True)])
def test_fast_path_gradients_equal_reference(impl, H, G, with_segments):
    q, k, v = _qkv(T=8, H=H, G=G, K=8)
    seg = _segments(2, 8, 3) if with_segments else None
    w = normal(*q.shape, seed=3)  # a loss whose cotangent differs at every output

    def grads(impl):
        f = lambda q, k, v: jnp.sum(jnp.sin(attn.causal_attention(q, k, v, impl, segment_ids=seg)
                                            * w))
        return jax.jit(jax.grad(f, argnums=(0, 1, 2)))(q, k, v)

    for a, b in zip(grads("reference"), grads(impl)):
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_manual_vjp_in_bfloat16_stays_close_to_float32():
    q, k, v = _qkv(T=16, H=4, G=2, K=8)

    def grad_q(impl, dt):
        out = lambda q: attn.causal_attention(q.astype(dt), k.astype(dt), v.astype(dt), impl)
        return jax.grad(lambda q: jnp.sum(out(q).astype(jnp.float32) ** 2))(q)

    ref = grad_q("reference", jnp.float32)
    fast = grad_q("manual_vjp", jnp.bfloat16)
    assert fast.dtype == jnp.float32
    np.testing.assert_allclose(fast, ref, atol=0.1, rtol=0.05)


def test_grouped_heads_read_their_group_as_hf_repeat_kv():
    """GQA equals multi-head attention with each KV head repeated for its query heads."""
    q, k, v = _qkv(T=6, H=4, G=2, K=4)
    grouped = attend(q, k, v, impl="reference")
    repeated = attend(q, jnp.repeat(k, 2, axis=2), jnp.repeat(v, 2, axis=2), impl="reference")
    np.testing.assert_allclose(grouped, repeated, atol=1e-6)


@pytest.mark.parametrize("impl", ["reference", "dot_product", "manual_vjp"])
def test_documents_do_not_see_each_other(impl):
    """The second document's outputs equal attention over it alone; the first's are unchanged
    whatever the second holds."""
    q, k, v = _qkv(T=10, H=2, K=4)
    seg = jnp.asarray(np.repeat([[1] * 4 + [2] * 6], 2, axis=0), jnp.int32)
    out = attend(q, k, v, impl=impl, segment_ids=seg)
    alone = attend(q[:, 4:], k[:, 4:], v[:, 4:], impl=impl)
    np.testing.assert_allclose(out[:, 4:], alone, atol=1e-6)
    np.testing.assert_allclose(out[:, :4], attend(q[:, :4], k[:, :4], v[:, :4], impl=impl),
                               atol=1e-6)


def test_padding_segment_gives_finite_outputs():
    q, k, v = _qkv(T=6)
    seg = jnp.zeros((2, 6), jnp.int32).at[:, :2].set(1)  # 4 padding tokens
    for impl in ("reference", "dot_product", "manual_vjp"):
        assert bool(jnp.isfinite(attend(q, k, v, impl=impl, segment_ids=seg)).all()), impl


def test_mask_shapes():
    assert attn.attention_mask(4, None).shape == (4, 4)
    seg = jnp.array([[1, 1, 2, 2]])
    mask = attn.attention_mask(4, seg)
    assert mask.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(mask[0, 0], [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0],
                                               [0, 0, 1, 1]])


def test_unknown_kernel_is_an_error():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="unknown attention kernel 'flash'"):
        attn.causal_attention(q, k, v, "flash")


def test_grouped_attention_layer_shapes_and_axes():
    layer = attn.GroupedAttention(32, 4, 2, rngs=nnx.Rngs(0), out_std=0.01, rope_base=10000.0)
    assert layer.q.kernel.shape == (32, 32) and layer.k.kernel.shape == (32, 16)
    assert layer.v.kernel.shape == (32, 16) and layer.o.kernel.shape == (32, 32)
    assert layer.q.bias is None and layer.o.bias is None
    assert layer.k.kernel.get_metadata()["out_sharding"] == ("embed", "heads")
    assert layer(normal(2, 5, 32)).shape == (2, 5, 32)
