"""``launch.py --xm=local``: xmanager's local executor runs launch.py in subprocesses, one work
unit per sweep point, recorded in xmanager's sqlite database; mistakes fail before anything."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.conftest import run_launch, tiny_args


def _env(tmp_path) -> dict[str, str]:
    return {"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")}


def _one_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.slow
def test_a_sweep_runs_one_work_unit_per_point_and_records_the_experiment(tmp_path):
    base = tmp_path / "sweep"
    result = run_launch(*tiny_args(base, "--fdl_set=trainer.num_steps=2",
                                   "--fdl_set=trainer.eval_every=2",
                                   "--fdl_set=trainer.checkpoint_every=2"),
                        "--xm=local", "--sweep=optimizer.learning_rate=1e-3,3e-3",
                        env=_env(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    for value, rate in (("1e-3", 1e-3), ("3e-3", 3e-3)):
        workdir = base / f"learning_rate={value}"
        assert json.loads((workdir / "status.json").read_text())["state"] == "finished"
        assert f"optimizer.learning_rate = {rate}" in (workdir / "config.txt").read_text()
        assert f"learning_rate={value}: {workdir}: work unit" in result.stdout
    db = sqlite3.connect(tmp_path / "launch" / "experiments.sqlite3")
    [(experiment_id, title)] = db.execute("select experiment_id, experiment_title from experiment")
    assert title == "sweep"
    units = db.execute("select work_unit_id from work_unit where experiment_id = ?", (experiment_id,))
    assert sorted(u for (u,) in units) == [1, 2]


@pytest.mark.parametrize("sweep, message", [
    ("optimizer.learning_rate", ("--sweep='optimizer.learning_rate' is not of the form path=v1,v2; "
     "write --sweep=path=v1,v2, e.g. --sweep=optimizer.learning_rate=1e-3,3e-3")),
    ("optimizer.learning_rate=1e-3,,3e-3", ("--sweep='optimizer.learning_rate=1e-3,,3e-3' has an "
     "empty value; write --sweep=path=v1,v2, e.g. --sweep=optimizer.learning_rate=1e-3,3e-3")),
    ("model.num_layer=2,4", "unknown field 'model.num_layer'"),
    ("model.num_layers=2,four", "sweep point num_layers=four: model.num_layers expects int"),
])
def test_a_bad_sweep_fails_before_launching_anything(tmp_path, sweep, message):
    result = run_launch(*tiny_args(tmp_path / "w"), f"--sweep={sweep}", env=_env(tmp_path))
    assert _one_error(result).startswith(f"error: {message}")
    assert not (tmp_path / "w").exists() and not (tmp_path / "launch").exists()


@pytest.mark.parametrize("xm, message", [
    ("cloud", ("--xm='cloud' names no launch target; use --xm=local, --xm=slurm:CLUSTER, "
     "--xm=vertex:CLUSTER or --xm=ssh:CLUSTER")),
    ("slurm", "--xm='slurm' needs a cluster name, e.g. --xm=slurm:mycluster"),
    ("local:x", "--xm='local:x': local takes no cluster; use --xm=local"),
])
def test_a_bad_target_is_one_sentence(tmp_path, xm, message):
    result = run_launch(*tiny_args(tmp_path / "w"), f"--xm={xm}", env=_env(tmp_path))
    assert _one_error(result) == f"error: {message}"
    assert not (tmp_path / "w").exists()


def test_run_options_are_refused_with_xm(tmp_path):
    result = run_launch(*tiny_args(tmp_path / "w"), "--xm=local", "--from_scratch",
                        env=_env(tmp_path))
    assert _one_error(result) == ("error: --from_scratch applies to one run; run launch.py "
                                  "without --xm in that run's workdir to use it")


def _named(name: str = "x") -> str:
    return name


def test_sweep_points_with_the_same_folder_name_are_refused():
    import fiddle as fdl

    from theseus.config.errors import ConfigError
    from theseus.launch.xm_launch import plan

    with pytest.raises(ConfigError) as info:
        plan(fdl.Config(_named), ["name='a b','a_b'"])
    assert str(info.value) == ("two sweep points get the same folder name (name=_a_b, name=_a_b); "
                               "make the values differ in more than punctuation")
