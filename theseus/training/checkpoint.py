"""Checkpoints: an asynchronous orbax CheckpointManager holding the train state and the
grain iterator position, so that a restarted run continues with the very next batch."""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves and restores ``{"state": train state, "data": grain iterator}`` under ``directory``.

    Saves are asynchronous: ``save`` returns once the arrays are copied off the device, and
    orbax writes them in the background; a checkpoint counts only once committed.
    """

    def __init__(self, directory: pathlib.Path, keep: int):
        self._manager = ocp.CheckpointManager(
            directory.absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep,
                                                 enable_async_checkpointing=True),
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": grain.checkpoint.CheckpointHandler()})

    def latest_step(self) -> int | None:
        """The newest committed step, or None when there is none."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, data_iterator: grain.DataLoaderIterator) -> None:
        """Starts saving ``state`` and the iterator position as checkpoint ``step``."""
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.checkpoint.CheckpointSave(data_iterator)))

    def restore(self, step: int, abstract_state: Any,
                data_iterator: grain.DataLoaderIterator) -> Any:
        """Restores checkpoint ``step`` into arrays placed as in ``abstract_state``; moves
        ``data_iterator`` to the saved position."""
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.checkpoint.CheckpointRestore(data_iterator)))
        return restored["state"]

    def wait(self) -> None:
        """Blocks until pending saves are committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_like(shardings_tree: Any, shapes_tree: Any) -> Any:
    """``ShapeDtypeStruct``s carrying shapes from one tree and shardings from another."""
    return jax.tree.map(lambda s, x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        shardings_tree, shapes_tree)
