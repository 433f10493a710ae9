"""Command-line overrides: ``--fdl_set=path=value`` and ``--fiddler=name(args)``, in order.

Paths are checked against the configured signatures (a misspelt field names the
valid ones) and values against the parameters' type annotations.
"""

from __future__ import annotations

import ast
import collections.abc as abc
import dataclasses
import enum
import importlib
import inspect
import re
import reprlib
import types
import typing
from collections.abc import Sequence
from typing import Any

import fiddle as fdl
from fiddle import signatures

from theseus.config.errors import ConfigError, did_you_mean
from theseus.config.loading import bind_error, parse_call, public_functions
from theseus.config.serialize import MISSING, field_value

_SEGMENT_RE = re.compile(r"\.([A-Za-z_]\w*)|\[\s*(-?\d+|'[^']*'|\"[^\"]*\")\s*\]")
_BARE_WORD_RE = re.compile(r"[A-Za-z_/.~][\w.\-/:~+@]*")
_PATH_HELP = (
    "use dotted field names with optional [0] or ['key'] indices, e.g. model.num_layers or data.sources[0].path"
)
NO_ANNOTATION: Any = inspect.Parameter.empty  # A parameter without a type annotation.
_SEQUENCES = (list, tuple, abc.Sequence, abc.MutableSequence)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


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


class TypeMismatch(Exception):
    """A value does not fit an annotation (turned into a ConfigError by the caller)."""


def coerce(value: Any, annotation: Any) -> Any:
    """Returns ``value`` if it fits ``annotation`` (an int becomes a float for ``float``,
    a list a tuple for ``tuple[...]``, a member name an Enum member), else raises TypeMismatch.
    """
    if annotation in (NO_ANNOTATION, Any, object):
        return value
    if annotation is None or annotation is type(None):
        return _require(value, value is None)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, args)
    if origin is typing.Literal:
        return _require(value, any(value == a and type(value) is type(a) for a in args))
    if annotation in (bool, int, float):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = (
            isinstance(value, bool)
            if annotation is bool
            else is_number and (annotation is float or isinstance(value, int))
        )
        return _require(float(value) if annotation is float and ok else value, ok)
    if (origin or annotation) in _SEQUENCES:
        return _coerce_sequence(value, origin or annotation, args)
    if (origin or annotation) in _MAPPINGS:
        _require(value, isinstance(value, dict))
        return {coerce(k, args[0]): coerce(v, args[1]) for k, v in value.items()} if len(args) == 2 else value
    cls = origin if isinstance(origin, type) else annotation if isinstance(annotation, type) else None
    if cls is None:
        return value  # TypeVar, ForwardRef, NewType...: not checked.
    if issubclass(cls, enum.Enum) and isinstance(value, str) and value in cls.__members__:
        return cls[value]
    if cls.__module__.split(".")[0] in ("numpy", "jax", "ml_dtypes") and isinstance(value, str):
        return value  # A dtype given by name, e.g. 'bfloat16'.
    return _require(value, isinstance(value, cls))


def _require(value: Any, ok: bool) -> Any:
    """Returns ``value`` if ``ok``, else raises TypeMismatch."""
    if not ok:
        raise TypeMismatch()
    return value


def _coerce_union(value: Any, arms: tuple[Any, ...]) -> Any:
    """The first arm that takes ``value`` unchanged in type wins, else the first that converts it."""
    converted = []
    for arm in arms:
        try:
            result = coerce(value, arm)
        except TypeMismatch:
            continue
        if type(result) is type(value):
            return result
        converted.append(result)
    return _require(converted[0] if converted else value, bool(converted))


def _coerce_sequence(value: Any, container: Any, args: tuple[Any, ...]) -> Any:
    """Checks a list/tuple against ``list[X]``, ``tuple[X, ...]`` or ``tuple[A, B]``."""
    _require(value, isinstance(value, (list, tuple)))
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        _require(value, len(args) == len(value))
        items = [coerce(v, a) for v, a in zip(value, args, strict=True)]
    else:
        items = [coerce(v, args[0]) for v in value] if args else list(value)
    if container in (list, tuple):
        return container(items)
    return type(value)(items)


def element_annotation(annotation: Any, key: Any) -> Any:
    """The annotation of ``x[key]`` given the annotation of ``x`` (Optional is looked through)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in args if a is not type(None)]
        return element_annotation(arms[0], key) if len(arms) == 1 else NO_ANNOTATION
    if origin in _SEQUENCES and args:
        if origin is not tuple or (len(args) == 2 and args[1] is Ellipsis):
            return args[0]
        return args[key] if isinstance(key, int) and -len(args) <= key < len(args) else NO_ANNOTATION
    if origin in _MAPPINGS and len(args) == 2:
        return args[1]
    return NO_ANNOTATION


def type_name(annotation: Any) -> str:
    """A readable name for an annotation: ``int``, ``Norm | None``, ``Literal['a', 'b']``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is NO_ANNOTATION:
        return "anything"
    if annotation is type(None) or annotation is None:
        return "None"
    if annotation is Ellipsis:
        return "..."
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


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
