"""theseus.training.checkpoint: the two managers of a run keep their multi-process barriers
apart (orbax's barrier keys carry no counter; equal keys fail when both finalize at once)."""

from __future__ import annotations

from theseus.training.checkpoint import BestCheckpoint, Checkpointer


def _prefix(manager) -> str | None:
    return manager._manager._options.multiprocessing_options.barrier_sync_key_prefix


def test_checkpoints_and_best_use_distinct_barrier_prefixes(tmp_path):
    checkpoints = Checkpointer(tmp_path / "checkpoints", keep=2)
    best = BestCheckpoint(tmp_path / "best")
    try:
        assert _prefix(checkpoints) == "checkpoints" and _prefix(best) == "best"
    finally:
        checkpoints.close()
        best.close()
