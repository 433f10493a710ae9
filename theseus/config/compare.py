"""Comparing two configs structurally: which fields differ, at which path.

``differences(a, b)`` walks both configs side by side. Where both hold a config of the same
class it descends field by field (defaults included); where the class differs, or a plain
value differs, it reports that one path with both values. Paths are written the way Python
reaches them from the root (``model.num_layers``, ``data.sources[0].path``), so
``cfg.<path> = value`` sets the field again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import fiddle as fdl

from theseus.config.serialize import MISSING, field_value


@dataclasses.dataclass(frozen=True)
class Difference:
    """One path where two configs differ; a value is ``MISSING`` where a side has none."""

    path: str
    a: Any
    b: Any


def field_names(buildable: fdl.Buildable) -> list[str | int]:
    """The fields of a config in signature order (variadic ones skipped), then extra arguments."""
    names: list[str | int] = []
    for index, (name, param) in enumerate(buildable.__signature_info__.parameters.items()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        names.append(index if param.kind == param.POSITIONAL_ONLY else name)
    names.extend(key for key in buildable.__arguments__ if key not in names)
    return names


def value_at(buildable: fdl.Buildable, key: str | int) -> Any:
    """The value a field has (set, default or MISSING); positional-only fields by index."""
    if isinstance(key, int):
        return buildable.__arguments__.get(key, MISSING)
    return field_value(buildable, key)


def differences(a: Any, b: Any) -> list[Difference]:
    """Every path where ``a`` and ``b`` differ, in field order; ``[]`` when they are equal."""
    out: list[Difference] = []
    _walk(a, b, "", out)
    return out


def _join(path: str, key: str | int) -> str:
    """``path.key`` for a field name, ``path[key]`` for an index or a dict key."""
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _walk(a: Any, b: Any, path: str, out: list[Difference]) -> None:
    """Appends the differences under ``path`` to ``out``."""
    if _same_config_class(a, b):
        keys = field_names(a) + [k for k in field_names(b) if k not in field_names(a)]
        for key in keys:
            _walk(value_at(a, key), value_at(b, key), _join(path, key), out)
    elif _same_shape_sequence(a, b):
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{path}[{i}]", out)
    elif isinstance(a, dict) and isinstance(b, dict) and list(a) == list(b) and _has_config(a, b):
        for key in a:
            _walk(a[key], b[key], f"{path}[{key!r}]", out)
    elif not same_value(a, b):
        out.append(Difference(path, a, b))


def _same_config_class(a: Any, b: Any) -> bool:
    """Both are configs of the same kind (Config/Partial) for the same function or class."""
    return (isinstance(a, fdl.Buildable) and type(a) is type(b)
            and a.__fn_or_cls__ is b.__fn_or_cls__)


def _same_shape_sequence(a: Any, b: Any) -> bool:
    """Both are lists (or both tuples) of one length, and at least one holds a config."""
    return (isinstance(a, (list, tuple)) and type(a) is type(b) and len(a) == len(b)
            and _has_config(a, b))


def _has_config(*values: Any) -> bool:
    """Whether any of the containers holds a config directly."""
    for value in values:
        items = value.values() if isinstance(value, dict) else value
        if any(isinstance(item, fdl.Buildable) for item in items):
            return True
    return False


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (so ``1``, ``1.0`` and ``True`` differ)."""
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values without a usable == (arrays): compare identity
        return a is b
