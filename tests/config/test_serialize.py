"""Tests for theseus.config.serialize: JSON round trip, flatten/to_text, atomic writes."""

from __future__ import annotations

import json
import os
import pathlib

import fiddle as fdl
import numpy as np
import pytest

from theseus.config import MISSING, ConfigError, atomic_write_text, flatten, from_json, to_json, to_text, write_config

from .fixtures import toy


def _unserializable() -> fdl.Config[toy.Experiment]:
    """A config holding a lambda, which fiddle cannot reference by name."""
    cfg = toy.tiny()
    cfg.schedule = lambda step: 1.0
    return cfg


# JSON


def test_json_round_trip_of_nested_config() -> None:
    cfg = toy.small(num_layers=5)
    cfg.model.activation = toy.Activation.RELU
    cfg.model.shape = (3, 4)
    text = to_json(cfg)
    assert json.loads(text)["root"]  # Plain JSON.
    assert "\n  " in text  # Indented for reading.
    back = from_json(text)
    assert back == cfg and back is not cfg
    assert back.schedule.__fn_or_cls__ is toy.constant and isinstance(back.data.sources[1], fdl.Config)
    assert fdl.build(back).model.num_layers == 5


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (lambda step: 1.0, "it refers to '<lambda>' in module .*; define it at module level"),
        (np.zeros(2), "the value at 'schedule' has type numpy.ndarray, which fiddle cannot serialize"),
    ],
)
def test_unserializable_values(value: object, match: str) -> None:
    cfg = toy.tiny()
    cfg.schedule = value
    with pytest.raises(ConfigError, match=f"config cannot be saved as JSON: {match}"):
        to_json(cfg)


def test_from_json_rejects_non_configs() -> None:
    with pytest.raises(ConfigError, match="holds a list, not a fiddle config"):
        from_json(to_json_list())
    with pytest.raises(ConfigError, match="invalid JSON in the JSON text at line 1 column 1"):
        from_json("")


def to_json_list() -> str:
    """Fiddle JSON of a plain list (valid fiddle JSON, but not a config)."""
    from fiddle.experimental import serialization

    return serialization.dump_json([1, 2])


# flatten / to_text


def test_flatten_includes_defaults_in_field_order() -> None:
    flat = dict(flatten(toy.tiny()))
    paths = [p for p, _ in flatten(toy.tiny())]
    assert paths[:4] == ["model.d_model", "model.num_layers", "model.num_heads", "model.dropout"]
    assert flat["model.dropout"] == 0.0 and flat["model.name"] == "toy"  # Never set: defaults.
    assert flat["model.norm.kind"] == "rms" and flat["model.tags"] == []  # Nested; default_factory.
    assert flat["data.sources[1].weight"] == 2.0 and flat["data.named['main'].path"] == "c.txt"
    assert flat["data.weights"] == (1.0,) and flat["extra.b"] == 3
    assert "schedule.step" not in flat and flat["schedule.value"] == 0.5  # A Partial's gap is by design.
    assert paths == sorted(paths, key=paths.index) and len(paths) == len(set(paths))


def test_flatten_marks_missing_required_fields() -> None:
    flat = flatten(fdl.Config(toy.Data))
    assert flat[0] == ("sources", MISSING) and repr(MISSING) == "<missing>"


def test_flatten_recurses_into_nested_containers() -> None:
    cfg = fdl.Config(toy.Data, sources=[[fdl.Config(toy.Source, path="x")]], named={})
    assert ("sources[0][0].path", "x") in flatten(cfg)
    assert ("named", {}) in flatten(cfg)


def test_to_text_lines() -> None:
    cfg = toy.tiny()
    cfg.extra.c = toy.constant
    lines = to_text(cfg).splitlines()
    assert lines[:2] == [f"model = fdl.Config({toy.__name__}.Model)", "model.d_model = 16"]
    assert f"schedule = fdl.Partial({toy.__name__}.constant)" in lines
    assert "model.name = 'toy'" in lines and "model.activation = Activation.GELU" in lines
    assert f"extra.c = {toy.__name__}.constant" in lines
    assert "data.sources[0].path = 'a.txt'" in lines
    assert to_text(cfg).endswith("\n") and len(lines) == len(flatten(cfg, include_buildables=True))


def test_config_without_fields_is_a_leaf() -> None:
    empty = fdl.Config(toy.Corpus)
    cfg = fdl.Config(toy.Experiment, model=empty, data=None)
    assert flatten(cfg)[0] == ("model", empty)
    assert to_text(cfg).splitlines()[0] == f"model = fdl.Config({toy.__name__}.Corpus)"


def test_include_buildables_lists_each_nested_config_before_its_fields() -> None:
    paths = [p for p, _ in flatten(toy.tiny(), include_buildables=True)]
    assert paths[:2] == ["model", "model.d_model"]
    assert paths.index("model.norm") + 1 == paths.index("model.norm.eps")
    assert "data.sources[0]" in paths and "" not in paths


def test_to_text_shows_classes_and_functions_inside_containers() -> None:
    cfg = toy.tiny()
    cfg.model.tags = [toy.constant, (toy.Norm,)]
    assert f"model.tags = [{toy.__name__}.constant, ({toy.__name__}.Norm,)]" in to_text(cfg).splitlines()


# Writing


def test_write_config_writes_json_and_text(tmp_path: pathlib.Path) -> None:
    cfg = toy.tiny()
    write_config(cfg, tmp_path / "runs/a")
    assert sorted(p.name for p in (tmp_path / "runs/a").iterdir()) == ["config.json", "config.txt"]
    assert from_json((tmp_path / "runs/a/config.json").read_text()) == cfg
    assert (tmp_path / "runs/a/config.txt").read_text() == to_text(cfg)


def test_write_config_overwrites(tmp_path: pathlib.Path) -> None:
    write_config(toy.tiny(), tmp_path)
    write_config(toy.small(num_layers=9), tmp_path)
    assert from_json((tmp_path / "config.json").read_text()).model.num_layers == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "config.txt"]


def test_failed_serialization_creates_nothing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError):
        write_config(_unserializable(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_failed_serialization_keeps_the_previous_config(tmp_path: pathlib.Path) -> None:
    write_config(toy.tiny(), tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError):
        write_config(_unserializable(), tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_workdir_that_is_a_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="workdir '.*f' cannot be created"):
        write_config(toy.tiny(), tmp_path / "f")


def test_atomic_write_text(tmp_path: pathlib.Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two" and os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_failure_leaves_old_file_and_no_temp(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_write_text(tmp_path / "a.txt", "old")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]
