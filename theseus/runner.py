"""Turning a config into a finished run: build, validate, write the config, train.

``launch.py``, the ``theseus`` command and ``quick()`` all go through ``prepare_run`` and
``run``, so a user mistake is reported the same way everywhere: a ``ConfigError`` raised
before anything is written.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import fiddle as fdl

from theseus.config import ConfigError, write_config
from theseus.experiment import Experiment


def user_message(error: Exception) -> str:
    """The message of an error raised while building, without fiddle's context suffix."""
    inner = error.args[0] if error.args and isinstance(error.args[0], BaseException) else error
    return str(inner)


def build_experiment(cfg: fdl.Buildable) -> Experiment:
    """Builds and validates ``cfg``; every user mistake becomes a ``ConfigError``."""
    try:
        experiment = fdl.build(cfg)
        if not isinstance(experiment, Experiment):
            raise ConfigError(f"the config builds a {type(experiment).__name__}, not an "
                              f"Experiment; return fdl.Config(Experiment, ...) from it.")
        experiment.validate()
    except (ValueError, TypeError) as e:
        raise ConfigError(user_message(e)) from None
    return experiment


def prepare_run(cfg: fdl.Buildable, workdir: pathlib.Path) -> Experiment:
    """Builds and validates ``cfg``, then writes ``config.json`` and ``config.txt``."""
    experiment = build_experiment(cfg)
    write_config(cfg, workdir)
    return experiment


def run(cfg: fdl.Buildable, workdir: pathlib.Path | str, started_at: float | None = None
        ) -> dict[str, Any]:
    """Builds ``cfg`` and trains it in ``workdir`` (resuming if it has checkpoints)."""
    started_at = started_at or time.time()
    workdir = pathlib.Path(workdir)
    return prepare_run(cfg, workdir).run(workdir, started_at=started_at)


def describe(summary: dict[str, Any], workdir: pathlib.Path) -> str:
    """What a finished run prints: final loss against the unigram baseline, a sample, where."""
    loss, entropy = summary["val/loss"], summary["val/unigram_entropy"]
    lines = [f"final validation loss {loss:.4f} nats; unigram entropy of the validation "
             f"tokens {entropy:.4f} nats ({entropy - loss:.2f} below)"]
    if "sample" in summary:
        lines.append("sample:\n" + summary["sample"])
    lines.append(f"run directory: {workdir} (metrics.jsonl, loss.png, tensorboard/, checkpoints/)")
    return "\n".join(lines)
