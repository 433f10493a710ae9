"""Writing config values as Python source: ``fdl.Config(GPTConfig, num_layers=4)``.

``Imports`` collects what an expression refers to and gives each object a short name
(``GPTConfig``, or ``gpt_mod.GPTConfig`` when two objects share a name); ``expression``
writes a value (literals, configs, functions, classes, enums) with that name table,
breaking long calls over several lines the way a person would.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import math
from typing import Any

import fiddle as fdl

from theseus.config.errors import ConfigError

WIDTH = 96  # the longest line written before a call is broken over several lines


class Imports:
    """The import lines a generated file needs, and the name each object goes by."""

    def __init__(self) -> None:
        self._names: dict[tuple[str, str], str] = {}  # (module, qualname) -> name in the file
        self._lines: set[str] = set()
        # name -> the (module, name) it stands for; the names the file itself uses are taken
        self._owners: dict[str, tuple[str, str]] = {n: ("", n) for n in ("fdl", "cfg", "config", "HARDWARE")}

    def module(self, module_name: str, alias: str | None = None) -> str:
        """Imports a whole module (``from pkg import mod`` or ``import mod``); returns its name."""
        package, _, leaf = module_name.rpartition(".")
        name = alias or leaf
        if self._owners.setdefault(name, (module_name, "")) != (module_name, ""):
            name = _alias(module_name)
            self._owners[name] = (module_name, "")
        as_name = f" as {name}" if name != leaf else ""
        self._lines.add(f"from {package} import {leaf}{as_name}" if package else f"import {leaf}{as_name}")
        return name

    def line(self, text: str) -> None:
        """Adds an import line written by the caller."""
        self._lines.add(text)

    def reference(self, obj: Any) -> str:
        """The name a module-level function, class or enum class goes by in the file."""
        module_name = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not module_name or not qualname or "<" in qualname or module_name == "__main__":
            raise ConfigError(f"{obj!r} cannot be written as Python: define it at module level "
                              "in an importable module")
        if _lookup(module_name, qualname) is not obj:
            raise ConfigError(f"{module_name}.{qualname} cannot be imported by that name, so it "
                              "cannot be written into a config file")
        key = (module_name, qualname)
        if key not in self._names:
            top = qualname.split(".")[0]
            owner = self._owners.setdefault(top, (module_name, top))
            if owner == (module_name, top):
                self._lines.add(f"from {module_name} import {top}")
                self._names[key] = qualname
            else:  # two objects with one name: refer to this one through its module
                self._names[key] = f"{self.module(module_name, _alias(module_name))}.{qualname}"
        return self._names[key]

    def block(self) -> str:
        """The import lines: standard library, then third party, then the rest, with a blank
        line between groups."""
        groups: list[list[str]] = [[], [], []]
        for line in sorted(self._lines):
            root = line.split()[1].split(".")[0]
            groups[0 if root in _STDLIB else 1 if root in _THIRD_PARTY else 2].append(line)
        return "\n\n".join("\n".join(g) for g in groups if g)


_STDLIB = {"pathlib", "math", "enum", "dataclasses", "typing"}
_THIRD_PARTY = {"fiddle", "jax", "numpy", "optax", "flax"}


def _alias(module_name: str) -> str:
    """A name for a module imported to disambiguate: ``theseus.models.gpt`` -> ``models_gpt``."""
    return "_".join(module_name.split(".")[-2:])


def _lookup(module_name: str, qualname: str) -> Any:
    """Imports ``module_name`` and follows ``qualname``; None when that fails."""
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def expression(value: Any, imports: Imports, indent: int = 0) -> str:
    """Python source that evaluates to ``value``; ``indent`` is the column the text starts at."""
    if isinstance(value, fdl.Buildable):
        return _call(value, imports, indent)
    if isinstance(value, (list, tuple)):
        items = [expression(v, imports, indent + 4) for v in value]
        if isinstance(value, tuple):
            return _wrap("(", items + ([""] if len(items) == 1 else []), ")", indent)
        return _wrap("[", items, "]", indent)
    if isinstance(value, dict):
        items = [f"{expression(k, imports)}: {expression(v, imports, indent + 4)}" for k, v in value.items()]
        return _wrap("{", items, "}", indent)
    if isinstance(value, enum.Enum):
        return f"{imports.reference(type(value))}.{value.name}"
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return imports.reference(value)
    if isinstance(value, float) and not math.isfinite(value):
        imports.line("import math")
        return "math.nan" if math.isnan(value) else ("math.inf" if value > 0 else "-math.inf")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    raise ConfigError(f"a value of type {type(value).__name__} ({value!r}) cannot be written as "
                      "Python; use literals, fiddle configs, or module-level functions and classes")


def _call(cfg: fdl.Buildable, imports: Imports, indent: int) -> str:
    """``fdl.Config(Target, field=value, ...)`` with only the fields set explicitly."""
    head = f"fdl.{type(cfg).__name__}"
    if not isinstance(cfg, (fdl.Config, fdl.Partial)):
        raise ConfigError(f"a {head} cannot be written as Python; use fdl.Config or fdl.Partial")
    imports.line("import fiddle as fdl")
    args = [imports.reference(cfg.__fn_or_cls__)]
    for key, value in cfg.__arguments__.items():
        text = expression(value, imports, indent + 4)
        args.append(text if isinstance(key, int) else f"{key}={text}")
    return _wrap(f"{head}(", args, ")", indent)


def _wrap(open_: str, items: list[str], close: str, indent: int) -> str:
    """``open a, b close`` on one line if it fits, else one item per line, indented."""
    one_line = open_ + ", ".join(items) + close
    if indent + len(one_line) <= WIDTH and "\n" not in one_line:
        return one_line.replace(", )", ",)")
    pad = " " * (indent + 4)
    body = "".join(f"{pad}{item},\n" for item in items if item)
    return f"{open_}\n{body}{' ' * indent}{close}"
