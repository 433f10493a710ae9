"""Tests for theseus.config.loading: spec parsing, module import naming, errors."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import fiddle as fdl
import pytest

from theseus.config import ConfigError, load_config, parse_call, write_config
from theseus.config.loading import split_spec

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOY = "tests/config/fixtures/toy.py"

EXP_PY = textwrap.dedent(
    """
    import dataclasses
    import fiddle as fdl

    @dataclasses.dataclass
    class Thing:
        size: int = 1
        act: object = None

    def relu(x):
        return x

    def exp(size: int = 2) -> fdl.Config[Thing]:
        return fdl.Config(Thing, size=size, act=relu)
    """
)


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    """Writes a file, creating its parents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the test from the repository root, where the toy fixture is tests/config/fixtures/toy.py."""
    monkeypatch.chdir(ROOT)


# parse_call


def test_parse_call_name_only() -> None:
    assert parse_call("tiny", "fiddler") == ("tiny", (), {})


def test_parse_call_positional_and_keyword_literals() -> None:
    assert parse_call("f(1, 'a', [2, 3], x={'k': (1.5,)}, y=None)", "fiddler") == (
        "f",
        (1, "a", [2, 3]),
        {"x": {"k": (1.5,)}, "y": None},
    )


def test_parse_call_dotted_name() -> None:
    assert parse_call("pkg.mod.fn(-1)", "fiddler") == ("pkg.mod.fn", (-1,), {})


@pytest.mark.parametrize("text", ["f(", "f)", "1", "f(1)(2)", "f(*a)", "f(**k)", "a[0]", ""])
def test_parse_call_bad_syntax(text: str) -> None:
    with pytest.raises(ConfigError, match="cannot parse fiddler"):
        parse_call(text, "fiddler")


@pytest.mark.parametrize("arg", ["x", "1 + 1", "open('f')", "[y]", "k=z"])
def test_parse_call_rejects_non_literals(arg: str) -> None:
    with pytest.raises(ConfigError, match="is not a Python literal") as e:
        parse_call(f"f({arg})", "fiddler")
    assert "\n" not in str(e.value)


# Spec syntax


def test_split_spec_defaults_to_config_function() -> None:
    assert split_spec("a/b.py") == (pathlib.Path("a/b.py"), "config")
    assert split_spec("a/b.py:small({'k': 1})") == (pathlib.Path("a/b.py"), "small({'k': 1})")


@pytest.mark.parametrize("spec", ["a/b.py:", "a/b.yaml", "a/b", "a/b.py:a.b", "a/b.py:(1)", "a/b.py:1x"])
def test_bad_spec_syntax(spec: str) -> None:
    with pytest.raises(ConfigError, match="invalid (config spec|function)"):
        load_config(spec)


# Loading .py specs


def test_load_function_without_args(in_root: None) -> None:
    cfg, module = load_config(f"{TOY}:tiny")
    assert isinstance(cfg, fdl.Config) and cfg.__fn_or_cls__ is module.Experiment
    assert cfg.model.num_layers == 2


def test_load_bare_path_calls_config(in_root: None) -> None:
    cfg, _ = load_config(TOY)
    assert cfg.model.num_layers == 3


def test_load_with_positional_and_keyword_args(in_root: None) -> None:
    cfg, _ = load_config(f"{TOY}:small(5, d_model=8)")
    assert (cfg.model.num_layers, cfg.model.d_model) == (5, 8)


def test_load_rejects_non_literal_args(in_root: None) -> None:
    with pytest.raises(ConfigError, match="'n' of config function 'small\\(n\\)' is not a Python literal"):
        load_config(f"{TOY}:small(n)")


def test_missing_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="config file 'x.py' does not exist"):
        load_config("x.py:tiny")


def test_missing_function_lists_functions_and_suggests(in_root: None) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(f"{TOY}:tinny")
    message = str(e.value)
    assert "has no function 'tinny' (did you mean 'tiny'?)" in message
    assert "available functions: base, config, constant, double_layers" in message
    assert "Experiment" not in message  # Classes are not listed.


@pytest.mark.parametrize("call", ["small(1, 2)", "small(layers=3)", "tiny(1)"])
def test_wrong_arguments(in_root: None, call: str) -> None:
    with pytest.raises(ConfigError, match="wrong arguments for .*; its signature is"):
        load_config(f"{TOY}:{call}")


def test_function_must_return_buildable(in_root: None) -> None:
    with pytest.raises(ConfigError, match="not_a_config returned int, not a fiddle config"):
        load_config(f"{TOY}:not_a_config")


def test_syntax_error_in_config_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "broken_cfg.py", "def tiny(:\n    pass\n")
    with pytest.raises(ConfigError, match="syntax error in config file 'broken_cfg.py' at line 1"):
        load_config("broken_cfg.py:tiny")


# Import naming


def test_file_under_cwd_is_imported_by_dotted_name(in_root: None) -> None:
    _, module = load_config(f"{TOY}:tiny")
    assert module is not None and module.__name__ == "tests.config.fixtures.toy"
    assert sys.path[0] == str(ROOT)


def test_configs_package_under_cwd(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "configs/__init__.py", "")
    _write(tmp_path / "configs/exp.py", EXP_PY)
    cfg, module = load_config("configs/exp.py:exp(3)")
    assert module is not None and module.__name__ == "configs.exp"
    assert cfg.act is module.relu and cfg.act.__module__ == "configs.exp"


def test_same_module_name_from_another_directory_is_reimported(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, size in (("one", 1), ("two", 2)):
        _write(tmp_path / name / "configs/__init__.py", "")
        _write(tmp_path / name / "configs/exp.py", EXP_PY.replace("size: int = 2", f"size: int = {size}"))
    monkeypatch.chdir(tmp_path / "one")
    assert load_config("configs/exp.py:exp")[0].size == 1
    monkeypatch.chdir(tmp_path / "two")
    cfg, module = load_config("configs/exp.py:exp")
    assert cfg.size == 2 and pathlib.Path(module.__file__).resolve() == (tmp_path / "two/configs/exp.py").resolve()


def test_file_outside_cwd_is_imported_by_stem(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    _write(tmp_path / "elsewhere/outside_exp.py", EXP_PY)
    _, module = load_config("../elsewhere/outside_exp.py:exp")
    assert module is not None and module.__name__ == "outside_exp"
    assert sys.path[0] == str((tmp_path / "elsewhere").resolve())


def test_non_identifier_directory_falls_back_to_stem(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "my-configs/hyphen_exp.py", EXP_PY)
    _, module = load_config("my-configs/hyphen_exp.py:exp")
    assert module is not None and module.__name__ == "hyphen_exp"


def test_clash_with_an_unrelated_module_is_an_error(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "json/exp.py", EXP_PY)  # 'json' is the already-imported standard library package.
    with pytest.raises(ConfigError, match="would be imported as module 'json.exp', but 'json' is already imported"):
        load_config("json/exp.py:exp")


# JSON specs


def test_json_spec_round_trip(in_root: None, tmp_path: pathlib.Path) -> None:
    cfg, _ = load_config(f"{TOY}:small(6)")
    write_config(cfg, tmp_path / "run")
    loaded, module = load_config(str(tmp_path / "run/config.json"))
    assert module is None and loaded == cfg


def test_saved_config_loads_in_a_fresh_process(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "configs/__init__.py", "")
    _write(tmp_path / "configs/exp.py", EXP_PY)
    write_config(load_config("configs/exp.py:exp(7)")[0], tmp_path / "runs/exp")
    code = (
        "from theseus.config import load_config; "
        "c, _ = load_config('runs/exp/config.json'); print(c.size, c.act.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["7", "relu"]


def test_missing_json(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="config file 'nope.json' does not exist"):
        load_config("nope.json")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "invalid JSON in 'bad.json' at line 1"),
        (json.dumps([1, 2]), "'bad.json' is not a config saved by theseus"),
        (json.dumps({"root": 1}), "'bad.json' is not a config saved by theseus"),
    ],
)
def test_invalid_json(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, text: str, match: str) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bad.json", text)
    with pytest.raises(ConfigError, match=match):
        load_config("bad.json")


def test_json_with_unimportable_module(in_root: None, tmp_path: pathlib.Path) -> None:
    cfg, _ = load_config(f"{TOY}:tiny")
    write_config(cfg, tmp_path)
    path = tmp_path / "config.json"
    path.write_text(path.read_text().replace("tests.config.fixtures.toy", "no_such_pkg.toy"))
    with pytest.raises(ConfigError, match="refers to module 'no_such_pkg', which cannot be imported"):
        load_config(str(path))
