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


def _user_message(error: Exception) -> str:
    """The message of an error raised while building, without fiddle's context suffix."""
    inner = error.args[0] if error.args and isinstance(error.args[0], BaseException) else error
    return str(inner)


def main(argv: list[str]) -> None:
    """Entry point after absl parsed the flags."""
    if not FLAGS["verbosity"].present:  # orbax and jax log a page of INFO lines otherwise
        logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}; overrides go in --fdl_set=path=value.")
    import fiddle as fdl

    from theseus.config import write_config
    from theseus.experiment import Experiment

    try:
        cfg = config_from_flags()
        workdir = workdir_from_flags()
        experiment = fdl.build(cfg)
        if not isinstance(experiment, Experiment):
            raise ConfigError(f"the config builds a {type(experiment).__name__}, not an "
                              f"Experiment; return fdl.Config(Experiment, ...) from it.")
        experiment.validate()
        write_config(cfg, workdir)
    except ConfigError as e:
        _fail(str(e))
    except (ValueError, TypeError) as e:
        _fail(_user_message(e))
    summary = experiment.run(workdir, started_at=STARTED_AT)
    print(f"final validation loss {summary['val/loss']:.4f} nats; unigram entropy of the "
          f"validation tokens {summary['val/unigram_entropy']:.4f} nats "
          f"({summary['val/unigram_entropy'] - summary['val/loss']:.2f} below)")
    if "sample" in summary:
        print("sample:\n" + summary["sample"])
    print(f"run directory: {workdir} (metrics.jsonl, loss.png, tensorboard/, checkpoints/)")


if __name__ == "__main__":
    app.run(main)
