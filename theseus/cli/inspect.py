"""``theseus show``, ``theseus diff`` and ``theseus graph``: look at configs without running."""

from __future__ import annotations

import argparse
import pathlib
import shutil

from theseus.cli.common import add_load, add_overrides, add_subcommand, load_config_arg

SHOW_EXAMPLES = """\
  theseus show gpt:tiny                       # every field, one `path = value` per line
  theseus show my_run.py model.num_layers=8   # with overrides applied
  theseus show runs/my-run                    # what a run was started with
  theseus show gpt:small --json               # fiddle's JSON, as in a run's config.json
"""
DIFF_EXAMPLES = """\
  theseus diff gpt:small gpt:medium
  theseus diff my_run.py runs/my-run          # a config file against what a run used
  theseus diff runs/a/config.json runs/b/config.json
  theseus diff gpt:tiny my_tiny.py --exit-code && echo same
"""
GRAPH_EXAMPLES = """\
  theseus graph gpt:tiny tiny.svg             # needs graphviz's `dot` (apt install graphviz)
  theseus graph my_run.py run.png
  theseus graph gpt:tiny tiny.dot             # graphviz source only; no `dot` needed
"""
GRAPH_FORMATS = ("svg", "png", "pdf", "dot", "gv")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus show``, ``theseus diff`` and ``theseus graph``."""
    show = add_subcommand(subparsers, "show", "print a config, flattened",
                          "Print every field of CONFIG (defaults included) as `path = value`.",
                          SHOW_EXAMPLES)
    show.add_argument("config", metavar="CONFIG", help="a job, a .py config, a config.json or a run")
    add_overrides(show)
    show.add_argument("--json", action="store_true", help="print fiddle's JSON instead")
    add_load(show)
    show.set_defaults(func=run_show)

    diff = add_subcommand(subparsers, "diff", "show what differs between two configs",
                          "Print `path: A's value -> B's value` for every field that differs "
                          "between two configs (jobs, .py configs, config.json files or runs).",
                          DIFF_EXAMPLES)
    diff.add_argument("a", metavar="A", help="the first config")
    diff.add_argument("b", metavar="B", help="the second config")
    diff.add_argument("--exit-code", action="store_true",
                      help="exit with status 1 when the configs differ (like git diff)")
    add_load(diff)
    diff.set_defaults(func=run_diff)

    graph = add_subcommand(subparsers, "graph", "render a config as a graph (graphviz)",
                           "Render CONFIG's fiddle graph with graphviz; the format follows "
                           f"OUT's suffix ({', '.join(GRAPH_FORMATS)}).", GRAPH_EXAMPLES)
    graph.add_argument("config", metavar="CONFIG", help="a job, a .py config, a config.json or a run")
    graph.add_argument("out", metavar="OUT", help="the file to write, e.g. graph.svg")
    add_overrides(graph)
    add_load(graph)
    graph.set_defaults(func=run_graph)


def run_show(args: argparse.Namespace) -> int:
    """Prints the flattened config (or its JSON)."""
    from theseus.config import to_json, to_text

    cfg, _, _ = load_config_arg(args.config, args)
    print(to_json(cfg) if args.json else to_text(cfg), end="" if not args.json else "\n")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    """Prints the differing fields of A and B."""
    from theseus.config.diff import diff_configs, format_diff

    a, _, _ = load_config_arg(args.a, args, with_overrides=False)
    b, _, _ = load_config_arg(args.b, args, with_overrides=False)
    rows = diff_configs(a, b)
    if not rows:
        print(f"no differences between {args.a} and {args.b}")
        return 0
    print(f"{len(rows)} field{'s' * (len(rows) != 1)} differ ({args.a} -> {args.b}):")
    print(format_diff(rows))
    return 1 if args.exit_code else 0


def run_graph(args: argparse.Namespace) -> int:
    """Writes the graphviz rendering of the config."""
    from fiddle import graphviz

    from theseus.config.errors import ConfigError
    from theseus.fileio import atomic_write_bytes

    out = pathlib.Path(args.out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in GRAPH_FORMATS:
        raise ConfigError(f"cannot tell the format of '{out}': end it in one of "
                          f"{', '.join('.' + f for f in GRAPH_FORMATS)}")
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write '{out}': directory '{out.parent}' does not exist")
    if fmt not in ("dot", "gv") and shutil.which("dot") is None:
        raise ConfigError(f"rendering .{fmt} needs graphviz's `dot` program, which is not "
                          "installed (apt-get install graphviz, brew install graphviz); or "
                          "write the graph source with OUT.dot")
    cfg, _, _ = load_config_arg(args.config, args)
    graph = graphviz.render(cfg)
    data = graph.source.encode() if fmt in ("dot", "gv") else graph.pipe(format=fmt)
    atomic_write_bytes(out, data)
    print(f"wrote {out}")
    return 0
