"""The sbatch script: directives, environment and the requeue logic, checked by reading the
rendered script and by running ``bash -n`` on it; bad requests get one sentence each."""

from __future__ import annotations

import subprocess

import pytest

from theseus.config.errors import ConfigError
from theseus.launch import slurm
from theseus.launch.cluster import Cluster, JuiceFS
from theseus.launch.sbatch import JobSpec, batch_script, parse_time, task_script

GPU = Cluster("gpu", "slurm", login="login1", partitions=("a100", "h100"), account="lab",
              qos="high", gres_per_chip="gpu:h100", chips_per_node=8, uv_groups=("cuda12",),
              env={"NCCL_DEBUG": "WARN"},
              juicefs=JuiceFS("redis://meta:6379/1", mount="/mnt/jfs", password_env="PW"))


def _spec(**kwargs) -> JobSpec:
    base = {"name": "run1", "launch_args": ("--config=configs/gpt.py:small", "--fdl_set=a.b=1 2"),
                "job_dir": "/home/u/theseus/jobs/run1-x", "workdir": "/mnt/jfs/runs/run1", "nodes": 2,
                "gpus_per_node": 8, "tasks_per_node": 8, "time": "2-00:00:00"}
    return JobSpec(**{**base, **kwargs})


def _directives(script: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in script.splitlines()
            if line.startswith("#SBATCH ")]


def test_gpu_directives():
    assert _directives(batch_script(GPU, _spec())) == [
        "--job-name=run1", "--nodes=2", "--ntasks-per-node=8", "--time=48:00:00",
        "--signal=B:USR1@300", "--requeue", "--open-mode=append",
        "--output=/home/u/theseus/jobs/run1-x/slurm-%j.out",
        "--chdir=/home/u/theseus/jobs/run1-x", "--partition=a100", "--account=lab",
        "--qos=high", "--gres=gpu:h100:8"]


def test_cpu_directives_and_short_limits():
    cpu = Cluster("cpu", "slurm", signal_seconds=300)
    lines = _directives(batch_script(cpu, _spec(nodes=1, gpus_per_node=0, tasks_per_node=1,
                                                time=10, partition="debug", cpus_per_task=4)))
    assert "--time=0:10:00" in lines and "--signal=B:USR1@300" in lines
    assert "--partition=debug" in lines and "--cpus-per-task=4" in lines
    assert not any(line.startswith(("--gres", "--account", "--qos")) for line in lines)
    # A limit shorter than twice the warning: the signal comes half-way.
    short = _directives(batch_script(cpu, _spec(time="4:00", gpus_per_node=0)))
    assert "--signal=B:USR1@120" in short


def test_environment_and_run_lines():
    script = batch_script(GPU, _spec())
    assert ("uv sync --frozen --no-install-project --no-default-groups --group cuda12 "
            "--group launch") in script
    assert 'VENV="$HOME"/theseus/venvs/cuda12-launch' in script
    assert "export NCCL_DEBUG=WARN" in script and 'export THESEUS_DATA="$HOME"/theseus/cache' in script
    assert "'--fdl_set=a.b=1 2' --workdir=/mnt/jfs/runs/run1)" in script
    assert "srun --kill-on-bad-exit=0 --wait=120 --job-name=train" in script
    assert 'scontrol requeue "$SLURM_JOB_ID"' in script and "unset META_PASSWORD" in script
    # only USR1 (or the run's own 75 without a TERM) requeues: a scancel'd job stays cancelled
    assert ('if [ "$SIGNALLED" != TERM ] && { [ "$RC" = 75 ] || { [ "$SIGNALLED" = USR1 ] && '
            '[ "$RC" != 0 ]; }; }; then') in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0
    task = task_script(GPU, _spec())
    assert 'exec "$PY" launch.py "$@"' in task
    assert subprocess.run(["bash", "-n"], input=task, text=True, check=False).returncode == 0


def test_existing_venv_skips_uv():
    cluster = Cluster("c", "slurm", venv="/opt/venv")
    script = batch_script(cluster, _spec(gpus_per_node=0))
    assert "VENV=/opt/venv" in script and "uv sync" not in script and "juicefs" not in script


@pytest.mark.parametrize("value, seconds", [
    (90, 5400), ("90", 5400), ("10:30", 630), ("1:00:00", 3600), ("2-00:00:00", 172800),
    ("1-12", 129600), ("1-00:30", 88200)])
def test_parse_time(value, seconds):
    assert parse_time(value) == seconds


@pytest.mark.parametrize("value", ["", "0", "abc", "1h", -5])
def test_bad_time(value):
    with pytest.raises(ConfigError, match="is not a SLURM time limit; use minutes"):
        parse_time(value)


@pytest.mark.parametrize("cluster, kwargs, message", [
    (Cluster("v", "vertex"), {}, "cluster v is kind 'vertex', not slurm"),
    (GPU, {"job_name": "a b"}, "job name 'a b' must be letters"),
    (GPU, {"nodes": 0}, "nodes=0 must be at least 1"),
    (GPU, {"gpus": 9}, "gpus=9 per node must be between 0 and cluster gpu's 8 chips"),
    (Cluster("c", "slurm"), {"gpus": 2}, "cluster c has no gres_per_chip"),
    (GPU, {"time": "1h"}, "time='1h' is not a SLURM time limit"),
    (GPU, {"config_args": ["--workdir=/x"]}, "pass the run directory as workdir=..."),
    (GPU, {}, r"the JuiceFS password variable \$PW is not set; export it before submitting"),
])
def test_bad_submissions(cluster, kwargs, message, monkeypatch):
    """Each mistake is refused before anything is shipped or submitted."""
    monkeypatch.delenv("PW", raising=False)
    args = {"job_name": "ok", "config_args": ["--config=configs/gpt.py:tiny"], **kwargs}
    with pytest.raises(ConfigError, match=message):
        slurm.submit(cluster, args.pop("job_name"), args.pop("config_args"), **args)


def test_public_password_file_is_refused_before_anything_is_shipped(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    secret.chmod(0o640)
    cluster = Cluster("c", "slurm", root=str(tmp_path / "root"),
                      juicefs=JuiceFS("redis://h:1/1", password_file=str(secret)))
    with pytest.raises(ConfigError, match=f"{secret} has mode 0640; make it private"):
        slurm.submit(cluster, "ok", ["--config=configs/gpt.py:tiny"])
    assert not (tmp_path / "root").exists()
