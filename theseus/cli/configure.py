"""``theseus configure JOB OUT.py [path=value ...]``: write a Python config file."""

from __future__ import annotations

import argparse
import pathlib
import shlex
import sys

from theseus.cli.common import add_load, add_overrides, add_subcommand, check_builds, load_config_arg

EXAMPLES = """\
  theseus configure gpt:tiny my_tiny.py model.num_layers=6 trainer.num_steps=2000
  theseus configure gpt:small my_run.py trainer.batch_size=64 --chip h100 -n 8
  theseus configure gpt:small my_run.py --fiddler rope --fiddler bf16
  theseus configure gpt:medium bigger.py --from my_run.py     # keep my_run.py's settings
  theseus configure runs/my-run/config.json again.py          # a run's config, as code

The file imports the preset it starts from and sets what differs; it runs with
  uv run launch.py --config=my_run.py:config
  uv run theseus run my-run my_run.py runs
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus configure``."""
    parser = add_subcommand(
        subparsers, "configure", "write a Python config file for a job",
        "Write OUT.py, a Python config file that starts from JOB (a job, a .py config or a "
        "run's config.json) and sets the changed fields. It is checked to build (and to "
        "reproduce the config exactly) before anything is written.", EXAMPLES)
    parser.add_argument("job", metavar="JOB", help="what to start from, e.g. gpt:small")
    parser.add_argument("out", metavar="OUT.py", help="the config file to write")
    add_overrides(parser)
    parser.add_argument("--from", dest="previous", metavar="PREVIOUS",
                        help="carry over the values of another config (.py or config.json) "
                             "wherever the paths match; the rest are reported")
    parser.add_argument("--chip", help="record the chip to ask for (h100, a100, v5e, cpu, ...)")
    parser.add_argument("-n", "--n-chips", type=int, metavar="N",
                        help="record how many chips to ask for (needs --chip)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT.py if it exists")
    add_load(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resolves, customizes, checks and writes the config file."""
    from theseus.config import to_json
    from theseus.config.carry import carry_over
    from theseus.config.codegen import Hardware, check_output_path, read_hardware, write_config_file
    from theseus.config.errors import ConfigError
    from theseus.config.resolve import customize

    out = pathlib.Path(args.out)
    check_output_path(out, overwrite=args.force)
    if args.n_chips is not None and not args.chip:
        raise ConfigError("-n/--n-chips needs --chip, e.g. --chip h100 -n 8")
    hardware = Hardware(args.chip, args.n_chips if args.n_chips is not None else 1) if args.chip else None
    cfg, resolved, fiddlers = load_config_arg(args.job, args, with_overrides=False)
    cfg, fiddlers = customize(cfg, resolved.module, (), args.fiddler)
    report = None
    if args.previous:
        previous, previous_resolved, _ = load_config_arg(args.previous, args, with_overrides=False)
        report = carry_over(previous, cfg)
        hardware = hardware or read_hardware(previous_resolved.module)
    cfg, _ = customize(cfg, resolved.module, args.overrides, ())
    check_builds(cfg)
    to_json(cfg)  # a run saves its config as JSON: refuse now what could not be saved then
    how = "Written by `theseus configure " + shlex.join(sys.argv[2:] or [args.job, args.out]) + "`."
    how += f"\nRun it with `uv run theseus run NAME {out} runs` or `uv run launch.py --config={out}:config`."
    write_config_file(out, cfg, resolved.base, fiddlers=fiddlers, hardware=hardware, how=how,
                      overwrite=args.force)
    print(f"wrote {out} ({resolved.base.label}"
          + (f", {hardware.n_chips} x {hardware.chip}" if hardware else "") + ")")
    if report is not None:
        _print_report(report, args.previous)
    print(f"run it: theseus run NAME {out} runs")
    return 0


def _print_report(report: object, previous: str) -> None:
    """What ``--from`` carried over and what it could not."""
    changed, skipped = report.changed, report.not_carried  # type: ignore[attr-defined]
    print(f"carried over from {previous}: {len(changed)} value{'s' * (len(changed) != 1)} "
          "that differ from the job")
    for line in changed:
        print(f"  {line}")
    if skipped:
        print(f"not carried over ({len(skipped)}; their paths do not match):")
        for path, why in skipped:
            print(f"  {path}: {why}")
