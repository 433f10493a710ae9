"""Tests for theseus.models.bf16_matmul: bfloat16 operands with float32 sums, forward and
backward, the plain-layout dots it relies on, and ``model.matmul_precision`` in every family."""

import dataclasses
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.models.helpers import build, normal, token_ids
from theseus.models import bf16_matmul as module
from theseus.models.bf16_matmul import (bf16_matmul, bf16_matmul_nt, materialized_transpose,
                                        resolve_matmul_precision)
from theseus.models.gpt import GPTConfig
from theseus.models.llama import LlamaConfig
from theseus.models.moe import MoEConfig
from theseus.training.train_step import cross_entropy

SHAPE = {"vocab_size": 64, "seq_len": 16, "num_layers": 2, "d_model": 32, "num_heads": 4}
LLAMA = {"num_kv_heads": 2, "ffn_dim": 32, "rope_theta": 10000.0}
FAMILIES = {
    "gpt": GPTConfig(**SHAPE),
    "llama-untied": LlamaConfig(**SHAPE, **LLAMA),
    "llama-tied": LlamaConfig(**SHAPE, **LLAMA, tie_embeddings=True),
    "moe": MoEConfig(**SHAPE, **LLAMA, num_experts=4),
}


def _round(x: jax.Array) -> jax.Array:
    """``x`` rounded to bfloat16 and widened back to float32."""
    return x.astype(jnp.bfloat16).astype(jnp.float32)


def _f32_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST)


def test_forward_is_the_float32_product_of_rounded_operands():
    x, w = normal(24, 40), normal(40, 56, seed=1)
    y = jax.jit(bf16_matmul, static_argnums=2)(x, w, jnp.float32)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, _f32_dot(_round(x), _round(w)), rtol=1e-5, atol=1e-5)
    y16 = jax.jit(bf16_matmul, static_argnums=2)(x, w, jnp.bfloat16)
    assert y16.dtype == jnp.bfloat16


def test_gradients_are_rounded_products_in_the_primal_dtypes():
    x, w, dy = normal(24, 40), normal(40, 56, seed=1), normal(24, 56, seed=2)
    _, vjp = jax.vjp(lambda a, b: bf16_matmul(a, b, jnp.float32), x, w)
    dx, dw = jax.jit(vjp)(dy)
    assert dx.dtype == dw.dtype == jnp.float32
    np.testing.assert_allclose(dx, _f32_dot(_round(dy), _round(w).T), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, _f32_dot(_round(x).T, _round(dy)), rtol=1e-5, atol=1e-5)
    # And close to the float32 gradients (bfloat16 keeps 8 bits of mantissa).
    np.testing.assert_allclose(dx, dy @ w.T, rtol=0.05, atol=0.1)


def test_bfloat16_primals_get_bfloat16_gradients():
    x, w = normal(8, 16).astype(jnp.bfloat16), normal(16, 4, seed=1).astype(jnp.bfloat16)
    dx, dw = jax.grad(lambda a, b: bf16_matmul(a, b, jnp.float32).sum(), (0, 1))(x, w)
    assert dx.dtype == dw.dtype == jnp.bfloat16


