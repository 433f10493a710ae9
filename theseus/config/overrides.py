"""Command-line overrides: ``--fdl_set=path=value`` and ``--fiddler=name(args)``, in order.

Paths are checked against the configured signatures (a misspelt field names the
valid ones) and values against the parameters' type annotations.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import reprlib
import types
from collections.abc import Sequence
from typing import Any

import fiddle as fdl
from fiddle import signatures

from theseus.config.errors import ConfigError, did_you_mean
from theseus.config.loading import bind_error, parse_call, public_functions
from theseus.config.serialize import MISSING, field_value
from theseus.config.typecheck import (  # noqa: F401  (coerce and type_name are public here too)
    _MAPPINGS,
    _SEQUENCES,
    NO_ANNOTATION,
    TypeMismatch,
    coerce,
    element_annotation,
    type_name,
)

_SEGMENT_RE = re.compile(r"\.([A-Za-z_]\w*)|\[\s*(-?\d+|'[^']*'|\"[^\"]*\")\s*\]")
_BARE_WORD_RE = re.compile(r"[A-Za-z_/.~][\w.\-/:~+@]*")
_PATH_HELP = (
    "use dotted field names with optional [0] or ['key'] indices, e.g. model.num_layers or data.sources[0].path"
)


@dataclasses.dataclass
class _Step:
    """One resolved segment of a path: ``holder[key]`` (or ``holder.key``), spelled ``text``."""

    holder: Any
    key: str | int
    text: str
    annotation: Any


def apply_overrides(
    cfg: fdl.Buildable, overrides: Sequence[tuple[str, str]], module: types.ModuleType | None
) -> fdl.Buildable:
    """Applies ``("set", "path=value")`` and ``("fiddler", "name(args)")`` items in order.

    ``cfg`` is changed in place; the result is returned because a fiddler may
    return a new config. Fiddler names are looked up in ``module`` first.
    """
    for kind, text in overrides:
        if kind == "set":
            apply_set(cfg, text)
        elif kind == "fiddler":
            cfg = apply_fiddler(cfg, text, module)
        else:
            raise ValueError(f"unknown override kind {kind!r}; expected 'set' or 'fiddler'")
    return cfg


def apply_set(cfg: fdl.Buildable, assignment: str) -> None:
    """Applies one ``path=value`` assignment to ``cfg`` in place, type-checked."""
    path, sep, value_text = assignment.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ConfigError(f"override {assignment!r} is not of the form path=value, e.g. model.num_layers=4")
    set_value(cfg, path, parse_value(value_text, path))


def parse_value(text: str, path: str) -> Any:
    """Parses an override value: a Python literal, else a bare word taken as a string."""
    text = text.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        if _BARE_WORD_RE.fullmatch(text):
            return text
    raise ConfigError(
        f"could not parse value {text!r} for '{path}'; use a Python literal, e.g. 4, 0.5, True, None, 'text' or [1, 2]"
    )


def set_value(cfg: fdl.Buildable, path: str, value: Any) -> None:
    """Sets the field at ``path`` (``model.layers[0].dim``) to ``value`` after a type check."""
    steps = _resolve(cfg, parse_path(path), path)
    last = steps[-1]
    annotation = last.annotation
    if annotation is NO_ANNOTATION:
        annotation = _fallback_annotation(last)
    try:
        value = coerce(value, annotation)
    except TypeMismatch:
        raise ConfigError(
            f"{path} expects {type_name(annotation)}, got {type(value).__name__} {value!r}{_hint(value, annotation)}"
        ) from None
    _assign(steps, len(steps) - 1, value)


def parse_path(path: str) -> list[tuple[str, str | int]]:
    """Splits ``a.b[0]['k'].c`` into ``[('attr','a'), ('attr','b'), ('item',0), ('item','k'), ('attr','c')]``."""
    segments: list[tuple[str, str | int]] = []
    text, pos = "." + path, 0  # The leading dot makes the first segment a field name.
    while pos < len(text):
        match = _SEGMENT_RE.match(text, pos)
        if match is None:
            raise ConfigError(f"invalid override path '{path}'; {_PATH_HELP}")
        segments.append(("attr", match[1]) if match[1] else ("item", ast.literal_eval(match[2])))
        pos = match.end()
    return segments


def _resolve(cfg: fdl.Buildable, segments: list[tuple[str, str | int]], path: str) -> list[_Step]:
    """Walks the path, checking every field name and index; returns one step per segment."""
    steps: list[_Step] = []
    current, annotation, text = cfg, NO_ANNOTATION, ""
    for i, (kind, key) in enumerate(segments):
        if kind == "attr":
            annotation = _field_annotation(current, str(key), text, path)
            text = f"{text}.{key}" if text else str(key)
        else:
            annotation = _check_item(current, key, annotation, text, path)
            text = f"{text}[{key!r}]"
        steps.append(_Step(current, key, text, annotation))
        if i + 1 < len(segments):
            current = _child(current, key, text, path)
    return steps


def _field_annotation(holder: Any, name: str, text: str, path: str) -> Any:
    """Checks ``name`` is a field of the Buildable ``holder``; returns its annotation."""
    if not isinstance(holder, fdl.Buildable):
        raise ConfigError(f"cannot set '{path}': '{text}' is {_describe(holder)}, not a config with fields")
    info = holder.__signature_info__
    valid = info.valid_param_names
    if name not in valid and not (info.has_var_keyword and name not in info.parameters):
        full = f"{text}.{name}" if text else name
        cls = getattr(holder.__fn_or_cls__, "__qualname__", repr(holder.__fn_or_cls__))
        raise ConfigError(
            f"unknown field '{full}': {cls} has no field '{name}'{did_you_mean(name, valid)}; "
            f"valid fields: {', '.join(valid) or '(none)'}"
        )
    return signatures.get_type_hints(holder.__fn_or_cls__).get(name, NO_ANNOTATION)


def _check_item(holder: Any, key: str | int, annotation: Any, text: str, path: str) -> Any:
    """Checks ``holder[key]`` exists; returns the element annotation."""
    if isinstance(holder, (list, tuple)):
        if not isinstance(key, int):
            raise ConfigError(
                f"cannot set '{path}': '{text}' is a {type(holder).__name__}, index it with [0], not [{key!r}]"
            )
        if not -len(holder) <= key < len(holder):
            raise ConfigError(f"index {key} out of range in '{path}': '{text}' has {len(holder)} items")
    elif isinstance(holder, dict):
        if key not in holder:
            keys = ", ".join(repr(k) for k in holder) or "(none)"
            raise ConfigError(f"cannot set '{path}': '{text}' has no key {key!r}; its keys: {keys}")
    else:
        raise ConfigError(f"cannot set '{path}': '{text}' is {_describe(holder)}, which cannot be indexed")
    return element_annotation(annotation, key)


def _child(holder: Any, key: str | int, text: str, path: str) -> Any:
    """The current value of ``holder[key]`` / ``holder.key``, to descend into."""
    if not isinstance(holder, fdl.Buildable):
        return holder[key]
    value = field_value(holder, str(key))
    if value is MISSING:
        raise ConfigError(
            f"cannot set '{path}': '{text}' is required and has no value yet; set it in the config function first"
        )
    return value


def _fallback_annotation(step: _Step) -> Any:
    """Without an annotation, a plain int/float/bool/str current value fixes the type."""
    is_field = isinstance(step.holder, fdl.Buildable)
    current = field_value(step.holder, str(step.key)) if is_field else step.holder[step.key]
    return type(current) if type(current) in (int, float, bool, str) else NO_ANNOTATION


def _assign(steps: list[_Step], index: int, value: Any) -> None:
    """Sets ``steps[index]`` to ``value``; containers are copied, not mutated, up to the Buildable."""
    step = steps[index]
    holder = step.holder
    if isinstance(holder, fdl.Buildable):
        setattr(holder, str(step.key), value)
        return
    if isinstance(holder, dict):
        new: Any = dict(holder)
        new[step.key] = value
    else:
        items = list(holder)
        items[step.key] = value  # type: ignore[index]
        new = items if isinstance(holder, list) else tuple(items)
    _assign(steps, index - 1, new)


def _describe(value: Any) -> str:
    """A short description of a value for error messages: ``an int (3)``."""
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return "None" if value is None else f"{article} {name} ({reprlib.repr(value)})"


def _hint(value: Any, annotation: Any) -> str:
    """An extra clause for common slips (``true`` for True, unquoted numbers for str)."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return f"; write {value.capitalize()} for a bool"
    if isinstance(value, str) and value.lower() in ("none", "null"):
        return "; write None for no value"
    if annotation is str and not isinstance(value, str):
        return f"; quote it to make a string, e.g. '{value!r}'"
    return ""


