"""The loader's speed against what tiny training consumes, and the data-wait fraction.

    uv run python bench/data.py                  # tiny preset shapes: 16 x 129 tokens
    uv run python bench/data.py --train_steps=0  # loader only

1. Loader: batches/s of the tiny preset's training loader (Shakespeare, 2,048-token BPE,
   batch 16 x 129 tokens) in-process and with 2 grain worker processes, plain and packed,
   measured for ``--seconds`` each after the first batch.
2. Training: a short run of the tiny preset (``--train_steps`` steps); its steps/s from the
   median ``step_time`` of ``metrics.jsonl``, and the mean ``train/data_wait`` (the fraction
   of step time spent in ``next(data_iter)``), the first window (compilation) left out.
3. The ratio of loader batches/s to training steps/s. Goals: ratio >= 20, data wait < 1%.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import sys
import tempfile
import time

from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
flags.FLAGS.mark_as_parsed()

import fiddle as fdl

from configs import gpt


def loader_rate(data, prepared, seq_len: int, batch: int, seconds: float) -> float:
    """Batches per second of ``data``'s training loader after its first batch."""
    it = iter(data.train_loader(prepared, seq_len, batch, seed=0))
    next(it)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        n += 1
    return n / (time.perf_counter() - start)


def train_rates(steps: int) -> tuple[float, float]:
    """(steps/s, mean data-wait fraction) of a short tiny-preset run."""
    cfg = gpt.tiny()
    cfg.trainer.num_steps = steps
    cfg.trainer.log_every = 10
    cfg.trainer.eval_every = steps
    cfg.trainer.checkpoint_every = steps
    cfg.trainer.sample_tokens = 0
    cfg.trainer.progress = False
    cfg.optimizer.schedule.warmup_steps = min(50, steps // 2)
    with tempfile.TemporaryDirectory() as tmp:
        fdl.build(cfg).run(pathlib.Path(tmp) / "run")
        rows = [json.loads(line) for line in (pathlib.Path(tmp) / "run" / "metrics.jsonl")
                .read_text().splitlines()]
    first_window = cfg.trainer.log_every
    step_times = [r["step_time"] for r in rows if "step_time" in r and r["step"] > first_window]
    waits = [r["train/data_wait"] for r in rows if "train/data_wait" in r
             and r["step"] > first_window]
    return 1.0 / statistics.median(step_times), statistics.mean(waits)


def main() -> None:
    """Prints the loader rates, the training rate, their ratio and the data-wait fraction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--train_steps", type=int, default=100)
    args = parser.parse_args()

    exp = fdl.build(gpt.tiny())
    seq_len, batch = exp.model.seq_len, exp.trainer.batch_size
    prepared = exp.data.prepare()
    print(f"tiny preset data: {prepared.path.name}, batch {batch} x {seq_len + 1} tokens")
    rates = {}
    for label, changes in [("0 workers", {}), ("2 workers", {"worker_count": 2}),
                           ("0 workers, packed", {"packing": True}),
                           ("2 workers, packed", {"worker_count": 2, "packing": True})]:
        data = dataclasses.replace(exp.data, **changes)
        rates[label] = loader_rate(data, prepared, seq_len, batch, args.seconds)
        print(f"loader, {label:18s}: {rates[label]:8.1f} batches/s "
              f"({rates[label] * batch * (seq_len + 1):,.0f} tokens/s)")
    if args.train_steps:
        steps_per_s, wait = train_rates(args.train_steps)
        print(f"tiny training ({args.train_steps} steps): {steps_per_s:.2f} steps/s "
              f"({steps_per_s * batch * seq_len:,.0f} tokens/s)")
        for label in ("0 workers", "2 workers"):
            print(f"loader / training, {label}: {rates[label] / steps_per_s:.0f}x (goal >= 20x)")
        print(f"data wait: {wait:.3%} of step time (goal < 1%)")


if __name__ == "__main__":
    main()
