"""Tests for theseus.models.manual_vjp: the hand-written attention backward gives every
family the losses and gradients of the reference kernel, packed documents included."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import build, normal, token_ids
from theseus.models import manual_vjp
from theseus.models.gpt import GPTConfig
from theseus.models.llama import LlamaConfig
from theseus.models.moe import MoEConfig
from theseus.training.train_step import cross_entropy

SHAPE = {"vocab_size": 64, "seq_len": 16, "num_layers": 2, "d_model": 32, "num_heads": 4}
LLAMA = {"num_kv_heads": 2, "ffn_dim": 32, "rope_theta": 10000.0}
FAMILIES = {
    "gpt": GPTConfig(**SHAPE),
    "gpt-remat": GPTConfig(**SHAPE, remat=True),
    "llama-gqa": LlamaConfig(**SHAPE, **LLAMA),
    "moe": MoEConfig(**SHAPE, **LLAMA, num_experts=4),
}


def test_query_head_layout_round_trips():
    x = normal(2, 5, 6, 3)
    for groups in (1, 2, 3, 6):
        stacked = manual_vjp._query_heads(x, groups)
        assert stacked.shape == (2, groups, 6 // groups * 5, 3)
        np.testing.assert_array_equal(manual_vjp._from_query_heads(stacked, 5), x)


def _loss_and_grads(cfg, ids, segment_ids):
    _, graphdef, params = build(cfg)

    def loss(p):
        logits, aux = nnx.merge(graphdef, p).forward(ids[:, :-1], None,
                                                     segment_ids=segment_ids)
        return cross_entropy(logits, ids[:, 1:]) + aux

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("packed", [False, True])
def test_losses_and_gradients_equal_the_reference_kernel(name, packed):
    cfg = FAMILIES[name]
    ids = token_ids(B=2, T=cfg.seq_len + 1, vocab=cfg.vocab_size)
    segments = (jnp.asarray(np.repeat([[1] * 6 + [2] * 9 + [0]], 2, axis=0), jnp.int32)
                if packed else None)
    ref_loss, ref_grads = _loss_and_grads(dataclasses.replace(cfg, attention="reference"),
                                          ids, segments)
    loss, grads = _loss_and_grads(dataclasses.replace(cfg, attention="manual_vjp"), ids,
                                  segments)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    assert jax.tree.structure(grads) == jax.tree.structure(ref_grads)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        np.testing.assert_allclose(a, b, atol=1e-6)
