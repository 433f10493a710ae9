"""The trainer: its settings (``Trainer``) and ``train``, which sets a run up (or restores
it) and hands it to the training loop."""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from tqdm import tqdm

from theseus.data.pipeline import Prepared
from theseus.evaluation import report
from theseus.evaluation.sampling import sample
from theseus.training import sharding
from theseus.training.checkpoint import BestCheckpoint, CheckpointError, Checkpointer, move_aside
from theseus.training.metrics import truncate_metrics
from theseus.training.state import StateFactory
from theseus.training.status import write_status
from theseus.training.train_step import as_batch

if TYPE_CHECKING:
    from theseus.experiment import Experiment


@dataclasses.dataclass(frozen=True)
class Trainer:
    """How long and how to train. ``batch_size`` is global, in sequences, split over the
    batch axes of the mesh and over ``grad_accum_steps`` microbatches. Steps count optimizer
    updates. ``mesh`` sizes the device mesh (``MeshShape``: data, FSDP, tensor and expert
    parallelism; the default puts every device on ``data``).

    Checkpoints: every ``checkpoint_every`` steps; the newest ``keep_checkpoints`` are kept,
    plus every multiple of ``keep_every`` (0: none); ``best/`` holds the lowest validation
    loss. A non-finite loss stops the run, unless fewer than ``max_bad_steps`` steps were
    bad so far: those are skipped (the update is not applied) and logged.
    """

    num_steps: int = 1000
    batch_size: int = 32
    seed: int = 0
    grad_accum_steps: int = 1
    eval_every: int = 100
    eval_batches: int = 10
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    keep_every: int = 0
    max_bad_steps: int = 0
    log_every: int = 10
    sample_tokens: int = 200
    progress: bool = True
    mesh: sharding.MeshShape = sharding.MeshShape()

    def __post_init__(self):
        for name in ("num_steps", "batch_size", "grad_accum_steps", "eval_every", "eval_batches",
                     "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("keep_every", "max_bad_steps", "sample_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"trainer.{name} must be >= 0, got {getattr(self, name)}.")
        if self.batch_size % self.grad_accum_steps:
            raise ValueError(f"trainer.batch_size ({self.batch_size}) must be divisible by "
                             f"trainer.grad_accum_steps ({self.grad_accum_steps}).")

    def check_devices(self, n_devices: int, model: Any = None) -> None:
        """Raises ValueError, before any compute, if ``mesh`` does not cover ``n_devices``,
        the batch does not split over its batch axes and the processes, or (given the model
        config) the model's heads, experts or parameter axes do not split over the mesh."""
        sizes = self.mesh.sizes(n_devices)
        ways = int(np.prod([sizes[a] for a in self.mesh.batch_ways]))
        per_micro = self.batch_size // self.grad_accum_steps
        if per_micro % ways:
            axes = " x ".join(f"{a}={sizes[a]}" for a in self.mesh.batch_ways)
            raise ValueError(f"trainer.batch_size / grad_accum_steps = {per_micro} sequences "
                             f"cannot be split over the {ways} batch shards of trainer.mesh "
                             f"({axes}); use a batch_size whose microbatch is a multiple of "
                             f"{ways}, or change trainer.mesh.")
        if self.batch_size % jax.process_count():
            raise ValueError(f"trainer.batch_size ({self.batch_size}) cannot be split over "
                             f"{jax.process_count()} processes; use a multiple of "
                             f"{jax.process_count()}.")
        sharding.check_processes(sizes, jax.process_count(), jax.local_device_count())
        if model is not None:
            sharding.check_parameters(model, sizes)


@dataclasses.dataclass
class Run:
    """Everything the training loop works with, set up (and restored) by ``setup``."""

    workdir: pathlib.Path
    mesh: Mesh
    prepared: Prepared
    factory: StateFactory
    tx: optax.GradientTransformation
    data_iter: Iterator[np.ndarray]
    val_batches: list[np.ndarray]
    ckpt: Checkpointer
    best: BestCheckpoint
    state: dict[str, Any]
    start: int


