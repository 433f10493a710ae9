"""Launch tests: a real SLURM, redis + JuiceFS (session fixtures), and a test cluster on them."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from tests.launch.fixtures_juicefs import Volume, juicefs_volume  # noqa: F401 (fixture)
from tests.launch.fixtures_process import env_set
from tests.launch.fixtures_slurm import Slurm, slurm  # noqa: F401 (fixture)
from theseus.launch.cluster import Cluster, JuiceFS

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE", "PREEMPTED", "GONE")


@pytest.fixture(scope="module")
def theseus_home(tmp_path_factory) -> pathlib.Path:
    """Submission records go to a temp dir while a test module runs, not ~/.theseus."""
    home = tmp_path_factory.mktemp("theseus-home")
    with env_set("THESEUS_HOME", str(home)):
        yield home


@pytest.fixture(scope="session")
def jfs_cluster(slurm: Slurm, juicefs_volume: Volume,  # noqa: F811 (fixtures)
                tmp_path_factory) -> Cluster:
    """A SLURM cluster on this machine whose runs and data cache live on the JuiceFS mount.

    It reuses this venv (``venv=``) instead of ``uv sync`` so the tests stay offline and fast;
    the password reaches jobs from ``$TEST_JFS_PASSWORD``, as a user's would.
    """
    base = tmp_path_factory.mktemp("cluster")
    mount = base / "jfs"
    os.environ["TEST_JFS_PASSWORD"] = juicefs_volume.password
    return Cluster(
        "testslurm", kind="slurm", login="local", partitions=(slurm.partition,),
        root=str(base / "root"), work=str(mount / "runs"), cache=str(mount / "data"),
        venv=sys.prefix, env={"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}, signal_seconds=30,
        juicefs=JuiceFS(juicefs_volume.meta_url, mount=str(mount), cache_dir=str(base / "cache"),
                        cache_size_mib=256, password_env="TEST_JFS_PASSWORD"))


def job_state(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict."""
    from theseus.launch.slurm import job_info

    return job_info(Cluster("probe", "slurm"), job_id)


def wait_for_job(job_id: str, timeout: float = 300, until=None,
                 poll: float = 0.5) -> dict[str, str]:
    """Polls the job every ``poll`` seconds until it ends (or ``until(info)`` holds) and
    returns its last state."""
    deadline = time.monotonic() + timeout
    info: dict[str, str] = {}
    while time.monotonic() < deadline:
        info = job_state(job_id)
        if (until(info) if until else info.get("JobState") in FINAL_STATES):
            return info
        time.sleep(poll)
    subprocess.run(["scancel", job_id], check=False)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {info}")


def train_losses(workdir: pathlib.Path) -> dict[int, float]:
    """``train/loss`` by step from a run's metrics.jsonl."""
    losses = {}
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "train/loss" in row:
            losses[row["step"]] = row["train/loss"]
    return losses
