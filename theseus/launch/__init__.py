"""Launching runs: the one path from a config to work units on this machine or a cluster.

``launch.py --xm=TARGET [--sweep=path=v1,v2 ...]`` and ``theseus submit`` both end in
:func:`theseus.launch.xm_launch.launch`: every sweep point is built and checked, then an
xmanager experiment gets one work unit per point.

Modules: ``cluster`` (``Cluster``/``JuiceFS`` and the clusters file), ``snapshot`` (the code
as a tar), ``sweep`` (``--sweep`` points), ``xm_launch`` (the experiment; the local target),
``xm_remote`` (xmanager executor for the other targets), ``xm_targets`` (SLURM, SSH and
Vertex AI work units), ``slurm``/``sbatch``/``juicefs``/``remote``/``records`` (SLURM jobs,
JuiceFS mounts, login-node commands, submission records), ``ssh`` (detached runs on SSH
hosts), ``vertex``/``vertex_hardware`` (CustomJob requests, TPU/GPU machine specs, the image's
Dockerfile).
"""

from __future__ import annotations

import os
from typing import Any


def submit(name: str, cfg: Any, *, cluster: str, hardware: Any = None,
           sweeps: tuple[str, ...] = (), clusters: str | None = None) -> list:
    """``theseus submit``: runs ``cfg`` as run ``name`` on the cluster called ``cluster``
    (its kind picks the target; a ``local`` cluster runs it here in ``WORK/NAME``); returns
    what became of each work unit (``xm_launch.Launched``; ``describe`` prints them)."""
    from theseus.launch.cluster import get_cluster
    from theseus.launch.xm_launch import launch

    found = get_cluster(cluster, clusters)
    target = "local" if found.kind == "local" else f"{found.kind}:{cluster}"
    # A local cluster runs here in WORK/NAME; the others put the run under their WORK.
    workdir = os.path.join(os.path.expanduser(found.work), name) if found.kind == "local" else name
    return launch(cfg, target=target, workdir=workdir, sweeps=sweeps, hardware=hardware,
                  clusters=clusters, title=name)


def describe(launched: list) -> str:
    """One line per work unit: name, workdir, where it went (and its exit code here)."""
    lines = []
    for item in launched:
        code = "" if item.exit_code is None else f" exit {item.exit_code}"
        lines.append(f"{item.unit}: {item.workdir}: {item.where}{code}")
    return "\n".join(lines)


def launch_from_flags(flag_values: Any) -> int:
    """``launch.py --xm=... [--sweep ...]``: launches and returns the exit status (a local
    target: the first non-zero exit code of its work units)."""
    from theseus.config import ConfigError, config_from_flags, workdir_from_flags
    from theseus.config.codegen import Hardware, read_hardware
    from theseus.config.loading import load_config
    from theseus.launch.xm_launch import launch

    for name in ("allow_config_change", "from_scratch"):
        if name in flag_values and flag_values[name].value:
            raise ConfigError(f"--{name} applies to one run; run launch.py without --xm in "
                              "that run's workdir to use it")
    cfg = config_from_flags(flag_values)
    if flag_values.chip:
        hardware = Hardware(flag_values.chip, flag_values.n_chips or 1)
    elif flag_values.n_chips:
        raise ConfigError("--n_chips needs --chip, e.g. --chip=h100 --n_chips=8")
    else:
        hardware = read_hardware(load_config(flag_values.config)[1])
    launched = launch(cfg, target=flag_values.xm or "local", workdir=workdir_from_flags(flag_values),
                      sweeps=flag_values.sweep or (), hardware=hardware,
                      clusters=flag_values.clusters)
    print(describe(launched))
    return exit_status(launched)


def exit_status(launched: list) -> int:
    """0, or the first non-zero exit code of the work units that ran here."""
    return next((x.exit_code for x in launched if x.exit_code), 0)
