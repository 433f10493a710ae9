"""The trainer: its settings (``Trainer``) and the training loop (``train``)."""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh
from tqdm import tqdm

from theseus.data.pipeline import Prepared

from theseus.evaluation import report
from theseus.evaluation.sampling import sample
from theseus.training import sharding
from theseus.training.checkpoint import Checkpointer
from theseus.training.metrics import MetricsLogger, truncate_metrics
from theseus.training.mfu import peak_flops
from theseus.training.state import StateFactory
from theseus.training.train_step import make_eval_step, make_train_step

if TYPE_CHECKING:
    from theseus.experiment import Experiment


@dataclasses.dataclass(frozen=True)
class Trainer:
    """How long and how to train. ``batch_size`` is global, in sequences, split over every
    device and over ``grad_accum_steps`` microbatches. Steps count optimizer updates."""

    num_steps: int = 1000
    batch_size: int = 32
    seed: int = 0
    grad_accum_steps: int = 1
    eval_every: int = 100
    eval_batches: int = 10
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    log_every: int = 10
    sample_tokens: int = 200
    progress: bool = True

    def __post_init__(self):
        for name in ("num_steps", "batch_size", "grad_accum_steps", "eval_every", "eval_batches",
                     "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be at least 1, got {getattr(self, name)}.")
        if self.batch_size % self.grad_accum_steps:
            raise ValueError(f"trainer.batch_size ({self.batch_size}) must be divisible by "
                             f"trainer.grad_accum_steps ({self.grad_accum_steps}).")

    def check_devices(self, n_devices: int) -> None:
        """Raises if the batch cannot be split evenly over the devices."""
        per_micro = self.batch_size // self.grad_accum_steps
        if per_micro % n_devices:
            raise ValueError(f"trainer.batch_size / grad_accum_steps = {per_micro} sequences "
                             f"cannot be split over {n_devices} devices; use a multiple of "
                             f"{n_devices}.")


def _evaluate(eval_fn: Callable, params: dict, batches: list[np.ndarray], mesh: Mesh) -> float:
    losses = [eval_fn(params, sharding.global_batch(b, mesh)) for b in batches]
    return float(np.mean(jax.device_get(losses)))


@dataclasses.dataclass
class _Run:
    """Everything a training loop works with, set up (and restored) by ``_setup``."""

    mesh: Mesh
    prepared: Prepared
    factory: StateFactory
    data_iter: Iterator[np.ndarray]
    val_batches: list[np.ndarray]
    ckpt: Checkpointer
    state: dict[str, Any]
    start: int


def _setup(exp: "Experiment", workdir: pathlib.Path) -> _Run:
    """Prepares data, builds the state, and restores the newest checkpoint if there is one."""
    cfg = exp.trainer
    mesh = sharding.make_mesh()
    prepared = exp.data.prepare()
    tx = exp.optimizer.make(cfg.num_steps)
    factory = StateFactory(exp.model, tx, cfg.seed, mesh)
    data_iter = iter(exp.data.train_loader(prepared, exp.model.seq_len, cfg.batch_size, cfg.seed))
    val_batches = exp.data.val_batches(prepared, exp.model.seq_len, cfg.batch_size,
                                       cfg.eval_batches)
    ckpt = Checkpointer(workdir / "checkpoints", cfg.keep_checkpoints)
    start = ckpt.latest_step() or 0
    if start:
        state = ckpt.restore(start, factory.abstract, data_iter)
        truncate_metrics(workdir / "metrics.jsonl", start)
        if jax.process_index() == 0:
            tqdm.write(f"resuming {workdir} from the checkpoint of step {start}")
    else:
        state = factory.init()
    return _Run(mesh, prepared, factory, data_iter, val_batches, ckpt, state, start)


