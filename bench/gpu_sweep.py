"""GPT-2 small (124M) training throughput on one GPU: a sweep of batch, remat and attention.

    bash bench/gpu.sh                                   # what to run on an H200
    uv run --no-sync python bench/gpu_sweep.py --tiny   # the same code on CPU, tiny shapes

Each configuration runs in its own process (so that the peak memory is its own): the
``small`` preset's model (context 1024, bf16 compute, float32 parameters) and optimizer
(AdamW, clipping, cosine schedule), ``--steps`` timed steps after one compiling and
``--warmup`` untimed steps, on synthetic tokens already on the device (uniform over the
vocabulary; the input pipeline is not part of this figure). Printed per configuration:

- tokens/s over the timed steps (no host sync inside them);
- MFU = tokens/s x FLOPs/token / peak, with the PaLM formula FLOPs/token = 6N + 12·L·T·D
  (N: matmul parameters incl. the tied head; the causal mask is not halved; remat
  recomputation is not counted) and the dense bf16 datasheet peak (H200: 989 TFLOP/s);
- peak device memory (``memory_stats()["peak_bytes_in_use"]``);
- compile time.

A configuration that runs out of memory is reported as such and the sweep goes on; the
sweep stops starting new configurations once ``--budget_s`` seconds have passed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULT_TAG = "RESULT "
# (batch, remat, attention): the best candidates first, so a short budget still sees them.
DEFAULT_SWEEP = "16:0:dot_product,32:0:dot_product,8:0:dot_product,16:0:manual_vjp," \
                "16:0:reference,32:1:dot_product,64:1:dot_product,32:0:manual_vjp,48:1:dot_product"
TINY_SWEEP = "2:0:reference,2:1:dot_product,2:0:manual_vjp"


def parse_sweep(text: str) -> list[tuple[int, bool, str]]:
    """``"16:0:dot_product,32:1:reference"`` -> ``[(16, False, 'dot_product'), ...]``."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in ("0", "1"):
            raise ValueError(f"sweep entry {item!r} is not BATCH:REMAT:ATTENTION, e.g. "
                             f"'16:0:dot_product' (REMAT is 0 or 1).")
        out.append((int(parts[0]), parts[1] == "1", parts[2]))
    if not out:
        raise ValueError("--sweep is empty; give at least one BATCH:REMAT:ATTENTION entry.")
    return out


def build(tiny: bool, remat: bool, attention: str) -> tuple[Any, Any]:
    """The ``small`` preset's model config (or a tiny one) and its optimizer."""
    import fiddle as fdl

    sys.path.insert(0, str(ROOT))
    from configs import gpt

    cfg = gpt.small()
    if tiny:
        cfg.model.vocab_size, cfg.model.seq_len, cfg.model.num_layers = 256, 32, 2
        cfg.model.d_model, cfg.model.num_heads = 32, 2
    cfg.model.remat, cfg.model.attention = remat, attention
    exp = fdl.build(cfg)
    return exp.model, exp.optimizer


def measure(batch: int, remat: bool, attention: str, steps: int, warmup: int, tiny: bool,
            total_steps: int = 20000) -> dict[str, Any]:
    """Compiles and times one configuration in this process."""
    import jax
    import numpy as np

    from theseus.training import sharding
    from theseus.training.mfu import peak_flops
    from theseus.training.state import StateFactory
    from theseus.training.train_step import make_train_step

    model, opt = build(tiny, remat, attention)
    mesh = sharding.make_mesh()
    tx = opt.make(total_steps)
    factory = StateFactory(model, tx, 0, mesh)
    state = factory.init()
    step_fn = jax.jit(make_train_step(factory.graphdef, tx,
                                      opt.schedule.make(opt.learning_rate, total_steps), 0,
                                      model.dropout > 0), donate_argnums=0)
    rng = np.random.default_rng(0)
    data = [sharding.global_batch(rng.integers(0, model.vocab_size, (batch, model.seq_len + 1),
                                               dtype=np.int32), mesh) for _ in range(4)]
    t = time.perf_counter()
    state, metrics = step_fn(state, data[0])
    first_loss = float(metrics["train/loss"])
    compile_s = time.perf_counter() - t
    for i in range(warmup):
        state, metrics = step_fn(state, data[i % len(data)])
    jax.block_until_ready(state)
    t = time.perf_counter()
    for i in range(steps):
        state, metrics = step_fn(state, data[i % len(data)])
    last_loss = float(metrics["train/loss"])  # waits for the last step
    elapsed = time.perf_counter() - t
    peak, source = peak_flops()
    tps = steps * batch * model.seq_len / elapsed
    stats = jax.local_devices()[0].memory_stats() or {}
    return {"tokens_per_sec": tps, "step_ms": elapsed / steps * 1e3,
            "mfu": tps * model.flops_per_token() / peak, "peak_flops": peak, "peak_source": source,
            "flops_per_token": model.flops_per_token(), "compile_s": compile_s,
            "peak_bytes": stats.get("peak_bytes_in_use"), "first_loss": first_loss,
            "last_loss": last_loss, "device": jax.local_devices()[0].device_kind}


