"""``launch.py --xm`` / ``--sweep``: every mistake fails before anything is launched or written.

launch.py's own handling (one ``error:`` line, exit status 2, nothing written) is checked with
a real launch.py process for each kind of mistake; the rest of the messages in-process, from
the same functions. A sweep that runs through xmanager's local executor is
tests/cli/test_submit.py (``theseus submit`` calls the same ``launch``); ``launch.py --xm``
with real runs is tests/launch/test_ssh.py and test_xm_targets.py."""

from __future__ import annotations

import fiddle as fdl
import pytest

from configs.gpt import tiny
from tests.conftest import run_launch, tiny_args
from theseus.config.errors import ConfigError
from theseus.launch.xm_launch import launch, parse_target, plan


def _env(tmp_path) -> dict[str, str]:
    return {"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")}


def _one_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _raises(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    return str(info.value)


@pytest.mark.slow
def test_launch_py_turns_mistakes_into_one_line_and_writes_nothing(tmp_path):
    bad_target = run_launch(*tiny_args(tmp_path / "w"), "--xm=cloud", env=_env(tmp_path))
    assert _one_error(bad_target) == (
        "error: --xm='cloud' names no launch target; use --xm=local, --xm=slurm:CLUSTER, "
        "--xm=vertex:CLUSTER or --xm=ssh:CLUSTER")
    run_option = run_launch(*tiny_args(tmp_path / "w"), "--xm=local", "--from_scratch",
                            env=_env(tmp_path))
    assert _one_error(run_option) == ("error: --from_scratch applies to one run; run launch.py "
                                      "without --xm in that run's workdir to use it")
    bad_point = run_launch(*tiny_args(tmp_path / "w"), "--sweep=model.num_layers=2,four",
                           env=_env(tmp_path))
    assert _one_error(bad_point) == ("error: sweep point num_layers=four: model.num_layers "
                                     "expects int, got str 'four'")
    assert not (tmp_path / "w").exists() and not (tmp_path / "launch").exists()


@pytest.mark.parametrize("sweep, message", [
    ("optimizer.learning_rate", ("--sweep='optimizer.learning_rate' is not of the form path=v1,v2; "
     "write --sweep=path=v1,v2, e.g. --sweep=optimizer.learning_rate=1e-3,3e-3")),
    ("optimizer.learning_rate=1e-3,,3e-3", ("--sweep='optimizer.learning_rate=1e-3,,3e-3' has an "
     "empty value; write --sweep=path=v1,v2, e.g. --sweep=optimizer.learning_rate=1e-3,3e-3")),
    ("model.num_layer=2,4", "unknown field 'model.num_layer'"),
    ("model.num_layers=2,four", "sweep point num_layers=four: model.num_layers expects int"),
])
def test_a_bad_sweep_fails_before_launching_anything(tmp_path, monkeypatch, sweep, message):
    monkeypatch.setenv("THESEUS_LAUNCH_DIR", str(tmp_path / "launch"))
    assert _raises(launch, tiny(), target="local", workdir=tmp_path / "w",
                   sweeps=[sweep]).startswith(message)
    assert not (tmp_path / "w").exists() and not (tmp_path / "launch").exists()


@pytest.mark.parametrize("xm, message", [
    ("cloud", ("--xm='cloud' names no launch target; use --xm=local, --xm=slurm:CLUSTER, "
     "--xm=vertex:CLUSTER or --xm=ssh:CLUSTER")),
    ("slurm", "--xm='slurm' needs a cluster name, e.g. --xm=slurm:mycluster"),
    ("local:x", "--xm='local:x': local takes no cluster; use --xm=local"),
])
def test_a_bad_target_is_one_sentence(xm, message):
    assert _raises(parse_target, xm) == message


def _named(name: str = "x") -> str:
    return name


def test_sweep_points_with_the_same_folder_name_are_refused():
    assert _raises(plan, fdl.Config(_named), ["name='a b','a_b'"]) == (
        "two sweep points get the same folder name (name=_a_b, name=_a_b); make the values "
        "differ in more than punctuation")
