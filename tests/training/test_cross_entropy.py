"""Tests for theseus.training.cross_entropy: the per-token loss and its hand-written gradient
equal optax's ``softmax_cross_entropy_with_integer_labels`` and JAX's derived gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from theseus.training.cross_entropy import token_cross_entropy


def _case(vocab: int, scale: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.standard_normal((3, 5, vocab)).astype(np.float32) * scale)
    targets = rng.integers(0, vocab, (3, 5)).astype(np.int32)
    targets[0, :2] = [0, vocab - 1]  # the first and the last class
    weights = jnp.asarray(rng.random((3, 5)).astype(np.float32))
    return logits, jnp.asarray(targets), weights


@pytest.mark.parametrize("vocab,scale", [(7, 1.0), (300, 3.0), (64, 1e4)])
def test_loss_and_gradient_equal_optax(vocab, scale):
    logits, targets, weights = _case(vocab, scale)

    def ours(x):
        return (token_cross_entropy(x, targets) * weights).sum()

    def reference(x):
        return (optax.softmax_cross_entropy_with_integer_labels(x, targets) * weights).sum()

    loss, grad = jax.jit(jax.value_and_grad(ours))(logits)
    ref_loss, ref_grad = jax.jit(jax.value_and_grad(reference))(logits)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-7)
    assert bool(jnp.isfinite(grad).all())


def test_per_token_losses_equal_optax_and_each_row_sums_to_zero_gradient():
    logits, targets, _ = _case(50, 2.0, seed=1)
    np.testing.assert_allclose(token_cross_entropy(logits, targets),
                               optax.softmax_cross_entropy_with_integer_labels(logits, targets),
                               rtol=1e-6)
    grad = jax.grad(lambda x: token_cross_entropy(x, targets).sum())(logits)
    # softmax - onehot sums to zero over the vocabulary.
    np.testing.assert_allclose(grad.sum(-1), 0.0, atol=1e-6)
