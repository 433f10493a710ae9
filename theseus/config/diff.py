"""What differs between two configs, field by field, and whether a resume may accept it."""

from __future__ import annotations

from typing import Any

import fiddle as fdl

from theseus.config.errors import ConfigError
from theseus.config.serialize import flatten, format_value

# Fields that change when or how a run reports and saves, never what it computes. A resumed
# run may change them freely; any other change needs --allow_config_change.
RESUME_SAFE_FIELDS = frozenset({
    "trainer.num_steps", "trainer.eval_every", "trainer.eval_batches",
    "trainer.checkpoint_every", "trainer.keep_checkpoints", "trainer.keep_every",
    "trainer.log_every", "trainer.progress", "trainer.sample_tokens", "trainer.max_bad_steps",
    "data.worker_count", "data.cache_dir",
})


def diff_configs(old: fdl.Buildable, new: fdl.Buildable) -> list[tuple[str, str, str]]:
    """``(path, old value, new value)`` for every leaf that differs, defaults included;
    a field present on one side only shows ``<absent>`` on the other."""
    a = {path: format_value(v) for path, v in flatten(old, include_buildables=True)}
    b = {path: format_value(v) for path, v in flatten(new, include_buildables=True)}
    paths = list(a) + [p for p in b if p not in a]
    return [(p, a.get(p, "<absent>"), b.get(p, "<absent>")) for p in paths
            if a.get(p) != b.get(p)]


def format_diff(rows: list[tuple[str, str, str]]) -> str:
    """One ``path: old -> new`` line per row."""
    return "\n".join(f"  {path}: {old} -> {new}" for path, old, new in rows)


def check_resume_change(old: fdl.Buildable, new: fdl.Buildable, allow: bool) -> list[tuple[str, Any, Any]]:
    """Raises ``ConfigError`` with the diff if ``new`` changes the math of the run ``old``
    started, unless ``allow``; returns all differing rows."""
    rows = diff_configs(old, new)
    unsafe = [r for r in rows if r[0] not in RESUME_SAFE_FIELDS]
    if unsafe and not allow:
        raise ConfigError(
            "this workdir holds a run whose config differs in what it computes; resume with "
            "the same config, pass --allow_config_change to accept the change, or use a new "
            "--workdir. Changed:\n" + format_diff(unsafe))
    return rows
