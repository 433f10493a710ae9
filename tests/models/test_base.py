"""Tests for theseus.models.base: every family satisfies ModelConfig; shared checks."""

import pytest

from theseus.models import base
from theseus.models.gpt import GPTConfig
from theseus.models.llama import LlamaConfig
from theseus.models.moe import MoEConfig


@pytest.mark.parametrize("cls", [GPTConfig, LlamaConfig, MoEConfig])
def test_every_family_is_a_model_config(cls):
    cfg = cls()
    assert isinstance(cfg, base.ModelConfig)
    assert not isinstance(object(), base.ModelConfig)
    cfg.check_platform("cpu")  # the default kernel runs anywhere


def test_palm_flops():
    assert base.palm_flops(100, 2, 8, 4) == 600 + 12 * 2 * 8 * 4


@pytest.mark.parametrize("call, message", [
    (lambda: base.check_positive(num_layers=0), "model.num_layers must be a positive integer"),
    (lambda: base.check_choice("position", "alibi", ("learned",)), "model.position must be one"),
    (lambda: base.check_dtypes(dtype="float33"), "model.dtype 'float33' is not a floating"),
    (lambda: base.check_dropout(1.5), "model.dropout must be in"),
    (lambda: base.check_heads(30, 4, None, False), "model.d_model \\(30\\)"),
    (lambda: base.check_heads(32, 4, 3, False), "multiple of model.num_kv_heads \\(3\\)"),
    (lambda: base.check_heads(12, 4, None, True), "even head dimension"),
    (lambda: base.check_attention_platform("splash", "gpu"), "backend is 'gpu'"),
])
def test_checks_name_the_field(call, message):
    with pytest.raises(ValueError, match=message):
        call()
