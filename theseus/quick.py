"""``quick()``: configure, run, save and reload an experiment from Python.

::

    from theseus.quick import quick

    with quick("gpt:small", "runs", "my-run") as j:
        j.config.trainer.batch_size = 16          # a real fdl.Config: a typo fails at once
        j()                                       # trains in runs/my-run (resumes if it exists)
        j.save("my_run.py", chip="h100", n_chips=8)   # a Python config file, not YAML

``j.restore()`` loads a run's ``config.json`` into ``j.config`` (this run's by default, or
any run directory or ``config.json``), so a run can be continued or varied exactly;
``j.params()`` returns the trained parameters of the run and ``j.sample(prompt)`` text
generated from them.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

import fiddle as fdl

from theseus.config.codegen import Base, Hardware, write_config_file
from theseus.config.errors import ConfigError
from theseus.config.resolve import Resolved, customize, resolve


class QuickJob:
    """One experiment being set up in Python; ``quick()`` yields it.

    ``config`` is the experiment's ``fdl.Config`` (change it freely); ``workdir`` is
    ``out_path/name``, where ``j()`` trains and ``j.params()`` reads from.
    """

    def __init__(self, resolved: Resolved, out_path: pathlib.Path, name: str):
        self.config: fdl.Buildable = resolved.config
        self.name = name
        self.workdir = out_path / name
        self._base: Base = resolved.base

    def __call__(self, *, allow_config_change: bool = False) -> dict[str, Any]:
        """Trains ``config`` in ``workdir`` (resuming a run that is there); returns the summary.

        Raises ConfigError for a config that does not build or validate, before writing.
        """
        from theseus.runner import run

        return run(self.config, self.workdir, allow_config_change=allow_config_change)

    def save(self, path: pathlib.Path | str, *, chip: str | None = None,
             n_chips: int | None = None, overwrite: bool = True) -> pathlib.Path:
        """Writes ``config`` as a Python config file that starts from the job it came from;
        ``chip``/``n_chips`` record the hardware to ask for. Returns the path."""
        if n_chips is not None and chip is None:
            raise ConfigError("n_chips needs a chip, e.g. save(path, chip='h100', n_chips=8)")
        hardware = Hardware(chip, n_chips if n_chips is not None else 1) if chip else None
        path = pathlib.Path(path)
        how = (f"Written by theseus.quick.quick({self._base.label!r}, ...).save().\n"
               f"Run it: uv run theseus run {self.name} {path} {self.workdir.parent}")
        write_config_file(path, self.config, self._base, hardware=hardware, how=how,
                          overwrite=overwrite)
        return path

    def restore(self, run: pathlib.Path | str | None = None) -> fdl.Buildable:
        """Replaces ``config`` with a run's saved ``config.json`` (this job's run by default;
        or another run directory or config.json) and returns it."""
        source = pathlib.Path(run) if run is not None else self.workdir
        if source.is_dir():
            source = source / "config.json"
        if not source.is_file():
            raise ConfigError(f"there is no saved config at '{source}'; has the run started?")
        self.config = resolve(str(source)).config
        return self.config

    def params(self, step: int | None = None, best: bool = False) -> dict:
        """The trained parameters of this run: the newest checkpoint, ``step``, or ``best``."""
        from theseus.evaluation.restore import restore_params

        return restore_params(self.workdir, step=step, best=best).params

    def sample(self, prompt: str = "", num_tokens: int = 200, temperature: float = 0.8,
               seed: int = 0) -> str:
        """Text continuing ``prompt``, from this run's newest checkpoint."""
        from theseus.evaluation.restore import generate, restore_params

        return generate(restore_params(self.workdir), prompt, num_tokens, temperature, seed)


@contextlib.contextmanager
def quick(job: str, out_path: pathlib.Path | str, name: str, *, load: Sequence[str] = (),
          overrides: Sequence[str] = ()) -> Iterator[QuickJob]:
    """Yields a :class:`QuickJob` for ``job`` (``gpt:small``, ``configs/gpt.py:small``,
    ``my_run.py`` or a ``config.json``), to run in ``out_path/name``.

    ``load`` adds ``--load`` files or modules; ``overrides`` are ``path=value`` strings
    applied first. Raises ConfigError for an unknown job, a bad override or a bad name.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"run name {name!r} must be one folder name, without '/'")
    resolved = resolve(job, load)
    resolved.config, _ = customize(resolved.config, resolved.module, overrides)
    yield QuickJob(resolved, pathlib.Path(out_path), name)
