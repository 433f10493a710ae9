"""Turning what a user names into a config: a job, a ``.py`` spec, a ``config.json`` or a run.

``resolve("gpt:small")``, ``resolve("configs/gpt.py:small")``, ``resolve("my_run.py")``
(its ``config()``), ``resolve("runs/x/config.json")`` and ``resolve("runs/x")`` all return a
:class:`Resolved`: the config, the module it came from, and the :class:`Base` a generated
config file starts from. ``customize`` then applies fiddlers and ``path=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import types
from collections.abc import Sequence

import fiddle as fdl

from theseus.config.codegen import Base, Fiddler
from theseus.config.errors import ConfigError
from theseus.config.loading import load_config, parse_call, split_spec
from theseus.config.overrides import apply_fiddler, apply_set, find_fiddler

_JOB_RE = re.compile(r"^[A-Za-z_]\w*(:.*)?$", re.DOTALL)
_FILE_RE = re.compile(r"^.+?\.py(:.*)?$", re.DOTALL)


@dataclasses.dataclass
class Resolved:
    """A config, the module it came from (None for saved JSON), and how to write it as code."""

    config: fdl.Buildable
    module: types.ModuleType | None
    base: Base


def resolve(spec: str, loads: Sequence[str] = ()) -> Resolved:
    """Loads the config ``spec`` names; ``loads`` are ``--load`` files or modules.

    ``spec`` is a job (``gpt:small``), ``PATH.py[:FN(args)]``, ``PATH.json`` or a run
    directory holding ``config.json``. Every user mistake is a ConfigError.
    """
    from theseus import jobs

    spec = spec.strip()
    path = pathlib.Path(spec)
    if loads:
        jobs.load_groups(loads)  # registers their models and datasets before anything is built
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"'{spec}' is a directory without a config.json, so it is not a run")
        spec, path = str(path / "config.json"), path / "config.json"
    if spec.endswith(".json"):
        cfg, _ = load_config(spec)
        return Resolved(cfg, None, Base(spec))
    if _FILE_RE.match(spec):
        cfg, module = load_config(spec)
        _, call = split_spec(spec)
        name, args, kwargs = parse_call(call, "config function")
        return Resolved(cfg, module, Base(spec, module, name, args, kwargs))
    if _JOB_RE.match(spec):
        cfg, module, base = jobs.resolve(spec, loads)
        return Resolved(cfg, module, base)
    raise ConfigError(f"cannot read config '{spec}': expected a job such as gpt:small, a file such as "
                      "configs/gpt.py:small or my_run.py, a config.json, or a run directory")


def customize(cfg: fdl.Buildable, module: types.ModuleType | None, sets: Sequence[str] = (),
              fiddlers: Sequence[str] = ()) -> tuple[fdl.Buildable, list[Fiddler]]:
    """Applies ``fiddlers`` (``NAME`` or ``NAME(args)``, looked up in ``module`` first) then
    ``path=value`` ``sets``, in order.

    ``model=NAME`` / ``data=NAME`` swap in a registered model or dataset. Returns the config
    and the fiddlers as applied (for writing them into a config file).
    """
    from theseus.registry import swap_part

    applied = []
    for spec in fiddlers:
        name, args, kwargs = parse_call(spec, "fiddler")
        fn = find_fiddler(name, module)
        new = apply_fiddler(cfg, spec, module)
        applied.append(Fiddler(fn, args, kwargs, returns_new=new is not cfg))
        cfg = new
    for assignment in sets:
        if "=" not in assignment:
            raise ConfigError(f"override {assignment!r} is not of the form path=value, "
                              "e.g. model.num_layers=4")
        if not swap_part(cfg, assignment):
            apply_set(cfg, assignment)
    return cfg, applied
