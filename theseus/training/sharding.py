"""Mesh and logical-axis sharding.

Modules name the axes of their parameters (``embed``, ``mlp``, ``heads``, ``vocab``);
``LOGICAL_RULES`` maps each name onto mesh axes. The mesh has the axes ``data``, ``fsdp``
and ``tensor``; this foundation builds a pure data-parallel mesh (all devices on ``data``),
and the same table serves FSDP and tensor parallelism when those axes grow.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")

LOGICAL_RULES: dict[str, tuple[str, ...] | str | None] = {
    "batch": ("data", "fsdp"),
    "embed": "fsdp",
    "mlp": "tensor",
    "heads": "tensor",
    "kv": None,
    "vocab": "tensor",
}


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1) -> Mesh:
    """A mesh over all devices; ``-1`` on ``data`` takes whatever the other axes leave."""
    n = jax.device_count()
    if data == -1:
        if n % (fsdp * tensor):
            raise ValueError(f"{n} devices cannot be split into fsdp={fsdp} x tensor={tensor}.")
        data = n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise ValueError(f"mesh data={data} x fsdp={fsdp} x tensor={tensor} does not cover the "
                         f"{n} devices.")
    devices = np.asarray(jax.devices()).reshape(data, fsdp, tensor)
    return Mesh(devices, MESH_AXES)


def logical_to_spec(names: tuple[str | None, ...] | None) -> P:
    """The mesh PartitionSpec for a tuple of logical axis names."""
    if not names:
        return P()
    return P(*(LOGICAL_RULES.get(n) if n is not None else None for n in names))


def state_shardings(abstract_state: nnx.State, mesh: Mesh) -> nnx.State:
    """A NamedSharding for every variable of an (abstract) nnx state, from its annotations."""
    def one(var):
        names = var.get_metadata().get("out_sharding") if hasattr(var, "get_metadata") else None
        return var.replace(NamedSharding(mesh, logical_to_spec(names)))
    return jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches are split over ``data`` and ``fsdp`` on their leading axis."""
    return NamedSharding(mesh, logical_to_spec(("batch", None)))


def replicated(mesh: Mesh) -> NamedSharding:
    """Fully replicated placement (scalars, step counters)."""
    return NamedSharding(mesh, P())


def global_batch(local: np.ndarray | dict[str, np.ndarray], mesh: Mesh
                 ) -> jax.Array | dict[str, jax.Array]:
    """Assembles each process's rows (an array, or a dict of arrays) into global arrays
    sharded over the batch axes."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local)
