"""Tests for theseus.models.moe: the MoE decoder's tree, auxiliary loss, counts, FLOPs,
config validation and training."""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.helpers import build, forward, params_of, pattern_losses, token_ids
from theseus.models.base import abstract_num_params
from theseus.models.moe import MoEConfig
from theseus.training.train_step import cross_entropy, make_loss_fn

TINY = MoEConfig(vocab_size=64, seq_len=16, num_layers=2, d_model=32, num_heads=4,
                 num_kv_heads=2, ffn_dim=24, rope_theta=10000.0, num_experts=4,
                 experts_per_token=2, aux_loss_weight=0.1)


def test_parameter_tree_has_experts_in_place_of_the_mlp():
    model, _, _ = build(TINY)
    found = {path: (v[...].shape, v.get_metadata()["out_sharding"]) for path, v in params_of(model)
             if path[:2] == ("blocks", 1) and path[2] == "moe"}
    assert found == {
        ("blocks", 1, "moe", "router", "kernel"): ((32, 4), ("embed", None)),
        ("blocks", 1, "moe", "gate", "kernel"): ((4, 32, 24), ("expert", "embed", "mlp")),
        ("blocks", 1, "moe", "up", "kernel"): ((4, 32, 24), ("expert", "embed", "mlp")),
        ("blocks", 1, "moe", "down", "kernel"): ((4, 24, 32), ("expert", "mlp", "embed")),
    }
    assert not any("mlp" in path for path, _ in params_of(model))


@pytest.mark.parametrize("dispatch", ["capacity", "dropless"])
def test_forward_returns_weighted_balance_loss(dispatch):
    cfg = dataclasses.replace(TINY, dispatch=dispatch)
    _, graphdef, params = build(cfg)
    logits, aux = forward(graphdef, params, token_ids())
    assert logits.shape == (2, 16, 64) and logits.dtype == jnp.float32
    # The balance loss of each layer is between 1 (balanced) and E; aux = weight * mean.
    assert 0.1 * 1.0 - 1e-6 <= float(aux) <= 0.1 * 4
    _, graphdef0, params0 = build(dataclasses.replace(cfg, aux_loss_weight=0.0))
    logits0, aux0 = forward(graphdef0, params0, token_ids())
    assert float(aux0) == 0.0
    np.testing.assert_array_equal(logits0, logits)


def test_train_loss_adds_the_aux_loss():
    _, graphdef, params = build(TINY)
    batch = token_ids(T=17)
    logits, aux = forward(graphdef, params, batch[:, :-1])
    loss = make_loss_fn(graphdef)(params, batch, None)
    np.testing.assert_allclose(loss, cross_entropy(logits, batch[:, 1:]) + aux, rtol=1e-6)


def test_param_counts_by_hand():
    D, V, E, F, L = 32, 64, 4, 24, 2
    attn = 32 * 32 + 2 * 32 * 16 + 32 * 32
    block = 2 * D + attn + D * E + E * 3 * D * F
    assert TINY.num_params() == V * D + L * block + D + D * V == abstract_num_params(TINY)
    active = L * (attn + D * E + 2 * 3 * D * F) + V * D
    assert TINY.active_params() == active
    assert TINY.flops_per_token() == 6 * active + 12 * L * 16 * D


@pytest.mark.parametrize("changes, field", [
    ({"experts_per_token": 5}, "model.experts_per_token"),
    ({"num_experts": 0}, "model.num_experts"),
    ({"capacity_factor": 0.0}, "model.capacity_factor"),
    ({"aux_loss_weight": -1.0}, "model.aux_loss_weight"),
    ({"dispatch": "sparse"}, "model.dispatch"),
    ({"num_kv_heads": 3}, "model.num_kv_heads"),
])
def test_config_validation(changes, field):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **changes)


@pytest.mark.slow
def test_loss_falls_when_trained():
    """A tiny MoE learns a repeating token pattern in 20 Adam steps (aux loss included)."""
    losses = pattern_losses(TINY)
    assert abs(losses[0] - math.log(64)) < 0.6
    assert losses[-1] < 0.3 * losses[0], losses
