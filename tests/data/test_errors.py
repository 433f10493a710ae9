"""Tests for theseus.data.errors: bad data found when a run starts is a user error."""

from __future__ import annotations

import fiddle as fdl
import pytest

from configs import gpt
from theseus import runner
from theseus.config import ConfigError
from theseus.data.errors import DataError, data_errors
from theseus.data.sources import TextFiles


def test_value_errors_become_data_errors_with_the_same_sentence():
    with pytest.raises(DataError) as e, data_errors():
        raise ValueError("the corpus is empty; add text.")
    assert str(e.value) == "the corpus is empty; add text."
    assert isinstance(e.value, ConfigError) and isinstance(e.value, ValueError)
    with pytest.raises(KeyError), data_errors():  # anything else passes through
        raise KeyError("x")


def test_an_empty_corpus_found_when_training_starts_is_a_config_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    cfg = gpt.tiny()
    cfg.data.corpus = fdl.Config(TextFiles, paths=(str(tmp_path / "empty.txt"),))
    cfg.data.cache_dir = str(tmp_path / "data")
    with pytest.raises(ConfigError, match=r"^the source text files .*empty.txt .* has no "
                                          r"documents; point it at files with text in them.$"):
        runner.run(cfg, tmp_path / "run")
    assert not list((tmp_path / "data").iterdir())  # no half-written dataset
    assert not (tmp_path / "run").exists()  # nor a workdir holding only its config files


def test_an_existing_workdir_keeps_its_files_after_a_data_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    cfg = gpt.tiny()
    cfg.data.corpus = fdl.Config(TextFiles, paths=(str(tmp_path / "empty.txt"),))
    cfg.data.cache_dir = str(tmp_path / "data")
    with pytest.raises(ConfigError):
        runner.run(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