def _loop(exp: "Experiment", run: _Run, workdir: pathlib.Path, started_at: float
          ) -> dict[str, Any]:
    """Runs the remaining steps with evaluation, logging and checkpoints; returns timings."""
    cfg, model_cfg = exp.trainer, exp.model
    tx = exp.optimizer.make(cfg.num_steps)
    lr_schedule = exp.optimizer.schedule.make(exp.optimizer.learning_rate, cfg.num_steps)
    step_fn = jax.jit(make_train_step(run.factory.graphdef, tx, lr_schedule, cfg.seed,
                                      model_cfg.dropout > 0, cfg.grad_accum_steps),
                      donate_argnums=0)
    eval_fn = jax.jit(make_eval_step(run.factory.graphdef))
    peak, peak_source = peak_flops()
    logging.info("peak %.3g FLOP/s (%s)", peak, peak_source)
    logger = MetricsLogger(workdir, cfg.batch_size * model_cfg.seq_len,
                           model_cfg.flops_per_token(), peak, run.start)
    bar = tqdm(total=cfg.num_steps, initial=run.start, unit="step", dynamic_ncols=True,
               disable=not cfg.progress or jax.process_index() != 0)
    timings: dict[str, Any] = {"seconds_to_first_step": None, "compile_seconds": None}
    val_loss = None
    for step in range(run.start + 1, cfg.num_steps + 1):
        batch = sharding.global_batch(next(run.data_iter), run.mesh)
        t = time.perf_counter()
        run.state, metrics = step_fn(run.state, batch)
        logger.push(step, metrics)
        if timings["compile_seconds"] is None:  # one sync, to time compilation
            jax.block_until_ready(metrics)
            timings["compile_seconds"] = time.perf_counter() - t
            timings["seconds_to_first_step"] = time.time() - started_at
            logger.restart_window()
        if step % cfg.log_every == 0 or step == cfg.num_steps:
            row = logger.flush()
            bar.set_postfix(loss=f"{row['train/loss']:.3f}", tok_s=f"{row['tokens_per_sec']:.0f}",
                            mfu=f"{row['mfu']:.1%}", refresh=False)
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.num_steps:
            logger.flush()  # the train rows of this step come before its validation row
            val_loss = _evaluate(eval_fn, run.state["params"], run.val_batches, run.mesh)
            logger.write(step, {"val/loss": val_loss})
            bar.write(f"step {step}: validation loss {val_loss:.4f}")
            logger.restart_window()
        if step % cfg.checkpoint_every == 0 or step == cfg.num_steps:
            run.ckpt.save(step, run.state, run.data_iter)
    bar.close()
    logger.close()
    run.ckpt.close()
    if val_loss is None:  # the run was already complete: evaluate the restored state
        val_loss = _evaluate(eval_fn, run.state["params"], run.val_batches, run.mesh)
    return {**timings, "val/loss": val_loss, "last_metrics": logger.last}


def _report(exp: "Experiment", run: _Run, workdir: pathlib.Path, results: dict[str, Any]
            ) -> dict[str, Any]:
    """The summary: final loss against the unigram entropy, loss curve, and a text sample."""
    targets = np.concatenate([b[:, 1:].ravel() for b in run.val_batches])
    summary = {"step": int(jax.device_get(run.state["step"])),
               "val/unigram_entropy": report.unigram_entropy(targets), **results}
    if jax.process_index() == 0:
        report.plot_losses(workdir / "metrics.jsonl", workdir / "loss.png")
        tokenizer = run.prepared.tokenizer
        ids = sample(run.factory.graphdef, run.state["params"], [tokenizer.eot_id],
                     exp.trainer.sample_tokens, exp.model.seq_len, tokenizer.vocab_size,
                     seed=exp.trainer.seed)
        summary["sample"] = tokenizer.decode(ids)
        report.write_summary(workdir, summary)
    return summary


def train(exp: "Experiment", workdir: pathlib.Path, started_at: float | None = None
          ) -> dict[str, Any]:
    """Trains ``exp`` in ``workdir``, resuming from its newest checkpoint; returns the summary
    (final validation loss, unigram entropy of the validation tokens, timings, a sample)."""
    exp.validate()
    run = _setup(exp, workdir)
    results = _loop(exp, run, workdir, started_at or time.time())
    return _report(exp, run, workdir, results)