def setup(exp: "Experiment", workdir: pathlib.Path, from_scratch: bool = False) -> Run:
    """Prepares data and state, and restores the newest usable checkpoint if there is one.

    With ``from_scratch``, unusable checkpoints are moved aside and training starts over;
    without it they raise ``CheckpointError``.
    """
    cfg = exp.trainer
    mesh = sharding.make_mesh(cfg.mesh)
    prepared = exp.data.prepare()
    tx = exp.optimizer.make(cfg.num_steps)
    factory = StateFactory(exp.model, tx, cfg.seed, mesh)
    data_iter = iter(exp.data.train_loader(prepared, exp.model.seq_len, cfg.batch_size, cfg.seed))
    val_batches = exp.data.val_batches(prepared, exp.model.seq_len, cfg.batch_size,
                                       cfg.eval_batches)
    ckpt = Checkpointer(workdir / "checkpoints", cfg.keep_checkpoints, cfg.keep_every)
    try:
        restored = ckpt.restore_newest(factory.abstract, data_iter)
    except CheckpointError:
        if not from_scratch:
            raise
        moved = move_aside(ckpt.directory)
        tqdm.write(f"no usable checkpoint: moved them to {moved}; starting from scratch")
        ckpt = Checkpointer(workdir / "checkpoints", cfg.keep_checkpoints, cfg.keep_every)
        data_iter = iter(exp.data.train_loader(prepared, exp.model.seq_len, cfg.batch_size,
                                               cfg.seed))
        restored = None
    start, state = restored if restored else (0, factory.init())
    from theseus.training.loop import metrics_dir

    truncate_metrics(metrics_dir(workdir) / "metrics.jsonl", start)  # rows after it go
    if start:
        if jax.process_index() == 0:
            tqdm.write(f"resuming {workdir} from the checkpoint of step {start}")
    return Run(workdir, mesh, prepared, factory, tx, data_iter, val_batches, ckpt,
               BestCheckpoint(workdir / "best"), state, start)


def _targets(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
    """The target tokens of a validation batch that count in the loss (all, or the masked)."""
    batch = as_batch(batch)
    targets = np.asarray(batch["tokens"])[:, 1:]
    if "loss_mask" in batch:
        return targets[np.asarray(batch["loss_mask"])[:, 1:] > 0]
    return targets.ravel()


def _report(exp: "Experiment", run: Run, results: dict[str, Any]) -> dict[str, Any]:
    """The summary: final loss against the unigram entropy, loss curve, and a text sample."""
    targets = np.concatenate([_targets(b) for b in run.val_batches])
    params = run.state["params"]
    if jax.process_count() > 1:  # each process holds its own rows and parameter shards
        counts = np.bincount(targets.astype(np.int64), minlength=exp.model.vocab_size)
        counts = np.asarray(multihost_utils.process_allgather(counts)).sum(0)
        targets = np.repeat(np.arange(len(counts)), counts)  # all processes' targets, sorted
        params = multihost_utils.process_allgather(params, tiled=True)
    summary = {"step": int(jax.device_get(run.state["step"])),
               "val/unigram_entropy": report.unigram_entropy(targets),
               "params_sha256": report.params_fingerprint(params), **results}
    if jax.process_index() == 0:
        report.plot_losses(run.workdir / "metrics.jsonl", run.workdir / "loss.png")
        if exp.trainer.sample_tokens:
            tokenizer = run.prepared.tokenizer
            ids = sample(run.factory.graphdef, params, [tokenizer.eot_id],
                         exp.trainer.sample_tokens, exp.model.seq_len, tokenizer.vocab_size,
                         seed=exp.trainer.seed)
            summary["sample"] = tokenizer.decode(ids)
        report.write_summary(run.workdir, summary)
    return summary


def train(exp: "Experiment", workdir: pathlib.Path, started_at: float | None = None,
          from_scratch: bool = False) -> dict[str, Any]:
    """Trains ``exp`` in ``workdir``, resuming from its newest checkpoint; returns the summary
    (final validation loss, unigram entropy of the validation tokens, timings, a sample).

    Raises ``Preempted`` after saving when a stop signal arrived, ``TrainingError`` on a
    non-finite loss, and ``CheckpointError`` when saving fails or nothing can be restored.
    """
    from theseus.training.loop import TrainingLoop

    exp.validate()
    run = setup(exp, workdir, from_scratch)
    write_status(workdir, "running", run.start, exp.trainer.num_steps)
    results = TrainingLoop(exp, run, started_at or time.time()).run()
    summary = _report(exp, run, results)
    write_status(workdir, "finished", summary["step"], exp.trainer.num_steps)
    return summary
