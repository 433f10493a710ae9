"""The ``theseus`` command: list, configure, run, submit, inspect and sample experiments.

Each subcommand lives in its own module with ``add_parser(subparsers)`` (which sets the
function to call) and imports jax and the trainer only when it needs them::

    theseus jobs                                   # every experiment, by file
    theseus configure gpt:small my_run.py trainer.batch_size=64 --chip h100 -n 8
    theseus run my-run my_run.py runs              # trains in runs/my-run; resumes
    theseus show my_run.py | theseus diff A B | theseus graph my_run.py graph.svg
    theseus sample runs/my-run --prompt "ROMEO:"   | theseus status runs
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from theseus import host_memory
from theseus.cli.common import USAGE_ERROR, Parser, fail

# The commands that run a model; the console script restarts itself once for them so that
# the heap gets huge pages (theseus/host_memory.py).
HUGE_PAGE_COMMANDS = ("run", "sample")

EPILOG = """\
CONFIG may be a job (gpt:small), a file (configs/gpt.py:small, my_run.py meaning
my_run.py:config), a run's config.json, or a run directory. `theseus COMMAND --help`
shows each command's options and examples.
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    """Keeps the epilog's line breaks and the command names on one line with their help."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> Parser:
    """The argument parser with every subcommand."""
    from theseus.cli import configure, convert, inspect, jobs, logs, run, sample, status, submit

    parser = Parser(prog="theseus", description="Train language models; every experiment is "
                    "Python code.", epilog=EPILOG,
                    formatter_class=_formatter)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for module in (jobs, configure, run, submit, inspect, sample, status, logs, convert):
        module.add_parser(subparsers)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parses argv; a subcommand's options may come before, between or after its
    positional arguments (``theseus run x gpt:tiny runs --fiddler rope model.dropout=0.1``)."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv and argv[0] in subparsers.choices:
        args = subparsers.choices[argv[0]].parse_intermixed_args(argv[1:])
        return args
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``theseus`` console script."""
    from theseus.config.errors import ConfigError

    started_at = time.time()
    if argv is None and sys.argv[1:2] and sys.argv[1] in HUGE_PAGE_COMMANDS:
        try:
            started_at = host_memory.reexec_with_huge_pages(started_at)
        except ValueError as e:
            fail(str(e))
    args = parse(list(sys.argv[1:] if argv is None else argv))
    args.started_at = started_at
    if not hasattr(args, "func"):
        build_parser().print_help(sys.stderr)
        sys.exit(USAGE_ERROR)
    try:
        code = args.func(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USAGE_ERROR)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
