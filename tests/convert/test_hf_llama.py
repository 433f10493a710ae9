"""Llama weights to and from transformers, offline: logits agree both ways (with GQA)."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from tests.convert.helpers import hf_logits, theseus_logits
from theseus.convert import hf_io, hf_llama

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
llama = pytest.importorskip("theseus.models.llama")

ATOL = 1e-4  # float32 on both sides
HF = dict(vocab_size=97, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
          rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)



@pytest.fixture(scope="module")
def ids() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 97, size=(2, 16))


def test_import_matches_transformers(ids):
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**HF))
    tensors = {k: v.numpy() for k, v in hf.state_dict().items()}
    cfg = hf_llama.config_from_hf({"model_type": "llama", **HF})
    assert (cfg.num_kv_heads, cfg.ffn_dim) == (2, 80)
    ours = theseus_logits(cfg, hf_llama.from_hf(tensors, cfg), ids)
    np.testing.assert_allclose(ours, hf_logits(hf, ids), atol=ATOL)


def test_export_loads_in_transformers(tmp_path, ids):
    cfg = hf_llama.config_from_hf({"model_type": "llama", **HF})
    params = nnx.to_pure_dict(nnx.split(cfg.make(nnx.Rngs(3)))[1])
    out = tmp_path / "hf"
    hf_io.save_checkpoint(out, hf_llama.config_to_hf(cfg), hf_llama.to_hf(params, cfg))
    hf = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert type(hf).__name__ == "LlamaForCausalLM"
    np.testing.assert_allclose(hf_logits(hf, ids), theseus_logits(cfg, params, ids), atol=ATOL)


def test_unsupported_checkpoints():
    with pytest.raises(ValueError, match="expected a Llama checkpoint"):
        hf_llama.config_from_hf({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="biases are not supported"):
        hf_llama.config_from_hf({"model_type": "llama", "attention_bias": True, **HF})
    with pytest.raises(ValueError, match="rope scaling 'llama3'"):
        hf_llama.config_from_hf({"model_type": "llama", **HF,
                                 "rope_parameters": {"rope_type": "llama3", "factor": 8.0}})
