"""GPT-2 weights to and from transformers, offline: logits agree both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flax import nnx

from tests.convert.helpers import hf_logits, theseus_logits
from theseus.convert import hf_gpt2, hf_io
from theseus.models.gpt import GPTConfig

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ATOL = 1e-4  # float32 on both sides; different summation orders give ~1e-6 relative
HF = dict(vocab_size=97, n_positions=16, n_embd=32, n_layer=2, n_head=4, bos_token_id=96,
          eos_token_id=96, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)



@pytest.fixture(scope="module")
def ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 97, size=(2, 16))


def test_import_matches_transformers(ids):
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**HF))
    tensors = {k: v.numpy() for k, v in hf.state_dict().items()}
    cfg = hf_gpt2.config_from_hf({"model_type": "gpt2", **HF}, vocab_size=128)
    ours = theseus_logits(cfg, hf_gpt2.from_hf(tensors, cfg), ids)
    assert ours.shape == (2, 16, 128)  # padded vocabulary; the extra columns are zero rows
    np.testing.assert_allclose(ours[..., :97], hf_logits(hf, ids), atol=ATOL)


def test_export_loads_in_transformers(tmp_path, ids):
    cfg = GPTConfig(vocab_size=128, seq_len=16, num_layers=2, d_model=32, num_heads=4)
    params = nnx.to_pure_dict(nnx.split(cfg.make(nnx.Rngs(3)))[1])
    out = tmp_path / "hf"
    hf_io.save_checkpoint(out, hf_gpt2.config_to_hf(cfg, vocab_size=97),
                          hf_gpt2.to_hf(params, cfg, vocab_size=97))
    hf = transformers.GPT2LMHeadModel.from_pretrained(out)
    np.testing.assert_allclose(hf_logits(hf, ids), theseus_logits(cfg, params, ids)[..., :97],
                               atol=ATOL)
    # And back: the round trip is exact.
    config, tensors = hf_io.load_checkpoint(out)
    back = hf_gpt2.from_hf(tensors, hf_gpt2.config_from_hf(config, vocab_size=128))
    np.testing.assert_array_equal(back["blocks"][1]["mlp"]["up"]["kernel"],
                                  np.asarray(params["blocks"][1]["mlp"]["up"]["kernel"]))


def test_rotary_model_cannot_be_exported():
    with pytest.raises(ValueError, match="learned positions"):
        hf_gpt2.config_to_hf(GPTConfig(position="rope"))


def test_wrong_model_type_and_missing_tensor(tmp_path):
    with pytest.raises(ValueError, match="expected a GPT-2 checkpoint"):
        hf_gpt2.config_from_hf({"model_type": "llama"})
    cfg = GPTConfig(vocab_size=97, seq_len=16, num_layers=1, d_model=32, num_heads=4)
    with pytest.raises(ValueError, match="no tensor 'transformer.h.0.ln_1.weight'"):
        hf_gpt2.from_hf({"transformer.wte.weight": np.zeros((97, 32))}, cfg)


def test_save_refuses_existing_dir_and_load_needs_weights(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="already exists"):
        hf_io.save_checkpoint(tmp_path / "x", {}, {})
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        hf_io.load_checkpoint(tmp_path / "x")
