"""Training throughput and MFU of each model family's tiny preset on this machine's CPU.

    uv run --no-sync python bench/models.py                    # gpt, llama, moe, moe-dropless
    uv run --no-sync python bench/models.py --families=gpt,llama --steps=60

For each family it builds the preset's model and optimizer (``configs/<family>.py:tiny``),
compiles the train step of ``theseus/training/train_step.py`` on a random ``[batch,
seq_len + 1]`` token batch, runs a few warm-up steps, then times ``--steps`` steps with
one host sync at the end. MFU is the model's ``flops_per_token`` (6N + 12·L·T·D; MoE counts
the active parameters only) times tokens/s over the float32 matmul peak that
``theseus.training.mfu`` measures on this CPU (the best of a measurement before and after
the runs, so a busy machine lowers MFU rather than raising it).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

FAMILIES = {  # name: (configs module, changes to the preset's model)
    "gpt": ("gpt", {}),
    "llama": ("llama", {}),
    "moe": ("moe", {}),
    "moe-dropless": ("moe", {"dispatch": "dropless"}),
}


def build(family: str) -> tuple[Any, Any, Any]:
    """The preset's model config, its optimizer config and its trainer config."""
    import importlib

    import fiddle as fdl

    module, changes = FAMILIES[family]
    cfg = importlib.import_module(f"configs.{module}").tiny()
    for key, value in changes.items():
        setattr(cfg.model, key, value)
    exp = fdl.build(cfg)
    return exp.model, exp.optimizer, exp.trainer


def bench(family: str, steps: int, warmup: int) -> dict[str, float]:
    """Tokens/s, step time and compile time of one family's tiny preset."""
    from flax import nnx

    from theseus.training.train_step import make_train_step

    model, opt, trainer = build(family)
    batch, total = trainer.batch_size, trainer.num_steps  # the preset's schedule
    tx = opt.make(total)
    graphdef, variables = nnx.split(model.make(nnx.Rngs(0)))
    params = nnx.to_pure_dict(variables)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    step = jax.jit(make_train_step(graphdef, tx, opt.schedule.make(opt.learning_rate, total), 0,
                                   model.dropout > 0), donate_argnums=0)
    tokens = jax.random.randint(jax.random.key(0), (batch, model.seq_len + 1), 0,
                                model.vocab_size)
    t = time.perf_counter()
    state, metrics = step(state, tokens)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t
    for _ in range(warmup):
        state, metrics = step(state, tokens)
    jax.block_until_ready(metrics)
    t = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, tokens)
    jax.block_until_ready((state, metrics))
    elapsed = time.perf_counter() - t
    return {"params": model.num_params(), "flops": model.flops_per_token(),
            "tok_s": steps * batch * model.seq_len / elapsed, "step_ms": 1e3 * elapsed / steps,
            "compile_s": compile_s, "loss": float(metrics["train/loss"])}


def main() -> None:
    """Runs the chosen families and prints one table row each."""
    from theseus import host_memory
    from theseus.training.mfu import measure_matmul_peak

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"comma-separated, from {', '.join(FAMILIES)}")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per family")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after compiling")
    args = parser.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    host_memory.run_cpu_inline()  # as theseus.runner.run does, before the backend starts
    peak = measure_matmul_peak()
    rows = {f: bench(f, args.steps, args.warmup) for f in families}
    peak = max(peak, measure_matmul_peak())
    print(f"{jax.device_count()} {jax.devices()[0].platform} device(s); f32 matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s; {args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'family':<13} {'params':>8} {'GFLOP/tok':>10} {'tok/s':>8} {'step ms':>8} "
          f"{'MFU':>6} {'compile s':>9} {'loss':>6}")
    for f, r in rows.items():
        print(f"{f:<13} {r['params'] / 1e6:>7.2f}M {r['flops'] / 1e9:>10.4f} {r['tok_s']:>8.0f} "
              f"{r['step_ms']:>8.1f} {100 * r['tok_s'] * r['flops'] / peak:>5.1f}% "
              f"{r['compile_s']:>9.1f} {r['loss']:>6.2f}")


if __name__ == "__main__":
    main()
