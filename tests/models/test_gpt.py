"""Tests for theseus.models.gpt: shapes, dtypes, causality, dropout, remat, parameters,
config validation, FLOPs and a loss that falls when trained."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from theseus.models.gpt import GPTConfig, count_params
from theseus.training.train_step import cross_entropy, make_loss_fn

TINY = GPTConfig(vocab_size=64, seq_len=16, num_layers=2, d_model=32, num_heads=4)
ONE = dataclasses.replace(TINY, num_layers=1)  # compiles in half the time of TINY
LOGICAL_AXES = {"embed", "mlp", "heads", "kv", "vocab", None}


def make(cfg: GPTConfig = TINY, seed: int = 0):
    """The module, its graphdef and its parameters as a plain nested dict."""
    model = cfg.make(nnx.Rngs(seed))
    graphdef, state = nnx.split(model)
    return model, graphdef, nnx.to_pure_dict(state)


@functools.partial(jax.jit, static_argnums=0)
def apply(graphdef, params, ids_BT, key=None):
    return nnx.merge(graphdef, params)(ids_BT, key)


def ids(B=2, T=16, vocab=64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, (B, T)), jnp.int32)


def params_of(model):
    """``[(path, nnx.Param)]`` for every parameter of ``model``."""
    return [(path, v) for path, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)]


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_logits_shape_and_dtype(position):
    _, graphdef, params = make(dataclasses.replace(ONE, position=position))
    logits = apply(graphdef, params, ids(B=3, T=16))
    assert logits.shape == (3, 16, 64) and logits.dtype == jnp.float32
    assert bool(jnp.isfinite(logits).all())
    # Shorter sequences than seq_len are fine too.
    assert apply(graphdef, params, ids(B=1, T=5)).shape == (1, 5, 64)


def test_bfloat16_compute_gives_float32_logits():
    model, graphdef, params = make(dataclasses.replace(ONE, dtype="bfloat16"))
    assert all(v[...].dtype == jnp.float32 for _, v in params_of(model))
    assert apply(graphdef, params, ids()).dtype == jnp.float32


def test_param_dtype_is_respected():
    model, graphdef, params = make(dataclasses.replace(ONE, param_dtype="bfloat16",
                                                       dtype="bfloat16"))
    assert {v[...].dtype for _, v in params_of(model)} == {jnp.dtype(jnp.bfloat16)}
    assert apply(graphdef, params, ids()).dtype == jnp.float32


def test_sequence_longer_than_seq_len_is_an_error():
    model, _, _ = make()
    with pytest.raises(ValueError, match="seq_len"):
        model(ids(B=1, T=TINY.seq_len + 1))


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_causal_and_attention_impls_agree(position):
    """Changing token t leaves logits before t unchanged, for every CPU attention kernel,
    and the kernels give the same logits."""
    t = 9
    x = ids()
    x2 = x.at[:, t].set((x[:, t] + 1) % ONE.vocab_size)
    logits = {}
    for impl in ("reference", "dot_product", "manual_vjp"):
        _, graphdef, params = make(dataclasses.replace(ONE, position=position, attention=impl))
        a, b = apply(graphdef, params, x), apply(graphdef, params, x2)
        np.testing.assert_allclose(a[:, :t], b[:, :t], atol=1e-6, err_msg=impl)
        assert not np.allclose(a[:, t:], b[:, t:], atol=1e-6), impl
        logits[impl] = a
    np.testing.assert_allclose(logits["reference"], logits["dot_product"], atol=1e-5)
    np.testing.assert_allclose(logits["reference"], logits["manual_vjp"], atol=1e-5)


def test_dropout_only_with_key():
    cfg = dataclasses.replace(ONE, dropout=0.1)
    _, graphdef, params = make(cfg)
    _, graphdef0, params0 = make(dataclasses.replace(cfg, dropout=0.0))
    x = ids()
    no_key = apply(graphdef, params, x)
    np.testing.assert_array_equal(no_key, apply(graphdef, params, x))
    # Without a key the model is the same function as one built without dropout.
    np.testing.assert_allclose(no_key, apply(graphdef0, params0, x), atol=1e-6)
    k1 = apply(graphdef, params, x, jax.random.key(1))
    assert not np.allclose(k1, no_key, atol=1e-3)
    np.testing.assert_array_equal(k1, apply(graphdef, params, x, jax.random.key(1)))
    assert not np.allclose(k1, apply(graphdef, params, x, jax.random.key(2)), atol=1e-3)


@functools.partial(jax.jit, static_argnums=0)
def loss_logits_grads(graphdef, params, tokens_BT1, key):
    def loss_fn(params):
        logits = nnx.merge(graphdef, params)(tokens_BT1[:, :-1], key)
        return cross_entropy(logits, tokens_BT1[:, 1:]), logits
    return jax.value_and_grad(loss_fn, has_aux=True)(params)


def test_remat_gives_same_logits_and_gradients():
    cfg = dataclasses.replace(ONE, dropout=0.1)
    x = ids(T=17)
    out = {}
    for remat in (False, True):
        _, graphdef, params = make(dataclasses.replace(cfg, remat=remat))
        out[remat] = loss_logits_grads(graphdef, params, x, jax.random.key(3))
    (loss_r, logits_r), grads_r = out[True]
    (loss, logits), grads = out[False]
    np.testing.assert_allclose(logits_r, logits, atol=1e-5)
    np.testing.assert_allclose(loss_r, loss, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), grads_r, grads)


@pytest.mark.parametrize("position", ["learned", "rope"])
def test_every_param_has_logical_axes(position):
    model, _, _ = make(dataclasses.replace(TINY, position=position))
    found = params_of(model)
    assert found
    for path, var in found:
        axes = var.get_metadata()["out_sharding"]
        assert isinstance(axes, tuple) and len(axes) == var[...].ndim, path
        assert set(axes) <= LOGICAL_AXES, (path, axes)
        assert path[-1] in {"kernel", "bias", "scale", "embedding"}, path


def test_known_params_axes():
    model, _, _ = make()
    axes = {path: var.get_metadata()["out_sharding"] for path, var in params_of(model)}
    assert axes[("wte", "embedding")] == ("vocab", "embed")
    assert axes[("wpe", "embedding")] == (None, "embed")
    assert axes[("blocks", 0, "attn", "qkv", "kernel")] == ("embed", "heads")
    assert axes[("blocks", 0, "attn", "out", "kernel")] == ("heads", "embed")
    assert axes[("blocks", 1, "mlp", "up", "kernel")] == ("embed", "mlp")
    assert axes[("blocks", 1, "mlp", "down", "kernel")] == ("mlp", "embed")
    assert axes[("ln_f", "scale")] == ("embed",)


def _expected_params(cfg: GPTConfig) -> int:
    V, T, L, D, F = cfg.vocab_size, cfg.seq_len, cfg.num_layers, cfg.d_model, cfg.mlp_ratio * cfg.d_model
    b = 1 if cfg.use_bias else 0
    block = (2 * 2 * D                      # two layer norms: scale + bias
             + D * 3 * D + b * 3 * D        # qkv
             + D * D + b * D                # attention output
             + D * F + b * F                # mlp up
             + F * D + b * D)               # mlp down
    wpe = T * D if cfg.position == "learned" else 0
    return V * D + wpe + L * block + 2 * D  # + final layer norm


def test_param_count_matches_hand_formula():
    model, _, _ = make()
    # 64*32 (wte) + 16*32 (wpe) + 2 * (12*32^2 + 13*32) + 2*32 (ln_f)
    assert _expected_params(TINY) == 28032
    assert count_params(nnx.state(model, nnx.Param)) == 28032


@pytest.mark.parametrize("changes", [{"position": "rope", "use_bias": False},
                                     {"mlp_ratio": 2, "num_layers": 3}])
def test_param_count_other_configs_abstract(changes):
    cfg = dataclasses.replace(TINY, **changes)
    abstract = nnx.eval_shape(lambda: cfg.make(nnx.Rngs(0)))
    assert count_params(nnx.state(abstract, nnx.Param)) == _expected_params(cfg)


def test_embeddings_are_tied():
    """The output head is ``wte``: no other (vocab, d_model) matrix, and zeroing one row of
    ``wte`` zeroes that token's logit."""
    model, graphdef, params = make(ONE)
    vocab_params = [path for path, v in params_of(model)
                    if "vocab" in v.get_metadata()["out_sharding"]]
    assert vocab_params == [("wte", "embedding")]
    assert not any(64 in v[...].shape for path, v in params_of(model) if path[0] != "wte")

    v = 5
    x = jnp.where(ids() == v, v + 1, ids())  # the input never contains token v
    zeroed = jax.tree.map(lambda a: a, params)
    zeroed["wte"]["embedding"] = params["wte"]["embedding"].at[v].set(0.0)
    before, after = apply(graphdef, params, x), apply(graphdef, zeroed, x)
    np.testing.assert_array_equal(after[..., v], 0.0)
    assert not np.allclose(before[..., v], 0.0)
    keep = np.arange(64) != v
    np.testing.assert_allclose(after[..., keep], before[..., keep], atol=1e-6)


