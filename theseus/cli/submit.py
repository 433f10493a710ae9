"""``theseus submit NAME CONFIG --cluster C --chip h100 -n 8``: run on a cluster.

The same launch path as ``launch.py --xm=...`` (``theseus.launch.submit``): the cluster's kind
(slurm, vertex, ssh or local, from the clusters file) picks the target; ``--sweep`` adds one
work unit per point. Prints one line per work unit: where it went.
"""

from __future__ import annotations

import argparse

from theseus.cli.common import add_load, add_overrides, add_subcommand, check_builds, load_config_arg

EXAMPLES = """\
  theseus submit my-run my_run.py --cluster mycluster           # chip and count from my_run.py
  theseus submit my-run gpt:small --cluster mycluster --chip h100 -n 8 trainer.batch_size=256
  theseus submit lr gpt:small --cluster tpu --chip v5p-16 --sweep optimizer.learning_rate=1e-3,3e-3

Clusters are defined in ~/.theseus/clusters.py (or --clusters FILE); see docs/launching.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus submit``."""
    parser = add_subcommand(
        subparsers, "submit", "run a config on a cluster (SLURM, Vertex AI, SSH host)",
        "Submit CONFIG as run NAME to a cluster's backend. The chip and count come from "
        "--chip/-n, else from the HARDWARE a config file records.", EXAMPLES)
    parser.add_argument("name", metavar="NAME", help="the run's name")
    parser.add_argument("config", metavar="CONFIG", help="a job, a .py config or a config.json")
    add_overrides(parser)
    parser.add_argument("--cluster", required=True, help="the cluster to submit to")
    parser.add_argument("--chip", help="the chip to ask for (h100, a100, v5e, ...)")
    parser.add_argument("-n", "--n-chips", type=int, metavar="N", help="how many chips")
    parser.add_argument("--sweep", action="append", default=[], metavar="PATH=V1,V2",
                        help="one work unit per value (repeatable: the cartesian product)")
    parser.add_argument("--clusters", metavar="FILE",
                        help="the clusters file (default $THESEUS_CLUSTERS or ~/.theseus/clusters.py)")
    add_load(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Checks the config and the hardware request, then launches; the exit status is the
    first non-zero one of the work units that ran here (0 for submitted ones)."""
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
        raise ConfigError("no hardware requested: pass --chip and -n (--chip cpu on a local "
                          "cluster), or record them with `theseus configure ... --chip h100 -n 8`")
    check_builds(cfg)
    from theseus.launch import describe, exit_status, submit

    launched = submit(args.name, cfg, cluster=args.cluster, hardware=hardware,
                      sweeps=tuple(args.sweep), clusters=args.clusters)
    print(describe(launched))
    return exit_status(launched)
