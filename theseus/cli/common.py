"""What every subcommand shares: the argument parser, config options, and error reporting.

A user mistake is a ``ConfigError``; ``main`` prints it as one ``error: ...`` line and exits
with status 2. Heavy imports (jax, the trainer) happen inside the subcommands that need them.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import textwrap
from typing import Any, NoReturn

from theseus.config.errors import ConfigError

USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one ``error:`` line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        """Reports a command-line mistake in one line, pointing at ``--help``."""
        fail(f"{message} (see `{self.prog} --help`)")


def fail(message: str) -> NoReturn:
    """Prints ``error: message`` on stderr and exits with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def add_subcommand(subparsers: Any, name: str, summary: str, description: str,
                   examples: str) -> argparse.ArgumentParser:
    """A subcommand parser whose ``--help`` ends with ``examples``."""
    return subparsers.add_parser(
        name, help=summary, description=textwrap.fill(description, 88), epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter)


def add_load(parser: argparse.ArgumentParser) -> None:
    """``--load FILE.py|module`` (repeatable): more experiments, models and datasets."""
    parser.add_argument("--load", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="also load experiments (and registered models/datasets) from a "
                             ".py file or an importable module; repeatable")


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Positional ``path=value`` overrides and ``--fiddler NAME`` (repeatable)."""
    parser.add_argument("overrides", nargs="*", metavar="path=value",
                        help="set a field, e.g. model.num_layers=6 trainer.batch_size=64; "
                             "model=NAME / data=NAME swap in a registered model or dataset")
    parser.add_argument("--fiddler", action="append", default=[], metavar="NAME",
                        help="apply a fiddler (e.g. bf16, rope, pkg.mod.fn(args)) before the "
                             "overrides; repeatable")


def load_config_arg(spec: str, args: argparse.Namespace, with_overrides: bool = True) -> Any:
    """Resolves a CONFIG argument and applies the command's fiddlers and overrides.

    Returns ``(config, resolved, fiddlers as applied)``.
    """
    from theseus.config.resolve import customize, resolve

    resolved = resolve(spec, getattr(args, "load", []))
    if not with_overrides:
        return resolved.config, resolved, []
    cfg, fiddlers = customize(resolved.config, resolved.module, getattr(args, "overrides", []),
                              getattr(args, "fiddler", []))
    return cfg, resolved, fiddlers


def check_builds(cfg: Any) -> Any:
    """Builds ``cfg`` (and validates an Experiment); every user mistake is a ConfigError."""
    import fiddle as fdl

    from theseus.experiment import Experiment
    from theseus.runner import build_experiment, user_message

    if getattr(cfg, "__fn_or_cls__", None) is Experiment:
        return build_experiment(cfg)
    try:
        built = fdl.build(cfg)
        validate = getattr(built, "validate", None)
        if callable(validate):
            validate()
    except (ValueError, TypeError) as e:
        raise ConfigError(user_message(e)) from None
    return built


def prepare_runtime() -> None:
    """Before training or sampling: absl flags parsed (grain needs it), quieter logs, the
    current directory importable (config.json files name modules relative to it)."""
    from absl import flags, logging

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    logging.set_verbosity(logging.WARNING)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def run_name(name: str) -> str:
    """Checks a run NAME is one folder name."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"run name {name!r} must be one folder name, e.g. my-run (no '/')")
    return name


def existing_dir(path: str, what: str) -> pathlib.Path:
    """``path`` as a Path; ConfigError if it is not a directory."""
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{what} '{path}' is not a directory")
    return folder
