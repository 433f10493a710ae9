"""Run an experiment: ``uv run launch.py --config=configs/gpt.py:tiny [--fdl_set=...]``.

Order of events: load the config function, apply ``--fiddler`` / ``--fdl_set`` in command-line
order, build and validate it, write ``config.json`` + ``config.txt`` to the workdir, then
train (resuming if the workdir has checkpoints). A user mistake prints one ``error:`` line,
writes nothing and exits with code 2.
"""

from __future__ import annotations

import time

STARTED_AT = time.time()

import sys  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from theseus.config import ConfigError, config_from_flags, define_flags, workdir_from_flags  # noqa: E402

define_flags()
FLAGS = flags.FLAGS
USAGE_ERROR = 2


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def main(argv: list[str]) -> None:
    """Entry point after absl parsed the flags."""
    if not FLAGS["verbosity"].present:  # orbax and jax log a page of INFO lines otherwise
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; overrides go in --fdl_set=path=value.")
    from theseus.runner import describe, prepare_run

    try:
        workdir = workdir_from_flags()
        experiment = prepare_run(config_from_flags(), workdir)
    except ConfigError as e:
        _fail(str(e))
    print(describe(experiment.run(workdir, started_at=STARTED_AT), workdir))


if __name__ == "__main__":
    app.run(main)
