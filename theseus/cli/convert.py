"""``theseus convert``: a run's weights to a Hugging Face checkpoint, and back."""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

from theseus.cli.common import add_subcommand, existing_dir, prepare_runtime

EXAMPLES = """\
  theseus convert to-hf runs/tiny hf/tiny            # newest checkpoint -> config.json + safetensors
  theseus convert to-hf runs/tiny hf/best --best --vocab-size 2048
  theseus convert from-hf hf/gpt2 imported/gpt2      # -> imported/gpt2/{model.json,params/}
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``theseus convert``."""
    parser = add_subcommand(
        subparsers, "convert", "convert weights to and from Hugging Face checkpoints",
        "to-hf writes RUN's parameters (newest checkpoint, --step N or --best) as a "
        "transformers checkpoint (GPT-2 or Llama). from-hf reads one into OUT/model.json (the "
        "theseus model config) and OUT/params (an orbax checkpoint of the parameters).",
        EXAMPLES)
    parser.add_argument("direction", choices=("to-hf", "from-hf"))
    parser.add_argument("source", metavar="SRC", help="a run directory (to-hf) or an HF "
                        "checkpoint directory (from-hf)")
    parser.add_argument("out", metavar="OUT", help="the directory to create")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="to-hf: the real vocabulary (default: the run's tokenizer's); "
                        "from-hf: pad the table to this size")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="to-hf: the checkpoint of this step")
    which.add_argument("--best", action="store_true", help="to-hf: the lowest validation loss")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Converts in the asked direction; a user mistake is one ``error:`` line."""
    from theseus.config.errors import ConfigError

    out = pathlib.Path(args.out)
    if out.exists():
        raise ConfigError(f"'{out}' already exists; choose a new output directory")
    if args.vocab_size is not None and args.vocab_size < 1:
        raise ConfigError(f"--vocab-size must be at least 1, got {args.vocab_size}")
    prepare_runtime()
    try:
        if args.direction == "to-hf":
            return _to_hf(args, out)
        return _from_hf(args, out)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _to_hf(args: argparse.Namespace, out: pathlib.Path) -> int:
    from theseus.convert.families import export_params
    from theseus.evaluation.restore import restore_params

    workdir = existing_dir(args.source, "run directory")
    restored = restore_params(workdir, step=args.step, best=args.best)
    vocab = args.vocab_size or restored.experiment.data.tokenizer.vocab_size
    export_params(restored.experiment.model, restored.params, out, vocab)
    print(f"wrote {out} (step {restored.step}, vocabulary {vocab}); load it with "
          f"transformers.AutoModelForCausalLM.from_pretrained('{out}')")
    return 0


def _from_hf(args: argparse.Namespace, out: pathlib.Path) -> int:
    import orbax.checkpoint as ocp

    from theseus.convert.families import import_params

    model_cfg, params = import_params(existing_dir(args.source, "checkpoint directory"),
                                      args.vocab_size)
    out.mkdir(parents=True)
    fields = {"class": type(model_cfg).__name__, **dataclasses.asdict(model_cfg)}
    (out / "model.json").write_text(json.dumps(fields, indent=2))
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save((out / "params").absolute(), params)
    print(f"wrote {out}/model.json and {out}/params ({fields['class']})")
    return 0