@pytest.mark.parametrize("changes, field", [
    ({"d_model": 30, "num_heads": 4}, "d_model"),
    ({"d_model": 12, "num_heads": 4, "position": "rope"}, "d_model"),
    ({"dtype": "float33"}, "model.dtype"),
    ({"param_dtype": "nope"}, "model.param_dtype"),
    ({"dropout": 1.0}, "model.dropout"),
    ({"dropout": -0.1}, "model.dropout"),
    ({"num_layers": 0}, "model.num_layers"),
    ({"vocab_size": 0}, "model.vocab_size"),
    ({"position": "alibi"}, "model.position"),
    ({"attention": "flash"}, "model.attention"),
    ({"dtype": "int32"}, "model.dtype"),
])
def test_config_validation(changes, field):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **changes)


def test_odd_head_dim_is_fine_without_rope():
    assert GPTConfig(d_model=12, num_heads=4, position="learned").head_dim == 3


def test_flops_per_token_by_hand():
    # matmul params: 2 layers * (4*32^2 + 2*32*128) + 64*32 = 26624
    # 6 * 26624 + 12 * 2 * 16 * 32 = 159744 + 12288
    assert TINY.flops_per_token() == 172032.0
    cfg = GPTConfig()  # GPT-2 small: 6N + 12LTD with N = 85M blocks + 38.6M tied head
    n = 12 * (4 * 768**2 + 2 * 768 * 3072) + 50304 * 768
    assert cfg.flops_per_token() == 6 * n + 12 * 12 * 1024 * 768


