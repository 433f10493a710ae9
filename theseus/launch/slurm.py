"""The SLURM backend: ship a code snapshot, write the job scripts, ``sbatch --parsable``;
read a job's state from ``scontrol show job`` / ``squeue`` and its log file (never sacct,
which needs slurmdbd).

Submission goes through the login node: this machine when the cluster's ``login`` is
``local`` (where ``sbatch`` exists), else ``ssh LOGIN``. The snapshot and scripts travel on
ssh's stdin, and so does the JuiceFS password (``password_env``), so none of it shows in argv.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence

from theseus.config.errors import ConfigError
from theseus.launch import records, remote
from theseus.launch.cluster import Cluster, check_password_file
from theseus.launch.juicefs import PASSWORD_VAR
from theseus.launch.sbatch import JobSpec, batch_script, parse_time, task_script
from theseus.launch.snapshot import make_snapshot

REPO = pathlib.Path(__file__).resolve().parents[2]
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class SubmittedJob:
    """A submitted SLURM job: where it runs and where its output goes."""

    cluster: str
    job_id: str
    name: str
    job_dir: str
    workdir: str
    log_path: str

    def __str__(self) -> str:
        return f"submitted job {self.job_id} to {self.cluster}: {self.name} (log {self.log_path})"


def _check(cluster: Cluster, job_name: str, nodes: int, gpus: int, tasks: int) -> None:
    """One sentence for each bad request."""
    if cluster.kind != "slurm":
        raise ConfigError(f"cluster {cluster.name} is kind {cluster.kind!r}, not slurm")
    if not _RUN_NAME.match(job_name):
        raise ConfigError(f"job name {job_name!r} must be letters, digits, '.', '_' or '-'")
    if nodes < 1:
        raise ConfigError(f"nodes={nodes} must be at least 1")
    if gpus < 0 or (cluster.chips_per_node and gpus > cluster.chips_per_node):
        raise ConfigError(f"gpus={gpus} per node must be between 0 and cluster "
                          f"{cluster.name}'s {cluster.chips_per_node} chips per node")
    if gpus and not cluster.gres_per_chip:
        raise ConfigError(f"cluster {cluster.name} has no gres_per_chip, so it cannot give "
                          f"{gpus} GPUs per node; set gres_per_chip='gpu' in its Cluster(...)")
    if tasks < 1:
        raise ConfigError(f"tasks_per_node={tasks} must be at least 1")


def _secret_input(cluster: Cluster) -> tuple[dict[str, str], bytes]:
    """The JuiceFS password for sbatch's environment (local) or ssh's stdin (remote)."""
    jfs = cluster.juicefs
    if jfs is None:
        return {}, b""
    if jfs.password_file is not None and cluster.is_local:
        check_password_file(jfs.password_file)  # fail here, not on the node
    password = jfs.password()
    if password is None:
        return {}, b""
    if cluster.is_local:
        return {PASSWORD_VAR: password}, b""
    return {}, password.encode() + b"\n"


def _ship(cluster: Cluster, spec: JobSpec, repo: pathlib.Path) -> None:
    """Writes the snapshot and both scripts into the job directory on the cluster."""
    q = shlex.quote
    with tempfile.TemporaryDirectory(prefix="theseus-snapshot-") as tmp:
        snap = make_snapshot(repo, pathlib.Path(tmp) / "code.tar")
        remote.shell(cluster, f"mkdir -p {q(spec.job_dir)}/code && tar -xf - -C {q(spec.job_dir)}/code",
                     stdin=snap.path.read_bytes())
    for name, text in (("job.sbatch", batch_script(cluster, spec)),
                       ("task.sh", task_script(cluster, spec))):
        remote.shell(cluster, f"cat > {q(spec.job_dir)}/{name}", stdin=text.encode())


def _sbatch(cluster: Cluster, spec: JobSpec, env: dict[str, str], stdin: bytes) -> str:
    """``sbatch --parsable`` on the login node (the password, if any, in ``env`` here or on
    ssh's ``stdin``); the job id."""
    script = f"{shlex.quote(spec.job_dir)}/job.sbatch"
    if stdin:  # remote, with a password: read it from stdin into sbatch's environment
        command = f"IFS= read -r {PASSWORD_VAR} && export {PASSWORD_VAR} && sbatch --parsable {script}"
    else:
        command = f"sbatch --parsable {script}"
    out = remote.shell(cluster, command, stdin=stdin or None, env=env).stdout.strip()
    job_id = out.splitlines()[-1].split(";")[0] if out else ""
    if not job_id.isdigit():
        raise ConfigError(f"sbatch on cluster {cluster.name} printed {out!r} instead of a job id")
    return job_id


def submit(cluster: Cluster, job_name: str, config_args: Sequence[str], *,
           workdir: str | None = None, nodes: int = 1, gpus: int | None = None,
           tasks_per_node: int | None = None, time: str | int | None = None,
           env: Mapping[str, str] | None = None, partition: str | None = None,
           cpus_per_task: int | None = None,
           repo: str | pathlib.Path = REPO) -> SubmittedJob:
    """Submits ``launch.py *config_args`` as a SLURM job and returns it.

    ``config_args`` are launch.py's arguments (``--config=...``, ``--fdl_set=...``) without
    ``--workdir``: the run goes to ``workdir``, else ``{cluster.work}/{job_name}``. ``gpus``
    per node defaults to the cluster's ``chips_per_node``; one task runs per GPU (or
    ``tasks_per_node``, 1 on CPU nodes). ``time`` defaults to the cluster's ``time_limit``.
    ``env`` adds variables (never secrets).
    """
    gpus = cluster.chips_per_node if gpus is None else gpus
    time = cluster.time_limit if time is None else time
    tasks = tasks_per_node or max(gpus, 1)
    _check(cluster, job_name, nodes, gpus, tasks)
    parse_time(time)
    if any(a.startswith("--workdir") for a in config_args):
        raise ConfigError("pass the run directory as workdir=..., not --workdir in config_args")
    secret_env, secret_stdin = _secret_input(cluster)  # a missing password fails here
    home = remote.home(cluster)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    job_dir = remote.expand(f"{cluster.root.rstrip('/')}/jobs/{job_name}-{stamp}", home)
    workdir = remote.expand(workdir or f"{cluster.work.rstrip('/')}/{job_name}", home)
    spec = JobSpec(job_name, tuple(config_args), job_dir, workdir, nodes, gpus, tasks, time,
                   partition, cpus_per_task, tuple((env or {}).items()))
    _ship(cluster, spec, pathlib.Path(repo))
    job_id = _sbatch(cluster, spec, secret_env, secret_stdin)
    job = SubmittedJob(cluster.name, job_id, job_name, job_dir, workdir,
                       spec.log_path.replace("%j", job_id))
    records.save({**dataclasses.asdict(job), "login": cluster.login,
                  "login_setup": cluster.login_setup})
    return job


def login_cluster(record: Mapping[str, str]) -> Cluster:
    """Enough of a submission's cluster to query it: name, login host and login setup."""
    return Cluster(record["cluster"], "slurm", login=record.get("login", "local"),
                   login_setup=record.get("login_setup", ""))


def job_info(cluster: Cluster, job_id: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict (JobState, RunTime, ExitCode, Restarts, ...);
    ``{"JobState": "GONE"}`` once slurmctld has forgotten the job (MinJobAge)."""
    done = remote.shell(cluster, f"scontrol show job -o {shlex.quote(job_id)}", check=False)
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return {"JobId": job_id, "JobState": "GONE"}
        queued = remote.shell(cluster, f"squeue -h -j {shlex.quote(job_id)} -o %T", check=False)
        state = queued.stdout.strip() if queued.returncode == 0 else "UNKNOWN"
        return {"JobId": job_id, "JobState": state or "GONE"}
    info: dict[str, str] = {}
    for token in done.stdout.split():
        key, sep, value = token.partition("=")
        if sep and key not in info:
            info[key] = value
    return info


def read_log(cluster: Cluster, path: str, tail_lines: int | None = None) -> str:
    """A job's log file (or its last lines), read on the login node."""
    q = shlex.quote(path)
    command = f"tail -n {int(tail_lines)} {q}" if tail_lines else f"cat {q}"
    done = remote.shell(cluster, command, check=False)
    if done.returncode != 0:
        raise ConfigError(f"cannot read the log {path} on cluster {cluster.name} "
                          f"({done.stderr.strip()}); the job may not have started yet")
    return done.stdout