def apply_fiddler(cfg: fdl.Buildable, spec: str, module: types.ModuleType | None) -> fdl.Buildable:
    """Calls the fiddler ``name(args)`` as ``fn(cfg, *args, **kwargs)``; returns the config."""
    name, args, kwargs = parse_call(spec, "fiddler")
    fn = find_fiddler(name, module)
    problem = bind_error(fn, (cfg, *args), kwargs)
    if problem:
        raise ConfigError(f"wrong arguments for fiddler '{spec}': {problem}")
    result = fn(cfg, *args, **kwargs)
    if result is None:
        return cfg
    if not isinstance(result, fdl.Buildable):
        raise ConfigError(
            f"fiddler '{name}' returned {type(result).__name__}; a fiddler must change the config in place "
            "and return None, or return a new fiddle config"
        )
    return result


def find_fiddler(name: str, module: types.ModuleType | None) -> Any:
    """Finds a fiddler: in the config module first, then by dotted path ``pkg.mod.fn``."""
    fn = _getattr_path(module, name) if module is not None else None
    if fn is None and "." in name:
        fn = _import_dotted(name)
    if callable(fn):
        return fn
    if module is None:
        raise ConfigError(f"unknown fiddler '{name}'; give a dotted path to a function, e.g. configs.gpt.bf16")
    available = public_functions(module)
    raise ConfigError(
        f"unknown fiddler '{name}'{did_you_mean(name, available)}; functions in {module.__name__}: "
        f"{', '.join(available) or '(none)'}, or give a dotted path such as pkg.module.fn"
    )


def _getattr_path(obj: Any, dotted: str) -> Any:
    """``obj.a.b.c`` for ``dotted='a.b.c'``, or None if any part is missing."""
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _import_dotted(name: str) -> Any:
    """Imports the longest module prefix of ``name`` and returns the attribute path after it."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue
            raise
        return _getattr_path(module, ".".join(parts[i:]))
    return None
