"""The device mesh and the logical-axis table: every form of parallelism in one place.

Modules name the axes of their parameters (``embed``, ``mlp``, ``heads``, ``kv``, ``vocab``,
``expert``); ``LOGICAL_RULES`` maps each name onto axes of a mesh ``data x fsdp x expert x
tensor`` whose sizes ``MeshShape`` (``trainer.mesh``) chooses:

- data parallelism: batches split over ``data`` (and over ``fsdp`` and ``expert``, which
  are data-parallel for activations too); parameters are replicated over ``data``;
- FSDP: parameters, and with them the optimizer moments, split over ``fsdp`` on their
  ``embed`` axis; a parameter without one is split on its largest axis that divides;
- tensor parallelism: attention heads, MLP width and vocabulary split over ``tensor``;
- expert parallelism: MoE expert weights ``[experts, ...]`` split over ``expert`` (each
  device group holds whole experts; tokens travel to them), so experts never compete with
  FSDP for the ``fsdp`` axis and an expert's own matrices can still be FSDP/tensor-split.

Sizes that do not divide are reported by ``check_parameters`` before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import fiddle as fdl
import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES = ("data", "fsdp", "expert", "tensor")

LOGICAL_RULES: dict[str, tuple[str, ...] | str | None] = {
    "batch": ("data", "fsdp", "expert"),
    "embed": "fsdp",
    "mlp": "tensor",
    "heads": "tensor",
    "kv": None,
    "vocab": "tensor",
    "expert": "expert",
}

# The config field to change when a logical axis of this name does not divide.
_SIZE_FIELDS = {"embed": "model.d_model", "vocab": "model.vocab_size", "heads": "model.num_heads",
                "mlp": "the model's MLP width", "expert": "model.num_experts",
                "kv": "the head dimension"}


@dataclasses.dataclass(frozen=True)
class MeshShape:
    """Sizes of the mesh axes (``trainer.mesh``); ``-1`` on one axis takes the devices the
    others leave. The product must equal the number of devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    expert: int = 1

    def __post_init__(self):
        for axis in MESH_AXES:
            value = getattr(self, axis)
            if not isinstance(value, int) or (value < 1 and value != -1):
                raise ValueError(f"trainer.mesh.{axis} must be a positive integer or -1 (the "
                                 f"remaining devices), got {value!r}.")
        if sum(getattr(self, a) == -1 for a in MESH_AXES) > 1:
            raise ValueError(f"only one of trainer.mesh's axes may be -1, got {self}.")

    def sizes(self, n_devices: int) -> dict[str, int]:
        """Axis sizes over ``n_devices`` devices, ``-1`` resolved; raises ValueError when
        they do not cover the devices exactly."""
        fixed = math.prod(getattr(self, a) for a in MESH_AXES if getattr(self, a) != -1)
        shown = " x ".join(f"{a}={getattr(self, a)}" for a in MESH_AXES)
        if fixed > n_devices or n_devices % fixed:
            raise ValueError(f"trainer.mesh {shown} needs a multiple of {fixed} devices, but "
                             f"there are {n_devices}; change trainer.mesh so its sizes "
                             f"multiply to {n_devices}.")
        sizes = {a: (n_devices // fixed if getattr(self, a) == -1 else getattr(self, a))
                 for a in MESH_AXES}
        if math.prod(sizes.values()) != n_devices:
            raise ValueError(f"trainer.mesh {shown} does not cover the {n_devices} devices; "
                             f"set one axis to -1 or make the sizes multiply to {n_devices}.")
        return sizes

    @property
    def batch_ways(self) -> tuple[str, ...]:
        """The mesh axes a batch is split over."""
        rule = LOGICAL_RULES["batch"]
        return rule if isinstance(rule, tuple) else (rule,)


def use_mesh(cfg: fdl.Config, data: int = -1, fsdp: int = 1, tensor: int = 1,
             expert: int = 1) -> None:
    """Fiddler: ``--fiddler=theseus.training.sharding.use_mesh(fsdp=8)`` sets
    ``trainer.mesh`` (afterwards ``--fdl_set=trainer.mesh.tensor=2`` works too)."""
    cfg.trainer.mesh = fdl.Config(MeshShape, data=data, fsdp=fsdp, tensor=tensor, expert=expert)


def make_mesh(shape: MeshShape | None = None, devices: list | None = None) -> Mesh:
    """A mesh over ``devices`` (default: all of them) with the axis sizes of ``shape``."""
    shape = shape or MeshShape()
    devices = list(jax.devices()) if devices is None else list(devices)
    sizes = shape.sizes(len(devices))
    grid = np.asarray(devices).reshape([sizes[a] for a in MESH_AXES])
    return Mesh(grid, MESH_AXES)


def mesh_sizes(mesh: Mesh) -> dict[str, int]:
    """``{axis name: size}`` of a mesh."""
    return dict(mesh.shape)


def _axes_of(rule: tuple[str, ...] | str | None) -> tuple[str, ...]:
    if rule is None:
        return ()
    return rule if isinstance(rule, tuple) else (rule,)


def logical_to_spec(names: tuple[str | None, ...] | None) -> P:
    """The mesh PartitionSpec for a tuple of logical axis names (no size checks)."""
    if not names:
        return P()
    return P(*(LOGICAL_RULES.get(n) if n is not None else None for n in names))


def param_spec(shape: tuple[int, ...], names: tuple[str | None, ...] | None,
               sizes: Mapping[str, int], where: str = "a parameter") -> P:
    """The PartitionSpec of a parameter of ``shape`` with logical ``names`` on a mesh of
    ``sizes``: the table, then FSDP on the largest free axis that divides if no ``embed``
    axis took ``fsdp``. Raises ValueError naming the sizes when an axis does not divide."""
    names = tuple(names or (None,) * len(shape))
    if len(names) != len(shape):
        raise ValueError(f"{where} has shape {shape} but {len(names)} logical axis names "
                         f"{names}; annotate one name per dimension.")
    entries: list[tuple[str, ...]] = []
    used: set[str] = set()
    for dim, name in zip(shape, names):
        axes = tuple(a for a in _axes_of(LOGICAL_RULES.get(name) if name else None)
                     if a not in used)
        ways = math.prod(sizes.get(a, 1) for a in axes)
        if dim % ways:
            field = _SIZE_FIELDS.get(name or "", "the model's shape")
            settings = " x ".join(f"trainer.mesh.{a}={sizes[a]}" for a in axes if sizes[a] > 1)
            raise ValueError(f"{where} has {dim} on its '{name}' axis, which does not split "
                             f"over {settings}; change trainer.mesh or {field} so that it "
                             f"divides.")
        used.update(axes)
        entries.append(axes)
    fsdp = sizes.get("fsdp", 1)
    if fsdp > 1 and "fsdp" not in used:
        free = [i for i, (d, e) in enumerate(zip(shape, entries))
                if math.prod(sizes.get(a, 1) for a in e) == 1 and d % fsdp == 0]
        if free:
            i = max(free, key=lambda i: shape[i])
            entries[i] = entries[i] + ("fsdp",)
    return P(*(None if not e else e[0] if len(e) == 1 else e for e in entries))


def _var_names(var: Any) -> tuple[str | None, ...] | None:
    meta = var.get_metadata() if hasattr(var, "get_metadata") else {}
    return meta.get("out_sharding") or meta.get("sharding_names")


def _path_text(path: tuple[Any, ...]) -> str:
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                    for k in path)


