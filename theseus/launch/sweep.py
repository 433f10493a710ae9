"""``--sweep=path=v1,v2``: the cartesian product of field values, one work unit per point.

Each ``--sweep`` names one field (an fdl path, as in ``--fdl_set``) and its values, separated
by commas at the top level (``model.layers=[1,2],[3,4]`` is two values). Several ``--sweep``
flags multiply: ``--sweep=a=1,2 --sweep=b=3,4`` gives four points. Every point is applied to a
copy of the config and built before anything is launched, so a misspelt path or a value of
the wrong type fails at once with one sentence.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import re
from collections.abc import Sequence

import fiddle as fdl

from theseus.config.errors import ConfigError
from theseus.config.overrides import parse_path, parse_value, set_value

_SYNTAX = "write --sweep=path=v1,v2, e.g. --sweep=optimizer.learning_rate=1e-3,3e-3"
_MAX_NAME = 60


@dataclasses.dataclass(frozen=True)
class Axis:
    """One ``--sweep``: a field path and the values (as typed) it takes."""

    path: str
    values: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of the sweep: ``(path, value text)`` pairs, in ``--sweep`` order."""

    settings: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        """A folder name for the point, e.g. ``learning_rate=0.003,num_layers=2``."""
        if not self.settings:
            return ""
        text = ",".join(f"{_leaf(path)}={value}" for path, value in self.settings)
        text = re.sub(r"[^A-Za-z0-9.=,+-]+", "_", text).strip("_")
        if len(text) > _MAX_NAME:
            text = "point-" + hashlib.sha1(text.encode()).hexdigest()[:10]
        return text

    def fdl_sets(self) -> list[str]:
        """The point as ``--fdl_set`` assignments."""
        return [f"{path}={value}" for path, value in self.settings]


def _leaf(path: str) -> str:
    """The last field name of a path (``optimizer.learning_rate`` -> ``learning_rate``)."""
    return path.rsplit(".", 1)[-1]


def split_values(text: str) -> list[str]:
    """Splits on commas outside brackets and quotes: ``[1,2],'a,b',3`` -> 3 values."""
    values, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def parse_axis(spec: str) -> Axis:
    """Parses one ``--sweep`` value; ConfigError if it is not ``path=v1,v2,...``."""
    path, sep, rest = spec.partition("=")
    path = path.strip()
    if not sep or not path or not rest.strip():
        raise ConfigError(f"--sweep={spec!r} is not of the form path=v1,v2; {_SYNTAX}")
    parse_path(path)  # a malformed path fails here, naming the syntax
    values = split_values(rest)
    if any(not v for v in values):
        raise ConfigError(f"--sweep={spec!r} has an empty value; {_SYNTAX}")
    if len(set(values)) != len(values):
        raise ConfigError(f"--sweep={spec!r} lists a value twice; give each value once")
    return Axis(path, tuple(values))


def parse_axes(specs: Sequence[str]) -> list[Axis]:
    """Parses every ``--sweep``; a path swept twice is an error."""
    axes = [parse_axis(spec) for spec in specs]
    paths = [axis.path for axis in axes]
    for path in paths:
        if paths.count(path) > 1:
            raise ConfigError(f"--sweep names '{path}' twice; put all its values in one --sweep")
    return axes


def points(axes: Sequence[Axis]) -> list[Point]:
    """The cartesian product of the axes, first axis slowest; one empty point if none."""
    combos = itertools.product(*[[(a.path, v) for v in a.values] for a in axes])
    return [Point(tuple(combo)) for combo in combos]


def apply_point(cfg: fdl.Buildable, point: Point) -> fdl.Buildable:
    """A copy of ``cfg`` with the point's values set (type-checked, as ``--fdl_set`` is)."""
    out = copy.deepcopy(cfg)
    for path, value in point.settings:
        set_value(out, path, parse_value(value, path))
    return out
