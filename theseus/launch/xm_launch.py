"""The one launch path: a config (and a sweep) becomes an xmanager experiment, one work unit
per sweep point, on this machine, a SLURM cluster, Vertex AI or an SSH host.

``launch.py --xm=TARGET`` and ``theseus submit`` both call :func:`launch`. Every point is
built and validated first, so a mistake fails before anything starts. Each work unit runs
``launch.py --config=UNIT.json --workdir=WORKDIR`` (without ``--xm``): ``UNIT.json`` is the
point's full config, written by this module. The experiment and its work units are recorded
in xmanager's local database (sqlite, under ``$THESEUS_LAUNCH_DIR``, default
``~/.cache/theseus/launch``).

Targets: ``local`` (xmanager's local executor: the work units run here as subprocesses and
the call waits for them), ``slurm:CLUSTER``, ``vertex:CLUSTER`` and ``ssh:CLUSTER`` (submitted
through the ``Remote`` executor; the call returns once every unit is submitted).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
from collections.abc import Callable, Sequence

import fiddle as fdl

from theseus.config.errors import ConfigError
from theseus.config.serialize import to_json
from theseus.launch import sweep

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGETS = ("local", "slurm", "vertex", "ssh")
_TARGET_HELP = "use --xm=local, --xm=slurm:CLUSTER, --xm=vertex:CLUSTER or --xm=ssh:CLUSTER"


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the work units run: a kind and, except for ``local``, a cluster name."""

    kind: str
    cluster: str | None = None


@dataclasses.dataclass(frozen=True)
class Unit:
    """One work unit: its name, its full config (JSON) and its workdir relative to the base."""

    name: str
    config_json: str
    subdir: str
    settings: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Launched:
    """What happened to one work unit: where it ran or went, and its exit code if it ran here."""

    unit: str
    workdir: str
    where: str
    exit_code: int | None = None


def parse_target(text: str) -> Target:
    """``local`` / ``slurm:NAME`` / ``vertex:NAME`` / ``ssh:NAME``; one sentence otherwise."""
    kind, sep, cluster = text.strip().partition(":")
    if kind not in TARGETS:
        raise ConfigError(f"--xm={text!r} names no launch target; {_TARGET_HELP}")
    if kind == "local":
        if sep:
            raise ConfigError(f"--xm={text!r}: local takes no cluster; use --xm=local")
        return Target("local")
    if not cluster:
        raise ConfigError(f"--xm={text!r} needs a cluster name, e.g. --xm={kind}:mycluster")
    return Target(kind, cluster)


def plan(cfg: fdl.Buildable, sweeps: Sequence[str] = ()) -> list[Unit]:
    """One unit per sweep point (one unit without a sweep), each built and validated."""
    from theseus.cli.common import check_builds

    axes = sweep.parse_axes(sweeps)
    for axis in axes:  # a misspelt path is named once, not once per point
        sweep.apply_point(cfg, sweep.Point(((axis.path, axis.values[0]),)))
    units = []
    for point in sweep.points(axes):
        try:
            point_cfg = sweep.apply_point(cfg, point)
            check_builds(point_cfg)
        except ConfigError as e:
            where = f"sweep point {point.name}: " if point.settings else ""
            raise ConfigError(f"{where}{e}") from None
        units.append(Unit(point.name or "run", to_json(point_cfg), point.name, point.settings))
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise ConfigError(f"two sweep points get the same folder name ({', '.join(names)}); "
                          "make the values differ in more than punctuation")
    return units


def launch_dir() -> pathlib.Path:
    """Where staged configs and xmanager's database live on this machine."""
    return pathlib.Path(os.environ.get("THESEUS_LAUNCH_DIR", "~/.cache/theseus/launch")).expanduser()


def use_local_database(folder: pathlib.Path) -> None:
    """Points xmanager's local database at ``folder/experiments.sqlite3`` (not ~/.xmanager)."""
    from absl import flags
    from xmanager import xm_flags  # noqa: F401  (defines --xm_db_yaml_config_path)
    from xmanager.xm_local.storage import database

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "xm_db.yaml"
    config.write_text("sql_connector: sqlite\nsql_connection_settings:\n  backend: sqlite\n"
                      f"  db_name: {folder / 'experiments.sqlite3'}\n")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    if flags.FLAGS.xm_db_yaml_config_path != str(config):
        flags.FLAGS.xm_db_yaml_config_path = str(config)
        for cached in (database._db_config, database.db_connector, database.db_settings,
                       database.database):
            cached.cache_clear()