def test_flops_exclude_position_table():
    assert (dataclasses.replace(TINY, position="rope").flops_per_token()
            == TINY.flops_per_token())


def test_loss_falls_when_trained():
    """A tiny GPT learns a repeating token pattern in 20 Adam steps."""
    _, graphdef, params = make()
    pattern = np.arange(8) * 7 % 64
    stream = np.tile(pattern, 10)
    batch = jnp.asarray(np.stack([stream[o:o + 17] for o in range(4)]), jnp.int32)
    loss_fn = make_loss_fn(graphdef)
    tx = optax.adam(1e-2)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, None)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = tx.init(params)
    losses = []
    for _ in range(20):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    assert abs(losses[0] - math.log(64)) < 0.5  # starts near uniform
    assert losses[-1] < 0.25 * losses[0], losses  # ~4.1 -> ~0.45 in practice


def test_forward_returns_logits_and_zero_aux_loss():
    _, graphdef, params = make(ONE)
    x = ids()
    logits, aux = jax.jit(lambda p, x: nnx.merge(graphdef, p).forward(x))(params, x)
    np.testing.assert_array_equal(logits, apply(graphdef, params, x))
    assert float(aux) == 0.0 and aux.dtype == jnp.float32


def test_num_params_matches_hand_formula_and_modules():
    for cfg in (TINY, dataclasses.replace(TINY, position="rope", use_bias=False)):
        assert cfg.num_params() == _expected_params(cfg)