def test_nt_variant_multiplies_by_the_transpose():
    x, table, dy = normal(24, 40), normal(56, 40, seed=1), normal(24, 56, seed=2)
    y, vjp = jax.vjp(lambda a, b: bf16_matmul_nt(a, b, jnp.float32), x, table)
    np.testing.assert_allclose(y, _f32_dot(_round(x), _round(table).T), rtol=1e-5, atol=1e-5)
    dx, dtable = jax.jit(vjp)(dy)
    assert dtable.shape == table.shape and dtable.dtype == jnp.float32
    np.testing.assert_allclose(dx, _f32_dot(_round(dy), _round(table)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dtable, _f32_dot(_round(dy).T, _round(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("K", [1024, 1025, 2500])
def test_a_long_contraction_in_pieces_is_the_same_product(K):
    """Past ``_CONTRACTION_PIECE`` the forward product and the input gradient are sums of
    pieces (uneven ones for K = 1025 and 2500); they equal the whole rounded product."""
    x, w, dy = normal(8, K), normal(K, 24, seed=1), normal(8, 24, seed=2)
    y, vjp = jax.vjp(lambda a, b: bf16_matmul(a, b, jnp.float32), x, w)
    dx, dw = jax.jit(vjp)(dy)
    np.testing.assert_allclose(y, _f32_dot(_round(x), _round(w)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dx, _f32_dot(_round(dy), _round(w).T), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(dw, _f32_dot(_round(x).T, _round(dy)), rtol=1e-5, atol=1e-4)


def test_contraction_pieces_are_even_and_cover_the_whole():
    a, w = normal(4, 2500), normal(2500, 6, seed=1)
    text = jax.jit(module._dot_over_weight).lower(a.astype(jnp.bfloat16),
                                                  w.astype(jnp.bfloat16)).as_text()
    assert set(re.findall(r"tensor<4x(\d+)xbf16>", text)) - {"2500"} == {"833", "834"}
    assert len(re.findall(r"dot_general", text)) == 3


def test_materialized_transpose_keeps_values_and_nans():
    x = normal(5, 7).at[2, 3].set(jnp.nan)
    np.testing.assert_array_equal(jax.jit(materialized_transpose)(x), x.T)


@pytest.mark.parametrize("consumer", ["transpose", "scaled_transpose", "gradient"])
def test_a_transposing_consumer_still_runs(consumer):
    """XLA:CPU once folded a consumer's transpose into the dot's output layout and then
    could not run the dot; the outputs are pinned row-major so that it cannot."""
    x, w, table = normal(64, 32), normal(32, 48, seed=1), normal(48, 32, seed=2)
    fns = {
        "transpose": lambda: bf16_matmul(x, w, jnp.float32).T,
        "scaled_transpose": lambda: bf16_matmul_nt(x, table, jnp.float32).T * 2,
        "gradient": lambda: jax.grad(
            lambda a: (bf16_matmul(a, w, jnp.float32).T ** 2).sum())(x).T,
    }
    out = jax.jit(fns[consumer])()
    assert bool(jnp.isfinite(out).all())


def _dot_dimension_numbers(fn, *args) -> list[tuple[str, str]]:
    text = jax.jit(fn).lower(*args).compile().as_text()
    return re.findall(r" dot\(.*?lhs_contracting_dims=\{(\d+)\}, rhs_contracting_dims=\{(\d+)\}",
                      text)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="checks XLA:CPU's dot layouts")
def test_every_gradient_dot_has_the_plain_layout():
    """The speed of this module rests on XLA:CPU seeing ``[M, K] @ [K, N]`` dots only (a
    transposed bfloat16 operand is computed in float32, 4-5x slower on AMX)."""
    x, w, table, dy = normal(64, 32), normal(32, 48, seed=1), normal(48, 32), normal(64, 48)

    def both_gradients(a, b, g):
        return jax.vjp(lambda a_, b_: bf16_matmul(a_, b_, jnp.float32), a, b)[1](g)

    def nt_gradients(a, b, g):
        return jax.vjp(lambda a_, b_: bf16_matmul_nt(a_, b_, jnp.float32), a, b)[1](g)

    for fn, weight in ((both_gradients, w), (nt_gradients, table)):
        dims = _dot_dimension_numbers(fn, x, weight, dy)
        assert dims and all(d == ("1", "0") for d in dims), dims


def _loss_and_grads(cfg, ids):
    _, graphdef, params = build(cfg)

    def loss(p):
        logits, aux = nnx.merge(graphdef, p).forward(ids[:, :-1], None)
        return cross_entropy(logits, ids[:, 1:]) + aux

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_model_losses_and_gradients_stay_close_to_float32(name):
    cfg = FAMILIES[name]
    ids = token_ids(B=2, T=cfg.seq_len + 1, vocab=cfg.vocab_size)
    ref_loss, ref_grads = _loss_and_grads(cfg, ids)
    loss, grads = _loss_and_grads(dataclasses.replace(cfg, matmul_precision="bfloat16"), ids)
    assert loss != ref_loss  # the bfloat16 path really ran
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-3)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        assert a.dtype == b.dtype
        cosine = jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b) + 1e-30)
        assert cosine > 0.999 or float(jnp.abs(b).max()) < 1e-6


@pytest.mark.parametrize("cls", [GPTConfig, LlamaConfig])
def test_an_unknown_matmul_precision_is_refused(cls):
    with pytest.raises(ValueError, match=r"model.matmul_precision must be one of .*float16"):
        cls(matmul_precision="float16")


@pytest.mark.parametrize("amx, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_is_bfloat16_only_on_a_cpu_with_amx(monkeypatch, amx, expected):
    monkeypatch.setattr(module, "cpu_has_amx", lambda: amx)
    assert resolve_matmul_precision("auto") == expected
    assert resolve_matmul_precision("float32") == "float32"
    assert resolve_matmul_precision("bfloat16") == "bfloat16"
    dense = GPTConfig(**SHAPE, matmul_precision="auto").make(nnx.Rngs(0)).blocks[0].mlp.up
    assert dense.matmul_precision == expected


def test_auto_is_float32_off_the_cpu(monkeypatch):
    monkeypatch.setattr(module, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert resolve_matmul_precision("auto") == "float32"


def test_amx_detection_reads_the_cpu_flags():
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    assert module.cpu_has_amx() == ("amx_bf16" in flags)
