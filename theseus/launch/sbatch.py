"""The sbatch script of a theseus job, and the small task script each ``srun`` task runs.

The batch script: ``#SBATCH`` resources (nodes, one task per GPU, GRES, time, ``--signal``
ahead of the limit, ``--requeue``); the environment (``uv sync`` into a venv shared by jobs
with the same groups, or an existing venv); JuiceFS mounted on every node and unmounted at
exit; one ``srun`` that runs ``launch.py`` once per task. A signal (SLURM's ``--signal``
before the time limit, or ``scancel --signal=USR1 --batch``) is passed on to the run, which
saves a checkpoint and exits 75; the script then requeues the job, which resumes from it.
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from theseus.config.errors import ConfigError
from theseus.launch import juicefs as jfs_lines
from theseus.launch.cluster import Cluster
from theseus.training.preemption import REQUEUE_EXIT_CODE

TASK_GRACE_S = 120  # how long srun lets the other tasks run on after the first has ended
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(value: str | int) -> int:
    """SLURM's time formats (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in seconds."""
    if isinstance(value, int) and value > 0:
        return value * 60
    match = _TIME.match(str(value).strip())
    if not match or str(value).strip() in ("0", ""):
        raise ConfigError(f"time={value!r} is not a SLURM time limit; use minutes (90), "
                          "'HH:MM:SS' (1:30:00) or 'D-HH:MM:SS' (2-00:00:00)")
    days, a, b, c = match.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        return int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    if c is not None:  # HH:MM:SS
        return int(a) * 3600 + int(b) * 60 + int(c)
    return int(a) * 60 + int(b or 0)  # MM or MM:SS


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """What one job asks for and runs; paths are absolute on the cluster."""

    name: str
    launch_args: tuple[str, ...]
    job_dir: str
    workdir: str
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1
    time: str | int = "1:00:00"
    partition: str | None = None
    cpus_per_task: int | None = None
    env: tuple[tuple[str, str], ...] = ()

    @property
    def log_path(self) -> str:
        """The job's output file (both streams; appended to across requeues)."""
        return f"{self.job_dir}/slurm-%j.out"


