"""Saving configs: fiddle JSON (exact, reloadable) and flattened text (for reading and diffing)."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import pathlib
import re
from typing import Any

import fiddle as fdl
from fiddle.experimental import serialization

from theseus.config.errors import ConfigError
from theseus.fileio import atomic_write_text  # noqa: F401  (re-exported)

CONFIG_JSON = "config.json"
CONFIG_TXT = "config.txt"


class _Missing:
    """Marks a required field that has no value yet."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


def to_json(cfg: fdl.Buildable) -> str:
    """Serializes ``cfg`` with fiddle's JSON serialization; ConfigError if it cannot."""
    try:
        return serialization.dump_json(cfg, indent=2)
    except serialization.UnserializableValueError as e:
        raise ConfigError(f"config cannot be saved as JSON: {_unserializable_reason(str(e))}") from None
    except (AttributeError, ImportError, serialization.PyrefPolicyError) as e:
        raise ConfigError(f"config cannot be saved as JSON: {_pyref_reason(str(e))}") from None


def _unserializable_reason(message: str) -> str:
    """Rewrites fiddle's UnserializableValueError message as a clause."""
    match = re.search(r"of type <class '([^']+)'>.*at path '(?:<root>\.?)?([^']*)'", message, re.DOTALL)
    if not match:
        return message.splitlines()[0]
    where = match[2] or "the root"
    return (
        f"the value at '{where}' has type {match[1]}, which fiddle cannot serialize; "
        "use literals, fiddle configs, or functions and classes defined at module level"
    )


def _pyref_reason(message: str) -> str:
    """Rewrites fiddle's failed pyref-import message as a clause."""
    match = re.search(r"importing pyref to '([^']+)' from '([^']+)'", message)
    if not match:
        return message.splitlines()[0]
    return (
        f"it refers to '{match[1]}' in module '{match[2]}', which cannot be imported by that name; "
        "define it at module level in an importable module (not a lambda, a local function or __main__)"
    )


def from_json(text: str, *, source: str = "the JSON text") -> fdl.Buildable:
    """Loads a config written by :func:`to_json`; ConfigError naming ``source`` if it cannot."""
    try:
        cfg = serialization.load_json(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON in {source} at line {e.lineno} column {e.colno}: {e.msg}") from None
    except ModuleNotFoundError as e:
        found = re.search(r"No module named '([^']+)'", str(e))
        raise ConfigError(
            f"{source} refers to module '{found[1] if found else e.name}', which cannot be imported; "
            "run from the directory the config was saved from"
        ) from None
    except (AttributeError, ImportError, serialization.PyrefPolicyError) as e:
        raise ConfigError(f"{source} refers to something that cannot be imported: {str(e).splitlines()[0]}") from None
    except (serialization.DeserializationError, KeyError, TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"{source} is not a config saved by theseus ({type(e).__name__}: {e})") from None
    if not isinstance(cfg, fdl.Buildable):
        raise ConfigError(f"{source} holds a {type(cfg).__name__}, not a fiddle config")
    return cfg


def flatten(cfg: fdl.Buildable, *, include_buildables: bool = False) -> list[tuple[str, Any]]:
    """Every leaf field of ``cfg`` as (dotted path, value), defaults included, in field order.

    Nested Buildables recurse (``model.d_model``); lists, tuples and dicts that
    hold Buildables recurse with ``[i]`` / ``['k']``. Required fields with no
    value show as :data:`MISSING` (except in a ``fdl.Partial``, where they are
    left out). A Buildable with no fields is itself a leaf, so it is never lost;
    with ``include_buildables`` every nested Buildable is listed before its fields.
    """
    out: list[tuple[str, Any]] = []
    _flatten_into(cfg, "", out, include_buildables)
    return out


def _flatten_into(value: Any, path: str, out: list[tuple[str, Any]], headers: bool) -> None:
    """Appends the leaves under ``value`` (found at ``path``) to ``out``."""
    if isinstance(value, fdl.Buildable):
        fields = _fields(value)
        if path and (headers or not fields):
            out.append((path, value))
        for key, child in fields:
            sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
            _flatten_into(child, sub, out, headers)
    elif isinstance(value, (list, tuple)) and _holds_buildable(value):
        for i, child in enumerate(value):
            _flatten_into(child, f"{path}[{i}]", out, headers)
    elif isinstance(value, dict) and _holds_buildable(value):
        for key, child in value.items():
            _flatten_into(child, f"{path}[{key!r}]", out, headers)
    else:
        out.append((path, value))


def _holds_buildable(value: Any) -> bool:
    """Whether a container holds a Buildable at any depth."""
    if isinstance(value, fdl.Buildable):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_buildable(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_buildable(v) for v in value.values())
    return False


def _fields(buildable: fdl.Buildable) -> list[tuple[str | int, Any]]:
    """(name, value) for each parameter in signature order, then any extra arguments."""
    arguments = buildable.__arguments__
    fields: list[tuple[str | int, Any]] = []
    for index, (name, param) in enumerate(buildable.__signature_info__.parameters.items()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        key = index if param.kind == param.POSITIONAL_ONLY else name
        value = arguments[key] if key in arguments else _default(buildable, name, param)
        if value is not MISSING or not isinstance(buildable, fdl.Partial):  # A Partial's gaps are by design.
            fields.append((key, value))
    seen = {key for key, _ in fields}
    fields.extend((key, value) for key, value in arguments.items() if key not in seen)
    return fields


def field_value(buildable: fdl.Buildable, name: str) -> Any:
    """The value a named field has: set explicitly, its default, its default_factory's output, or MISSING."""
    if name in buildable.__arguments__:
        return buildable.__arguments__[name]
    param = buildable.__signature_info__.parameters.get(name)
    return MISSING if param is None else _default(buildable, name, param)


def _default(buildable: fdl.Buildable, name: str, param: inspect.Parameter) -> Any:
    """The value a parameter takes when not set: its default, factory output, or MISSING."""
    fn_or_cls = buildable.__fn_or_cls__
    if dataclasses.is_dataclass(fn_or_cls):
        field = {f.name: f for f in dataclasses.fields(fn_or_cls)}.get(name)
        if field is not None and field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
    return MISSING if param.default is inspect.Parameter.empty else param.default


def format_value(value: Any) -> str:
    """``repr`` of a leaf value, with functions and classes shown as ``module.qualname``."""
    if isinstance(value, (list, tuple)):
        items = [format_value(v) for v in value]
        if isinstance(value, tuple):
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        return f"[{', '.join(items)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, fdl.Buildable):
        return f"fdl.{type(value).__name__}({format_value(value.__fn_or_cls__)})"
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def to_text(cfg: fdl.Buildable) -> str:
    """One ``path = value`` line per entry of ``flatten(cfg, include_buildables=True)``.

    A nested config shows as ``model = fdl.Config(pkg.mod.GPTConfig)`` before its fields.
    """
    lines = (f"{path} = {format_value(value)}\n" for path, value in flatten(cfg, include_buildables=True))
    return "".join(lines)


def write_config(cfg: fdl.Buildable, workdir: pathlib.Path) -> None:
    """Writes ``workdir/config.json`` and ``workdir/config.txt`` atomically.

    Both are serialized first, so a config that cannot be saved raises
    ConfigError and creates nothing (not even ``workdir``).
    """
    json_text, plain_text = to_json(cfg), to_text(cfg)
    workdir = pathlib.Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"workdir '{workdir}' cannot be created: {e.strerror or e}") from None
    atomic_write_text(workdir / CONFIG_JSON, json_text)
    atomic_write_text(workdir / CONFIG_TXT, plain_text)
