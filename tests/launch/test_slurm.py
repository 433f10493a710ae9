"""The SLURM backend against a real single-node SLURM with a JuiceFS mount (see conftest).

Every job goes through ``theseus.launch.slurm.submit``, the function ``theseus submit`` and
``--xm=slurm:CLUSTER`` call.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
from typing import Self

import fiddle as fdl
import pytest

from configs.gpt import tiny
from tests.cli.conftest import run_theseus
from tests.conftest import TINY_OVERRIDES
from tests.launch.conftest import FINAL_STATES, train_losses, wait_for_job
from tests.launch.fixtures_sshd import ALIAS, sshd  # noqa: F401 (fixture)
from theseus.launch import records
from theseus.launch import slurm as slurm_backend
from theseus.launch.cluster import Cluster

STEPS = 300  # long enough that a signal sent after the first metrics lands mid-run
# final_fraction=1: the learning rate does not depend on num_steps, so a longer run's first
# STEPS losses are the reference's (the time-limit test relies on it).
CONFIG = ["--config=configs/gpt.py:tiny", *[f"--fdl_set={o}" for o in TINY_OVERRIDES],
          f"--fdl_set=trainer.num_steps={STEPS}", f"--fdl_set=trainer.eval_every={STEPS // 2}",
          f"--fdl_set=trainer.checkpoint_every={STEPS // 2}", "--fdl_set=trainer.log_every=10",
          "--fdl_set=optimizer.schedule.final_fraction=1.0"]
ENDLESS = 10**7  # steps no test waits for: the time limit stops the run long before


def _log(job: slurm_backend.SubmittedJob) -> str:
    path = pathlib.Path(job.log_path)
    return path.read_text(errors="replace") if path.exists() else "(no log yet)"


@dataclasses.dataclass(frozen=True)
class Reference:
    """The uninterrupted run the other jobs are compared with."""

    job: slurm_backend.SubmittedJob
    info: dict[str, str]
    ps: str
    left_mounted: bool
    losses: dict[int, float]


class PsWatcher:
    """Collects every process's argv (``ps -eo args``) while a job runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
            self.seen.append(out)
            self._stop.wait(0.2)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def time_limited(slurm, theseus_home, tmp_path_factory):
    """A run far longer than its 1-minute time limit, submitted first so that its wait for
    SLURM's --signal overlaps the other tests. It uses plain directories, not the JuiceFS
    volume: jobs sharing a node share its mount, which the first to end unmounts."""
    base = tmp_path_factory.mktemp("plain")
    cluster = Cluster("plainslurm", kind="slurm", login="local", partitions=(slurm.partition,),
                      root=str(base / "root"), work=str(base / "runs"),
                      cache=os.environ["THESEUS_DATA"], venv=sys.prefix,
                      env={"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}, signal_seconds=30)
    endless = [*CONFIG, f"--fdl_set=trainer.num_steps={ENDLESS}",
               f"--fdl_set=trainer.eval_every={ENDLESS}",
               f"--fdl_set=trainer.checkpoint_every={ENDLESS}"]
    fdl.build(tiny().data).prepare()  # its attempts need not tokenize in their 30 s
    job = slurm_backend.submit(cluster, "tiny-timelimit", endless, time=1)
    yield job
    subprocess.run(["scancel", job.job_id], check=False)


@pytest.fixture(scope="module")
def reference(time_limited, jfs_cluster, juicefs_volume, theseus_home):
    """One uninterrupted tiny run: the job, its final state, every process's argv while it
    ran, whether it left the volume mounted, and its losses (read from the volume)."""
    with PsWatcher() as ps:
        job = slurm_backend.submit(jfs_cluster, "tiny-jfs", CONFIG, time="10:00")
        info = wait_for_job(job.job_id)
    left_mounted = _is_mounted(jfs_cluster.juicefs.mount)
    losses = {}
    if info["JobState"] == "COMPLETED" and not left_mounted:
        with Mounted(jfs_cluster, juicefs_volume):
            losses = train_losses(pathlib.Path(job.workdir))
    return Reference(job, info, "\n".join(ps.seen), left_mounted, losses)


class Mounted:
    """The test volume mounted at the cluster's mount point (to read what jobs wrote)."""

    def __init__(self, cluster, volume) -> None:
        self.mount, self.volume = pathlib.Path(cluster.juicefs.mount), volume

    def __enter__(self) -> pathlib.Path:
        done = subprocess.run(
            [self.volume.binary, "mount", "-d", "--no-usage-report", "--no-syslog",
             "--cache-dir", str(self.mount.parent / "check-cache"), self.volume.meta_url,
             str(self.mount)], env={**self.volume.env, "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return self.mount

    def __exit__(self, *exc: object) -> None:
        subprocess.run([self.volume.binary, "umount", str(self.mount)], check=False)


def _is_mounted(path: str) -> bool:
    return subprocess.run(["mountpoint", "-q", path], check=False).returncode == 0


@pytest.mark.slow
def test_tiny_job_runs_with_data_and_checkpoints_on_juicefs(reference, jfs_cluster, juicefs_volume):
    """(a) a tiny run completes with its data cache and checkpoints on the JuiceFS mount,
    which the job mounted at its start and unmounted at exit."""
    job, info = reference.job, reference.info
    assert info["JobState"] == "COMPLETED", (info, _log(job))
    assert "juicefs mount" in reference.ps
    assert not reference.left_mounted, "the job left the volume mounted"
    with Mounted(jfs_cluster, juicefs_volume) as mount:
        workdir = pathlib.Path(job.workdir)
        assert workdir.is_relative_to(mount)
        assert json.loads((workdir / "summary.json").read_text())
        assert max(reference.losses) == STEPS
        assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                      if p.name.isdigit()) == [STEPS // 2, STEPS]
        assert any((mount / "data").rglob("meta.json")), "the data cache is not on the mount"


@pytest.mark.slow
def test_no_secret_in_argv_logs_scripts_or_configs(reference, jfs_cluster, juicefs_volume):
    """(d) the metadata password shows nowhere: argv while the job ran, its log, the scripts,
    the submission record, the saved config."""
    job, password = reference.job, juicefs_volume.password
    job_dir = pathlib.Path(job.job_dir)
    texts = [("ps", reference.ps), ("log", _log(job)),
             ("script", (job_dir / "job.sbatch").read_text()),
             ("script", (job_dir / "task.sh").read_text())]
    texts += [("record", p.read_text()) for p in records.jobs_dir().glob("*.json")]
    texts += [("juicefs log", p.read_text(errors="replace")) for p in job_dir.glob("juicefs-*.log")]
    assert len(texts) >= 6  # ps, log, 2 scripts, >= 1 record, the juicefs log
    with Mounted(jfs_cluster, juicefs_volume):
        workdir = pathlib.Path(job.workdir)
        texts += [("config", (workdir / n).read_text()) for n in ("config.json", "config.txt")]
        texts += [("run log", p.read_text(errors="replace")) for p in workdir.rglob("*.txt")]
    for where, text in texts:
        assert password not in text, f"the JuiceFS password appears in the {where}"


@pytest.mark.slow
def test_signalled_job_requeues_and_resumes_to_the_same_losses(reference, jfs_cluster,
                                                               juicefs_volume, tmp_path):
    """(b) SIGUSR1 to the batch shell (what --signal sends before the time limit): the run
    saves, exits 75, the script requeues the job, and it resumes to the same losses. This
    job reads the JuiceFS password from a 0600 file on the node instead of the environment."""
    secret = tmp_path / "jfs-password"
    secret.touch(mode=0o600)
    secret.write_text(juicefs_volume.password + "\n")
    jfs = dataclasses.replace(jfs_cluster.juicefs, password_env=None, password_file=str(secret))
    cluster = dataclasses.replace(jfs_cluster, juicefs=jfs)
    job = slurm_backend.submit(cluster, "tiny-requeue", CONFIG, time="10:00")
    metrics = pathlib.Path(job.workdir) / "metrics.jsonl"
    wait_for_job(job.job_id, poll=0.05, until=lambda info: info.get("JobState") in FINAL_STATES
                 or (metrics.exists() and len(metrics.read_text().splitlines()) >= 10))
    subprocess.run(["scancel", "--signal=USR1", "--batch", job.job_id], check=True)
    info = wait_for_job(job.job_id, until=lambda i: i.get("JobState") in FINAL_STATES
                        and i.get("JobState") != "REQUEUED")
    log = _log(job)
    assert info["JobState"] == "COMPLETED", (info, log)
    assert "(exit status 75) after a signal: requeueing job" in log, log
    assert info["Restarts"] == "1", log
    with Mounted(jfs_cluster, juicefs_volume):
        resumed = train_losses(pathlib.Path(job.workdir))
        status = json.loads((pathlib.Path(job.workdir) / "status.json").read_text())
    assert "from the checkpoint of step" in log
    script = (pathlib.Path(job.job_dir) / "job.sbatch").read_text()
    assert juicefs_volume.password not in log + script and str(secret) in script
    assert resumed == reference.losses and max(resumed) == STEPS and status["state"] == "finished"


_SAVED = re.compile(r"stopped by SIGUSR1 after step (\d+); checkpoint \1 saved")


def _resumed_from(log: str) -> int | None:
    """The first step a SIGUSR1 save left that a later attempt resumed from, once one has."""
    for saved in _SAVED.finditer(log):
        step = saved[1]
        if f"from the checkpoint of step {step}\n" in log[saved.end():]:
            return int(step)
    return None


def _losses_so_far(workdir: pathlib.Path) -> dict[int, float]:
    """``train_losses`` of a run still writing (a half-written last line is left out)."""
    try:
        return train_losses(workdir)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.mark.slow
def test_a_job_at_its_time_limit_requeues_resumes_and_scancel_stops_it(time_limited, reference):
    """(b) the time limit: with --time=1 and --signal=B:USR1@30, SLURM itself signals the
    batch script ahead of the limit (the test sends nothing); the run saves at that step,
    exits 75, the script requeues the job and it resumes from that checkpoint, again each
    time the limit comes near. Its first STEPS losses are the reference's; that a resume
    continues with the same losses is the signal test above (the same signal, sent by hand).
    The run never ends by itself: ``scancel`` ends it, and the job is not requeued then."""
    job, workdir = time_limited, pathlib.Path(time_limited.workdir)

    def trained_on(info: dict[str, str]) -> bool:
        step = _resumed_from(_log(job))
        return info.get("JobState") in FINAL_STATES or (
            step is not None and max(_losses_so_far(workdir), default=0) > step)

    info = wait_for_job(job.job_id, timeout=600, until=trained_on)  # 2 cores, many tests
    running_log = _log(job)
    assert info["JobState"] not in FINAL_STATES and int(info["Restarts"]) >= 1, (info, running_log)
    assert "theseus: USR1 received: passing it to the run" in running_log
    assert "(exit status 75) after a signal: requeueing job" in running_log
    assert "DUE TO TIME LIMIT" not in running_log
    step = _resumed_from(running_log)
    losses = _losses_so_far(workdir)
    assert 0 < step < max(losses)
    assert {s: v for s, v in losses.items() if s <= STEPS} == reference.losses
    subprocess.run(["scancel", job.job_id], check=True)
    info = wait_for_job(job.job_id, timeout=120)
    log = _log(job)
    assert info["JobState"] == "CANCELLED", (info, log)
    # No start after the cancel: each start is one "(restart N)" line. A requeue the time
    # limit caused just before scancel may have had no time to start (Restarts counts it).
    assert log.count("(restart ") in (int(info["Restarts"]), int(info["Restarts"]) + 1), log
    cancelled = list(re.finditer(r"CANCELLED AT \S+ \*\*\*", log))  # not "DUE TO JOB REQUEUE"
    if cancelled:  # it was running when cancelled (not waiting to restart): no requeue
        assert "requeueing job" not in log[cancelled[-1].end():], log


@pytest.mark.slow
def test_logs_and_status_read_scontrol_and_the_log_file(reference, tmp_path):
    """``theseus logs RUN`` prints the job's state (scontrol) and its log; ``theseus status``
    lists the submitted jobs."""
    job = reference.job
    logs = run_theseus("logs", "tiny-jfs", "--tail", "3")
    assert logs.returncode == 0, logs.stderr
    assert logs.stderr.startswith(f"job {job.job_id} on testslurm (tiny-jfs): COMPLETED")
    assert logs.stdout.splitlines()[-1] == "theseus: the run exited with status 0"
    by_id = run_theseus("logs", job.job_id)
    # Progress bars of several writers share the log, so a multi-byte character may be cut:
    # `theseus logs` shows such bytes as U+FFFD, and so does this reading; the captured
    # stdout has universal newlines (tqdm's carriage returns become newlines).
    text = pathlib.Path(job.log_path).read_bytes().decode(errors="replace")
    assert by_id.stdout == text.replace("\r\n", "\n").replace("\r", "\n")
    status = run_theseus("status", str(tmp_path))
    assert status.returncode == 0, status.stderr
    table = status.stdout.split("submitted jobs:\n")[1].splitlines()
    assert table[0].split() == ["RUN", "CLUSTER", "JOB", "STATE", "RESTARTS", "RUN", "TIME"]
    [row] = [line.split() for line in table[1:] if line.startswith("tiny-jfs ")]
    assert row[:5] == ["tiny-jfs", "testslurm", job.job_id, "COMPLETED", "0"]


@pytest.mark.slow
def test_two_tasks_form_one_distributed_run(time_limited, reference, jfs_cluster, juicefs_volume):
    """(c) a 2-task job: srun starts 2 processes that join one JAX run (gloo connects rank 0
    and rank 1 to each other) and train it together to the end, on the JuiceFS mount (whose
    data cache the reference run filled)."""
    # The endless time-limit job (stopped by its test, unless that was deselected) holds one
    # of the node's 2 CPUs; this job needs both.
    subprocess.run(["scancel", time_limited.job_id], check=False)
    tiny_args = ["--config=configs/gpt.py:tiny", *[f"--fdl_set={o}" for o in TINY_OVERRIDES]]
    job = slurm_backend.submit(jfs_cluster, "two-tasks", tiny_args, tasks_per_node=2, time="10:00")
    assert "--ntasks-per-node=2" in (pathlib.Path(job.job_dir) / "job.sbatch").read_text()
    info = wait_for_job(job.job_id)
    log = _log(job)
    assert info["JobState"] == "COMPLETED", (info, log)
    assert ": 2 tasks" in log and "srun: Warning" not in log, log
    for rank in (0, 1):
        assert f"[Gloo] Rank {rank} is connected to 1 peer ranks" in log, log
    assert log.count(f"run directory: {job.workdir} ") == 2, log
    with Mounted(jfs_cluster, juicefs_volume):
        assert sorted(train_losses(pathlib.Path(job.workdir))) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
@pytest.mark.usefixtures("sshd", "theseus_home")
def test_submission_over_ssh_sends_the_password_on_stdin(slurm, jfs_cluster, juicefs_volume):
    """Through an ssh login node (sshd on loopback): the snapshot, scripts and the JuiceFS
    password travel on ssh's stdin, the job mounts the volume with it, and ``theseus logs``
    reads the state and log over ssh. The run itself stops at once (an unknown preset)."""
    cluster = dataclasses.replace(jfs_cluster, name="sshslurm", login=ALIAS,
                                  login_setup=f"export SLURM_CONF={slurm.conf}")
    with PsWatcher() as ps:
        job = slurm_backend.submit(cluster, "over-ssh", ["--config=configs/gpt.py:no_such"],
                                   time="5:00")
        info = wait_for_job(job.job_id)
    log = _log(job)
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "2:0", (info, log)
    assert "theseus: JuiceFS mounted at" in log and "error: " in log, log
    script = (pathlib.Path(job.job_dir) / "job.sbatch").read_text()
    for where, text in (("ps", "\n".join(ps.seen)), ("log", log), ("script", script)):
        assert juicefs_volume.password not in text, f"the JuiceFS password appears in the {where}"
    logs = run_theseus("logs", "over-ssh", env={"SLURM_CONF": "/nonexistent"})
    assert logs.stderr.startswith(f"job {job.job_id} on sshslurm (over-ssh): FAILED"), logs.stderr
    assert logs.stdout == log
