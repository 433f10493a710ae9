"""Checkpoints: an asynchronous orbax CheckpointManager holding the train state and the grain
iterator position, so that a restarted run continues with the very next batch.

A checkpoint counts only once orbax has committed it (renamed from its temporary name and
written ``commit_success.txt``). On restore, checkpoints that are incomplete or unreadable
are skipped with a warning, newest first, down to the newest good one.
"""

from __future__ import annotations

import pathlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging

COMMIT_MARKER = "commit_success.txt"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written, or none of those on disk can be read."""


class NoUsableCheckpointError(CheckpointError):
    """Checkpoints exist, but none of them can be restored."""


def _barriers(prefix: str) -> ocp.options.MultiprocessingOptions:
    """Multi-process options whose barrier keys start with ``prefix``.

    A run holds two managers (``checkpoints/`` and ``best/``) that may finalize saves at the
    same time (the last step is often both). Orbax's barrier keys carry no counter, so
    without distinct prefixes the second manager's barrier fails with "Barrier ... is
    already ongoing" and the save after it hangs (seen once in a 2-process SLURM job).
    """
    return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


def _options(keep: int, keep_every: int | None) -> ocp.CheckpointManagerOptions:
    return ocp.CheckpointManagerOptions(max_to_keep=keep, keep_period=keep_every or None,
                                        enable_async_checkpointing=True,
                                        cleanup_tmp_directories=True,
                                        multiprocessing_options=_barriers("checkpoints"))


class _IteratorSnapshot:
    """A grain iterator's position frozen at save time (the live iterator moves on)."""

    def __init__(self, iterator: grain.DataLoaderIterator):
        self._state = iterator.get_state()

    def get_state(self) -> bytes:
        return self._state