def stage_configs(units: Sequence[Unit], folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes each unit's config JSON into ``folder``; returns the files by unit name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for unit in units:
        path = folder / f"{unit.name}.json"
        path.write_text(unit.config_json)
        files[unit.name] = path
    return files


def unit_workdir(base: str, unit: Unit) -> str:
    """The unit's workdir: the base, or ``base/POINT`` in a sweep."""
    return f"{base.rstrip('/')}/{unit.subdir}" if unit.subdir else base


def launch(cfg: fdl.Buildable, *, target: str | Target, workdir: str | os.PathLike,
           sweeps: Sequence[str] = (), hardware: object | None = None,
           clusters: str | None = None, title: str | None = None) -> list[Launched]:
    """Launches ``cfg`` (one work unit per sweep point) on ``target``; returns each unit's fate.

    ``workdir`` is the run's directory here (``local``) or its name on a cluster (the last
    component, under the cluster's ``work``). ``hardware`` (``Hardware(chip, n_chips)``) is
    what a cluster target asks for.
    """
    target = parse_target(target) if isinstance(target, str) else target
    units = plan(cfg, sweeps)
    _require_xmanager()
    title = title or pathlib.Path(workdir).name
    if target.kind == "local":
        backend = _local_backend(pathlib.Path(workdir))
    else:
        from theseus.launch.cluster import get_cluster
        from theseus.launch.xm_targets import remote_backend

        cluster = get_cluster(target.cluster, clusters, kinds=(target.kind,))
        backend = remote_backend(target.kind, cluster, title, units, hardware)
    return _run_experiment(title, units, backend)


Backend = Callable[..., Callable[[], list[Launched]]]


def _require_xmanager() -> None:
    """One sentence instead of a traceback when the optional ``launch`` group is missing."""
    import importlib.util

    if importlib.util.find_spec("xmanager") is None:
        raise ConfigError("launching with --xm, --sweep or `theseus submit` needs xmanager; "
                          "install the optional group: uv sync --inexact --group launch.")


def _run_experiment(title: str, units: Sequence[Unit], backend: Backend) -> list[Launched]:
    """Creates the xmanager experiment (recorded in the local database), adds the units, and
    returns what became of them once xmanager is done (local units: when they have ended)."""
    from xmanager import xm_local

    folder = launch_dir()
    use_local_database(folder)
    try:
        with xm_local.create_experiment(experiment_title=title) as experiment:
            staged = stage_configs(units, folder / "experiments" / str(experiment.experiment_id))
            finish = backend(experiment, units, staged)
    except RuntimeError as e:  # xmanager's way of saying a local unit exited non-zero
        if "returned non-zero code" not in str(e):
            raise
    return finish()


def _local_backend(base: pathlib.Path) -> Backend:
    """Work units as subprocesses here: ``python launch.py --config=UNIT.json --workdir=...``."""

    def add(experiment, units: Sequence[Unit], staged: dict[str, pathlib.Path]):
        from xmanager import xm, xm_local

        [binary] = experiment.package([xm.Packageable(xm.Binary(path=sys.executable),
                                                      xm_local.Local.Spec())])
        added = []
        for unit in units:
            workdir = unit_workdir(str(base), unit)
            args = [str(REPO / "launch.py"), f"--config={staged[unit.name]}", f"--workdir={workdir}"]
            job = xm.Job(binary, xm_local.Local(), name=unit.name, args=args,
                         env_vars={"THESEUS_XM_EXPERIMENT": str(experiment.experiment_id)})
            added.append((unit, workdir, experiment.add(job)))
        return lambda: _local_results(experiment.experiment_id, added)

    return add


def _local_results(experiment_id: int, added: list) -> list[Launched]:
    """Each local unit's exit code (0 finished, 75 preempted and resumable, 2 a user mistake)."""
    from xmanager.xm_local import execution

    results = []
    for unit, workdir, future in added:
        work_unit = future.result()
        codes = [h.process.returncode for h in work_unit._local_execution_handles]
        results.append(Launched(unit.name, workdir, f"work unit {work_unit.work_unit_id} of "
                                f"xmanager experiment {experiment_id} (here)", codes[0]))
    with execution._local_jobs_lock:  # they have ended: nothing for xmanager's exit hook to stop
        execution._local_jobs.clear()
    return results
