"""Run by ``test_parallel.py`` in a subprocess with 8 simulated CPU devices.

For each model and mesh shape it computes, from the same parameters and batch, the loss,
the gradients and the state after one AdamW step, and compares them with one device. It
prints one JSON object: per model and mesh, the largest differences, the shard shapes of a
few parameters and optimizer moments, and whether a train step keeps the state's placement.

Usage: ``python parallel_worker.py`` (set XLA_FLAGS=--xla_force_host_platform_device_count=8).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import jax
import numpy as np

from theseus.models.gpt import GPTConfig
from theseus.models.llama import LlamaConfig
from theseus.models.moe import MoEConfig
from theseus.training import sharding
from theseus.training.optimizer import AdamW
from theseus.training.schedules import Constant
from theseus.training.state import StateFactory
from theseus.training.train_step import make_train_step

MESHES = {"8x1x1": sharding.MeshShape(data=8, fsdp=1, tensor=1),
          "1x8x1": sharding.MeshShape(data=1, fsdp=8, tensor=1),
          "2x2x2": sharding.MeshShape(data=2, fsdp=2, tensor=2),
          "1x1x8": sharding.MeshShape(data=1, fsdp=1, tensor=8),
          "1x2x4": sharding.MeshShape(data=1, fsdp=2, tensor=4),
          "1x2x1x4": sharding.MeshShape(data=1, fsdp=2, tensor=1, expert=4)}
# GPT runs on every data x fsdp x tensor shape; Llama (grouped-query attention) and MoE
# (experts on the expert axis) on the shapes that add something for them, to save time.
MESHES_OF = {"gpt": ("8x1x1", "1x8x1", "2x2x2", "1x1x8"), "llama": ("2x2x2", "1x2x4"),
             "moe": ("2x2x2", "1x2x1x4")}
BATCH, SEQ = 8, 16
B1 = 0.9  # AdamW's default first-moment decay


def models() -> dict[str, Any]:
    """Tiny GPT, Llama (SwiGLU, untied, 8 query heads sharing 4 key/value heads) and MoE
    (8 experts, top-2) configs."""
    shapes = dict(vocab_size=64, seq_len=SEQ, num_layers=1, d_model=32, num_heads=8)
    return {"gpt": GPTConfig(**shapes),
            "llama": LlamaConfig(**shapes, num_kv_heads=4, ffn_dim=64),
            "moe": MoEConfig(**shapes, num_kv_heads=8, ffn_dim=64, num_experts=8)}


def run_model(model_cfg: Any, meshes: tuple[str, ...]) -> dict[str, Any]:
    """Reference on one device, then each of ``meshes``; returns the comparisons.

    One AdamW step without clipping gives the gradients too: its first moment is
    ``(1 - b1) * grad`` after the first step.
    """
    tx = AdamW(learning_rate=1e-2, eps=1e-4, clip_norm=None, schedule=Constant()).make(10)
    lr = Constant().make(1e-2, 10)
    rng = np.random.default_rng(0)
    batch = rng.integers(0, model_cfg.vocab_size, (BATCH, SEQ + 1)).astype(np.int32)

    one = sharding.make_mesh(sharding.MeshShape(data=1), devices=jax.devices()[:1])
    ref_factory = StateFactory(model_cfg, tx, 0, one)
    ref_state = jax.device_get(ref_factory.init())
    step_fn = make_train_step(ref_factory.graphdef, tx, lr, 0, dropout=False)
    ref_next, ref_metrics = jax.device_get(jax.jit(step_fn)(ref_state, batch))
    results: dict[str, Any] = {"ref_loss": float(ref_metrics["train/loss"])}
    for name in meshes:
        results[name] = one_mesh(model_cfg, tx, step_fn, MESHES[name], batch,
                                 (ref_state, ref_next, ref_metrics))
    return results


def _grads(state: dict[str, Any]) -> Any:
    """The gradients of the step that produced ``state``, from Adam's first moment."""
    return jax.tree.map(lambda m: np.asarray(m) / (1 - B1), _first_moment(state))


def _first_moment(state: dict[str, Any]) -> Any:
    return next(s.mu for s in jax.tree.leaves(state["opt_state"],
                                              is_leaf=lambda s: hasattr(s, "mu"))
                if hasattr(s, "mu"))


def one_mesh(model_cfg: Any, tx: Any, step_fn: Any, shape: sharding.MeshShape,
             batch: np.ndarray, ref: tuple) -> dict[str, Any]:
    """Loss, gradients and one step on ``shape``, compared with the reference."""
    ref_state, ref_next, ref_metrics = ref
    mesh = sharding.make_mesh(shape)
    factory = StateFactory(model_cfg, tx, 0, mesh)
    born = factory.init()  # created sharded, from the seed
    state = jax.device_put(ref_state, factory.shardings)
    nxt, metrics = jax.jit(step_fn, donate_argnums=0)(state, sharding.global_batch(batch, mesh))
    same_placement = all(a.sharding.is_equivalent_to(s, a.ndim) for a, s in zip(
        jax.tree.leaves(nxt), jax.tree.leaves(factory.shardings)))
    ref_grads = _grads(ref_next)
    return {"loss_diff": abs(float(metrics["train/loss"]) - float(ref_metrics["train/loss"])),
            "grad_diff": _max_diff(_grads(jax.device_get(nxt)), ref_grads),
            "grad_scale": _max_abs(ref_grads),
            "step_diff": _max_diff(nxt["params"], ref_next["params"]),
            "init_diff": _max_diff(born["params"], ref_state["params"]),
            "step_keeps_placement": same_placement,
            "shards": _shard_shapes(nxt), "per_device_bytes": _device0_bytes(nxt)}


def _max_diff(a: Any, b: Any) -> float:
    diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))),
                         jax.device_get(a), b)
    return max(jax.tree.leaves(diffs))


def _max_abs(a: Any) -> float:
    return max(float(np.max(np.abs(x))) for x in jax.tree.leaves(a))


def _shard_shapes(state: dict[str, Any]) -> dict[str, Any]:
    """Global and per-device shapes of every parameter and its Adam first moment."""
    out = {}
    for tree, prefix in ((state["params"], "params"), (_first_moment(state), "mu")):
        for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
            out[prefix + jax.tree_util.keystr(path)] = {
                "shape": list(x.shape), "shard": list(x.addressable_shards[0].data.shape)}
    return out


def _device0_bytes(state: dict[str, Any]) -> int:
    dev = jax.devices()[0]
    return sum(s.data.nbytes for x in jax.tree.leaves(state) for s in x.addressable_shards
               if s.device == dev)


def main() -> None:
    """Prints the comparisons of every model as one JSON object."""
    if jax.device_count() != 8:
        sys.exit(f"expected 8 devices, found {jax.device_count()}; set XLA_FLAGS="
                 f"--xla_force_host_platform_device_count=8")
    jax.config.update("jax_default_matmul_precision", "highest")
    print(json.dumps({name: run_model(cfg, MESHES_OF[name]) for name, cfg in models().items()}))


if __name__ == "__main__":
    main()
