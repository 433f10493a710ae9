"""Type checks for override values against parameter annotations.

``coerce(value, annotation)`` returns the value (converted where lossless: an int for a
float, a list for a tuple, an enum member by name) or raises ``TypeMismatch``.
"""

from __future__ import annotations

import collections.abc as abc
import enum
import inspect
import types
import typing
from typing import Any

NO_ANNOTATION: Any = inspect.Parameter.empty  # A parameter without a type annotation.
_SEQUENCES = (list, tuple, abc.Sequence, abc.MutableSequence)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)

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
