"""absl flags for configs: ``--config``, ``--fdl_set``, ``--fiddler``, ``--workdir``.

``--fdl_set`` and ``--fiddler`` may be repeated and interleaved; they apply in
command-line order. Each occurrence gets a sequence number as absl parses argv
(left to right), so the order survives across the two flags.
"""

from __future__ import annotations

import hashlib
import itertools
import pathlib
import re
from typing import Any

import fiddle as fdl
from absl import flags

from theseus.config.errors import ConfigError
from theseus.config.loading import load_config, parse_call, split_spec
from theseus.config.overrides import apply_overrides

FLAGS = flags.FLAGS
RUNS_DIR = pathlib.Path("runs")
_ORDER = itertools.count()  # Shared by every ordered flag, so occurrences compare across flags.


class _OrderedMultiFlag(flags.MultiFlag):
    """A repeatable string flag that remembers when each occurrence was parsed."""

    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        self.kind = kind
        self.occurrences: list[tuple[int, str]] = []
        super().__init__(*args, **kwargs)

    def parse(self, arguments: Any) -> None:
        """Parses one occurrence (or a list of them), stamping each with its order."""
        if not self.present:
            self.occurrences = []
        before = len(self.value or []) if self.present else 0
        super().parse(arguments)
        self.occurrences.extend((next(_ORDER), v) for v in self.value[before:])

    def unparse(self) -> None:
        """Forgets the parsed occurrences along with the value."""
        super().unparse()
        self.occurrences = []


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines ``--config``, ``--fdl_set``, ``--fiddler`` and ``--workdir`` (idempotent)."""
    if "config" not in flag_values:
        flags.DEFINE_string(
            "config",
            None,
            "Experiment: PATH.py, PATH.py:FN, PATH.py:FN(literal args) or a run's config.json.",
            flag_values=flag_values,
        )
    for kind, name, help_text in (
        ("set", "fdl_set", "Override a field: path=value, e.g. model.num_layers=6 (applied in order with --fiddler)."),
        ("fiddler", "fiddler", "Apply a fiddler: NAME or NAME(literal args) from the config file, or pkg.mod.fn."),
    ):
        if name not in flag_values:
            flag = _OrderedMultiFlag(kind, flags.ArgumentParser(), flags.ArgumentSerializer(), name, None, help_text)
            flags.DEFINE_flag(flag, flag_values)
    if "workdir" not in flag_values:
        flags.DEFINE_string(
            "workdir",
            None,
            "Run directory (default: runs/<file>_<fn>); re-running with it resumes.",
            flag_values=flag_values,
        )


def ordered_overrides(flag_values: flags.FlagValues = FLAGS) -> list[tuple[str, str]]:
    """The ``("set", ...)`` and ``("fiddler", ...)`` overrides in command-line order.

    Values assigned in code rather than parsed from argv have no order; they
    come after the parsed ones, fiddlers before sets.
    """
    stamped: list[tuple[int, str, str]] = []
    unordered: list[tuple[str, str]] = []
    for kind, name in (("fiddler", "fiddler"), ("set", "fdl_set")):
        flag = flag_values[name]
        values = list(flag.value or [])
        occurrences = getattr(flag, "occurrences", [])
        if [v for _, v in occurrences] == values:
            stamped.extend((order, kind, v) for order, v in occurrences)
        else:
            unordered.extend((kind, v) for v in values)
    return [(kind, value) for _, kind, value in sorted(stamped)] + unordered


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> fdl.Buildable:
    """Loads ``--config`` and applies ``--fiddler`` / ``--fdl_set`` in command-line order."""
    spec = flag_values["config"].value
    if not spec:
        raise ConfigError("missing --config; pass e.g. --config=configs/gpt.py:tiny")
    cfg, module = load_config(spec)
    return apply_overrides(cfg, ordered_overrides(flag_values), module)


def default_workdir(config_spec: str) -> pathlib.Path:
    """The run directory a spec gets by default, deterministic so a rerun resumes.

    ``configs/gpt.py:tiny`` -> ``runs/gpt_tiny``; ``gpt.py:small(6)`` -> ``runs/gpt_small_6``;
    ``runs/gpt_tiny/config.json`` -> ``runs/gpt_tiny``; ``other.json`` -> ``runs/other``.
    """
    spec = config_spec.strip()
    if spec.endswith(".json"):
        path = pathlib.Path(spec)
        return RUNS_DIR / (path.parent.resolve().name if path.stem == "config" else path.stem)
    path, call = split_spec(spec)
    name, args, kwargs = parse_call(call, "config function")
    suffix = "_".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    suffix = re.sub(r"[^A-Za-z0-9.=+-]+", "_", suffix).strip("_")
    if len(suffix) > 48:
        suffix = hashlib.sha1(suffix.encode()).hexdigest()[:10]
    return RUNS_DIR / "_".join(p for p in (path.stem, name, suffix) if p)


def workdir_from_flags(flag_values: flags.FlagValues = FLAGS) -> pathlib.Path:
    """``--workdir`` if given, else :func:`default_workdir` of ``--config``."""
    if flag_values["workdir"].value:
        return pathlib.Path(flag_values["workdir"].value)
    spec = flag_values["config"].value
    if not spec:
        raise ConfigError("missing --config; pass e.g. --config=configs/gpt.py:tiny")
    return default_workdir(spec)
