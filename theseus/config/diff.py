"""What differs between two configs, field by field, and whether a resume may accept it."""

from __future__ import annotations

from typing import Any

import fiddle as fdl

from theseus.config.compare import differences
from theseus.config.errors import ConfigError
from theseus.config.serialize import MISSING, format_value

# Fields that change when or how a run reports and saves, never what it computes. A resumed
# run may change them freely; any other change needs --allow_config_change.
RESUME_SAFE_FIELDS = frozenset({
    "trainer.num_steps", "trainer.eval_every", "trainer.eval_batches",
    "trainer.checkpoint_every", "trainer.keep_checkpoints", "trainer.keep_every",
    "trainer.log_every", "trainer.progress", "trainer.sample_tokens", "trainer.max_bad_steps",
    "data.worker_buffer_size", "data.tokenize_workers", "data.cache_dir",
    # The same math on another device layout: restore re-shards the state.
    "trainer.mesh.data", "trainer.mesh.fsdp", "trainer.mesh.tensor", "trainer.mesh.expert",
})


def diff_configs(old: fdl.Buildable, new: fdl.Buildable) -> list[tuple[str, str, str]]:
    """``(path, old value, new value)``, formatted, for every field that differs (defaults
    included); a side without the field shows ``<absent>``."""
    def show(value: Any) -> str:
        return "<absent>" if value is MISSING else format_value(value)

    return [(d.path, show(d.a), show(d.b)) for d in differences(old, new)]


def format_diff(rows: list[tuple[str, str, str]]) -> str:
    """One ``path: old -> new`` line per row."""
    return "\n".join(f"  {path}: {old} -> {new}" for path, old, new in rows)


def check_resume_change(old: fdl.Buildable, new: fdl.Buildable, allow: bool
                        ) -> list[tuple[str, str, str]]:
    """Raises ``ConfigError`` with the diff if ``new`` changes the math of the run ``old``
    started, unless ``allow``; returns all differing rows."""
    rows = diff_configs(old, new)
    unsafe = [r for r in rows if r[0] not in RESUME_SAFE_FIELDS]
    if unsafe and not allow:
        raise ConfigError(
            "this run directory holds a run whose config differs in what it computes; resume "
            "with the same config, allow the change (--allow_config_change), or start the run "
            "in a new directory. Changed:\n" + format_diff(unsafe))
    return rows
