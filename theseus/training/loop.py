"""The training loop: steps, logging, evaluation, checkpoints, preemption and bad losses.

Each step is dispatched without waiting for the previous one. The host only synchronises
when it flushes metrics (every ``log_every`` steps), evaluates, or saves; a non-finite loss
is found at those points, and the state is never saved after one.
"""

from __future__ import annotations

import pathlib
import time
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from tqdm import tqdm

from theseus.models.bf16_matmul import resolve_matmul_precision
from theseus.training import faults, sharding
from theseus.training.metrics import MetricsLogger
from theseus.training.mfu import peak_flops
from theseus.training.preemption import REQUEUE_EXIT_CODE, PreemptionWatcher
from theseus.training.status import write_status
from theseus.training.train_step import make_eval_step, make_train_step

if TYPE_CHECKING:
    from theseus.experiment import Experiment
    from theseus.training.trainer import Run


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is kept."""


class Preempted(Exception):
    """A stop signal arrived; a checkpoint was saved. Exit with ``exit_code`` to requeue."""

    exit_code = REQUEUE_EXIT_CODE


def metrics_dir(workdir: pathlib.Path) -> pathlib.Path:
    """Where this process writes metrics: the workdir for process 0; ``process-N/`` under it
    for the others of a multi-process run (their rows repeat process 0's global values)."""
    if jax.process_index() == 0:
        return workdir
    directory = workdir / f"process-{jax.process_index()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class TrainingLoop:
    """Runs the remaining steps of ``run``; ``run()`` returns the final results."""

    def __init__(self, exp: Experiment, run: Run, started_at: float):
        self.exp, self.r, self.cfg = exp, run, exp.trainer
        lr = exp.optimizer.schedule.make(exp.optimizer.learning_rate, self.cfg.num_steps)
        self.step_fn = jax.jit(make_train_step(run.factory.graphdef, run.tx, lr, self.cfg.seed,
                                               exp.model.dropout > 0, self.cfg.grad_accum_steps),
                               donate_argnums=0)
        self.eval_fn = jax.jit(make_eval_step(run.factory.graphdef))
        precision = resolve_matmul_precision(getattr(exp.model, "matmul_precision", "float32"))
        peak, source = peak_flops(precision)
        logging.info("peak %.3g FLOP/s (%s)", peak, source)
        self.logger = MetricsLogger(metrics_dir(run.workdir), self.cfg.batch_size * exp.model.seq_len,
                                    exp.model.flops_per_token(), peak, run.start)
        self.started_at = started_at
        self.timings: dict[str, Any] = {"seconds_to_first_step": None, "compile_seconds": None}
        self.bad_steps = 0
        self.val_loss: float | None = None
        self.saved_step = run.start
        self._data_wait, self._wait_since = 0.0, time.perf_counter()  # the train/data_wait window

    def run(self) -> dict[str, Any]:
        """Trains to ``trainer.num_steps``; raises ``Preempted`` or ``TrainingError``."""
        bar = tqdm(total=self.cfg.num_steps, initial=self.r.start, unit="step",
                   dynamic_ncols=True, disable=not self.cfg.progress or jax.process_index() != 0)
        try:
            with PreemptionWatcher() as watcher:
                for step in range(self.r.start + 1, self.cfg.num_steps + 1):
                    self._step(step, bar)
                    if self._stop_requested(watcher, step):
                        self._preempt(step, watcher.signal_name)
        finally:
            bar.close()
            self.logger.close()
            self.r.ckpt.close()
            self.r.best.close()
        if self.val_loss is None:  # the run was already complete: evaluate the restored state
            self.val_loss = self._evaluate(self.cfg.num_steps)
        return {**self.timings, "val/loss": self.val_loss, "last_metrics": self.logger.last,
                "bad_steps": self.bad_steps}

    def _step(self, step: int, bar: tqdm) -> None:
        waited = time.perf_counter()
        local = next(self.r.data_iter)  # host time only: no device sync
        self._data_wait += time.perf_counter() - waited
        batch = sharding.global_batch(local, self.r.mesh)
        t = time.perf_counter()
        self.r.state, metrics = self.step_fn(self.r.state, batch)
        faults.maybe_kill("step", step)
        self.logger.push(step, metrics)
        if self.timings["compile_seconds"] is None:  # one sync, to time compilation
            jax.block_until_ready(metrics)
            self.timings["compile_seconds"] = time.perf_counter() - t
            self.timings["seconds_to_first_step"] = time.time() - self.started_at
            self._flush()
            self._restart_window()
        last = step == self.cfg.num_steps
        if step % self.cfg.log_every == 0 or last:
            row = self._flush()
            self._log_data_wait(step)
            bar.set_postfix(loss=f"{row['train/loss']:.3f}", tok_s=f"{row['tokens_per_sec']:.0f}",
                            mfu=f"{row['mfu']:.1%}", refresh=False)
        bar.update(1)
        if step % self.cfg.eval_every == 0 or last:
            self._flush()  # the train rows of this step come before its validation row
            self.val_loss = self._evaluate(step)
            self.logger.write(step, {"val/loss": self.val_loss})
            bar.write(f"step {step}: validation loss {self.val_loss:.4f}")
            if self.r.best.offer(step, self.r.state, self.val_loss):
                logging.info("step %d is the new best checkpoint", step)
            self._restart_window()
        if step % self.cfg.checkpoint_every == 0 or last:
            self._save(step)

    def _restart_window(self) -> None:
        """Starts the timing windows afresh after time spent outside training steps."""
        self.logger.restart_window()
        self._data_wait, self._wait_since = 0.0, time.perf_counter()

    def _log_data_wait(self, step: int) -> None:
        """Writes ``train/data_wait``: the fraction of wall time since the last such row (just
        after a flush, which waited for the device) spent waiting for the next batch."""
        now = time.perf_counter()
        fraction = self._data_wait / max(now - self._wait_since, 1e-9)
        self.logger.write(step, {"train/data_wait": fraction})
        self._data_wait, self._wait_since = 0.0, now

    def _flush(self) -> dict[str, float]:
        """Writes queued metrics and stops on a non-finite loss beyond ``max_bad_steps``."""
        rows = self.logger.flush_rows()
        for row in rows:
            if row.get("train/skipped"):
                self.bad_steps += 1
                logging.warning("step %d: non-finite loss (%s); update skipped (%d of at most "
                                "%d)", row["step"], row.get("train/loss"), self.bad_steps,
                                self.cfg.max_bad_steps)
                if self.bad_steps > self.cfg.max_bad_steps:
                    self._fail(f"the loss at step {row['step']} is not finite "
                               f"({row.get('train/loss')}); the newest checkpoint "
                               f"(step {self.saved_step}) holds the last good state. Lower "
                               f"optimizer.learning_rate, or allow skipping with "
                               f"trainer.max_bad_steps.")
        return self.logger.last

    def _fail(self, message: str) -> None:
        write_status(self.r.workdir, "failed", self.saved_step, self.cfg.num_steps, message)
        raise TrainingError(message)

    def _evaluate(self, step: int) -> float:
        losses = []
        for i, b in enumerate(self.r.val_batches):
            losses.append(self.eval_fn(self.r.state["params"], sharding.global_batch(b, self.r.mesh)))
            if i == len(self.r.val_batches) // 2:
                faults.maybe_kill("eval", step)
        return float(np.mean(jax.device_get(losses)))

    def _save(self, step: int) -> None:
        self._flush()  # never save a state after an unchecked step
        blocked = self.r.ckpt.save(step, self.r.state, self.r.data_iter)
        faults.maybe_kill("save", step)
        self.saved_step = step
        self.logger.write(step, {"checkpoint/blocking_seconds": blocked})

    def _stop_requested(self, watcher: PreemptionWatcher, step: int) -> bool:
        if jax.process_count() == 1:
            return watcher.requested
        if step % self.cfg.log_every:  # processes agree on the stop step at log boundaries
            return False
        flags = multihost_utils.process_allgather(np.asarray(watcher.requested))
        return bool(np.any(flags))

    def _preempt(self, step: int, signal_name: str | None) -> None:
        if self.saved_step != step:
            self._save(step)
        self.r.ckpt.wait()
        write_status(self.r.workdir, "preempted", step, self.cfg.num_steps,
                     f"stopped by {signal_name or 'another process'} after step {step}")
        raise Preempted(f"stopped by {signal_name or 'another process'} after step {step}; "
                        f"checkpoint {step} saved. "
                        f"Run the same command again to resume.")

