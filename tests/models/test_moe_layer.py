"""Tests for theseus.models.moe_layer: routing, the load-balancing loss, capacity slots by
hand, and both dispatch modes against a dense computation of every expert."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import normal
from theseus.models import moe_layer as ml

D, F, E = 8, 12, 4


def _layer(k=2, factor=1.25, dispatch="capacity"):
    return ml.MoE(D, F, E, k, rngs=nnx.Rngs(0), out_std=0.02, capacity_factor=factor,
                  dispatch=dispatch)


def _dense_reference(layer, x_BTD, combine_BTE):
    """Every expert on every token, mixed by ``combine_BTE`` (0 where not chosen/kept)."""
    gate, up, down = (m.kernel[...] for m in (layer.gate, layer.up, layer.down))
    h = jax.nn.silu(jnp.einsum("btd,edf->btef", x_BTD, gate)) * jnp.einsum("btd,edf->btef", x_BTD, up)
    y_BTED = jnp.einsum("btef,efd->bted", h, down)
    return jnp.einsum("bte,bted->btd", combine_BTE, y_BTED)


def _routing(layer, x_BTD):
    B, T, _ = x_BTD.shape
    probs, gates, experts = ml.route(layer.router(x_BTD).reshape(B * T, -1), layer.k)
    return probs, gates.reshape(B, T, -1), experts.reshape(B, T, -1)


def test_route_top_k_and_gates():
    logits = jnp.log(jnp.array([[0.1, 0.5, 0.3, 0.1], [0.4, 0.1, 0.1, 0.4]]))
    probs, gates, experts = ml.route(logits, 2)
    np.testing.assert_allclose(probs, jnp.exp(logits), rtol=1e-6)
    np.testing.assert_array_equal(experts[0], [1, 2])
    np.testing.assert_allclose(gates[0], [0.5 / 0.8, 0.3 / 0.8], rtol=1e-6)
    _, gates1, experts1 = ml.route(logits, 1)  # k=1 keeps the raw probability
    np.testing.assert_allclose(gates1[:, 0], [0.5, 0.4], rtol=1e-6)
    assert experts1.dtype == jnp.int32 and probs.dtype == jnp.float32


def test_balance_loss_is_one_when_balanced_and_e_when_collapsed():
    uniform = jnp.full((8, E), 1.0 / E)
    even = jnp.arange(8)[:, None] % E
    assert float(ml.balance_loss(uniform, even)) == pytest.approx(1.0)
    collapsed = jax.nn.one_hot(jnp.zeros(8, jnp.int32), E)
    assert float(ml.balance_loss(collapsed, jnp.zeros((8, 1), jnp.int32))) == pytest.approx(E)


@pytest.mark.parametrize("T, k, e, factor, slots", [(16, 2, 4, 1.25, 10), (4, 1, 8, 1.0, 1),
                                                    (4, 2, 2, 10.0, 4)])
def test_capacity_by_hand(T, k, e, factor, slots):
    assert ml.capacity(T, k, e, factor) == slots


def test_dispatch_first_choices_first_and_drops_over_capacity():
    experts = jnp.array([[[0, 1], [1, 0]]])  # token 0 -> (e0, e1), token 1 -> (e1, e0)
    gates = jnp.array([[[0.7, 0.3], [0.6, 0.4]]])
    dispatch, combine = ml.dispatch_masks(experts, gates, num_experts=2, slots=1)
    # Both first choices get slot 0; both second choices find their expert full.
    np.testing.assert_array_equal(dispatch[0, :, :, 0], [[1, 0], [0, 1]])
    np.testing.assert_allclose(combine[0, :, :, 0], [[0.7, 0], [0, 0.6]], rtol=1e-6)
    one = jnp.zeros((1, 3, 1), jnp.int32)  # three tokens to expert 0, two slots
    dispatch, _ = ml.dispatch_masks(one, jnp.ones((1, 3, 1)), num_experts=2, slots=2)
    np.testing.assert_array_equal(dispatch[0, :, 0], [[1, 0], [0, 1], [0, 0]])


def test_dropless_equals_every_expert_computed_densely():
    layer, x = _layer(dispatch="dropless"), normal(2, 6, D)
    _, gates, experts = _routing(layer, x)
    combine = (jax.nn.one_hot(experts, E) * gates[..., None]).sum(2)
    y, loss = layer(x)
    np.testing.assert_allclose(y, _dense_reference(layer, x, combine), atol=1e-6)
    assert float(loss) >= 1.0 - 1e-6


def test_capacity_with_room_for_all_equals_dropless():
    x = normal(2, 6, D)
    roomy, dropless = _layer(factor=E / 2), _layer(dispatch="dropless")
    np.testing.assert_allclose(roomy(x)[0], dropless(x)[0], atol=1e-6)


def test_capacity_drops_assignments_over_capacity():
    layer, x = _layer(k=1, factor=0.25), normal(1, 16, D)  # 1 slot per expert for 16 tokens
    _, gates, experts = _routing(layer, x)
    dispatch, combine = ml.dispatch_masks(experts, gates, E, ml.capacity(16, 1, E, 0.25))
    y, _ = layer(x)
    np.testing.assert_allclose(y, _dense_reference(layer, x, combine.sum(-1)), atol=1e-6)
    kept = np.asarray(dispatch.sum((2, 3)))[0]
    assert kept.sum() <= E and (kept == 0).sum() >= 16 - E
    np.testing.assert_array_equal(np.asarray(y)[0][kept == 0], 0.0)


@pytest.mark.parametrize("dispatch", ["capacity", "dropless"])
def test_router_and_experts_get_gradients(dispatch):
    graphdef, params = nnx.split(_layer(dispatch=dispatch))
    x = normal(2, 6, D)
    grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x)[0] ** 2))(params)
    for name in ("router", "gate", "up", "down"):
        assert float(jnp.abs(grads[name]["kernel"][...]).sum()) > 0, name


def test_expert_axis_annotations():
    layer = _layer()
    assert layer.gate.kernel.shape == (E, D, F) and layer.down.kernel.shape == (E, F, D)
    assert layer.gate.kernel.get_metadata()["out_sharding"] == ("expert", "embed", "mlp")
    assert layer.down.kernel.get_metadata()["out_sharding"] == ("expert", "mlp", "embed")
    assert layer.router.kernel.get_metadata()["out_sharding"] == ("embed", None)
