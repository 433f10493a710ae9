"""Bytes of parameters and optimizer state per device, for each mesh shape.

    uv run python bench/memory.py                      # 8 devices; GPT tiny and small (+ Llama, MoE)
    uv run python bench/memory.py --devices=64 --models=gpt:xl,llama:llama8b

Nothing is allocated: the model is traced with ``eval_shape``, its parameters are placed by
the logical-axis table (``theseus.training.sharding``) on an abstract mesh, the optimizer
state is placed like the parameters, and each array's per-device shard is counted. The
table is markdown; a mesh that does not fit a model shows the error the trainer would give.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pathlib
import sys
from typing import Any

import fiddle as fdl
import jax
from flax import nnx
from jax.sharding import AbstractMesh

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from theseus.training import sharding

# data x fsdp x tensor (x expert) shapes, for 8 devices; scaled to --devices by `data`.
MESHES = [(8, 1, 1, 1), (1, 8, 1, 1), (1, 1, 8, 1), (2, 2, 2, 1), (2, 4, 1, 1), (1, 4, 2, 1),
          (1, 2, 1, 4)]
DEFAULT_MODELS = ["gpt:tiny", "gpt:small", "llama:tiny", "llama:llama1b", "llama:llama8b", "moe:tiny",
                  "moe:small"]


def load_preset(spec: str) -> tuple[Any, Any, int] | None:
    """``(model, optimizer, num_steps)`` of ``configs/FAMILY.py:PRESET``; None if absent."""
    family, preset = spec.split(":")
    try:
        module = importlib.import_module(f"configs.{family}")
    except ImportError:
        return None
    fn = getattr(module, preset, None)
    if fn is None:
        return None
    cfg = fn()
    return fdl.build(cfg.model), fdl.build(cfg.optimizer), fdl.build(cfg.trainer).num_steps


def per_device_bytes(model_cfg: Any, tx: Any, shape: sharding.MeshShape, n_devices: int
                     ) -> tuple[int, int, int]:
    """``(parameter count, parameter bytes, optimizer bytes)`` on the busiest device."""
    sizes = shape.sizes(n_devices)
    sharding.check_parameters(model_cfg, sizes)
    mesh = AbstractMesh(tuple(sizes[a] for a in sharding.MESH_AXES), sharding.MESH_AXES)
    _, abstract = nnx.split(nnx.eval_shape(lambda: model_cfg.make(nnx.Rngs(0))))
    params = nnx.to_pure_dict(abstract)
    param_sh = nnx.to_pure_dict(sharding.state_shardings(abstract, mesh))
    opt = jax.eval_shape(tx.init, params)
    opt_sh = sharding.optimizer_shardings(tx, params, param_sh, mesh)
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(params))
    return count, _bytes(params, param_sh), _bytes(opt, opt_sh)


def _bytes(tree: Any, shardings: Any) -> int:
    return sum(math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize
               for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)))


def _mib(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def mesh_shapes(n_devices: int) -> list[sharding.MeshShape]:
    """The 8-device shapes, with ``data`` scaled up to ``n_devices``."""
    out = []
    for d, f, t, e in MESHES:
        if n_devices % (f * t * e) == 0 and d * f * t * e <= n_devices:
            out.append(sharding.MeshShape(data=n_devices // (f * t * e), fsdp=f, tensor=t,
                                          expert=e))
    return out


def table(models: list[str], n_devices: int) -> str:
    """The markdown table of every model and mesh shape."""
    rows = [f"Per-device bytes on {n_devices} devices: parameters in the preset's param_dtype, "
            f"AdamW moments like the parameters; 'vs replicated' is the share of one full copy.",
            "",
            "| model | parameters | mesh data×fsdp×tensor×expert | params / device | "
            "optimizer / device | total / device | vs replicated |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for spec in models:
        loaded = load_preset(spec)
        if loaded is None:
            continue
        model_cfg, optimizer, num_steps = loaded
        tx = optimizer.make(num_steps)
        full = None
        for shape in mesh_shapes(n_devices):
            name = f"{shape.data}×{shape.fsdp}×{shape.tensor}×{shape.expert}"
            try:
                count, p, o = per_device_bytes(model_cfg, tx, shape, n_devices)
            except ValueError as e:
                rows.append(f"| {spec} | | {name} | does not fit: {e} | | | |")
                continue
            full = full or per_device_bytes(model_cfg, tx, sharding.MeshShape(data=1), 1)
            ratio = (p + o) / (full[1] + full[2])
            rows.append(f"| {spec} | {count / 1e6:,.2f}M | {name} | {_mib(p)} | {_mib(o)} | "
                        f"{_mib(p + o)} | {ratio:.3f} |")
    return "\n".join(rows)


def main() -> None:
    """Prints the table for ``--devices`` and ``--models``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated FAMILY:PRESET from configs/ (absent ones skipped)")
    args = parser.parse_args()
    print(table(args.models.split(","), args.devices))


if __name__ == "__main__":
    main()
