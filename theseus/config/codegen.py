"""Writing a config as a Python file a person could have written.

The file imports the preset it starts from, applies the fiddlers, sets the fields that
differ, and records the hardware it asks for::

    from configs import gpt

    HARDWARE = {"chip": "h100", "n_chips": 8}

    def config() -> fdl.Config[Experiment]:
        cfg = gpt.small()
        cfg.trainer.batch_size = 16
        return cfg

It runs with ``launch.py --config=OUT.py:config`` and ``theseus run NAME OUT.py DIR``.
Before anything is written, the text is executed and must rebuild exactly the same config.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import types
from collections.abc import Sequence
from typing import Any

import fiddle as fdl

from theseus.config.compare import differences
from theseus.config.errors import ConfigError
from theseus.config.pyexpr import Imports, expression
from theseus.config.serialize import MISSING
from theseus.fileio import atomic_write_text

HARDWARE_NAME = "HARDWARE"  # the module-level dict a launcher reads: {"chip": ..., "n_chips": ...}


@dataclasses.dataclass(frozen=True)
class Hardware:
    """The accelerators a config asks for: a chip kind (``h100``, ``v5e``, ``cpu``) and a count."""

    chip: str
    n_chips: int = 1

    def __post_init__(self):
        if not isinstance(self.chip, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", self.chip):
            raise ConfigError(f"chip {self.chip!r} is not a chip name; use lower case such as h100, "
                              "a100, v5e or cpu")
        if isinstance(self.n_chips, bool) or not isinstance(self.n_chips, int) or self.n_chips < 1:
            raise ConfigError(f"the number of chips must be a positive integer, got {self.n_chips!r}")

    def as_dict(self) -> dict[str, Any]:
        """``{"chip": ..., "n_chips": ...}``, as written into the file."""
        return {"chip": self.chip, "n_chips": self.n_chips}


def read_hardware(module: types.ModuleType | None) -> Hardware | None:
    """The ``HARDWARE`` a config module records, or None if it records none."""
    value = getattr(module, HARDWARE_NAME, None) if module is not None else None
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"chip", "n_chips"} or "chip" not in value:
        raise ConfigError(f"{HARDWARE_NAME} in {module.__name__} must be a dict like "
                          "{'chip': 'h100', 'n_chips': 8}")
    return Hardware(value["chip"], value.get("n_chips", 1))


@dataclasses.dataclass(frozen=True)
class Base:
    """What a config starts from: ``module.function(*args, **kwargs)``, or nothing (a saved
    ``config.json``, written out in full). ``label`` names it for people (``gpt:tiny``)."""

    label: str
    module: types.ModuleType | None = None
    function: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def call(self) -> fdl.Buildable:
        """A fresh copy of the base config."""
        return getattr(self.module, self.function)(*self.args, **self.kwargs)


@dataclasses.dataclass(frozen=True)
class Fiddler:
    """A fiddler as applied: ``fn(cfg, *args, **kwargs)``; ``returns_new`` if it returned a config."""

    fn: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    returns_new: bool = False


def render(cfg: fdl.Buildable, base: Base | None, *, fiddlers: Sequence[Fiddler] = (),
           hardware: Hardware | None = None, how: str = "") -> str:
    """The text of a config file whose ``config()`` returns ``cfg``.

    ``base`` is called, ``fiddlers`` applied, then the fields that still differ are set.
    ``how`` (e.g. the command line) goes into the module docstring.
    """
    imports = Imports()
    imports.line("import fiddle as fdl")
    preamble, body = [], []
    if base is not None and base.module is not None:
        name, preamble = _import_base(base.module, imports)
        start = base.call()
        body.append(f"cfg = {name}.{base.function}({_arguments(base.args, base.kwargs)})")
        for fiddler in fiddlers:
            start = _apply(fiddler, start)
            body.append(_fiddler_line(fiddler, name, base.module, imports))
        body += [_assignment(d.path, d.b, imports) for d in differences(start, cfg)]
    else:
        body.append(f"cfg = {expression(cfg, imports, indent=4)}")
    label = base.label if base is not None else "a saved config"
    changed = len(body) - 1 if base is not None and base.module is not None else None
    code = "\n".join(f"    {line}" for line in body)
    function = (f"def config() -> {_return_annotation(cfg, imports)}:\n"
                f'    """{label}{_changes_phrase(changed)}."""\n{code}\n    return cfg\n')
    parts = [f'"""{_docstring(label, changed, how)}\n"""', "from __future__ import annotations",
             imports.block(), *preamble]
    if hardware is not None:
        parts.append("# The hardware this run asks for; `theseus submit` and the launchers read it.\n"
                     f'{HARDWARE_NAME} = {{"chip": {hardware.chip!r}, "n_chips": {hardware.n_chips}}}'.replace("'", '"'))
    return "\n\n".join(parts) + "\n\n\n" + function


def _docstring(label: str, changed: int | None, how: str) -> str:
    """The module docstring's text: what the file is, then ``how`` it was made."""
    how = how.strip().replace("\\", "\\\\").replace('"' * 3, "'" * 3)
    first = f"A config for theseus: {label}{_changes_phrase(changed)}."
    return f"{first}\n\n{how}" if how else first


