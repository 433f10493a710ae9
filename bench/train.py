"""Training throughput of theseus against a PyTorch twin, on this machine's CPU.

    uv run --no-sync python bench/train.py                      # tiny and small, 1 and 2 threads
    uv run --no-sync python bench/train.py --presets=tiny --threads=1 --repeats=3
    uv run --no-sync python bench/train.py --precisions=float32  # like-for-like float32 only

For each preset, thread count and matmul precision it runs, one after the other, each in its
own process pinned to the first N cores (``taskset``): theseus (the preset's model,
optimizer and data pipeline, the loop of ``theseus/training/loop.py``: no per-step host
sync, metrics fetched every ``log_every`` steps) and the PyTorch twin
(``bench/torch_twin.py``: same model, same optimizer, same batches from the same grain
loader, eager mode). It prints tokens/s of each and the ratio ours/twin, MFU against the
matmul peak at the run's precision (measured in the same process), a breakdown of the step
time (data wait, device step, logging) and the compile time.

Precisions: ``float32`` is float32 everywhere on both sides. ``bfloat16`` is theseus's
``model.matmul_precision='bfloat16'`` (matmul operands rounded to bfloat16, sums in
float32, everything else float32) against the twin under ``torch.autocast`` to bfloat16.
The last ratio printed for each setting compares each side at its faster precision.

``small`` is GPT-2 small (124M) run at a reduced batch and context (``--small_batch``,
``--small_seq_len``), with float32 parameters and activations like the twin, on the tiny
preset's Shakespeare tokens (ids below 2,048, so the 50,257-token tokenizer is not
trained for a benchmark). JAX at one thread runs with
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``; torch with ``torch.set_num_threads(N)``.
The persistent compilation cache is off, so the compile time is a real compile.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = pathlib.Path(__file__).resolve().parent
RESULT_TAG = "RESULT "
PRESETS = {
    # name: (config function, steps timed, warm-up steps after the compiling one)
    "tiny": ("tiny", 60, 3),
    "small": ("small", 4, 1),
}
LOG_EVERY = 10


def build_experiment(preset: str, small_batch: int, small_seq_len: int,
                     precision: str = "float32") -> Any:
    """The preset's ``Experiment`` at matmul ``precision``; ``small`` shrunk to a CPU-sized
    batch and context."""
    import fiddle as fdl

    sys.path.insert(0, str(ROOT))
    from configs import gpt

    cfg = getattr(gpt, PRESETS[preset][0])()
    if preset == "small":
        cfg.model.dtype = "float32"
        cfg.model.seq_len, cfg.trainer.batch_size = small_seq_len, small_batch
        cfg.data = gpt.tiny().data  # Shakespeare with the 2,048-token BPE
    cfg.model.matmul_precision = precision
    return fdl.build(cfg)


def batches(exp: Any) -> Iterator[Any]:
    """The preset's training batches ``[B, T + 1]`` (numpy), from its grain loader."""
    prepared = exp.data.prepare()
    loader = exp.data.train_loader(prepared, exp.model.seq_len, exp.trainer.batch_size,
                                   exp.trainer.seed)
    return iter(loader)


