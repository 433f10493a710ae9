"""`theseus submit`: the same launch path as ``launch.py --xm``; checks first, then submits."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import one_error_line, run_theseus
from tests.conftest import TINY_OVERRIDES


def _clusters(tmp_path) -> str:
    path = tmp_path / "clusters.py"
    path.write_text("from theseus.launch.cluster import Cluster\n"
                    f"CLUSTERS = [Cluster('here', kind='local', work={str(tmp_path / 'runs')!r}),\n"
                    "            Cluster('hpc', kind='slurm')]\n")
    return str(path)


def test_submit_checks_the_config_and_the_hardware_first():
    line = one_error_line(run_theseus("submit", "r", "gpt:small", "--cluster", "hpc"))
    assert "no hardware requested" in line
    line = one_error_line(run_theseus("submit", "r", "gpt:small", "--cluster", "hpc", "--chip", "h100",
                                      "model.num_layer=2"))
    assert "num_layers" in line


def test_an_unknown_cluster_is_one_error_line(tmp_path):
    clusters = _clusters(tmp_path)
    line = one_error_line(run_theseus("submit", "r", "gpt:tiny", "--cluster", "hcp", "--chip", "h100",
                                      "--clusters", clusters,
                                      env={"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")}))
    assert line == f"error: unknown cluster 'hcp' (did you mean 'hpc'?); {clusters} defines: here, hpc"


def test_a_bad_sweep_is_one_error_line(tmp_path):
    line = one_error_line(run_theseus("submit", "r", "gpt:tiny", "--cluster", "here", "--chip", "cpu",
                                      "--clusters", _clusters(tmp_path), "--sweep", "model.num_layers",
                                      env={"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")}))
    assert line.startswith("error: --sweep='model.num_layers' is not of the form path=v1,v2")


@pytest.mark.slow
def test_submit_to_a_local_cluster_runs_through_xmanager(tmp_path):
    result = run_theseus("submit", "tiny-submit", "gpt:tiny", *TINY_OVERRIDES, "trainer.num_steps=2",
                         "trainer.eval_every=2", "trainer.checkpoint_every=2",
                         "--cluster", "here", "--chip", "cpu", "--clusters", _clusters(tmp_path),
                         env={"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")})
    assert result.returncode == 0, result.stderr[-3000:]
    workdir = tmp_path / "runs" / "tiny-submit"
    assert json.loads((workdir / "status.json").read_text())["state"] == "finished"
    assert result.stdout.strip().endswith("(here) exit 0")
