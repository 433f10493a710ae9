"""Turning a config into a finished run: build, validate, lock, check, write, train.

``launch.py``, the ``theseus`` command and ``quick()`` all go through ``start_run``, so a
user mistake is reported the same way everywhere: a ``ConfigError`` raised before
anything is written.

Exit codes (``exit_code_for``): 0 finished, 2 a user mistake (bad config, workdir in use,
a config change on resume, no usable checkpoint), 75 preempted after saving (requeue),
1 training failed (a non-finite loss, a checkpoint that could not be written).
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import time
from collections.abc import Iterator
from typing import Any

import fiddle as fdl
import jax

from theseus import compile_cache, host_memory
from theseus.config import ConfigError, write_config
from theseus.config.diff import check_resume_change, format_diff
from theseus.config.loading import load_config
from theseus.experiment import Experiment
from theseus.training.checkpoint import CheckpointError, NoUsableCheckpointError
from theseus.training.lock import WorkdirLock, WorkdirLockedError
from theseus.training.loop import Preempted, TrainingError
from theseus.training.status import read_status, write_status

USAGE_ERROR, FAILED = 2, 1
RUN_ERRORS = (ConfigError, Preempted, TrainingError, CheckpointError)


def user_message(error: Exception) -> str:
    """The message of an error raised while building, without fiddle's context suffix."""
    inner = error.args[0] if error.args and isinstance(error.args[0], BaseException) else error
    return str(inner)


def is_job(built: Any) -> bool:
    """Whether a built config can be run like an experiment (a tokenize job, say): it has
    ``validate()`` and ``run(workdir, started_at=, from_scratch=)``."""
    return callable(getattr(built, "validate", None)) and callable(getattr(built, "run", None))


def build_experiment(cfg: fdl.Buildable) -> Experiment:
    """Builds and validates ``cfg``; every user mistake becomes a ``ConfigError``."""
    try:
        experiment = fdl.build(cfg)
        if not isinstance(experiment, Experiment) and not is_job(experiment):
            raise ConfigError(f"the config builds a {type(experiment).__name__}, not an "
                              f"Experiment or another job with validate() and run(); return "
                              f"fdl.Config(Experiment, ...) from it.")
        experiment.validate()
    except (ValueError, TypeError) as e:
        raise ConfigError(user_message(e)) from None
    return experiment


def _check_config_change(cfg: fdl.Buildable, workdir: pathlib.Path, allow: bool) -> None:
    """Refuses a resume whose config changes the run's math, unless ``allow``."""
    saved = workdir / "config.json"
    if not saved.exists() or not (workdir / "checkpoints").exists():
        return
    old, _ = load_config(str(saved))
    rows = check_resume_change(old, cfg, allow)
    if rows:
        print(f"resuming with a changed config:\n{format_diff(rows)}")


def prepare_run(cfg: fdl.Buildable, workdir: pathlib.Path) -> Experiment:
    """Builds and validates ``cfg`` and writes its config files, without locking the workdir
    (for tools that only record a run; training goes through ``start_run``/``run``)."""
    experiment = build_experiment(cfg)
    write_config(cfg, workdir)
    return experiment


@contextlib.contextmanager
def start_run(cfg: fdl.Buildable, workdir: pathlib.Path, allow_config_change: bool = False
              ) -> Iterator[Experiment]:
    """Builds and checks ``cfg``, locks ``workdir``, writes the config, and yields the
    experiment to run while holding the lock. Raises ``ConfigError`` before writing anything."""
    experiment = build_experiment(cfg)
    lock = WorkdirLock(workdir)
    try:
        if jax.process_index() == 0:  # the other processes of a multi-process run share it
            lock.acquire()
    except WorkdirLockedError as e:
        raise ConfigError(str(e)) from None
    try:
        _check_config_change(cfg, workdir, allow_config_change)
        write_config(cfg, workdir)
        yield experiment
    finally:
        lock.release()


def run(cfg: fdl.Buildable, workdir: pathlib.Path | str, started_at: float | None = None,
        allow_config_change: bool = False, from_scratch: bool = False) -> dict[str, Any]:
    """Builds ``cfg`` and trains it in ``workdir`` (resuming if it has checkpoints)."""
    started_at = started_at or time.time()
    workdir = pathlib.Path(workdir)
    fresh = not workdir.exists()
    compile_cache.enable()  # THESEUS_COMPILE_CACHE=off turns it off
    host_memory.run_cpu_inline()  # THESEUS_MALLOC=system turns it off
    try:
        with start_run(cfg, workdir, allow_config_change) as experiment:
            try:
                return experiment.run(workdir, started_at=started_at, from_scratch=from_scratch)
            except (CheckpointError, TrainingError) as e:
                status = read_status(workdir) or {}
                if status.get("state") != "failed":
                    trainer = getattr(experiment, "trainer", None)
                    write_status(workdir, "failed", status.get("step", 0),
                                 getattr(trainer, "num_steps", 0), str(e))
                raise
    except ConfigError:
        # A mistake found once the run had started (bad data, say) leaves nothing behind in
        # a workdir this call created: only its config files and lock were in it.
        if fresh and jax.process_index() == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for an error that ends a run."""
    if isinstance(error, Preempted):
        return Preempted.exit_code
    if isinstance(error, ConfigError):
        return USAGE_ERROR
    if isinstance(error, NoUsableCheckpointError):
        return USAGE_ERROR
    return FAILED


def describe(summary: dict[str, Any], workdir: pathlib.Path) -> str:
    """What a finished run prints: final loss against the unigram baseline, a sample, where
    (for a tokenize job: the dataset directory, its tokens and documents, tokens/s)."""
    if "dataset_dir" in summary:
        from theseus.data.tokenize_job import describe_summary

        return describe_summary(summary, workdir)
    loss, entropy = summary["val/loss"], summary["val/unigram_entropy"]
    lines = [(f"final validation loss {loss:.4f} nats; unigram entropy of the validation "
              f"tokens {entropy:.4f} nats ({entropy - loss:.2f} below)")]
    if "sample" in summary:
        lines.append("sample:\n" + summary["sample"])
    lines.append(f"run directory: {workdir} (metrics.jsonl, loss.png, tensorboard/, checkpoints/)")
    return "\n".join(lines)