class Timer:
    """Sums wall-clock seconds per phase (``data``, ``device``, ``logging``)."""

    def __init__(self) -> None:
        self.seconds = {"data": 0.0, "device": 0.0, "logging": 0.0}
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Adds the time since the previous lap to ``phase``."""
        now = time.perf_counter()
        self.seconds[phase] += now - self._t
        self._t = now


def result(framework: str, exp: Any, steps: int, timer: Timer, compile_s: float, peak: float,
           losses: list[float]) -> dict[str, Any]:
    """The figures one worker reports."""
    total = sum(timer.seconds.values())
    tokens = steps * exp.trainer.batch_size * exp.model.seq_len
    tps = tokens / total
    return {"framework": framework, "tokens_per_sec": tps, "step_s": total / steps,
            "mfu": tps * exp.model.flops_per_token() / peak, "peak_gflops": peak / 1e9,
            "compile_s": compile_s, "first_loss": losses[0], "last_loss": losses[-1],
            **{f"{k}_s": v / steps for k, v in timer.seconds.items()}}


def train_step_of(exp: Any) -> tuple[Any, Callable[..., Any], Any]:
    """The initial state, the jitted train step (state donated, as ``TrainingLoop`` jits it)
    and the mesh of ``exp``. Call ``host_memory.run_cpu_inline`` before it, as
    ``theseus.runner.run`` does before the backend starts."""
    import jax

    from theseus.training import sharding
    from theseus.training.state import StateFactory
    from theseus.training.train_step import make_train_step

    cfg, opt = exp.trainer, exp.optimizer
    mesh = sharding.make_mesh()
    tx = opt.make(cfg.num_steps)
    factory = StateFactory(exp.model, tx, cfg.seed, mesh)
    step_fn = jax.jit(make_train_step(factory.graphdef, tx,
                                      opt.schedule.make(opt.learning_rate, cfg.num_steps),
                                      cfg.seed, exp.model.dropout > 0), donate_argnums=0)
    return factory.init(), step_fn, mesh


def run_jax(exp: Any, steps: int, warmup: int) -> dict[str, Any]:
    """Times theseus's train step the way ``TrainingLoop`` runs it."""
    import jax

    from theseus import host_memory
    from theseus.training import sharding
    from theseus.training.metrics import MetricsLogger
    from theseus.training.mfu import measure_matmul_peak

    host_memory.run_cpu_inline()  # as theseus.runner.run does, before the backend starts
    peak = measure_matmul_peak(precision=exp.model.matmul_precision)
    cfg = exp.trainer
    state, step_fn, mesh = train_step_of(exp)
    it = batches(exp)
    put = lambda b: sharding.global_batch(b, mesh)
    t = time.perf_counter()
    state, metrics = step_fn(state, put(next(it)))
    losses = [float(metrics["train/loss"])]
    compile_s = time.perf_counter() - t
    for _ in range(warmup):
        state, metrics = step_fn(state, put(next(it)))
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as tmp:
        logger = MetricsLogger(pathlib.Path(tmp), cfg.batch_size * exp.model.seq_len,
                               exp.model.flops_per_token(), peak, 0)
        timer = Timer()
        for step in range(1, steps + 1):
            batch = put(next(it))
            timer.lap("data")
            state, metrics = step_fn(state, batch)
            logger.push(step, metrics)
            timer.lap("device")
            if step % LOG_EVERY == 0 or step == steps:
                jax.block_until_ready(state)
                timer.lap("device")
                losses.append(logger.flush_rows()[-1]["train/loss"])
                timer.lap("logging")
        logger.close()
    return result("theseus", exp, steps, timer, compile_s, peak, losses)


def run_twin(exp: Any, steps: int, warmup: int, threads: int) -> dict[str, Any]:
    """Times the PyTorch twin on the same batches, with the same logging cadence."""
    import numpy as np
    import torch

    sys.path.insert(0, str(BENCH))
    import torch_twin

    torch.set_num_threads(threads)
    torch.manual_seed(exp.trainer.seed)
    peak = _torch_matmul_peak(exp.model.matmul_precision == "bfloat16")
    m, opt, cfg = exp.model, exp.optimizer, exp.trainer
    model = torch_twin.TwinGPT(m.vocab_size, m.seq_len, m.num_layers, m.d_model, m.num_heads,
                               m.mlp_ratio)
    trainer = torch_twin.TwinTrainer(model, opt.learning_rate, opt.schedule.warmup_steps,
                                     cfg.num_steps, opt.b1, opt.b2, opt.eps, opt.weight_decay,
                                     opt.clip_norm, opt.schedule.final_fraction,
                                     bf16_autocast=m.matmul_precision == "bfloat16")
    it = batches(exp)
    put = lambda b: torch.from_numpy(np.asarray(b, np.int64))
    t = time.perf_counter()
    losses = [float(trainer.step(put(next(it)))["loss"])]
    first_step_s = time.perf_counter() - t
    for _ in range(warmup):
        trainer.step(put(next(it)))
    queued: list[torch.Tensor] = []
    with tempfile.TemporaryDirectory() as tmp, open(pathlib.Path(tmp) / "m.jsonl", "w") as f:
        timer = Timer()
        for step in range(1, steps + 1):
            batch = put(next(it))
            timer.lap("data")
            queued.append(trainer.step(batch)["loss"])
            timer.lap("device")
            if step % LOG_EVERY == 0 or step == steps:
                first = step - len(queued) + 1
                f.writelines(json.dumps({"step": first + i, "loss": loss.item()}) + "\n"
                             for i, loss in enumerate(queued))
                losses.append(queued[-1].item())
                queued.clear()
                timer.lap("logging")
    return result("torch twin", exp, steps, timer, first_step_s, peak, losses)


