"""Config diffs and the resume check: reporting fields may change, the math may not."""

from __future__ import annotations

import pytest

from configs import gpt
from theseus.config import ConfigError
from theseus.config.diff import check_resume_change, diff_configs


def test_diff_lists_changed_fields_with_both_values():
    a, b = gpt.tiny(), gpt.tiny()
    b.model.num_layers = 6
    b.trainer.num_steps = 10
    assert diff_configs(a, b) == [("model.num_layers", "4", "6"), ("trainer.num_steps", "800", "10")]
    assert diff_configs(a, gpt.tiny()) == []


def test_resume_accepts_reporting_changes_and_refuses_math_changes():
    old = gpt.tiny()
    new = gpt.tiny()
    new.trainer.num_steps, new.trainer.eval_every = 1600, 50
    assert len(check_resume_change(old, new, allow=False)) == 2
    new.optimizer.learning_rate = 1e-2
    with pytest.raises(ConfigError, match=r"optimizer.learning_rate: 0.003 -> 0.01"):
        check_resume_change(old, new, allow=False)
    assert len(check_resume_change(old, new, allow=True)) == 3
