"""The cluster targets of the launch path: each work unit becomes an xmanager job with the
``Remote`` executor, whose ``submit`` ships and starts it on SLURM, an SSH host or Vertex AI.

What is shipped once per experiment (the code snapshot, the units' configs, the Vertex
image) is prepared before the first unit is added; what each unit needs (its config path and
workdir on the cluster) goes into its own ``submit``.
"""

from __future__ import annotations

import math
import pathlib
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence

from theseus.config.errors import ConfigError
from theseus.launch.cluster import Cluster
from theseus.launch.xm_launch import REPO, Launched, Unit, unit_workdir


def job_name(title: str, unit: Unit) -> str:
    """A scheduler-safe name: ``TITLE`` or ``TITLE-POINT`` with odd characters as ``_``."""
    text = f"{title}-{unit.subdir}" if unit.subdir else title
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-") or "run"


def run_base(cluster: Cluster, title: str) -> str:
    """The run's directory on the cluster: ``WORK/TITLE``."""
    return f"{cluster.work.rstrip('/')}/{title}"


def slurm_shape(cluster: Cluster, hardware: object | None) -> dict:
    """``nodes`` and ``gpus`` per node for ``slurm.submit`` from a chip count."""
    if hardware is None or getattr(hardware, "chip", "cpu") == "cpu":
        return {"nodes": 1, "gpus": None if hardware is None else 0}
    n = hardware.n_chips
    per_node = cluster.chips_per_node or n
    if n > per_node and n % per_node:
        raise ConfigError(f"{n} chips do not fill whole nodes of cluster {cluster.name} "
                          f"({per_node} chips each); ask for a multiple of {per_node}")
    return {"nodes": math.ceil(n / per_node), "gpus": min(n, per_node)}


def remote_backend(kind: str, cluster: Cluster, title: str, units: Sequence[Unit],
                   hardware: object | None) -> Callable:
    """The backend that adds one Remote job per unit for ``kind`` (slurm, ssh, vertex)."""
    prepare = {"slurm": _slurm, "ssh": _ssh, "vertex": _vertex}[kind]
    if kind != "slurm" and cluster.juicefs is not None:
        raise ConfigError(f"cluster {cluster.name} ({kind}) has a JuiceFS volume, which theseus "
                          "mounts only in SLURM jobs; mount it on the host yourself (or use "
                          "/gcs/ on Vertex AI) and remove juicefs= from its Cluster(...)")
    if kind == "vertex":  # every mistake is found before the experiment exists
        from theseus.launch import vertex
        from theseus.launch.vertex_hardware import machine_for

        if hardware is None:
            raise ConfigError("Vertex AI needs an accelerator: pass --chip (e.g. v5p-16, v6e, "
                              "h100) and a count (--n_chips=8; -n 8 with theseus submit), or "
                              "record HARDWARE in the config file")
        machine_for(hardware.chip, hardware.n_chips)
        vertex.settings_for(cluster)
        vertex.check_storage(cluster)
    elif kind == "slurm":
        slurm_shape(cluster, hardware)

    def add(experiment, units_: Sequence[Unit], staged: dict[str, pathlib.Path]):
        from xmanager import xm

        from theseus.launch.xm_remote import Remote, Shipped

        submitters = prepare(cluster, title, units_, staged, hardware, experiment.experiment_id)
        added = []
        for unit, submit in zip(units_, submitters):
            executor = Remote(submit=submit)
            experiment.add(xm.Job(Shipped(name=unit.name), executor, name=unit.name))
            added.append((unit, executor))
        base = run_base(cluster, title)
        return lambda: [Launched(u.name, unit_workdir(base, u), "; ".join(e.results))
                        for u, e in added]

    return add


def _slurm(cluster: Cluster, title: str, units: Sequence[Unit], staged: dict,
           hardware: object | None, experiment_id: int) -> list[Callable[[], str]]:
    """Ships the configs to ``ROOT/launch/EXPERIMENT`` and submits each unit with sbatch."""
    from theseus.launch import remote, slurm

    home = remote.home(cluster)
    folder = remote.expand(f"{cluster.root.rstrip('/')}/launch/{experiment_id}", home)
    remote.shell(cluster, f"mkdir -p {shlex.quote(folder)}")
    for unit in units:
        remote.shell(cluster, f"cat > {shlex.quote(folder)}/{shlex.quote(unit.name)}.json",
                     stdin=unit.config_json.encode())
    shape = slurm_shape(cluster, hardware)
    base = run_base(cluster, title)

    def submitter(unit: Unit) -> Callable[[], str]:
        return lambda: str(slurm.submit(cluster, job_name(title, unit),
                                        [f"--config={folder}/{unit.name}.json"],
                                        workdir=unit_workdir(base, unit), **shape))

    return [submitter(u) for u in units]


