"""The SLURM backend against a real single-node SLURM with a JuiceFS mount (see conftest).

Every job goes through ``theseus.launch.slurm.submit``, the function ``theseus submit`` and
``--xm=slurm:CLUSTER`` call.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import subprocess
import threading
from typing import Self

import pytest

from tests.cli.conftest import run_theseus
from tests.conftest import TINY_OVERRIDES
from tests.launch.conftest import FINAL_STATES, train_losses, wait_for_job
from tests.launch.fixtures_sshd import ALIAS, sshd  # noqa: F401 (fixture)
from theseus.launch import records
from theseus.launch import slurm as slurm_backend

STEPS = 300  # long enough that a signal sent after the first metrics lands mid-run
CONFIG = ["--config=configs/gpt.py:tiny", *[f"--fdl_set={o}" for o in TINY_OVERRIDES],
          f"--fdl_set=trainer.num_steps={STEPS}", f"--fdl_set=trainer.eval_every={STEPS // 2}",
          f"--fdl_set=trainer.checkpoint_every={STEPS // 2}", "--fdl_set=trainer.log_every=10"]


def _log(job: slurm_backend.SubmittedJob) -> str:
    path = pathlib.Path(job.log_path)
    return path.read_text(errors="replace") if path.exists() else "(no log yet)"


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
def reference(jfs_cluster, juicefs_volume, theseus_home):
    """One uninterrupted tiny run, with every process's argv recorded while it ran."""
    with PsWatcher() as ps:
        job = slurm_backend.submit(jfs_cluster, "tiny-jfs", CONFIG, time="10:00")
        info = wait_for_job(job.job_id)
    return job, info, "\n".join(ps.seen)


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
    job, info, running_ps = reference
    assert info["JobState"] == "COMPLETED", (info, _log(job))
    assert "juicefs mount" in running_ps
    assert not _is_mounted(jfs_cluster.juicefs.mount), "the job left the volume mounted"
    with Mounted(jfs_cluster, juicefs_volume) as mount:
        workdir = pathlib.Path(job.workdir)
        assert workdir.is_relative_to(mount)
        assert json.loads((workdir / "summary.json").read_text())
        assert max(train_losses(workdir)) == STEPS
        assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                      if p.name.isdigit()) == [STEPS // 2, STEPS]
        assert any((mount / "data").rglob("meta.json")), "the data cache is not on the mount"


@pytest.mark.slow
def test_no_secret_in_argv_logs_scripts_or_configs(reference, jfs_cluster, juicefs_volume):
    """(d) the metadata password shows nowhere: argv while the job ran, its log, the scripts,
    the submission record, the saved config."""
    job, _, running_ps = reference
    password = juicefs_volume.password
    job_dir = pathlib.Path(job.job_dir)
    texts = [("ps", running_ps), ("log", _log(job)),
             ("script", (job_dir / "job.sbatch").read_text()),
             ("script", (job_dir / "task.sh").read_text())]
    texts += [("record", p.read_text()) for p in records.jobs_dir().glob("*.json")]
    texts += [("juicefs log", p.read_text()) for p in job_dir.glob("juicefs-*.log")]
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
    ref_job = reference[0]
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
        uninterrupted = train_losses(pathlib.Path(ref_job.workdir))
        status = json.loads((pathlib.Path(job.workdir) / "status.json").read_text())
    assert "from the checkpoint of step" in log
    script = (pathlib.Path(job.job_dir) / "job.sbatch").read_text()
    assert juicefs_volume.password not in log + script and str(secret) in script
    assert resumed == uninterrupted and max(resumed) == STEPS and status["state"] == "finished"


@pytest.mark.slow
def test_logs_and_status_read_scontrol_and_the_log_file(reference, tmp_path):
    """``theseus logs RUN`` prints the job's state (scontrol) and its log; ``theseus status``
    lists the submitted jobs."""
    job = reference[0]
    logs = run_theseus("logs", "tiny-jfs", "--tail", "3")
    assert logs.returncode == 0, logs.stderr
    assert logs.stderr.startswith(f"job {job.job_id} on testslurm (tiny-jfs): COMPLETED")
    assert logs.stdout.splitlines()[-1] == "theseus: the run exited with status 0"
    by_id = run_theseus("logs", job.job_id)
    assert by_id.stdout == pathlib.Path(job.log_path).read_text()
    status = run_theseus("status", str(tmp_path))
    assert status.returncode == 0, status.stderr
    table = status.stdout.split("submitted jobs:\n")[1].splitlines()
    assert table[0].split() == ["RUN", "CLUSTER", "JOB", "STATE", "RESTARTS", "RUN", "TIME"]
    assert ["tiny-jfs", "testslurm", job.job_id, "COMPLETED", "0"] == table[1].split()[:5]


@pytest.mark.slow
def test_two_tasks_form_one_distributed_run(reference, jfs_cluster, juicefs_volume):
    """(c) a 2-task job: srun starts 2 processes that join one JAX run (gloo connects rank 0
    and rank 1 to each other) and train it together to the end, on the JuiceFS mount (whose
    data cache the reference run filled)."""
    tiny = ["--config=configs/gpt.py:tiny", *[f"--fdl_set={o}" for o in TINY_OVERRIDES]]
    job = slurm_backend.submit(jfs_cluster, "two-tasks", tiny, tasks_per_node=2, time="10:00")
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
