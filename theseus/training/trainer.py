"""The trainer: its settings (``Trainer``) and the training loop (``train``)."""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from absl import logging
from tqdm import tqdm

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


def _evaluate(eval_fn, params, batches: list[np.ndarray], mesh) -> float:
    losses = [eval_fn(params, sharding.global_batch(b, mesh)) for b in batches]
    return float(np.mean(jax.device_get(losses)))


def _sample_text(exp: "Experiment", factory: StateFactory, params, tokenizer) -> str:
    ids = sample(factory.graphdef, params, [tokenizer.eot_id], exp.trainer.sample_tokens,
                 exp.model.seq_len, tokenizer.vocab_size, seed=exp.trainer.seed)
    return tokenizer.decode(ids)


def train(exp: "Experiment", workdir: pathlib.Path, started_at: float | None = None
          ) -> dict[str, Any]:
    """Trains ``exp`` in ``workdir``, resuming from its newest checkpoint; returns the summary."""
    started_at = started_at or time.time()
    cfg, model_cfg = exp.trainer, exp.model
    mesh = sharding.make_mesh()
    cfg.check_devices(jax.device_count())
    prepared = exp.data.prepare()
    if model_cfg.vocab_size < prepared.tokenizer.vocab_size:
        raise ValueError(f"model.vocab_size ({model_cfg.vocab_size}) is smaller than the "
                         f"tokenizer's vocabulary ({prepared.tokenizer.vocab_size}).")
    tx = exp.optimizer.make(cfg.num_steps)
    lr_schedule = exp.optimizer.schedule.make(exp.optimizer.learning_rate, cfg.num_steps)
    factory = StateFactory(model_cfg, tx, cfg.seed, mesh)
    data_iter = iter(exp.data.train_loader(prepared, model_cfg.seq_len, cfg.batch_size, cfg.seed))
    val_batches = exp.data.val_batches(prepared, model_cfg.seq_len, cfg.batch_size,
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

    step_fn = jax.jit(make_train_step(factory.graphdef, tx, lr_schedule, cfg.seed,
                                      model_cfg.dropout > 0, cfg.grad_accum_steps),
                      donate_argnums=0)
    eval_fn = jax.jit(make_eval_step(factory.graphdef))
    tokens_per_step = cfg.batch_size * model_cfg.seq_len
    peak, peak_source = peak_flops()
    logger = MetricsLogger(workdir, tokens_per_step, model_cfg.flops_per_token(), peak, start)
    logging.info("peak %.3g FLOP/s (%s); %.3g FLOPs per token", peak, peak_source,
                 model_cfg.flops_per_token())

    bar = tqdm(total=cfg.num_steps, initial=start, unit="step", dynamic_ncols=True,
               disable=not cfg.progress or jax.process_index() != 0)
    first_step_s = compile_s = None
    val_loss, saved_step = None, start
    for step in range(start + 1, cfg.num_steps + 1):
        batch = sharding.global_batch(next(data_iter), mesh)
        t = time.perf_counter()
        state, metrics = step_fn(state, batch)
        logger.push(step, metrics)
        if first_step_s is None:
            jax.block_until_ready(metrics)
            compile_s, first_step_s = time.perf_counter() - t, time.time() - started_at
            logger.restart_window()
        if step % cfg.log_every == 0 or step == cfg.num_steps:
            row = logger.flush()
            bar.set_postfix(loss=f"{row['train/loss']:.3f}", tok_s=f"{row['tokens_per_sec']:.0f}",
                            mfu=f"{row['mfu']:.1%}", refresh=False)
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.num_steps:
            logger.flush()  # the train rows of this step come before its validation row
            val_loss = _evaluate(eval_fn, state["params"], val_batches, mesh)
            logger.write(step, {"val/loss": val_loss})
            bar.write(f"step {step}: validation loss {val_loss:.4f}")
            logger.restart_window()
        if step % cfg.checkpoint_every == 0 or step == cfg.num_steps:
            ckpt.save(step, state, data_iter)
            saved_step = step
    bar.close()
    logger.close()
    ckpt.close()

    if val_loss is None:  # the run was already complete: evaluate the restored state
        val_loss = _evaluate(eval_fn, state["params"], val_batches, mesh)
    entropy = report.unigram_entropy(np.concatenate([b[:, 1:].ravel() for b in val_batches]))
    summary = {"step": int(jax.device_get(state["step"])), "val/loss": val_loss,
               "val/unigram_entropy": entropy, "seconds_to_first_step": first_step_s,
               "compile_seconds": compile_s, "last_checkpoint": saved_step,
               "last_metrics": logger.last}
    if jax.process_index() == 0:
        report.plot_losses(workdir / "metrics.jsonl", workdir / "loss.png")
        summary["sample"] = _sample_text(exp, factory, state["params"], prepared.tokenizer)
        report.write_summary(workdir, summary)
    return summary