def run_one(args: argparse.Namespace) -> None:
    """Worker: measures ``args.one`` and prints one JSON line (an error line on failure)."""
    from absl import flags

    flags.FLAGS.mark_as_parsed()
    (batch, remat, attention), = parse_sweep(args.one)
    out: dict[str, Any] = {"batch": batch, "remat": remat, "attention": attention}
    try:
        out.update(measure(batch, remat, attention, args.steps, args.warmup, args.tiny))
    except Exception as e:  # noqa: BLE001 - reported per configuration, the sweep goes on
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        oom = "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()
        out["error"] = "out of memory" if oom else f"{type(e).__name__}: {message[:300]}"
    print(RESULT_TAG + json.dumps(out), flush=True)


def describe(r: dict[str, Any]) -> str:
    """One table row."""
    head = f"{r['batch']:>5} x {r.get('seq_len', '')}{'  remat' if r['remat'] else '       '}" \
           f"  {r['attention']:<12}"
    if "error" in r:
        return f"{head}  {r['error']}"
    mem = f"{r['peak_bytes'] / 2**30:6.1f} GiB" if r.get("peak_bytes") else "     n/a"
    return (f"{head}  {r['tokens_per_sec']:>11,.0f}  {r['step_ms']:8.1f}  {r['mfu']:6.1%}  {mem}"
            f"  {r['compile_s']:6.1f}  {r['first_loss']:.3f} -> {r['last_loss']:.3f}")


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Runs every configuration in its own process, within ``--budget_s``; prints a table."""
    configs = parse_sweep(args.sweep or (TINY_SWEEP if args.tiny else DEFAULT_SWEEP))
    start, results = time.time(), []
    print(f"{'batch':>5}   T  remat  attention     {'tokens/s':>11}  {'step ms':>8}  "
          f"{'MFU':>6}  {'peak mem':>10}  compile  loss", flush=True)
    for batch, remat, attention in configs:
        left = args.budget_s - (time.time() - start)
        if left < 20:
            print(f"budget of {args.budget_s:.0f} s spent; skipped {batch}:{int(remat)}:{attention}")
            continue
        cmd = [sys.executable, __file__, f"--one={batch}:{int(remat)}:{attention}",
               f"--steps={args.steps}", f"--warmup={args.warmup}"] + (["--tiny"] if args.tiny else [])
        try:
            proc = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True,
                                  timeout=left,
                                  env={**os.environ, "THESEUS_COMPILE_CACHE": "off"})
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
            r = (json.loads(lines[-1][len(RESULT_TAG):]) if lines else
                 {"batch": batch, "remat": remat, "attention": attention,
                  "error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-300:]}"})
        except subprocess.TimeoutExpired:
            r = {"batch": batch, "remat": remat, "attention": attention,
                 "error": "stopped: the time budget ran out"}
        r["seq_len"] = 32 if args.tiny else 1024
        results.append(r)
        print(describe(r), flush=True)
    done = [r for r in results if "error" not in r]
    if done:
        best = max(done, key=lambda r: r["mfu"])
        print(f"best: batch {best['batch']}, remat {best['remat']}, {best['attention']}: "
              f"MFU {best['mfu']:.1%} ({best['tokens_per_sec']:,.0f} tokens/s) on "
              f"{best['device']}; peak {best['peak_flops'] / 1e12:.3g} TFLOP/s "
              f"({best['peak_source']}); FLOPs/token {best['flops_per_token'] / 1e6:.1f} M "
              f"= 6N + 12·L·T·D (PaLM)")
    print(f"sweep took {time.time() - start:.0f} s")
    return results


def main() -> None:
    """Parses flags; runs one configuration (``--one``) or the sweep."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", default="", help="BATCH:REMAT:ATTENTION,... (default: a "
                   "GPT-2-small sweep, or a tiny one with --tiny)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget_s", type=float, default=480.0)
    p.add_argument("--tiny", action="store_true", help="tiny shapes, for a CPU check")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    try:
        parse_sweep(args.one or args.sweep or DEFAULT_SWEEP)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if args.one:
        return run_one(args)
    sweep(args)


if __name__ == "__main__":
    main()
