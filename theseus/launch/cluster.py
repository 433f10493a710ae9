"""Clusters described in Python: ``Cluster`` and ``JuiceFS``, and loading them from a file.

A clusters file is plain Python (``~/.theseus/clusters.py``, or the file given with
``--clusters`` or ``$THESEUS_CLUSTERS``) that defines ``CLUSTERS``: a list of ``Cluster``
objects, or of zero-argument functions returning one, or a function returning such a list::

    from theseus.launch.cluster import Cluster, JuiceFS

    CLUSTERS = [
        Cluster("mycluster", kind="slurm", login="mycluster-login", partitions=("gpu",),
                gres_per_chip="gpu:h100", chips_per_node=8, root="~/theseus",
                uv_groups=("cuda12",),
                juicefs=JuiceFS("redis://meta.internal:6379/1", mount="/mnt/jfs",
                                password_env="JFS_META_PASSWORD")),
    ]

Paths may start with ``~/``: they are expanded on the cluster, not here. No secret is ever a
field: the JuiceFS metadata password is named by an environment variable or a 0600 file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib
import re
import stat
import urllib.parse
from collections.abc import Mapping
from typing import Literal

from theseus.config.errors import ConfigError, did_you_mean

KINDS = ("slurm", "vertex", "ssh", "local")
Kind = Literal["slurm", "vertex", "ssh", "local"]
DEFAULT_FILE = pathlib.Path("~/.theseus/clusters.py")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_path(owner: str, field: str, value: str) -> None:
    """A cluster path is absolute or starts with ``~/`` (expanded on the cluster)."""
    if not (value.startswith(("/", "~/")) or value == "~"):
        raise ConfigError(f"{owner}: {field}={value!r} must be an absolute path or start with "
                          "'~/', e.g. '~/theseus'")


@dataclasses.dataclass(frozen=True)
class JuiceFS:
    """A JuiceFS volume mounted on every node of a job while it runs.

    ``meta_url`` is the metadata engine without a password (``redis://host:6379/1``); the
    password is read from the environment variable ``password_env`` when the job is
    submitted, or from ``password_file`` (mode 0600, on the cluster's nodes) when the job
    starts, and reaches ``juicefs`` only through its ``META_PASSWORD`` environment variable.
    """

    meta_url: str
    mount: str = "/mnt/jfs"
    cache_dir: str = "~/.juicefs/cache"
    cache_size_mib: int = 102400
    password_env: str | None = None
    password_file: str | None = None

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.meta_url)
        if not parsed.scheme or "://" not in self.meta_url:
            raise ConfigError(f"JuiceFS meta_url={self.meta_url!r} needs a scheme, e.g. "
                              "'redis://host:6379/1'")
        if parsed.password:
            raise ConfigError("JuiceFS meta_url must not contain a password (it would show in "
                              "`ps` and logs); set password_env or password_file instead")
        _check_path("JuiceFS", "mount", self.mount)
        _check_path("JuiceFS", "cache_dir", self.cache_dir)
        if not isinstance(self.cache_size_mib, int) or self.cache_size_mib <= 0:
            raise ConfigError(f"JuiceFS cache_size_mib={self.cache_size_mib!r} must be a "
                              "positive number of MiB, e.g. 102400")
        if self.password_env is not None and self.password_file is not None:
            raise ConfigError("JuiceFS takes password_env or password_file, not both")
        if self.password_env is not None and not _ENV_NAME.match(self.password_env):
            raise ConfigError(f"JuiceFS password_env={self.password_env!r} must be the name of "
                              "an environment variable, e.g. 'JFS_META_PASSWORD'")
        if self.password_file is not None:
            _check_path("JuiceFS", "password_file", self.password_file)

    def password(self) -> str | None:
        """The password from ``password_env`` (read here, at submission), else None.

        A ``password_file`` is read by the job itself on the cluster; see
        ``check_password_file`` for the local check.
        """
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if not value:
            raise ConfigError(f"the JuiceFS password variable ${self.password_env} is not set; "
                              f"export it before submitting (e.g. read -rs {self.password_env}; "
                              f"export {self.password_env})")
        return value


def check_password_file(path: str) -> str:
    """Reads a local password file, refusing any mode other than 0600 (or 0400)."""
    file = pathlib.Path(path).expanduser()
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        raise ConfigError(f"the JuiceFS password file {path} does not exist") from None
    if mode & 0o077:
        raise ConfigError(f"the JuiceFS password file {path} has mode {mode:04o}; make it "
                          f"private with `chmod 600 {path}`")
    return file.read_text().strip()


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where and how jobs run: one entry of a clusters file.

    kind: ``slurm``, ``vertex``, ``ssh`` or ``local``. login: the ssh alias (from
    ``~/.ssh/config``) of the login node or host, or ``local`` to run the commands here.
    gres_per_chip: the GRES one chip is (``gpu`` or ``gpu:h100``); None on CPU nodes, where
    ``chips_per_node`` is 0. root: where code snapshots and job scripts go; work: where runs'
    workdirs go; cache: the prepared-data cache (``$THESEUS_DATA``). uv_groups: the
    dependency groups ``uv sync`` installs on the node; venv: an existing virtual
    environment to use instead (no ``uv sync``; e.g. a shared one, or the tests' own).
    env: environment variables for every job (never secrets). time_limit: each SLURM job's
    ``--time`` (a longer run requeues at the limit and resumes). signal_seconds: how long
    before the time limit SLURM sends SIGUSR1 so the run saves and requeues. login_setup:
    shell lines run before every command on the login node (``module load slurm``).
    """

    name: str
    kind: Kind
    login: str = "local"
    partitions: tuple[str, ...] = ()
    account: str | None = None
    qos: str | None = None
    gres_per_chip: str | None = None
    chips_per_node: int = 0
    root: str = "~/theseus"
    work: str = "~/theseus/runs"
    cache: str = "~/theseus/cache"
    uv_groups: tuple[str, ...] = ("cpu",)
    venv: str | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    juicefs: JuiceFS | None = None
    time_limit: str | int = "4:00:00"
    signal_seconds: int = 300
    login_setup: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"cluster name {self.name!r} must be letters, digits, '.', '_' "
                              "or '-', e.g. 'mycluster'")
        if self.kind not in KINDS:
            raise ConfigError(f"cluster {self.name}: kind={self.kind!r} must be one of "
                              f"{', '.join(KINDS)}")
        for field in ("partitions", "uv_groups"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"cluster {self.name}: {field} must be a tuple of strings, "
                                  f"e.g. ({value!r},)")
            object.__setattr__(self, field, tuple(value))
        if not isinstance(self.chips_per_node, int) or self.chips_per_node < 0:
            raise ConfigError(f"cluster {self.name}: chips_per_node={self.chips_per_node!r} "
                              "must be 0 (CPU nodes) or a positive number")
        if self.chips_per_node and not self.gres_per_chip and self.kind == "slurm":
            raise ConfigError(f"cluster {self.name}: chips_per_node={self.chips_per_node} "
                              "needs gres_per_chip, e.g. 'gpu' or 'gpu:h100'")
        for field in ("root", "work", "cache") + (("venv",) if self.venv else ()):
            _check_path(f"cluster {self.name}", field, getattr(self, field))
        for key in self.env:
            if not _ENV_NAME.match(key):
                raise ConfigError(f"cluster {self.name}: env key {key!r} is not a valid "
                                  "environment variable name")
        from theseus.launch.sbatch import parse_time  # sbatch imports this module

        try:
            parse_time(self.time_limit)
        except ConfigError as e:
            raise ConfigError(f"cluster {self.name}: {e}".replace("time=", "time_limit=")) from None
        if not isinstance(self.signal_seconds, int) or self.signal_seconds < 0:
            raise ConfigError(f"cluster {self.name}: signal_seconds={self.signal_seconds!r} "
                              "must be a number of seconds >= 0")
        object.__setattr__(self, "env", dict(self.env))

    @property
    def is_local(self) -> bool:
        """True when the commands run on this machine rather than over ssh."""
        return self.login == "local"


def _entries(value: object, path: pathlib.Path) -> list[Cluster]:
    """Resolves ``CLUSTERS`` (a list, or a function returning one) to clusters."""
    if callable(value):
        value = value()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{path}: CLUSTERS must be a list of Cluster(...) (or a function "
                          "returning one)")
    clusters = []
    for entry in value:
        item = entry() if callable(entry) and not isinstance(entry, Cluster) else entry
        if not isinstance(item, Cluster):
            raise ConfigError(f"{path}: CLUSTERS holds {item!r}, which is not a Cluster; use "
                              "theseus.launch.cluster.Cluster(...)")
        clusters.append(item)
    return clusters


def clusters_file(path: str | os.PathLike | None = None) -> pathlib.Path:
    """The clusters file: ``path``, else ``$THESEUS_CLUSTERS``, else ~/.theseus/clusters.py."""
    chosen = path or os.environ.get("THESEUS_CLUSTERS") or DEFAULT_FILE
    return pathlib.Path(chosen).expanduser()


def load_clusters(path: str | os.PathLike | None = None) -> dict[str, Cluster]:
    """Every cluster a clusters file defines, by name."""
    file = clusters_file(path)
    if not file.is_file():
        raise ConfigError(f"no clusters file at {file}; copy configs/clusters.py there and edit "
                          "it, or pass --clusters FILE")
    spec = importlib.util.spec_from_file_location(f"theseus_clusters_{abs(hash(file))}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ConfigError as e:
        raise ConfigError(f"{file}: {e}") from None
    if not hasattr(module, "CLUSTERS"):
        raise ConfigError(f"{file} defines no CLUSTERS; add CLUSTERS = [Cluster(...), ...]")
    clusters: dict[str, Cluster] = {}
    for cluster in _entries(module.CLUSTERS, file):
        if cluster.name in clusters:
            raise ConfigError(f"{file}: two clusters are named {cluster.name!r}; rename one")
        clusters[cluster.name] = cluster
    return clusters


def get_cluster(name: str, path: str | os.PathLike | None = None,
                kinds: tuple[str, ...] = KINDS) -> Cluster:
    """The cluster called ``name``; an unknown name lists the known ones."""
    clusters = load_clusters(path)
    if name not in clusters:
        known = ", ".join(sorted(clusters)) or "none"
        raise ConfigError(f"unknown cluster {name!r}{did_you_mean(name, clusters)}; "
                          f"{clusters_file(path)} defines: {known}")
    cluster = clusters[name]
    if cluster.kind not in kinds:
        raise ConfigError(f"cluster {name} is kind {cluster.kind!r}, but this needs "
                          f"{' or '.join(kinds)}")
    return cluster