def _torch_matmul_peak(bf16: bool = False, n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the best ``n x n`` matmul in torch (the twin's own peak), float32 or
    bfloat16."""
    import torch

    a = torch.ones(n, n, dtype=torch.bfloat16 if bf16 else torch.float32)
    a @ a
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def worker(args: argparse.Namespace) -> None:
    """Runs one framework at one preset; prints its figures as one JSON line."""
    exp = build_experiment(args.preset, args.small_batch, args.small_seq_len,
                           args.precision_now)
    _, steps, warmup = PRESETS[args.preset]
    steps = args.steps or steps
    if args.worker == "jax":
        out = run_jax(exp, steps, warmup)
    else:
        out = run_twin(exp, steps, warmup, args.threads_now)
    print(RESULT_TAG + json.dumps({**out, "preset": args.preset, "threads": args.threads_now,
                                   "precision": args.precision_now,
                                   "batch": exp.trainer.batch_size, "seq_len": exp.model.seq_len}),
          flush=True)


def worker_env(framework: str, threads: int, twin_huge_pages: bool = False) -> dict[str, str]:
    """Environment of a worker: CPU JAX, one XLA thread when ``threads == 1``, no
    persistent compilation cache (so that the compile time is measured); with
    ``twin_huge_pages`` the twin's heap gets the huge pages theseus gives its own."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "THESEUS_COMPILE_CACHE": "off",
           "OMP_NUM_THREADS": str(threads)}
    if framework == "torch" and twin_huge_pages:
        from theseus import host_memory

        env = host_memory.huge_pages_environ(env)
    if framework == "jax" and threads == 1:
        # Only "--" flags: XLA stops reading XLA_FLAGS at the first bare word.
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                            ).strip()
    return env


def launch_worker(framework: str, preset: str, threads: int, precision: str,
                  args: argparse.Namespace) -> dict[str, Any]:
    """Runs one worker pinned to cores ``0..threads-1`` and returns its figures."""
    cores = ",".join(str(i) for i in range(threads))
    cmd = ["taskset", "-c", cores, sys.executable, __file__, f"--worker={framework}",
           f"--preset={preset}", f"--threads_now={threads}", f"--precision_now={precision}",
           f"--steps={args.steps}",
           f"--small_batch={args.small_batch}", f"--small_seq_len={args.small_seq_len}"]
    env = worker_env(framework, threads, args.twin_huge_pages)
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, text=True, capture_output=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"the {framework} worker failed:\n{proc.stderr[-3000:]}")


def describe(r: dict[str, Any]) -> str:
    """One line of figures for one worker."""
    return (f"  {r['framework']:<10} {r['precision']:<8} {r['tokens_per_sec']:>9,.0f} tok/s  "
            f"step {r['step_s'] * 1e3:7.1f} ms "
            f"(data {r['data_s'] * 1e3:.1f} / device {r['device_s'] * 1e3:.1f} / logging "
            f"{r['logging_s'] * 1e3:.1f})  MFU {r['mfu']:.1%} of {r['peak_gflops']:.0f} GFLOP/s  "
            f"{'compile' if r['framework'] == 'theseus' else 'first step'} {r['compile_s']:.1f} s  "
            f"loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}")


