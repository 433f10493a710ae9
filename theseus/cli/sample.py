"""``theseus sample RUN --prompt TEXT``: generate text from a run's newest checkpoint."""

from __future__ import annotations

import argparse
import pathlib

from theseus.cli.common import add_subcommand, prepare_runtime

EXAMPLES = """\
  theseus sample runs/tiny --prompt "ROMEO:"
  theseus sample runs/tiny --prompt "To be" --tokens 100 --temperature 0.6 --seed 3
  theseus sample runs/tiny --best              # the checkpoint with the lowest val loss
  theseus sample runs/tiny --step 400          # a particular checkpoint
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus sample``."""
    parser = add_subcommand(
        subparsers, "sample", "generate text from a run's newest checkpoint",
        "Load RUN's config and its newest complete checkpoint (or --step N, or --best) and "
        "print the prompt followed by sampled tokens.", EXAMPLES)
    parser.add_argument("run", metavar="RUN", help="a run directory, e.g. runs/tiny")
    parser.add_argument("--prompt", default="", help="text to continue (default: start afresh)")
    parser.add_argument("--tokens", type=int, default=200, help="how many tokens (default 200)")
    parser.add_argument("--temperature", type=float, default=0.8, help="default 0.8")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="sample from the checkpoint of this step")
    which.add_argument("--best", action="store_true",
                       help="sample from the checkpoint with the lowest validation loss")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Restores the parameters and prints the sample."""
    from theseus.config.errors import ConfigError

    workdir = pathlib.Path(args.run)
    if not (workdir / "config.json").is_file():
        raise ConfigError(f"'{workdir}' is not a run directory (it has no config.json)")
    if args.tokens < 1:
        raise ConfigError(f"--tokens must be at least 1, got {args.tokens}")
    if args.temperature < 0:
        raise ConfigError(f"--temperature must be >= 0, got {args.temperature}")
    prepare_runtime()
    from theseus.evaluation.restore import generate, restore_params

    restored = restore_params(workdir, step=args.step, best=args.best)
    text = generate(restored, args.prompt, args.tokens, args.temperature, args.seed)
    print(f"[{workdir}, step {restored.step}]")
    print(args.prompt + text)
    return 0