def _ssh(cluster: Cluster, title: str, units: Sequence[Unit], staged: dict,
         hardware: object | None, experiment_id: int) -> list[Callable[[], str]]:
    """Ships the snapshot (with the configs) once, then starts each unit detached."""
    from theseus.launch import ssh
    from theseus.launch.snapshot import make_snapshot

    with tempfile.TemporaryDirectory(prefix="theseus-ssh-") as tmp:
        snap = make_snapshot(REPO, pathlib.Path(tmp) / "code.tar")
        data = ssh.bundle(snap.path, {u.name: u.config_json for u in units})
    home, code, python = ssh.ship(cluster, str(experiment_id), data)
    base = run_base(cluster, title)

    def submitter(unit: Unit) -> Callable[[], str]:
        return lambda: str(ssh.start(cluster, name=job_name(title, unit), home=home, code=code,
                                     python=python, config=f"launch/{unit.name}.json",
                                     workdir=unit_workdir(base, unit)))

    return [submitter(u) for u in units]


def vertex_context(folder: pathlib.Path, units: Sequence[Unit], group: str) -> pathlib.Path:
    """The image's build context: the snapshot, ``launch/<unit>.json`` and the Dockerfile."""
    from theseus.launch import vertex
    from theseus.launch.snapshot import make_snapshot

    snap = make_snapshot(REPO, folder / "code.tar")
    context = folder / "context"
    with tarfile.open(snap.path) as tar:
        tar.extractall(context, filter="data")
    (context / "launch").mkdir(exist_ok=True)
    for unit in units:
        (context / "launch" / f"{unit.name}.json").write_text(unit.config_json)
    (context / "Dockerfile").write_text(vertex.dockerfile(group))
    return context


def docker_works() -> bool:
    """Whether ``docker`` is installed and its daemon answers."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def build_image(context: pathlib.Path, image: str) -> None:
    """``docker build`` and ``docker push``; one sentence when docker is not here."""
    if not docker_works():
        raise ConfigError(f"building the Vertex AI image needs docker with a running daemon, "
                          f"which this machine lacks; build {context} and push it as {image} "
                          "where docker runs (docker build -t IMAGE DIR && docker push IMAGE)")
    for argv in (["docker", "build", "-t", image, str(context)], ["docker", "push", image]):
        if subprocess.run(argv, check=False).returncode != 0:
            raise ConfigError(f"`{' '.join(argv)}` failed; see its output above")


def _vertex(cluster: Cluster, title: str, units: Sequence[Unit], staged: dict,
            hardware: object, experiment_id: int) -> list[Callable[[], str]]:
    """Builds and pushes the image once, then creates one CustomJob per unit."""
    from theseus.launch import vertex
    from theseus.launch.vertex_hardware import machine_for

    settings = vertex.settings_for(cluster)
    machine = machine_for(hardware.chip, hardware.n_chips)
    image = vertex.image_uri(settings, f"{title}-{experiment_id}".lower())
    folder = next(iter(staged.values())).parent
    build_image(vertex_context(folder / "vertex", units, vertex.uv_group(machine)), image)
    env = vertex.job_env(cluster.env, cluster.cache)
    base = run_base(cluster, title)
    clients: list = []  # one client for the experiment, made when the first unit is sent

    def send(request: dict) -> str:
        if not clients:
            clients.append(vertex.make_client(settings))
        return vertex.submit(request, settings, clients[0])

    def submitter(unit: Unit) -> Callable[[], str]:
        command = vertex.container_command(f"launch/{unit.name}.json", unit_workdir(base, unit))
        request = vertex.custom_job(job_name(title, unit), image, machine, command, env, settings,
                                    {"theseus-experiment": str(experiment_id)})
        return lambda: send(request)

    return [submitter(u) for u in units]
