"""``theseus jobs``: every experiment, grouped by file, plus the registered models and datasets."""

from __future__ import annotations

import argparse
import sys

from theseus.cli.common import add_load, add_subcommand

EXAMPLES = """\
  theseus jobs                          # the jobs in ./configs/*.py
  theseus jobs --load my_experiments.py # and those in another file
  theseus jobs --load mypkg.experiments # or in an importable module

A job is a public function in configs/*.py (or a --load file) that takes no required
arguments and is annotated to return a fiddle config, e.g.
    def small() -> fdl.Config[Experiment]: ...
It is named FILE:FUNCTION (gpt:small); its docstring's first line is shown.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus jobs``."""
    parser = add_subcommand(subparsers, "jobs", "list every experiment (and models, datasets)",
                            "List the experiments in configs/*.py and --load files, grouped "
                            "by file, with the first line of each docstring; then the "
                            "registered models and datasets.", EXAMPLES)
    add_load(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prints the jobs table."""
    from theseus import jobs, registry

    groups, warnings = jobs.all_groups(args.load)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    listed = [(g, g.jobs()) for g in groups]
    if not any(found for _, found in listed):
        print(f"no jobs found: {jobs.configs_dir()}/ holds no experiment files here; run "
              "from the project root or pass --load FILE.py")
    sections = [f"{group.source}\n{_table([(job.name, job.summary) for job in found])}"
                for group, found in listed if found]
    registry.scan_configs()
    for reg, how in ((registry.MODELS, "model=NAME"), (registry.DATASETS, "data=NAME")):
        rows = [(name, _describe(reg, name)) for name in reg.names()]
        sections.append(f"{reg.kind}s (swap one in with {how})\n{_table(rows)}")
    print("\n\n".join(sections))
    return 0


def _describe(reg: object, name: str) -> str:
    """``module.Object: first docstring line`` for a registry entry."""
    target, summary = reg.describe(name)  # type: ignore[attr-defined]
    return f"{target}: {summary}" if summary else target


def _table(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns, indented by two spaces."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"  {name.ljust(width)}  {text}".rstrip() for name, text in rows)
