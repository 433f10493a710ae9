"""Tests for theseus.models.fusion: the CPU fusion boundary on the residual stream leaves
losses, gradients and the parameter tree of every family unchanged, and really reaches
the compiled CPU program (as a conditional in the backward pass)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import build, token_ids
from theseus.models.fusion import residual_boundary
from theseus.models.gpt import GPTConfig
from theseus.models.llama import LlamaConfig
from theseus.models.moe import MoEConfig
from theseus.training.train_step import cross_entropy

SHAPE = {"vocab_size": 64, "seq_len": 16, "num_layers": 2, "d_model": 32, "num_heads": 4}
LLAMA = {"num_kv_heads": 2, "ffn_dim": 32, "rope_theta": 10000.0}
FAMILIES = {
    "gpt": GPTConfig(**SHAPE),
    "gpt-remat-dropout": GPTConfig(**SHAPE, remat=True, dropout=0.1),
    "llama": LlamaConfig(**SHAPE, **LLAMA),
    "moe": MoEConfig(**SHAPE, **LLAMA, num_experts=4),
}


def _loss_and_grad_fn(cfg):
    """Jitted ``value_and_grad`` of the next-token loss (plus aux loss) of ``cfg``'s model
    and its initial parameters."""
    _, graphdef, params = build(cfg)

    def loss(p, ids_BT, key):
        logits, aux = nnx.merge(graphdef, p).forward(ids_BT[:, :-1], key)
        return cross_entropy(logits, ids_BT[:, 1:]) + aux

    return jax.jit(jax.value_and_grad(loss)), params


def _ids_and_key(cfg):
    return token_ids(B=2, T=cfg.seq_len + 1, vocab=cfg.vocab_size), (
        jax.random.key(3) if cfg.dropout else None)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_boundary_leaves_loss_and_gradients_unchanged(name):
    cfg = FAMILIES[name]
    ids, key = _ids_and_key(cfg)
    results = {}
    for on in (True, False):
        fn, params = _loss_and_grad_fn(dataclasses.replace(cfg, cpu_fusion_boundary=on))
        results[on] = fn(params, ids, key)
    (loss_on, grad_on), (loss_off, grad_off) = results[True], results[False]
    assert bool(jnp.isfinite(loss_on))
    np.testing.assert_allclose(loss_on, loss_off, rtol=1e-6)
    assert jax.tree.structure(grad_on) == jax.tree.structure(grad_off)
    for a, b in zip(jax.tree.leaves(grad_on), jax.tree.leaves(grad_off)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["gpt", "llama"])
def test_parameter_tree_does_not_depend_on_the_boundary(name):
    trees = {}
    for on in (True, False):
        _, _, params = build(dataclasses.replace(FAMILIES[name], cpu_fusion_boundary=on))
        trees[on] = jax.tree.map(lambda x: (x.shape, x.dtype), params)
    assert trees[True] == trees[False]


@pytest.mark.slow
def test_boundary_is_a_conditional_in_the_compiled_cpu_backward():
    """The speed-up depends on XLA:CPU keeping the conditional (a conditional whose
    branches are both the bare identity is folded away, so this guards the form)."""
    cfg = FAMILIES["gpt"]
    ids, key = _ids_and_key(cfg)
    texts = {}
    for on in (True, False):
        fn, params = _loss_and_grad_fn(dataclasses.replace(cfg, cpu_fusion_boundary=on))
        texts[on] = fn.lower(params, ids, key).compile().as_text()
    assert jax.default_backend() == "cpu"
    assert "conditional(" in texts[True]
    assert "conditional(" not in texts[False]


def test_residual_boundary_is_an_identity_with_an_identity_gradient():
    x = jnp.arange(-3.0, 3.0).reshape(2, 3)
    assert residual_boundary(x, False) is x
    np.testing.assert_array_equal(residual_boundary(x, True), x)
    # A negative first cotangent takes the other branch; both pass the cotangent through.
    for sign in (1.0, -1.0):
        w = sign * jnp.arange(1.0, 7.0).reshape(2, 3)
        g = jax.grad(lambda v, w=w: jnp.sum(w * jnp.sin(residual_boundary(v, True))))(x)
        np.testing.assert_allclose(g, w * jnp.cos(x), rtol=1e-6)
