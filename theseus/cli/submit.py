"""``theseus submit NAME CONFIG --cluster C --chip h100 -n 8``: run on a cluster.

The launch backends (local xmanager, SLURM, Vertex AI) come with the launch issue; they plug
in as ``theseus.launch.submit(name, cfg, *, cluster, hardware) -> str`` (a job id or URL).
Until that module exists, this command checks the config and then says so (exit status 2).
"""

from __future__ import annotations

import argparse

from theseus.cli.common import add_load, add_overrides, add_subcommand, check_builds, load_config_arg

EXAMPLES = """\
  theseus submit my-run my_run.py --cluster mycluster           # chip and count from my_run.py
  theseus submit my-run gpt:small --cluster mycluster --chip h100 -n 8 trainer.batch_size=256

Not available yet: until the launch backends land, run it here with
  theseus run my-run my_run.py runs
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus submit``."""
    parser = add_subcommand(
        subparsers, "submit", "run a config on a cluster (not available yet)",
        "Submit CONFIG as run NAME to a cluster's backend. The chip and count come from "
        "--chip/-n, else from the HARDWARE a config file records.", EXAMPLES)
    parser.add_argument("name", metavar="NAME", help="the run's name")
    parser.add_argument("config", metavar="CONFIG", help="a job, a .py config or a config.json")
    add_overrides(parser)
    parser.add_argument("--cluster", required=True, help="the cluster to submit to")
    parser.add_argument("--chip", help="the chip to ask for (h100, a100, v5e, ...)")
    parser.add_argument("-n", "--n-chips", type=int, metavar="N", help="how many chips")
    add_load(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Checks the config and the hardware request, then hands them to the launch backend."""
    from theseus.cli.common import run_name
    from theseus.config.codegen import Hardware, read_hardware
    from theseus.config.errors import ConfigError

    run_name(args.name)
    cfg, resolved, _ = load_config_arg(args.config, args)
    if args.n_chips is not None and not args.chip:
        raise ConfigError("-n/--n-chips needs --chip, e.g. --chip h100 -n 8")
    hardware = (Hardware(args.chip, args.n_chips if args.n_chips is not None else 1)
                if args.chip else read_hardware(resolved.module))
    if hardware is None:
        raise ConfigError("no hardware requested: pass --chip and -n, or record them with "
                          "`theseus configure ... --chip h100 -n 8`")
    check_builds(cfg)
    try:
        from theseus.launch import submit  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("submitting to a cluster is not available yet (the launch backends "
                          f"are still being built); run it here with `theseus run {args.name} "
                          f"{args.config} runs`") from None
    print(submit(args.name, cfg, cluster=args.cluster, hardware=hardware))
    return 0