def state_shardings(abstract_state: nnx.State, mesh: Mesh) -> nnx.State:
    """A NamedSharding for every variable of an (abstract) nnx state, from its annotations;
    raises ValueError when a parameter's size does not split over its mesh axes."""
    sizes = mesh_sizes(mesh)

    def one(path: tuple[Any, ...], var: Any) -> Any:
        where = f"model parameter {_path_text(path)}"
        spec = param_spec(tuple(var.shape), _var_names(var), sizes, where)
        return var.replace(NamedSharding(mesh, spec))
    return jax.tree_util.tree_map_with_path(one, abstract_state,
                                            is_leaf=lambda x: isinstance(x, nnx.Variable))


def check_parameters(model_cfg: Any, sizes: Mapping[str, int]) -> None:
    """Raises ValueError, before any compute, when ``model_cfg``'s heads, experts or any
    parameter axis do not split over the mesh axes of ``sizes``."""
    for field, axis in (("num_heads", "tensor"), ("num_kv_heads", "tensor"),
                        ("num_experts", "expert")):
        value = getattr(model_cfg, field, None)
        if isinstance(value, int) and value % sizes.get(axis, 1):
            raise ValueError(f"model.{field} ({value}) does not split over "
                             f"trainer.mesh.{axis}={sizes[axis]}; use a trainer.mesh.{axis} "
                             f"that divides {value}, or change model.{field}.")
    _, abstract = nnx.split(nnx.eval_shape(lambda: model_cfg.make(nnx.Rngs(0))))
    flat = jax.tree_util.tree_flatten_with_path(
        abstract, is_leaf=lambda x: isinstance(x, nnx.Variable))[0]
    for path, var in flat:
        param_spec(tuple(var.shape), _var_names(var), sizes,
                   f"model parameter {_path_text(path)}")


def check_processes(sizes: Mapping[str, int], n_processes: int, local_devices: int) -> None:
    """Raises ValueError unless each process holds whole ``tensor`` groups: a process feeds
    its own batch rows, so the axes it shares with another process must split the batch."""
    if n_processes > 1 and local_devices % sizes.get("tensor", 1):
        raise ValueError(f"trainer.mesh.tensor={sizes['tensor']} spans processes of "
                         f"{local_devices} devices each; keep tensor parallelism inside a "
                         f"process with a trainer.mesh.tensor that divides {local_devices}.")


def optimizer_shardings(tx: optax.GradientTransformation, abstract_params: Any,
                        param_shardings: Any, mesh: Mesh) -> Any:
    """Shardings of ``tx``'s state: every copy of the parameter tree in it (Adam's moments)
    is placed like the parameters; everything else (counts) is replicated."""
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    return optax.tree_map_params(tx, lambda _, s: s, abstract_opt, param_shardings,
                                 transform_non_params=lambda _: replicated(mesh))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batches are split over ``data``, ``fsdp`` and ``expert`` on their leading axis."""
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
