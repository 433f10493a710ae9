"""Plain SSH hosts: ship the code snapshot, set up its uv environment, and start each run
under ``setsid nohup`` so it outlives the ssh session; return host, pid and log path.

A host is a ``Cluster(kind="ssh", login=ALIAS)``; ``ALIAS`` comes from ``~/.ssh/config`` (or
from the file ``$THESEUS_SSH_CONFIG`` names, passed to ssh with ``-F``). ssh runs with
``BatchMode=yes``: keys or an agent, never a password prompt. On the host the snapshot goes
to ``ROOT/code/EXPERIMENT``; ``uv sync --frozen`` builds ``ROOT/venvs/GROUPS`` from the
cluster's uv groups (or the cluster's ``venv`` is used as it is); runs go to ``WORK/NAME`` with their
output in ``WORK/NAME/launch.log``. Every start is recorded (``records.py``), so ``theseus
status``/logs can find the host, pid and log.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import shlex
import tarfile
from collections.abc import Mapping

from theseus.config.errors import ConfigError
from theseus.launch import records
from theseus.launch.cluster import Cluster
from theseus.launch.remote import expand, shell  # the login-node helpers SLURM uses too
from theseus.launch.remote import home as remote_home

LOG_NAME = "launch.log"


@dataclasses.dataclass(frozen=True)
class SshRun:
    """A run started on an SSH host."""

    cluster: str
    host: str
    pid: int
    name: str
    workdir: str
    log_path: str
    code_dir: str

    def __str__(self) -> str:
        return f"started {self.name} on {self.host} as pid {self.pid} (log {self.log_path})"

    def record(self) -> dict:
        """The record ``records.save`` keeps (the keys the SLURM records have, and more)."""
        return {"cluster": self.cluster, "job_id": f"{self.host}-{self.pid}", "name": self.name,
                "job_dir": self.code_dir, "workdir": self.workdir, "log_path": self.log_path,
                "kind": "ssh", "login": self.host, "host": self.host, "pid": self.pid}


def bundle(snapshot: pathlib.Path, configs: Mapping[str, str]) -> bytes:
    """The snapshot tar with each unit's config added as ``launch/<unit>.json``."""
    buffer = io.BytesIO(snapshot.read_bytes())
    with tarfile.open(fileobj=buffer, mode="a") as tar:
        for name, text in configs.items():
            data = text.encode()
            info = tarfile.TarInfo(f"launch/{name}.json")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def ship(cluster: Cluster, experiment: str, tar_bytes: bytes) -> tuple[str, str, str]:
    """Unpacks the bundle on the host and sets up its environment.

    Returns ``(home, code_dir, python)``: the host's home, the code's directory and the
    interpreter the runs use.
    """
    home = remote_home(cluster)
    root = expand(cluster.root.rstrip("/"), home)
    code = f"{root}/code/{experiment}"
    q = shlex.quote
    shell(cluster, f"mkdir -p {q(code)} && tar -xf - -C {q(code)}", stdin=tar_bytes)
    if cluster.venv:
        python = f"{expand(cluster.venv.rstrip('/'), home)}/bin/python"
    else:  # one venv per set of groups, shared by runs (as on SLURM); flock: one sync at a time
        venv = f"{root}/venvs/{'-'.join(cluster.uv_groups) or 'default'}"
        groups = " ".join(f"--group {q(g)}" for g in cluster.uv_groups)
        shell(cluster, f'export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"; '
                       f"mkdir -p {q(root)}/venvs && cd {q(code)} && flock {q(venv)}.lock env "
                       f"UV_PROJECT_ENVIRONMENT={q(venv)} uv sync --frozen --no-install-project "
                       f"--no-default-groups {groups}", timeout=1800)
        python = f"{venv}/bin/python"
    shell(cluster, f"test -x {q(python)} || {{ echo 'no python at {python}'; exit 1; }}")
    return home, code, python


def start(cluster: Cluster, *, name: str, home: str, code: str, python: str,
          config: str, workdir: str, env: Mapping[str, str] | None = None) -> SshRun:
    """Starts ``launch.py --config=CONFIG --workdir=WORKDIR`` detached on the host."""
    q = shlex.quote
    workdir = expand(workdir, home)
    log = f"{workdir}/{LOG_NAME}"
    variables = {**cluster.env, "THESEUS_DATA": expand(cluster.cache, home), **(env or {})}
    assignments = " ".join(f"{k}={q(v)}" for k, v in sorted(variables.items()))
    script = "\n".join([
        "set -e",
        f"mkdir -p {q(workdir)}",
        f"cd {q(code)}",
        (f"setsid nohup env {assignments} {q(python)} launch.py --config={q(config)} "
        f"--workdir={q(workdir)} >> {q(log)} 2>&1 < /dev/null &"),
        "echo $!",
    ])
    out = shell(cluster, script).stdout.split()
    if not out or not out[-1].isdigit():
        raise ConfigError(f"starting {name} on {cluster.login} printed {out!r} instead of a pid")
    run = SshRun(cluster.name, cluster.login, int(out[-1]), name, workdir, log, code)
    records.save(run.record())
    return run


def is_running(cluster: Cluster, pid: int) -> bool:
    """Whether process ``pid`` still exists on the host."""
    return shell(cluster, f"kill -0 {int(pid)} 2>/dev/null", check=False).returncode == 0


def read_file(cluster: Cluster, path: str) -> str | None:
    """A (small) file on the host, e.g. a run's ``status.json`` or its log; None if absent."""
    done = shell(cluster, f"cat {shlex.quote(path)}", check=False)
    return done.stdout if done.returncode == 0 else None


def record_cluster(record: Mapping[str, object]) -> Cluster:
    """Enough of a recorded run's host to reach it: its cluster name and ssh alias."""
    return Cluster(str(record["cluster"]), "ssh", login=str(record["login"]))


def job_info(record: Mapping[str, object]) -> dict[str, str]:
    """A recorded SSH run's state, in the shape ``slurm.job_info`` has: ``JobState`` is
    RUNNING while its process lives, else its ``status.json`` state in capitals (FINISHED,
    FAILED, PREEMPTED, ...), or GONE when the run left no status."""
    import json

    cluster = record_cluster(record)
    if is_running(cluster, int(record["pid"])):
        return {"JobId": str(record["job_id"]), "JobState": "RUNNING"}
    text = read_file(cluster, f"{record['workdir']}/status.json")
    try:
        state = json.loads(text).get("state", "unknown") if text else "gone"
    except ValueError:
        state = "unknown"
    return {"JobId": str(record["job_id"]), "JobState": str(state).upper()}
