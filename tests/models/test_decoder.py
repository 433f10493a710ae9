"""Tests for theseus.models.decoder, across the families: packed documents do not see each
other (logits of a document packed after another equal its logits alone), and bad packing
inputs are clear errors."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from tests.models.helpers import build, forward, packed, token_ids
from theseus.models.gpt import GPTConfig
from theseus.models.llama import LlamaConfig
from theseus.models.moe import MoEConfig

SHAPE = {"vocab_size": 64, "seq_len": 16, "num_layers": 1, "d_model": 32, "num_heads": 4}
LLAMA = {"num_kv_heads": 2, "ffn_dim": 32, "rope_theta": 10000.0}
FAMILIES = {
    "gpt-learned": GPTConfig(**SHAPE),
    "gpt-rope": GPTConfig(**SHAPE, position="rope"),
    "llama": LlamaConfig(**SHAPE, **LLAMA),
    "llama-dot_product": LlamaConfig(**SHAPE, **LLAMA, attention="dot_product"),
    # Dropless: with capacity dispatch, tokens of one document can take another's slots.
    "moe-dropless": MoEConfig(**SHAPE, **LLAMA, num_experts=4, dispatch="dropless"),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_packed_document_logits_equal_the_document_alone(name):
    _, graphdef, params = build(FAMILIES[name])
    first, second = token_ids(T=6, seed=1), token_ids(T=10, seed=2)
    ids, seg, pos = packed(first, second)
    logits, _ = forward(graphdef, params, ids, None, seg, pos)
    alone_first, _ = forward(graphdef, params, first)
    alone_second, _ = forward(graphdef, params, second)
    np.testing.assert_allclose(logits[:, :6], alone_first, atol=1e-5)
    np.testing.assert_allclose(logits[:, 6:], alone_second, atol=1e-5)


def test_without_segments_documents_do_mix():
    """The check above is not vacuous: unmasked, the second document sees the first."""
    _, graphdef, params = build(FAMILIES["llama"])
    first, second = token_ids(T=6, seed=1), token_ids(T=10, seed=2)
    ids, _, pos = packed(first, second)
    logits, _ = forward(graphdef, params, ids, None, None, pos)
    assert not np.allclose(logits[:, 6:], forward(graphdef, params, second)[0], atol=1e-3)


@pytest.mark.parametrize("field", ["segment_ids", "positions"])
def test_packing_arrays_of_the_wrong_shape_are_errors(field):
    model, _, _ = build(dataclasses.replace(FAMILIES["gpt-learned"]))
    ids = token_ids(T=8)
    with pytest.raises(ValueError, match=f"{field} has shape \\(2, 7\\)"):
        model.forward(ids, None, **{field: jnp.zeros((2, 7), jnp.int32)})


@pytest.mark.parametrize("name", ["gpt-learned", "llama"])
def test_sequence_longer_than_seq_len_is_an_error(name):
    model, _, _ = build(FAMILIES[name])
    with pytest.raises(ValueError, match="model.seq_len=16"):
        model(token_ids(B=1, T=17))