def signal_seconds(cluster: Cluster, time_s: int) -> int:
    """How long before the limit SIGUSR1 comes: the cluster's, at most half the limit."""
    return max(1, min(cluster.signal_seconds, time_s // 2))


def directives(cluster: Cluster, spec: JobSpec) -> list[str]:
    """The ``#SBATCH`` lines."""
    time_s = parse_time(spec.time)
    hours, rest = divmod(time_s, 3600)
    lines = [f"--job-name={spec.name}", f"--nodes={spec.nodes}",
             f"--ntasks-per-node={spec.tasks_per_node}",
             f"--time={hours}:{rest // 60:02d}:{rest % 60:02d}",
             f"--signal=B:USR1@{signal_seconds(cluster, time_s)}", "--requeue",
             "--open-mode=append", f"--output={spec.log_path}", f"--chdir={spec.job_dir}"]
    partition = spec.partition or (cluster.partitions[0] if cluster.partitions else None)
    if partition:
        lines.append(f"--partition={partition}")
    if cluster.account:
        lines.append(f"--account={cluster.account}")
    if cluster.qos:
        lines.append(f"--qos={cluster.qos}")
    if spec.gpus_per_node:
        lines.append(f"--gres={cluster.gres_per_chip}:{spec.gpus_per_node}")
    if spec.cpus_per_task:
        lines.append(f"--cpus-per-task={spec.cpus_per_task}")
    return [f"#SBATCH {shlex.quote(line)}" for line in lines]


def env_lines(cluster: Cluster, spec: JobSpec) -> list[str]:
    """Python from an existing venv, or ``uv sync`` into one shared by jobs with these groups."""
    q = shlex.quote
    groups = tuple(cluster.uv_groups) + (("launch",) if cluster.juicefs else ())
    lines = ['export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"']
    if cluster.venv:
        lines.append(f"VENV={jfs_lines.shell_path(cluster.venv)}")
    else:
        venv = f"{cluster.root.rstrip('/')}/venvs/{'-'.join(groups) or 'default'}"
        flags = " ".join(f"--group {q(g)}" for g in groups)
        lines += [f"VENV={jfs_lines.shell_path(venv)}", 'mkdir -p "$(dirname "$VENV")"',
                  (f'(cd "$CODE" && flock "$VENV.lock" env UV_PROJECT_ENVIRONMENT="$VENV" '
                  f"uv sync --frozen --no-install-project --no-default-groups {flags}) "
                  '|| { echo "error: uv sync failed on $(hostname)" >&2; exit 1; }')]
    lines.append('export PY="$VENV/bin/python"')
    if cluster.juicefs:
        lines += ['JUICEFS="$VENV/bin/juicefs"; [ -x "$JUICEFS" ] || JUICEFS="$(command -v juicefs)"',
                  "export JUICEFS"]
    env = {"THESEUS_DATA": cluster.cache, **cluster.env, **dict(spec.env)}
    for key, value in env.items():
        if value.startswith("~"):
            lines.append(f"export {key}={jfs_lines.shell_path(value)}")
        else:
            lines.append(f"export {key}={q(value)}")
    lines.append('mkdir -p "$THESEUS_DATA"')
    return lines


def task_script(cluster: Cluster, spec: JobSpec) -> str:
    """``task.sh``: what each srun task runs (its process id, then launch.py)."""
    wait = jfs_lines.wait_lines(cluster.juicefs) if cluster.juicefs else []
    return "\n".join([
        "#!/bin/bash",
        "# One theseus process per SLURM task: with several, launch.py joins them into one",
        "# JAX run from SLURM's variables (theseus/distributed.py; one GPU per task).",
        *wait,
        'cd "$CODE" || exit 1',
        'exec "$PY" launch.py "$@"',
    ]) + "\n"


def _run_lines(spec: JobSpec) -> list[str]:
    """srun in the background, signals passed on to it, and the requeue on exit code 75."""
    args = " ".join(shlex.quote(a) for a in (*spec.launch_args, f"--workdir={spec.workdir}"))
    return [
        f"ARGS=({args})",
        ('echo "theseus: job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on '
        '$SLURM_JOB_NODELIST: $SLURM_NTASKS tasks"'),
        "SRUN_PID=; SIGNALLED=",
        ('forward() { echo "theseus: $1 received: passing it to the run"; SIGNALLED=$1; '
         '[ -n "$SRUN_PID" ] && kill -"$1" "$SRUN_PID" 2>/dev/null; }'),
        "trap 'forward USR1' USR1",
        "trap 'forward TERM' TERM",
        # --wait: once one task has ended, the others get TASK_GRACE_S to end too (a task
        # that failed leaves its peers blocked in a collective until the time limit).
        (f"srun --kill-on-bad-exit=0 --wait={TASK_GRACE_S} --job-name=train "
         'bash "$JOB_DIR/task.sh" "${ARGS[@]}" &'),
        "SRUN_PID=$!",
        'while true; do wait "$SRUN_PID"; RC=$?; kill -0 "$SRUN_PID" 2>/dev/null || break; done',
        "# 75: the run saved a checkpoint. USR1 (--signal ahead of the time limit, or scancel",
        "# --signal=USR1 --batch) requeues the job, also when it came before the run could",
        "# catch it (still starting up): the job resumes from its last checkpoint. TERM is",
        "# scancel or preemption: the run saves, but a cancelled job stays cancelled and a",
        "# preempted one is requeued by SLURM itself.",
        (f'if [ "$SIGNALLED" != TERM ] && {{ [ "$RC" = {REQUEUE_EXIT_CODE} ] || '
         '{ [ "$SIGNALLED" = USR1 ] && [ "$RC" != 0 ]; }; }; then'),
        ('  echo "theseus: the run stopped (exit status $RC) after a signal: requeueing job '
         '$SLURM_JOB_ID"'),
        "  cleanup",
        '  scontrol requeue "$SLURM_JOB_ID"',
        "  exit 0",
        "fi",
        'if [ "$SIGNALLED" = TERM ]; then',
        ('  echo "theseus: the run stopped (exit status $RC) after TERM (scancel or '
         'preemption): not requeueing it here"'),
        "else",
        '  echo "theseus: the run exited with status $RC"',
        "fi",
        'exit "$RC"',
    ]


def batch_script(cluster: Cluster, spec: JobSpec) -> str:
    """The whole sbatch script. It holds no secret (see ``theseus.launch.juicefs``)."""
    q = shlex.quote
    head = ["#!/bin/bash", *directives(cluster, spec), "",
            f"# theseus job {spec.name} on cluster {cluster.name}", "set -u",
            f"JOB_DIR={q(spec.job_dir)}", 'export CODE="$JOB_DIR/code" JOB_DIR',
            "CLEANUP=()",
            'cleanup() { for f in "${CLEANUP[@]}"; do "$f"; done; CLEANUP=(); }',
            "trap cleanup EXIT",
            ]
    mount = jfs_lines.mount_lines(cluster.juicefs) if cluster.juicefs else []
    return "\n".join([*head, *env_lines(cluster, spec), *mount, *_run_lines(spec)]) + "\n"
