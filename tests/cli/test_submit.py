"""`theseus submit`: the same launch path as ``launch.py --xm``; checks first, then submits.

The mistakes are checked in-process through the command's own entry point (``main``: the
``error:`` line and exit status 2 that ``theseus`` prints); one real submission to a local
cluster runs a 2-point sweep through xmanager's local executor."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.cli.conftest import run_theseus
from tests.conftest import TINY_OVERRIDES
from theseus.cli import main


def _clusters(tmp_path) -> str:
    path = tmp_path / "clusters.py"
    path.write_text("from theseus.launch.cluster import Cluster\n"
                    f"CLUSTERS = [Cluster('here', kind='local', work={str(tmp_path / 'runs')!r}),\n"
                    "            Cluster('hpc', kind='slurm')]\n")
    return str(path)


def _error(capsys, *args: str) -> str:
    """Runs ``theseus ARGS`` in this process; asserts one ``error:`` line and exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(autouse=True)
def _launch_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("THESEUS_LAUNCH_DIR", str(tmp_path / "launch"))


def test_submit_checks_the_config_and_the_hardware_first(capsys):
    line = _error(capsys, "submit", "r", "gpt:small", "--cluster", "hpc")
    assert "no hardware requested" in line
    line = _error(capsys, "submit", "r", "gpt:small", "--cluster", "hpc", "--chip", "h100",
                  "model.num_layer=2")
    assert "num_layers" in line
    line = _error(capsys, "submit", "r", "gpt:small", "--cluster", "hpc", "-n", "8")
    assert line == "error: -n/--n-chips needs --chip, e.g. --chip h100 -n 8"


def test_an_unknown_cluster_and_a_missing_clusters_file(tmp_path, capsys):
    clusters = _clusters(tmp_path)
    line = _error(capsys, "submit", "r", "gpt:tiny", "--cluster", "hcp", "--chip", "h100",
                  "--clusters", clusters)
    assert line == f"error: unknown cluster 'hcp' (did you mean 'hpc'?); {clusters} defines: here, hpc"
    missing = tmp_path / "none.py"
    line = _error(capsys, "submit", "r", "gpt:tiny", "--cluster", "hpc", "--chip", "h100",
                  "--clusters", str(missing))
    assert line == (f"error: no clusters file at {missing}; copy configs/clusters.py there and "
                    "edit it, or pass --clusters FILE")
    assert not (tmp_path / "launch").exists()


def test_a_bad_sweep_is_one_error_line(tmp_path, capsys):
    line = _error(capsys, "submit", "r", "gpt:tiny", "--cluster", "here", "--chip", "cpu",
                  "--clusters", _clusters(tmp_path), "--sweep", "model.num_layers")
    assert line.startswith("error: --sweep='model.num_layers' is not of the form path=v1,v2")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_sweep_submitted_to_a_local_cluster_runs_through_xmanager(tmp_path):
    """The console script, as a user runs it: one work unit per point, each a launch.py
    subprocess of xmanager's local executor in WORK/NAME/POINT, recorded in its database."""
    pytest.importorskip("xmanager")  # the optional `launch` group
    result = run_theseus("submit", "tiny-submit", "gpt:tiny", *TINY_OVERRIDES, "trainer.num_steps=2",
                         "trainer.eval_every=2", "trainer.checkpoint_every=2",
                         "--cluster", "here", "--chip", "cpu", "--clusters", _clusters(tmp_path),
                         "--sweep", "optimizer.learning_rate=1e-3,3e-3",
                         env={"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")})
    assert result.returncode == 0, result.stderr[-3000:]
    for value, rate in (("1e-3", 1e-3), ("3e-3", 3e-3)):
        workdir = tmp_path / "runs" / "tiny-submit" / f"learning_rate={value}"
        assert json.loads((workdir / "status.json").read_text())["state"] == "finished"
        assert f"optimizer.learning_rate = {rate}" in (workdir / "config.txt").read_text()
        assert f"learning_rate={value}: {workdir}: work unit" in result.stdout
    assert result.stdout.strip().endswith("(here) exit 0")
    db = sqlite3.connect(tmp_path / "launch" / "experiments.sqlite3")
    [(experiment_id, title)] = db.execute("select experiment_id, experiment_title from experiment")
    assert title == "tiny-submit"
    units = db.execute("select work_unit_id from work_unit where experiment_id = ?", (experiment_id,))
    assert sorted(u for (u,) in units) == [1, 2]
