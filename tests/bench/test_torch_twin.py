"""The PyTorch twin (bench/torch_twin.py) computes what theseus's GPT computes: the same
logits from the same weights, and the same losses over a few AdamW steps."""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import numpy as np
import pytest
from flax import nnx

from theseus.models.gpt import GPTConfig
from theseus.training.optimizer import AdamW
from theseus.training.schedules import Cosine
from theseus.training.train_step import make_loss_fn, make_train_step

torch = pytest.importorskip("torch")

TWIN_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "torch_twin.py"
CFG = GPTConfig(vocab_size=64, seq_len=16, num_layers=2, d_model=32, num_heads=4)
# float32 on both sides; the two libraries sum in different orders.
LOGIT_ATOL, LOSS_RTOL = 2e-5, 1e-5


def load_twin():
    """bench/torch_twin.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("torch_twin", TWIN_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup(seed: int = 0):
    """Theseus graphdef + params, and a twin holding the same weights."""
    twin_mod = load_twin()
    graphdef, state = nnx.split(CFG.make(nnx.Rngs(seed)))
    params = nnx.to_pure_dict(state)
    twin = twin_mod.TwinGPT(CFG.vocab_size, CFG.seq_len, CFG.num_layers, CFG.d_model,
                            CFG.num_heads, CFG.mlp_ratio)
    twin_mod.load_jax_params(twin, params)
    return twin_mod, graphdef, params, twin


def batch(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, (4, CFG.seq_len + 1),
                                                dtype=np.int32)


@pytest.mark.slow
def test_same_weights_give_same_logits_and_loss():
    twin_mod, graphdef, params, twin = setup()
    tokens = batch()
    ours = np.asarray(nnx.merge(graphdef, params)(tokens[:, :-1]))
    with torch.no_grad():
        theirs = twin(torch.from_numpy(tokens[:, :-1]).long()).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(theirs, ours, atol=LOGIT_ATOL, rtol=0)
    our_loss = float(make_loss_fn(graphdef)(params, tokens, None))
    with torch.no_grad():
        their_loss = float(twin_mod.loss_fn(twin, torch.from_numpy(tokens).long()))
    np.testing.assert_allclose(their_loss, our_loss, rtol=LOSS_RTOL)


@pytest.mark.slow
def test_same_losses_over_adamw_steps():
    """Clipping, AdamW with kernels-only decay and the cosine schedule match optax's."""
    twin_mod, graphdef, params, twin = setup()
    steps, opt = 4, AdamW(learning_rate=3e-3, schedule=Cosine(warmup_steps=2), clip_norm=0.5)
    tx = opt.make(steps)
    step_fn = jax.jit(make_train_step(graphdef, tx, opt.schedule.make(opt.learning_rate, steps),
                                      0, False))
    state = {"params": params, "opt_state": tx.init(params), "step": np.int32(0)}
    trainer = twin_mod.TwinTrainer(twin, opt.learning_rate, 2, steps, clip_norm=0.5)
    for i in range(steps):
        tokens = batch(i)
        state, metrics = step_fn(state, tokens)
        theirs = trainer.step(torch.from_numpy(tokens).long())
        np.testing.assert_allclose(float(theirs["loss"]), float(metrics["train/loss"]),
                                   rtol=LOSS_RTOL)
        np.testing.assert_allclose(float(theirs["grad_norm"]), float(metrics["train/grad_norm"]),
                                   rtol=1e-4)


def test_learning_rate_schedule_matches_cosine():
    twin_mod = load_twin()
    schedule = Cosine(warmup_steps=5, final_fraction=0.1).make(1e-3, 40)
    for step in range(45):
        np.testing.assert_allclose(twin_mod.cosine_lr(step, 1e-3, 5, 40), float(schedule(step)),
                                   rtol=1e-6)


def test_wrong_dimensions_are_refused():
    twin_mod, _, params, _ = setup()
    small = twin_mod.TwinGPT(CFG.vocab_size, CFG.seq_len, CFG.num_layers, 16, 4)
    with pytest.raises(ValueError, match="does not fit the twin"):
        twin_mod.load_jax_params(small, params)


def test_bf16_autocast_matches_our_bfloat16_matmul_precision_closely():
    """The bfloat16 pairing of the bench: both sides round matmul operands to bfloat16, so
    their first losses agree to bfloat16 accuracy (not bit for bit)."""
    import dataclasses

    twin_mod, graphdef, params, twin = setup()
    tokens = batch()
    bf16_graphdef = nnx.split(dataclasses.replace(CFG, matmul_precision="bfloat16")
                              .make(nnx.Rngs(0)))[0]
    ours = float(make_loss_fn(bf16_graphdef)(params, tokens, None))
    trainer = twin_mod.TwinTrainer(twin, 1e-3, 2, 4, bf16_autocast=True)
    theirs = float(trainer.step(torch.from_numpy(tokens).long())["loss"])
    assert ours != float(make_loss_fn(graphdef)(params, tokens, None))
    np.testing.assert_allclose(theirs, ours, rtol=1e-2)
