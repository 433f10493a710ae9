"""Every preset in configs/gpt.py builds, round-trips through JSON, and has its stated size."""

from __future__ import annotations

import fiddle as fdl
import jax
import pytest
from flax import nnx

from configs import gpt
from theseus.config import from_json, to_json
from theseus.experiment import Experiment
from theseus.models.gpt import count_params

PRESETS = ["tiny", "small", "medium", "large", "xl"]
# Parameters (tied embeddings counted once, learned positions included), in millions.
EXPECTED_MILLIONS = {"tiny": 1.07, "small": 124, "medium": 354, "large": 773, "xl": 1557}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_json(name):
    cfg = getattr(gpt, name)()
    again = from_json(to_json(cfg))
    assert again == cfg
    assert to_json(again) == to_json(cfg)
    assert isinstance(fdl.build(again), Experiment)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_parameter_count(name):
    model = fdl.build(getattr(gpt, name)()).model
    _, abstract = nnx.split(nnx.eval_shape(lambda: model.make(nnx.Rngs(0))))
    assert count_params(abstract) / 1e6 == pytest.approx(EXPECTED_MILLIONS[name], rel=0.01)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_docstring_states_size_context_tokens_hardware(name):
    doc = getattr(gpt, name).__doc__.lower()
    for word in ("parameters", "context", "tokens", "hardware"):
        assert word in doc, (name, word)


@pytest.mark.parametrize("path,value", [
    ("model.num_layers", 2), ("model.d_model", 64), ("model.num_heads", 2),
    ("model.vocab_size", 4096), ("model.seq_len", 64), ("trainer.num_steps", 10),
    ("trainer.batch_size", 8), ("trainer.seed", 3), ("trainer.checkpoint_every", 5),
    ("trainer.eval_every", 5), ("optimizer.learning_rate", 1e-3),
])
def test_documented_override_paths_exist(path, value):
    from theseus.config import apply_overrides

    cfg = apply_overrides(gpt.tiny(), [("set", f"{path}={value}")], gpt)
    built = fdl.build(cfg)
    section, field = path.split(".")
    assert getattr(getattr(built, section), field) == value


def test_fiddlers_change_what_they_say():
    cfg = gpt.tiny()
    gpt.bf16(cfg), gpt.remat(cfg), gpt.rope(cfg)
    model = fdl.build(cfg).model
    assert (model.dtype, model.remat, model.position) == ("bfloat16", True, "rope")
    assert jax.numpy.dtype(model.param_dtype) == jax.numpy.float32


# Llama and MoE presets (configs/llama.py, configs/moe.py): millions of parameters from the
# configs' formulas; the tiny ones also from the module's abstract shapes (no memory used).
FAMILY_PRESETS = {("llama", "tiny"): 1.31, ("llama", "llama1b"): 1236, ("llama", "llama3b"): 3213,
                  ("llama", "llama8b"): 8030, ("moe", "tiny"): 2.30, ("moe", "small"): 1252}


def _family_preset(module: str, name: str) -> fdl.Config:
    """The config of preset ``name`` in ``configs/<module>.py``."""
    return getattr(_configs_module(module), name)()


def _configs_module(module: str):
    """``configs.<module>``, imported."""
    import importlib

    return importlib.import_module(f"configs.{module}")


@pytest.mark.parametrize("module, name", list(FAMILY_PRESETS))
def test_family_preset_builds_round_trips_and_has_its_size(module, name):
    cfg = _family_preset(module, name)
    again = from_json(to_json(cfg))
    assert again == cfg and to_json(again) == to_json(cfg)
    model = fdl.build(again).model
    assert model.num_params() / 1e6 == pytest.approx(FAMILY_PRESETS[module, name], rel=0.005)
    if name == "tiny":
        _, abstract = nnx.split(nnx.eval_shape(lambda: model.make(nnx.Rngs(0))))
        assert count_params(abstract) == model.num_params()
    doc = getattr(_configs_module(module), name).__doc__.lower()
    for word in ("parameters", "context", "tokens", "hardware"):
        assert word in doc, (module, name, word)


def test_llama_presets_reuse_gpt_tiny_training_setup():
    llama_tiny, gpt_tiny = _family_preset("llama", "tiny"), gpt.tiny()
    for part in ("data", "optimizer", "trainer"):
        assert getattr(llama_tiny, part) == getattr(gpt_tiny, part), part
    big = fdl.build(_family_preset("llama", "llama8b"))
    assert (big.model.vocab_size, big.model.num_kv_heads, big.model.tie_embeddings) == (
        128256, 8, False)


def test_splash_attention_off_tpu_fails_validation():
    cfg = _family_preset("llama", "tiny")
    cfg.model.attention = "splash"
    with pytest.raises(ValueError, match="model.attention='splash' runs only on TPU"):
        fdl.build(cfg).validate()