def compare(preset: str, threads: int, args: argparse.Namespace,
            launch: Callable[..., dict[str, Any]] = launch_worker) -> dict[str, list[float]]:
    """Runs ours then the twin at each precision, ``args.repeats`` times; prints each pair
    and its ratio. Returns the ratios per precision, and per repeat the ratio of each side
    at its faster precision (``fastest``)."""
    ratios: dict[str, list[float]] = {p: [] for p in args.precisions}
    ratios["fastest"] = []
    for rep in range(args.repeats):
        best = {"ours": 0.0, "twin": 0.0}
        for precision in args.precisions:
            ours = launch("jax", preset, threads, precision, args)
            twin = launch("torch", preset, threads, precision, args)
            ratios[precision].append(ours["tokens_per_sec"] / twin["tokens_per_sec"])
            best["ours"] = max(best["ours"], ours["tokens_per_sec"])
            best["twin"] = max(best["twin"], twin["tokens_per_sec"])
            print(f"{preset}, {threads} thread{'s' * (threads > 1)}, {precision}, batch "
                  f"{ours['batch']} x {ours['seq_len']}, run {rep + 1}: ours/twin = "
                  f"{ratios[precision][-1]:.2f}")
            print(describe(ours))
            print(describe(twin), flush=True)
        ratios["fastest"].append(best["ours"] / best["twin"])
        print(f"{preset}, {threads} thread{'s' * (threads > 1)}, run {rep + 1}: each at its "
              f"faster precision, ours/twin = {ratios['fastest'][-1]:.2f}", flush=True)
    return ratios


def main() -> None:
    """Parses flags; runs a worker, or the whole comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--precisions", default="float32,bfloat16",
                   help="matmul precisions to compare at (float32, bfloat16)")
    p.add_argument("--repeats", type=int, default=1, help="back-to-back pairs per setting")
    p.add_argument("--steps", type=int, default=0, help="timed steps (0: the preset's)")
    p.add_argument("--twin_huge_pages", action="store_true",
                   help="give the twin's heap huge pages too (GLIBC_TUNABLES), as theseus "
                   "does for its own; off, the twin runs as PyTorch ships")
    p.add_argument("--small_batch", type=int, default=2)
    p.add_argument("--small_seq_len", type=int, default=256)
    p.add_argument("--worker", choices=["jax", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--preset", choices=list(PRESETS), help=argparse.SUPPRESS)
    p.add_argument("--threads_now", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--precision_now", default="float32", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        if args.worker == "jax":  # as launch.py does: the heap on huge pages (host_memory.py)
            from theseus import host_memory

            host_memory.reexec_with_huge_pages(time.time())
        from absl import flags

        flags.FLAGS.mark_as_parsed()
        return worker(args)
    presets = args.presets.split(",")
    unknown = [x for x in presets if x not in PRESETS]
    if unknown:
        sys.exit(f"error: unknown preset(s) {unknown}; choose from {list(PRESETS)}.")
    args.precisions = args.precisions.split(",")
    wrong = [x for x in args.precisions if x not in ("float32", "bfloat16")]
    if wrong:
        sys.exit(f"error: unknown precision(s) {wrong}; choose from float32, bfloat16.")
    threads = [int(t) for t in args.threads.split(",")]
    if max(threads) > len(os.sched_getaffinity(0)):
        sys.exit(f"error: --threads={args.threads} asks for more cores than the "
                 f"{len(os.sched_getaffinity(0))} this process may use.")
    summary = {}
    for preset in presets:
        for n in threads:
            summary[(preset, n)] = compare(preset, n, args)
    print("ours/twin tokens/s (median over repeats):")
    for (preset, n), ratios in summary.items():
        cells = "  ".join(f"{k} {statistics.median(v):.2f}" for k, v in ratios.items())
        print(f"  {preset:<6} {n} thread{'s' * (n > 1)}: {cells}")


if __name__ == "__main__":
    main()
