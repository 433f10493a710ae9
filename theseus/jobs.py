"""The experiment registry: config functions in ``configs/*.py`` and in ``--load`` modules.

A *job* is a public function, defined in such a module, that takes no required arguments
and is annotated to return a fiddle config (and is not a registered model or dataset)::

    def small() -> fdl.Config[Experiment]:
        \"\"\"GPT-2 small: 124M parameters ...\"\"\"

It is named ``GROUP:FUNCTION``, the group being the file's (or module's) last name:
``gpt:small`` is ``small()`` in ``configs/gpt.py``. Adding a file to ``configs/`` adds its
jobs; ``--load FILE.py`` or ``--load package.module`` adds more for one command.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pathlib
import re
import sys
import types
import typing
from collections.abc import Sequence

import fiddle as fdl

from theseus.config.codegen import Base
from theseus.config.errors import ConfigError, did_you_mean
from theseus.config.loading import DEFAULT_FUNCTION, bind_error, import_file, parse_call

CONFIGS = "configs"


@dataclasses.dataclass(frozen=True)
class Group:
    """The jobs of one module: ``name`` (``gpt``), where it came from, and the module."""

    name: str
    source: str
    module: types.ModuleType

    def jobs(self) -> list[Job]:
        """The jobs this module defines, in the order they appear in the file."""
        found = [(fn.__code__.co_firstlineno, name, fn) for name, fn in vars(self.module).items()
                 if is_job(self.module, name, fn)]
        return [Job(self, name, _first_line(fn)) for _, name, fn in sorted(found)]


@dataclasses.dataclass(frozen=True)
class Job:
    """One experiment: ``group:function`` and the first line of its docstring."""

    group: Group
    function: str
    summary: str

    @property
    def name(self) -> str:
        """``gpt:small``."""
        return f"{self.group.name}:{self.function}"

    def config(self) -> fdl.Buildable:
        """A fresh config from the job's function."""
        return getattr(self.group.module, self.function)()


def _first_line(fn: typing.Any) -> str:
    """The first line of a function's docstring, or ``''``."""
    doc = inspect.getdoc(fn) or ""
    return doc.splitlines()[0].strip() if doc else ""


def is_job(module: types.ModuleType, name: str, obj: typing.Any) -> bool:
    """Whether ``module.name`` is a job: public, defined there, callable with no arguments,
    annotated to return a fiddle config, and not a registered model or dataset."""
    from theseus.registry import is_registered

    if name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != module.__name__:
        return False
    if is_registered(obj):
        return False
    required = [p for p in inspect.signature(obj).parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return not required and _returns_config(obj)


def _returns_config(fn: typing.Any) -> bool:
    """Whether ``fn``'s return annotation is a fiddle Buildable (``fdl.Config[...]`` etc.)."""
    annotation = fn.__annotations__.get("return")
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(fn)["return"]
        except Exception:  # noqa: BLE001 - an annotation that does not evaluate: read its text
            return bool(re.search(r"\b(Config|Partial|Buildable)\b", annotation))
    origin = typing.get_origin(annotation) or annotation
    return inspect.isclass(origin) and issubclass(origin, fdl.Buildable)


def configs_dir() -> pathlib.Path:
    """``./configs``: the folder of experiment files, relative to the current directory."""
    return pathlib.Path(CONFIGS)


def config_groups() -> tuple[list[Group], list[str]]:
    """Imports every ``configs/*.py``; returns the groups and a warning per broken file."""
    groups, warnings = [], []
    for path in sorted(configs_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            groups.append(Group(path.stem, path.as_posix(), _import(path)))
        except ConfigError as e:
            warnings.append(f"skipped {path.as_posix()}: {e}")
    return groups, warnings


def _import(path: pathlib.Path) -> types.ModuleType:
    """Imports a config file; any failure becomes a ConfigError naming the file."""
    try:
        return import_file(path)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken user file is reported, not a crash
        raise ConfigError(f"cannot import '{path}': {type(e).__name__}: {e}") from None


def load_groups(loads: Sequence[str]) -> list[Group]:
    """Imports each ``--load`` argument: a ``.py`` file or a dotted module name."""
    groups = []
    for ref in loads:
        path = pathlib.Path(ref)
        if ref.endswith(".py") or path.exists():
            module = _import(path)
            groups.append(Group(path.stem, path.as_posix(), module))
            continue
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", ref):
            raise ConfigError(f"cannot load '{ref}': give a .py file or a module name like mypkg.experiments")
        if "" not in sys.path and str(pathlib.Path.cwd()) not in sys.path:
            sys.path.insert(0, str(pathlib.Path.cwd()))
        try:
            module = importlib.import_module(ref)
        except ModuleNotFoundError as e:
            raise ConfigError(f"cannot load '{ref}': there is no such file, and no module "
                              f"'{e.name}' can be imported") from None
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"cannot load '{ref}': {type(e).__name__}: {e}") from None
        groups.append(Group(ref.rsplit(".", 1)[-1], ref, module))
    return groups


def all_groups(loads: Sequence[str] = ()) -> tuple[list[Group], list[str]]:
    """Every group: ``configs/*.py`` then ``--load``; warnings for broken config files.

    Two different modules with one group name are a ConfigError.
    """
    groups, warnings = config_groups()
    by_name = {g.name: g for g in groups}
    for group in load_groups(loads):
        other = by_name.get(group.name)
        if other is not None and other.module is not group.module:
            raise ConfigError(f"two experiment files are named '{group.name}' ({other.source} and "
                              f"{group.source}); rename one")
        if other is None:
            by_name[group.name] = group
            groups.append(group)
    return groups, warnings


def find_group(name: str, loads: Sequence[str] = ()) -> Group:
    """The group ``name``: from ``--load`` first, else ``configs/NAME.py``."""
    for group in load_groups(loads):
        if group.name == name:
            return group
    path = configs_dir() / f"{name}.py"
    if name.isidentifier() and path.is_file():
        return Group(name, path.as_posix(), _import(path))
    names = [g.name for g in all_groups(loads)[0]]
    raise ConfigError(f"unknown job group '{name}'{did_you_mean(name, names)}; groups: "
                      f"{', '.join(names) or '(none: no configs/ folder here)'}; `theseus jobs` lists every job")


def resolve(name: str, loads: Sequence[str] = ()) -> tuple[fdl.Buildable, types.ModuleType, Base]:
    """Calls the job ``GROUP:FUNCTION`` (or ``GROUP:FUNCTION(literal args)``; plain ``GROUP``
    means ``GROUP:config``); returns the config, its module, and the base to write it from."""
    group_name, _, call = name.partition(":")
    group = find_group(group_name.strip(), loads)
    fn_name, args, kwargs = parse_call(call or DEFAULT_FUNCTION, "job")
    fn = getattr(group.module, fn_name, None)
    if not inspect.isfunction(fn) or fn_name.startswith("_"):
        jobs = [j.function for j in group.jobs()]
        raise ConfigError(f"unknown job '{group.name}:{fn_name}'{did_you_mean(fn_name, jobs)}; jobs in "
                          f"{group.source}: {', '.join(jobs) or '(none)'}")
    problem = bind_error(fn, args, kwargs)
    if problem:
        raise ConfigError(f"wrong arguments for job '{name}': {problem}")
    cfg = fn(*args, **kwargs)
    if not isinstance(cfg, fdl.Buildable):
        raise ConfigError(f"job '{name}' returned {type(cfg).__name__}, not a fiddle config")
    return cfg, group.module, Base(name.strip(), group.module, fn_name, args, kwargs)
