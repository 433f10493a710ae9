"""A real single-node SLURM on loopback for the tests: munged, slurmctld and slurmd with
their own key, socket, non-default ports and all state in a temp dir.

Needs slurm-wlm and munge (Debian packages; .ci/run installs them) and root (slurmd starts
jobs as their user). Skips with the reason when something is missing or does not start.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from tests.launch.fixtures_process import env_set, stop_process

TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Slurm:
    """A running test SLURM: its config file and the environment its commands need."""

    root: pathlib.Path
    conf: pathlib.Path
    node: str
    partition: str
    procs: list[subprocess.Popen]

    @property
    def env(self) -> dict[str, str]:
        """``SLURM_CONF`` for sbatch, squeue and scontrol."""
        return {"SLURM_CONF": str(self.conf)}

    def logs(self) -> str:
        """The daemons' logs (shown when a test fails)."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-40:]))
        return "\n".join(parts)


def _missing() -> str | None:
    """Why the SLURM fixture cannot run here, or None."""
    absent = [t for t in TOOLS if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)} missing; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test SLURM needs root (slurmd starts jobs as their user)"
    return None


def _node_line(node: str) -> str:
    """This machine's real CPUs and memory, as ``slurmd -C`` reports them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = out.splitlines()[0].split()[1:]
    return f"NodeName={node} NodeAddr=127.0.0.1 " + " ".join(fields) + " State=UNKNOWN"


def _write_conf(root: pathlib.Path, node: str, partition: str, munge_socket: pathlib.Path) -> pathlib.Path:
    """slurm.conf: loopback, non-default ports, linuxproc tracking, no cgroups, no accounting."""
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=theseustest", f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
        "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
        # cred_expire is also how long a requeued job waits before it may start again
        # (120 s by default; credentials of the previous run are revoked until then).
        f"AuthInfo=socket={munge_socket},cred_expire=10",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/slurmctld.log", f"SlurmdLogFile={root}/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1",
        "MpiDefault=none", "ReturnToService=2", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
        "MinJobAge=3600", "KillWait=10", "SlurmdTimeout=300", "InactiveLimit=0",
        _node_line(node),
        f"PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n")
    return conf


def _start_munge(root: pathlib.Path) -> tuple[subprocess.Popen, pathlib.Path]:
    """munged with its own key and socket, in the foreground (so we own its process)."""
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge.socket"
    proc = subprocess.Popen(
        ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={key}",
         f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
         f"--seed-file={root}/munged.seed"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _wait(lambda: sock.exists(), "munged did not create its socket", proc)
    return proc, sock


def _wait(ready, what: str, proc: subprocess.Popen | None = None, tries: int = 600) -> None:
    """Polls ``ready()`` every 50 ms (30 s at most); fails with ``what`` if it never is."""
    for _ in range(tries):
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(what)


def _node_state(env: dict[str, str], node: str) -> str:
    """The node's state in sinfo's words (idle, down, ...)."""
    out = subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], env={**os.environ, **env},
                         capture_output=True, text=True, check=False)
    return out.stdout.strip()


def start_slurm(root: pathlib.Path) -> Slurm:
    """Starts munged, slurmctld and slurmd; returns once the node is idle."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    (root / "spool").mkdir(exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    node, partition = socket.gethostname(), "debug"
    munge, sock = _start_munge(root)
    conf = _write_conf(root, node, partition, sock)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = [munge]
    slurm = Slurm(root, conf, node, partition, procs)
    try:
        procs.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen(["slurmd", "-D", "-N", node, "-f", str(conf)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait(lambda: _node_state(slurm.env, node) == "idle", "the SLURM node never became idle")
    except (RuntimeError, OSError) as e:
        stop_slurm(slurm)
        raise RuntimeError(f"{e}\n{slurm.logs()}") from None
    return slurm


def _cancel_jobs(slurm: Slurm) -> None:
    """Cancels every job still known and waits (30 s at most) until slurmd has ended them,
    so that no job step outlives the daemons."""
    env = {**os.environ, **slurm.env}

    def jobs() -> list[str]:
        done = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True,
                              text=True, check=False)
        return done.stdout.split() if done.returncode == 0 else []

    pending = jobs()
    if pending:
        subprocess.run(["scancel", "--full", *pending], env=env, capture_output=True, check=False)
        try:
            _wait(lambda: not jobs(), "jobs did not end")
        except RuntimeError:
            pass  # the daemons stop anyway; their logs say why


def stop_slurm(slurm: Slurm) -> None:
    """Cancels the remaining jobs, stops the daemons (slurmd first) and waits for them."""
    if len(slurm.procs) == 3 and all(p.poll() is None for p in slurm.procs):
        _cancel_jobs(slurm)
    for proc in reversed(slurm.procs):
        stop_process(proc)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Slurm:
    """A single-node SLURM for the session; its ``SLURM_CONF`` is set while it runs."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    try:
        running = start_slurm(tmp_path_factory.mktemp("slurm"))
    except RuntimeError as e:
        pytest.skip(f"the test SLURM did not start: {e}")
    with env_set("SLURM_CONF", str(running.conf)):
        yield running
    stop_slurm(running)
