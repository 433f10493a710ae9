"""Where a train step's time goes: device time per XLA op, from a JAX profiler trace.

    uv run --no-sync python bench/profile_step.py --preset=small --precision=bfloat16
    uv run --no-sync python bench/profile_step.py --preset=tiny --top=40 --steps=10

Runs ``bench/train.py``'s preset (same model, batch and train step) on this machine's CPU,
traces ``--steps`` steps after three warm-up ones, and prints the mean milliseconds a step
of the ``--top`` slowest ops (their output shape and the JAX operation they come from) and
the totals per kind of op (dots are XLA:CPU's ``ynn_fusion`` and ``dot_general``; the
pinned transposes of ``bf16_matmul`` are ``transpose_copy_fusion``). Set ``XLA_FLAGS`` and
``taskset`` as ``bench/train.py`` does to profile one thread.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import re
import sys
import tempfile
import time

OP_LINE = re.compile(r'\s*(?:ROOT )?%(\S+) = (\S+) .*?op_name="([^"]+)"')


def op_table(hlo_text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (output shape, JAX op name), from compiled HLO text."""
    return {m[1]: (m[2], m[3]) for m in map(OP_LINE.match, hlo_text.splitlines()) if m}


def device_ms(trace_dir: str, ops: dict[str, tuple[str, str]], steps: int) -> dict[str, float]:
    """Mean milliseconds a step per HLO op, summed over the trace's complete events."""
    path = next(pathlib.Path(trace_dir).rglob("*.trace.json.gz"))
    totals: collections.Counter[str] = collections.Counter()
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    for event in events:
        if event.get("ph") == "X" and event.get("name") in ops:
            totals[event["name"]] += event["dur"] / 1e3 / steps
    return dict(totals)


def main() -> None:
    """Profiles the preset's train step and prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small"])
    p.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    from theseus import host_memory

    host_memory.reexec_with_huge_pages(time.time())  # as launch.py runs
    from absl import flags

    flags.FLAGS.mark_as_parsed()
    import jax

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import train as bench_train

    from theseus.training import sharding

    host_memory.run_cpu_inline()
    exp = bench_train.build_experiment(args.preset, 2, 256, args.precision)
    state, step, mesh = bench_train.train_step_of(exp)
    batch = sharding.global_batch(next(bench_train.batches(exp)), mesh)
    ops = op_table(step.lower(state, batch).compile().as_text())
    for _ in range(3):
        state, _ = step(state, batch)
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as trace_dir:
        start = time.perf_counter()
        jax.profiler.start_trace(trace_dir)
        for _ in range(args.steps):
            state, _ = step(state, batch)
            jax.block_until_ready(state)
        jax.profiler.stop_trace()
        wall = (time.perf_counter() - start) / args.steps
        times = device_ms(trace_dir, ops, args.steps)
    print(f"{args.preset}, {args.precision}: {wall * 1e3:.1f} ms a step traced, "
          f"{sum(times.values()):.1f} ms in ops")
    for name, ms in sorted(times.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"  {ms:8.1f} ms  {ops[name][0]:<24} {name:<32} {ops[name][1][-60:]}")
    kinds: collections.Counter[str] = collections.Counter()
    for name, ms in times.items():
        kinds[name.split(".")[0]] += ms
    print("by kind: " + ", ".join(f"{k} {v:.0f} ms" for k, v in kinds.most_common(8)))


if __name__ == "__main__":
    main()
