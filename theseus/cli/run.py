"""``theseus run NAME CONFIG OUT [path=value ...]``: train here, in ``OUT/NAME``."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from theseus.cli.common import (
    add_load,
    add_overrides,
    add_subcommand,
    load_config_arg,
    prepare_runtime,
    run_name,
)

EXAMPLES = """\
  theseus run tiny gpt:tiny runs                         # trains in runs/tiny
  theseus run tiny gpt:tiny runs trainer.num_steps=2000  # same run, longer: resumes
  theseus run my-run my_run.py runs                      # a file from `theseus configure`
  theseus run again runs/tiny/config.json runs           # a run's exact config
  theseus run six configs/gpt.py:small runs model.num_layers=6 --fiddler rope

Exit status: 0 finished, 2 a user mistake (nothing written), 75 preempted after saving a
checkpoint (run the same command again to resume), 1 training failed.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus run``."""
    parser = add_subcommand(
        subparsers, "run", "train a config here, in OUT/NAME (resumes)",
        "Train CONFIG on this machine in OUT/NAME. If that run exists, it resumes from its "
        "newest checkpoint (a config that changes what the run computes is refused unless "
        "--allow-config-change).", EXAMPLES)
    parser.add_argument("name", metavar="NAME", help="the run's name: its folder under OUT")
    parser.add_argument("config", metavar="CONFIG",
                        help="a job (gpt:tiny), a .py config (my_run.py or path.py:fn), a "
                             "config.json or a run directory")
    parser.add_argument("out", metavar="OUT", help="the folder that holds runs, e.g. runs")
    add_overrides(parser)
    parser.add_argument("--allow-config-change", "--allow_config_change", action="store_true",
                        help="resume even though the config changes what the run computes")
    parser.add_argument("--from-scratch", "--from_scratch", action="store_true",
                        help="if no checkpoint of the run can be restored, move them aside "
                             "and start again")
    add_load(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Loads the config, then trains it through ``theseus.runner.run``."""
    started_at = getattr(args, "started_at", None) or time.time()
    workdir = pathlib.Path(args.out) / run_name(args.name)
    cfg, _, _ = load_config_arg(args.config, args)
    prepare_runtime()
    from theseus.runner import RUN_ERRORS, describe, exit_code_for
    from theseus.runner import run as run_config

    try:
        summary = run_config(cfg, workdir, started_at=started_at,
                             allow_config_change=args.allow_config_change,
                             from_scratch=args.from_scratch)
    except RUN_ERRORS as e:  # the documented ways a run ends early; anything else is a bug
        code = exit_code_for(e)
        print(f"{'stopped' if code == 75 else 'error'}: {e}", file=sys.stderr)
        return code
    print(describe(summary, workdir))
    return 0
