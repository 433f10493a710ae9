"""SSH hosts against a real sshd on loopback: a tiny run submitted with ``launch.py
--xm=ssh:CLUSTER`` ships the code snapshot, starts under ``setsid nohup``, outlives the ssh
session and finishes in its workdir on the "host"."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import pytest

from configs.gpt import tiny
from tests.conftest import ROOT, run_launch, tiny_args
from tests.launch.fixtures_sshd import ALIAS, sshd  # noqa: F401  (the fixture)
from theseus.config.errors import ConfigError
from theseus.launch import ssh
from theseus.launch.cluster import Cluster
from theseus.launch.xm_launch import launch

VENV = pathlib.Path(sys.executable).parents[1]


def _clusters_file(tmp_path: pathlib.Path, host_root: pathlib.Path) -> pathlib.Path:
    """A clusters file with one SSH host: the loopback sshd, this checkout's venv."""
    path = tmp_path / "clusters.py"
    path.write_text(
        "from theseus.launch.cluster import Cluster\n"
        f"CLUSTERS = [Cluster('loop', kind='ssh', login={ALIAS!r}, root={str(host_root)!r},\n"
        f"                    work={str(host_root / 'runs')!r}, cache={os.environ['THESEUS_DATA']!r},\n"
        f"                    venv={str(VENV)!r}, env={{'JAX_PLATFORMS': 'cpu'}})]\n")
    return path


def _wait_finished(record: dict, limit: float = 600) -> dict:
    """Polls the host until the run's process is gone; returns its state."""
    deadline = time.time() + limit
    info = ssh.job_info(record)
    while info["JobState"] == "RUNNING" and time.time() < deadline:
        time.sleep(1)
        info = ssh.job_info(record)
    return info


@pytest.mark.slow
def test_a_tiny_run_on_an_ssh_host_runs_to_completion(sshd, tmp_path):  # noqa: F811
    host_root = tmp_path / "host"
    env = {"THESEUS_SSH_CONFIG": str(sshd.config), "THESEUS_HOME": str(tmp_path / "home"),
           "THESEUS_LAUNCH_DIR": str(tmp_path / "launch")}
    args = [a for a in tiny_args(tmp_path / "unused") if not a.startswith("--workdir")]
    result = run_launch(*args, "--workdir=tiny-ssh", "--xm=ssh:loop",
                        f"--clusters={_clusters_file(tmp_path, host_root)}", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = list((tmp_path / "home" / "jobs").glob("loop-*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    workdir = host_root / "runs" / "tiny-ssh"
    assert record["host"] == ALIAS and record["workdir"] == str(workdir)
    assert record["log_path"] == str(workdir / "launch.log")
    assert f"pid {record['pid']}" in result.stdout
    info = _wait_finished(record)
    log = ssh.read_file(ssh.record_cluster(record), record["log_path"])
    assert info == {"JobId": f"{ALIAS}-{record['pid']}", "JobState": "FINISHED"}, log
    assert "final validation loss" in log
    assert (workdir / "summary.json").exists()
    code = pathlib.Path(record["job_dir"])
    assert (code / "launch.py").exists() and (code / ".theseus-snapshot.json").exists()
    assert code != ROOT and not (ROOT / "runs" / "tiny-ssh").exists()


def test_a_failing_host_command_is_one_sentence(sshd, tmp_path):  # noqa: F811
    cluster = Cluster("loop", kind="ssh", login=ALIAS, root=str(tmp_path))
    with pytest.raises(ConfigError) as info:
        ssh.shell(cluster, "echo broken >&2; exit 3")
    assert str(info.value) == f"a command on {ALIAS} (cluster loop) failed with status 3: broken"


def test_an_unknown_host_is_one_sentence(tmp_path, monkeypatch):
    pytest.importorskip("xmanager")  # the optional `launch` group
    monkeypatch.setenv("THESEUS_LAUNCH_DIR", str(tmp_path / "launch"))
    clusters = tmp_path / "clusters.py"
    clusters.write_text("from theseus.launch.cluster import Cluster\n"
                        "CLUSTERS = [Cluster('loop', kind='ssh', login='x')]\n")
    with pytest.raises(ConfigError) as info:
        launch(tiny(), target="ssh:lop", workdir=tmp_path / "w", clusters=str(clusters))
    assert str(info.value) == f"unknown cluster 'lop' (did you mean 'loop'?); {clusters} defines: loop"
    assert not (tmp_path / "w").exists()


def test_an_ssh_host_with_a_juicefs_volume_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("THESEUS_LAUNCH_DIR", str(tmp_path / "launch"))
    clusters = tmp_path / "clusters.py"
    clusters.write_text("from theseus.launch.cluster import Cluster, JuiceFS\n"
                        "CLUSTERS = [Cluster('box', kind='ssh', login='box',\n"
                        "                    juicefs=JuiceFS('redis://meta:6379/1'))]\n")
    with pytest.raises(ConfigError) as info:
        launch(tiny(), target="ssh:box", workdir="w", clusters=str(clusters))
    assert str(info.value) == (
        "cluster box (ssh) has a JuiceFS volume, which theseus mounts only in SLURM jobs; "
        "mount it on the host yourself (or use /gcs/ on Vertex AI) and remove juicefs= from its "
        "Cluster(...)")
    assert not (tmp_path / "launch").exists()