def _changes_phrase(changed: int | None) -> str:
    """`` with 2 changes`` / `` unchanged``; nothing for a config written out in full (None)."""
    if changed is None:
        return ""
    return " unchanged" if changed == 0 else f" with {changed} change{'s' * (changed != 1)}"


def _import_base(module: types.ModuleType, imports: Imports) -> tuple[str, list[str]]:
    """Imports the base module by name when it lies under the cwd (or is installed), else by
    path with ``import_file``; returns the name it goes by and any statements it needs."""
    file = pathlib.Path(getattr(module, "__file__", "") or "").resolve()
    cwd = pathlib.Path.cwd().resolve()
    if "." in module.__name__ or file.is_relative_to(cwd) or file.parent == cwd:
        return imports.module(module.__name__), []
    imports.line("import pathlib")
    imports.line("from theseus.config import import_file")
    name = module.__name__
    return name, [f"{name} = import_file(pathlib.Path({str(file)!r}))"]


def _arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """``1, 'a', key=2``: literal arguments as source."""
    return ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])


def _apply(fiddler: Fiddler, cfg: fdl.Buildable) -> fdl.Buildable:
    """Applies a fiddler the way ``apply_fiddler`` does."""
    result = fiddler.fn(cfg, *fiddler.args, **fiddler.kwargs)
    return result if isinstance(result, fdl.Buildable) else cfg


def _fiddler_line(fiddler: Fiddler, base_name: str, base_module: types.ModuleType,
                  imports: Imports) -> str:
    """``gpt.rope(cfg)``, or ``cfg = fn(cfg)`` for a fiddler that returns a new config."""
    if getattr(fiddler.fn, "__module__", None) == base_module.__name__:
        ref = f"{base_name}.{fiddler.fn.__qualname__}"
    else:
        ref = imports.reference(fiddler.fn)
    call = f"{ref}({_arguments(('CFG', *fiddler.args), fiddler.kwargs)})".replace("'CFG'", "cfg")
    return f"cfg = {call}" if fiddler.returns_new else call


def _assignment(path: str, value: Any, imports: Imports) -> str:
    """``cfg.model.num_layers = 4`` (or ``del cfg.x`` for a field left without a value)."""
    target = f"cfg.{path}" if path and not path.startswith("[") else f"cfg{path}"
    if value is MISSING:
        return f"del {target}"
    return f"{target} = {expression(value, imports, indent=4)}"


def _return_annotation(cfg: fdl.Buildable, imports: Imports) -> str:
    """``fdl.Config[Experiment]`` for a config of a class, else ``fdl.Buildable``."""
    target = cfg.__fn_or_cls__
    if isinstance(cfg, (fdl.Config, fdl.Partial)) and isinstance(target, type):
        try:
            return f"fdl.{type(cfg).__name__}[{imports.reference(target)}]"
        except ConfigError:
            pass
    return "fdl.Buildable"


def check_reproduces(text: str, cfg: fdl.Buildable, where: str) -> None:
    """Executes the generated ``text`` and checks its ``config()`` equals ``cfg``."""
    namespace: dict[str, Any] = {"__name__": "theseus_generated_config"}
    exec(compile(text, where, "exec"), namespace)  # noqa: S102 - our own generated code
    again = namespace["config"]()
    diff = differences(again, cfg)
    if diff:
        raise RuntimeError(f"the generated {where} does not reproduce the config at "
                           f"'{diff[0].path}' ({diff[0].a!r} != {diff[0].b!r}); please report this")


def check_output_path(path: pathlib.Path, *, overwrite: bool) -> None:
    """Raises ConfigError unless ``path`` can take a new config file."""
    if path.suffix != ".py" or not path.stem.isidentifier():
        raise ConfigError(f"output '{path}' must be a .py file whose name is a Python identifier, "
                          "e.g. my_run.py")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write '{path}': directory '{path.parent}' does not exist")
    if path.exists() and not overwrite:
        raise ConfigError(f"'{path}' already exists; pass --force to overwrite it")


def write_config_file(path: pathlib.Path | str, cfg: fdl.Buildable, base: Base | None, *,
                      fiddlers: Sequence[Fiddler] = (), hardware: Hardware | None = None,
                      how: str = "", overwrite: bool = False) -> str:
    """Renders, checks and atomically writes a config file; returns its text.

    Raises ConfigError (and writes nothing) for a bad output path or a config that cannot be
    written as Python.
    """
    path = pathlib.Path(path)
    check_output_path(path, overwrite=overwrite)
    text = render(cfg, base, fiddlers=fiddlers, hardware=hardware, how=how)
    check_reproduces(text, cfg, str(path))
    atomic_write_text(path, text)
    return text
