"""Tests for theseus.config.flags: ordered --fdl_set/--fiddler, config_from_flags, workdirs."""

from __future__ import annotations

import pathlib

import pytest
from absl import flags

from theseus.config import ConfigError, config_from_flags, default_workdir, define_flags, ordered_overrides
from theseus.config.flags import workdir_from_flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOY = "tests/config/fixtures/toy.py"


@pytest.fixture
def flag_values() -> flags.FlagValues:
    """A fresh FlagValues with the config flags defined."""
    fv = flags.FlagValues()
    define_flags(fv)
    return fv


def test_define_flags_is_idempotent(flag_values: flags.FlagValues) -> None:
    define_flags(flag_values)
    names = {"config", "fdl_set", "fiddler", "workdir"}
    assert names <= set(flag_values)
    flag_values(["prog"])
    assert flag_values.config is None and flag_values.workdir is None
    assert flag_values.fdl_set is None and flag_values.fiddler is None
    assert ordered_overrides(flag_values) == []


def test_order_is_kept_across_both_flags_and_both_forms(flag_values: flags.FlagValues) -> None:
    rest = flag_values(
        [
            "prog",
            "--fdl_set=model.num_layers=3",
            "--fiddler",
            "double_layers",
            "--fdl_set",
            "model.d_model=8",
            "--fiddler=set_layers(9, heads=4)",
            "--fdl_set=model.name='a=b'",
            "positional",
        ]
    )
    assert rest == ["prog", "positional"]
    assert ordered_overrides(flag_values) == [
        ("set", "model.num_layers=3"),
        ("fiddler", "double_layers"),
        ("set", "model.d_model=8"),
        ("fiddler", "set_layers(9, heads=4)"),
        ("set", "model.name='a=b'"),
    ]


def test_reparsing_after_unparse_starts_over(flag_values: flags.FlagValues) -> None:
    flag_values(["prog", "--fdl_set=a=1", "--fiddler=f"])
    flag_values.unparse_flags()
    flag_values(["prog", "--fiddler=g", "--fdl_set=b=2"])
    assert ordered_overrides(flag_values) == [("fiddler", "g"), ("set", "b=2")]


def test_values_assigned_in_code_come_after_parsed_ones(flag_values: flags.FlagValues) -> None:
    flag_values(["prog", "--fdl_set=a=1", "--fiddler=f"])
    flag_values.fdl_set = ["b=2"]
    assert ordered_overrides(flag_values) == [("fiddler", "f"), ("set", "b=2")]


@pytest.mark.parametrize(
    ("argv", "layers"),
    [
        (["--fiddler=double_layers", "--fdl_set=model.num_layers=3"], 3),  # The later set wins.
        (["--fdl_set=model.num_layers=3", "--fiddler=double_layers"], 6),  # The later fiddler wins.
        (["--fdl_set", "model.num_layers=5", "--fiddler", "set_layers(1)", "--fiddler", "double_layers"], 2),
    ],
)
def test_config_from_flags_applies_in_order(
    flag_values: flags.FlagValues, monkeypatch: pytest.MonkeyPatch, argv: list[str], layers: int
) -> None:
    monkeypatch.chdir(ROOT)
    flag_values(["prog", f"--config={TOY}:tiny", *argv])
    assert config_from_flags(flag_values).model.num_layers == layers


def test_config_from_flags_reports_override_errors(
    flag_values: flags.FlagValues, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    flag_values(["prog", f"--config={TOY}:tiny", "--fdl_set=model.num_layer=3"])
    with pytest.raises(ConfigError, match="unknown field 'model.num_layer'"):
        config_from_flags(flag_values)


def test_missing_config_flag(flag_values: flags.FlagValues) -> None:
    flag_values(["prog", "--fdl_set=a=1"])
    with pytest.raises(ConfigError, match="missing --config"):
        config_from_flags(flag_values)
    with pytest.raises(ConfigError, match="missing --config"):
        workdir_from_flags(flag_values)


@pytest.mark.parametrize(
    ("spec", "workdir"),
    [
        ("configs/gpt.py:tiny", "runs/gpt_tiny"),
        ("configs/gpt.py", "runs/gpt_config"),
        ("configs/gpt.py:small(6, d_model=64)", "runs/gpt_small_6_d_model=64"),
        ("configs/gpt.py:small(name='a b/c')", "runs/gpt_small_name=_a_b_c"),
        ("runs/gpt_tiny/config.json", "runs/gpt_tiny"),
        ("saved/exp1.json", "runs/exp1"),
    ],
)
def test_default_workdir(spec: str, workdir: str) -> None:
    assert default_workdir(spec) == pathlib.Path(workdir)


def test_default_workdir_hashes_long_arguments() -> None:
    long = default_workdir(f"c.py:f({list(range(40))})")
    assert long == default_workdir(f"c.py:f({list(range(40))})") and len(long.name) < 30
    assert long != default_workdir(f"c.py:f({list(range(41))})")


def test_workdir_from_flags(flag_values: flags.FlagValues) -> None:
    flag_values(["prog", "--config=configs/gpt.py:tiny"])
    assert workdir_from_flags(flag_values) == pathlib.Path("runs/gpt_tiny")
    flag_values.unparse_flags()
    flag_values(["prog", "--config=configs/gpt.py:tiny", "--workdir=/tmp/x"])
    assert workdir_from_flags(flag_values) == pathlib.Path("/tmp/x")
