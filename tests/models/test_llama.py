"""Tests for theseus.models.llama: the parameter tree the HF converter maps, GQA, untied or
tied head, parameter count and FLOPs by hand, config validation, and training."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.helpers import build, forward, params_of, pattern_losses, token_ids
from theseus.models.base import abstract_num_params
from theseus.models.llama import LlamaConfig
from theseus.training.train_step import make_loss_fn

TINY = LlamaConfig(vocab_size=64, seq_len=16, num_layers=2, d_model=32, num_heads=4,
                   num_kv_heads=2, ffn_dim=48, rope_theta=10000.0)
ONE = dataclasses.replace(TINY, num_layers=1)


def test_parameter_tree_paths_shapes_and_axes():
    model, _, _ = build(TINY)
    D, H, KV, K, F, V = 32, 4, 2, 8, 48, 64
    found = {path: (v[...].shape, v.get_metadata()["out_sharding"]) for path, v in params_of(model)}
    expected = {("embed", "embedding"): ((V, D), ("vocab", "embed")),
                ("norm", "scale"): ((D,), ("embed",)),
                ("lm_head", "kernel"): ((D, V), ("embed", "vocab"))}
    for n in range(2):
        expected.update({
            ("blocks", n, "attn_norm", "scale"): ((D,), ("embed",)),
            ("blocks", n, "attn", "q", "kernel"): ((D, H * K), ("embed", "heads")),
            ("blocks", n, "attn", "k", "kernel"): ((D, KV * K), ("embed", "heads")),
            ("blocks", n, "attn", "v", "kernel"): ((D, KV * K), ("embed", "heads")),
            ("blocks", n, "attn", "o", "kernel"): ((H * K, D), ("heads", "embed")),
            ("blocks", n, "mlp_norm", "scale"): ((D,), ("embed",)),
            ("blocks", n, "mlp", "gate", "kernel"): ((D, F), ("embed", "mlp")),
            ("blocks", n, "mlp", "up", "kernel"): ((D, F), ("embed", "mlp")),
            ("blocks", n, "mlp", "down", "kernel"): ((F, D), ("mlp", "embed")),
        })
    assert found == expected


def test_logits_shape_dtype_and_causality():
    _, graphdef, params = build(ONE)
    x = token_ids()
    logits, aux = forward(graphdef, params, x)
    assert logits.shape == (2, 16, 64) and logits.dtype == jnp.float32 and float(aux) == 0.0
    t = 9
    changed, _ = forward(graphdef, params, x.at[:, t].set((x[:, t] + 1) % 64))
    np.testing.assert_allclose(changed[:, :t], logits[:, :t], atol=1e-6)
    assert not np.allclose(changed[:, t:], logits[:, t:], atol=1e-6)


def test_attention_kernels_agree():
    x = token_ids()
    out = {impl: forward(*build(dataclasses.replace(ONE, attention=impl))[1:], x)[0]
           for impl in ("reference", "dot_product", "manual_vjp")}
    np.testing.assert_allclose(out["dot_product"], out["reference"], atol=1e-5)
    np.testing.assert_allclose(out["manual_vjp"], out["reference"], atol=1e-5)


def test_bfloat16_compute_gives_float32_logits():
    _, graphdef, params = build(dataclasses.replace(ONE, dtype="bfloat16"))
    assert forward(graphdef, params, token_ids())[0].dtype == jnp.float32


def test_tied_embeddings_have_no_head():
    model, graphdef, params = build(dataclasses.replace(ONE, tie_embeddings=True))
    assert model.lm_head is None and "lm_head" not in params
    v = 5
    x = jnp.where(token_ids() == v, v + 1, token_ids())
    params["embed"]["embedding"] = params["embed"]["embedding"].at[v].set(0.0)
    np.testing.assert_array_equal(forward(graphdef, params, x)[0][..., v], 0.0)


@pytest.mark.parametrize("changes", [{}, {"tie_embeddings": True}, {"num_kv_heads": 4},
                                     {"num_kv_heads": 1, "num_layers": 3}])
def test_param_count_by_hand_and_abstract(changes):
    cfg = dataclasses.replace(TINY, **changes)
    D, V, F, L, KV, K = 32, 64, 48, cfg.num_layers, cfg.num_kv_heads, 8
    block = 2 * D + D * 32 + 2 * D * KV * K + 32 * D + 3 * D * F
    expected = V * D + L * block + D + (0 if cfg.tie_embeddings else D * V)
    assert cfg.num_params() == expected == abstract_num_params(cfg)


def test_flops_per_token_by_hand():
    # matmul params: 2 layers * (q 32*32 + k,v 2*32*16 + o 32*32 + 3*32*48) + head 64*32
    n = 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 48) + 64 * 32
    assert n == 2 * 7680 + 2048
    assert TINY.flops_per_token() == 6 * n + 12 * 2 * 16 * 32


@pytest.mark.slow
def test_remat_gives_same_gradients():
    batch = token_ids(T=17)
    grads = {}
    for remat in (False, True):
        _, graphdef, params = build(dataclasses.replace(ONE, remat=remat, dropout=0.1))
        grads[remat] = jax.jit(jax.grad(make_loss_fn(graphdef)))(params, batch, jax.random.key(1))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), grads[True], grads[False])


@pytest.mark.parametrize("changes, field", [
    ({"num_kv_heads": 3}, "num_kv_heads"),
    ({"num_kv_heads": 0}, "model.num_kv_heads"),
    ({"d_model": 30}, "model.d_model"),
    ({"d_model": 12, "num_heads": 4, "num_kv_heads": 4}, "even head dimension"),
    ({"ffn_dim": 0}, "model.ffn_dim"),
    ({"rope_theta": 0.0}, "model.rope_theta"),
    ({"norm_eps": -1.0}, "model.norm_eps"),
    ({"dropout": 1.0}, "model.dropout"),
    ({"attention": "flash"}, "model.attention"),
    ({"dtype": "int8"}, "model.dtype"),
])
def test_config_validation(changes, field):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **changes)


def test_splash_off_tpu_is_rejected_by_check_platform():
    cfg = dataclasses.replace(TINY, attention="splash")
    with pytest.raises(ValueError, match="only on TPU"):
        cfg.check_platform("cpu")
    cfg.check_platform("tpu")


@pytest.mark.slow
def test_loss_falls_when_trained():
    """A tiny Llama learns a repeating token pattern in 20 Adam steps."""
    losses = pattern_losses(TINY)
    assert abs(losses[0] - math.log(64)) < 0.5
    assert losses[-1] < 0.25 * losses[0], losses