class Checkpointer:
    """Saves and restores ``{"state": train state, "data": grain iterator}`` under ``directory``.

    Saves are asynchronous. On a single CPU process, ``save`` dispatches a device-side copy
    of the state (the next step donates the original buffers) and hands it to a background
    thread, so the training loop is blocked for microseconds; elsewhere orbax's own
    asynchronous save is used, which blocks for the device-to-host copy. ``keep`` newest
    checkpoints are kept, plus every multiple of ``keep_every`` (when set).
    """

    def __init__(self, directory: pathlib.Path, keep: int, keep_every: int | None = None):
        self.directory = directory.absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=_options(keep, keep_every),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()})
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None
        self._last_step: int | None = None  # the newest save started, for error messages

    def steps(self) -> list[int]:
        """Steps of the checkpoints on disk, newest first."""
        return sorted(self._manager.all_steps(), reverse=True)

    def save(self, step: int, state: Any, data_iterator: grain.DataLoaderIterator) -> float:
        """Starts saving checkpoint ``step``; returns how long the training loop was blocked."""
        t = time.perf_counter()
        self._wait_pending()
        self._last_step = step
        snapshot = _IteratorSnapshot(data_iterator)
        if jax.process_count() == 1 and jax.default_backend() == "cpu":
            copy = jax.tree.map(lambda x: jax.device_put(x, may_alias=False), state)
            self._pending = self._thread.submit(self._save_now, step, copy, snapshot)
        else:
            self._save_now(step, state, snapshot)
        return time.perf_counter() - t

    def _save_now(self, step: int, state: Any, snapshot: _IteratorSnapshot) -> None:
        try:
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(snapshot)))
        except Exception as e:  # an earlier async save may surface here, too
            raise CheckpointError(_save_failure(self.directory, step, e)) from e

    def _wait_pending(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises the CheckpointError of a failed background save

    def restore(self, step: int, abstract_state: Any,
                data_iterator: grain.DataLoaderIterator) -> Any:
        """Restores checkpoint ``step`` into arrays placed as in ``abstract_state``; moves
        ``data_iterator`` to the saved position."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored["state"]

    def restore_newest(self, abstract_state: Any, data_iterator: grain.DataLoaderIterator
                       ) -> tuple[int, Any] | None:
        """The newest checkpoint that restores, as ``(step, state)``; None if there are none.

        Raises ``CheckpointError`` when checkpoints exist but none can be read.
        """
        steps = self.steps()
        for step in steps:
            if not (self.directory / str(step) / COMMIT_MARKER).exists():
                logging.warning("checkpoint %d has no commit marker (incomplete); skipping it", step)
                continue
            try:
                return step, self.restore(step, abstract_state, data_iterator)
            except Exception as e:  # a truncated or corrupt file: fall back to an older one
                logging.warning("checkpoint %d cannot be read (%s); trying an older one",
                                step, str(e).splitlines()[0][:200])
        if steps:
            raise NoUsableCheckpointError(
                f"none of the {len(steps)} checkpoints in {self.directory} can be restored "
                f"(steps {', '.join(map(str, steps))}); pass --from_scratch to move them aside "
                f"and start again, or restore them from a backup.")
        return None

    def wait(self) -> None:
        """Blocks until pending saves are committed."""
        self._wait_pending()
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise CheckpointError(_save_failure(self.directory, self._last_step, e)) from e

    def close(self) -> None:
        """Waits for pending saves and releases the manager; raises ``CheckpointError`` if a
        save failed (orbax may report the same failure again while closing)."""
        error: CheckpointError | None = None
        try:
            self.wait()
        except CheckpointError as e:
            error = e
        self._thread.shutdown(wait=True)
        error = _close_manager(self._manager, self.directory, self._last_step) or error
        if error:
            raise error


def _close_manager(manager: ocp.CheckpointManager, directory: pathlib.Path,
                   step: int | None) -> CheckpointError | None:
    """Closes ``manager``; a failure of a pending save surfacing here is returned, not raised."""
    try:
        manager.close()
    except Exception as e:
        return CheckpointError(_save_failure(directory, step, e))
    return None


def _save_failure(directory: pathlib.Path, step: int | None, error: Exception) -> str:
    what = f"checkpoint {step}" if step is not None else "a checkpoint"
    older = [p.name for p in sorted(directory.glob("[0-9]*")) if (p / COMMIT_MARKER).exists()]
    kept = f"the previous checkpoints ({', '.join(older)}) are intact" if older else \
        "no earlier checkpoint exists"
    return f"saving {what} in {directory} failed ({type(error).__name__}: {error}); {kept}."


def move_aside(directory: pathlib.Path) -> pathlib.Path | None:
    """Renames an unusable checkpoint folder out of the way (never deletes it)."""
    if not directory.exists():
        return None
    target = directory.with_name(f"{directory.name}.unusable-{int(time.time())}")
    directory.rename(target)
    return target


class BestCheckpoint:
    """The state with the lowest validation loss so far, under its own folder (``best/``).

    Orbax writes it under a temporary name and renames it into place, so ``best/`` always
    holds one complete checkpoint; the previous best is removed only after that. Folders
    are numbered by version (a resumed run may find a better state at a step it saw
    before); ``meta/`` records the training step and the loss.
    """

    def __init__(self, directory: pathlib.Path):
        self.directory = directory.absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=1, enable_async_checkpointing=True, cleanup_tmp_directories=True,
                multiprocessing_options=_barriers("best")),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "meta": ocp.JsonCheckpointHandler()})
        self.best_loss = self._saved_loss()

    def _saved_loss(self) -> float:
        step = self._manager.latest_step()
        if step is None:
            return float("inf")
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return float(meta["meta"]["val/loss"])

    def offer(self, step: int, state: Any, val_loss: float) -> bool:
        """Saves ``state`` as the new best if ``val_loss`` beats the best so far."""
        if not val_loss < self.best_loss:
            return False
        version = (self._manager.latest_step() or 0) + 1
        try:
            self._manager.save(version, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                meta=ocp.args.JsonSave({"step": step, "val/loss": val_loss})), force=True)
        except Exception as e:
            raise CheckpointError(_save_failure(self.directory, step, e)) from e
        self.best_loss = val_loss
        return True

    def close(self) -> None:
        """Waits for the pending save and releases the manager."""
        error: CheckpointError | None = None
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            error = CheckpointError(_save_failure(self.directory, None, e))
        error = error or _close_manager(self._manager, self.directory, None)
        if error:
            raise error


def abstract_like(shardings_tree: Any, shapes_tree: Any) -> Any:
    """``ShapeDtypeStruct``s carrying shapes from one tree and shardings from another."""
    return jax.tree.map(lambda s, x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        shardings_tree, shapes_tree)
