"""Carrying values from one config into another wherever their paths match.

``carry_over(source, target)`` copies every plain value of ``source`` whose path also
exists in ``target`` (type-checked like an override). The target keeps its structure: a part
whose class differs (a ``WSD`` schedule where the target has ``Cosine``) is reported, and
only its fields whose names match are carried. Paths the target lacks, and values its
fields do not accept, are reported too.
"""

from __future__ import annotations

import dataclasses

import fiddle as fdl

from theseus.config.errors import ConfigError
from theseus.config.overrides import set_value
from theseus.config.serialize import MISSING, flatten, format_value


@dataclasses.dataclass
class CarryReport:
    """What ``carry_over`` did: paths whose value changed, and paths it could not carry."""

    changed: list[str] = dataclasses.field(default_factory=list)
    not_carried: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, why)


def carry_over(source: fdl.Buildable, target: fdl.Buildable) -> CarryReport:
    """Sets ``target``'s fields (in place) to ``source``'s wherever the paths match.

    Only plain values are carried; the structure (which class each part is) stays the
    target's. A part whose class differs is reported, and its fields that match are carried.
    """
    report = CarryReport()
    skipped: list[str] = []  # parts the target does not have: their fields are not tried
    for path, value in flatten(source, include_buildables=True):
        if value is MISSING or any(path.startswith(p) and path[len(p):len(p) + 1] in (".", "[") for p in skipped):
            continue
        current = _current(target, path)
        if current is _ABSENT:
            report.not_carried.append((path, "no such field here"))
            skipped.append(path)
        elif isinstance(value, fdl.Buildable) or isinstance(current, fdl.Buildable):
            if not (isinstance(value, fdl.Buildable) and isinstance(current, fdl.Buildable)
                    and _same_class(value, current)):
                report.not_carried.append(
                    (path, f"is {format_value(value)} there but {format_value(current)} here"))
        elif not _equal(current, value):
            try:
                set_value(target, path, value)
            except ConfigError as e:
                report.not_carried.append((path, str(e)))
                continue
            report.changed.append(f"{path} = {format_value(value)}")
    return report


_ABSENT = object()


def _current(cfg: fdl.Buildable, path: str) -> object:
    """The value at ``path`` in ``cfg`` (defaults included), or ``_ABSENT``."""
    for entry, value in flatten(cfg, include_buildables=True):
        if entry == path:
            return value
    return _ABSENT


def _same_class(a: fdl.Buildable, b: fdl.Buildable) -> bool:
    """Same kind of config for the same class or function."""
    return type(a) is type(b) and a.__fn_or_cls__ is b.__fn_or_cls__


def _equal(a: object, b: object) -> bool:
    """Equal values of one type."""
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001
        return False
