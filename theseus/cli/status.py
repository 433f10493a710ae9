"""``theseus status [ROOT]``: a table of the runs under a folder."""

from __future__ import annotations

import argparse
import pathlib

from theseus.cli.common import add_subcommand, existing_dir

EXAMPLES = """\
  theseus status              # the runs under ./runs
  theseus status /data/runs   # or under another folder (searched recursively)
  theseus status runs/tiny    # one run

States: running, finished, failed, preempted (from the run's status.json); stopped (its
process is gone, or an older run without status.json that did not finish); new (only a
config so far). AGE is the time since the run last wrote anything. Jobs submitted to
SLURM from this machine follow in a second table, their state from scontrol (`theseus logs`).
"""
HEADER = ("RUN", "STEP", "LOSS", "STATE", "AGE")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus status``."""
    parser = add_subcommand(subparsers, "status", "list runs: step, loss, state, age",
                            "Print a table of the runs under ROOT: step out of the total, last "
                            "training loss, state and age.", EXAMPLES)
    parser.add_argument("root", metavar="ROOT", nargs="?", default="runs",
                        help="the folder to search for runs (default: runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prints the table."""
    from theseus.cli.logs import render_jobs
    from theseus.cli.runinfo import find_runs, read_run

    root = existing_dir(args.root, "runs folder")
    runs = [read_run(path) for path in find_runs(root)]
    print(render(runs, root) if runs else f"no runs under {root}")
    jobs = render_jobs()  # submitted SLURM jobs, from scontrol/squeue (none: no table)
    if jobs:
        print(f"\nsubmitted jobs:\n{jobs}")
    return 0


def render(runs: list, root: pathlib.Path) -> str:
    """The aligned table: one row per run, paths relative to ``root``."""
    from theseus.cli.runinfo import age

    rows = [HEADER]
    for info in runs:
        name = info.path.relative_to(root).as_posix() if info.path != root else info.path.name
        step = "-" if info.step is None else str(info.step)
        if info.num_steps is not None:
            step += f"/{info.num_steps}"
        loss = "-" if info.loss is None else f"{info.loss:.4f}"
        rows.append((name, step, loss, info.state, age(info.updated)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in rows)
