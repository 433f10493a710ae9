"""Point an experiment at the output of tokenize jobs: ``train_on(cfg, *paths)``.

A path is a dataset directory (it has ``meta.json``) or the run directory of a tokenize job
(its ``summary.json`` names the dataset directory). One path becomes ``data=Shards(...)``,
several a ``Mixture`` of them. The tokenizer is the one ``meta.json`` says wrote the shards,
and ``model.vocab_size`` is raised to fit it (rounded up to a multiple of 128) if smaller::

    uv run launch.py --config=configs/tokenize.py:shakespeare_gpt2 --workdir=runs/tok
    uv run launch.py --config=configs/gpt.py:tiny --fiddler="configs.tokenize.train_on('runs/tok')"
"""

from __future__ import annotations

import importlib
import json
import pathlib
from typing import Any

import fiddle as fdl

from theseus.config import ConfigError
from theseus.data import shards
from theseus.data.mixture import Mixture
from theseus.data.pipeline import Shards
from theseus.data.tiktoken_files import ENCODINGS, Tiktoken
from theseus.data.tokenizers import ByteLevel, TrainedBPE

SERVING = ("packing", "worker_count", "worker_buffer_size")  # kept from the experiment's data
VOCAB_MULTIPLE = 128


def tokenizer_config(wrote: dict[str, Any]) -> fdl.Config | None:
    """The config of the tokenizer that ``meta.json`` says wrote the shards: its recorded spec
    (``tokenize_job.spec_record``), else one rebuilt from its kind and name where that is
    enough; ``None`` if neither is possible."""
    record = wrote.get("spec")
    if not record or not str(record.get("class", "")).startswith("theseus.data."):
        return _from_kind(wrote)
    module, _, name = record["class"].rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    if cls is None:
        return None
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record["fields"].items()}
    return fdl.Config(cls, **fields)


def _from_kind(wrote: dict[str, Any]) -> fdl.Config | None:
    """A tokenizer config from the kind and name of an older ``meta.json`` (without a spec)."""
    kind, name = wrote.get("kind"), wrote.get("name")
    if kind == "Tiktoken" and name in ENCODINGS:
        return fdl.Config(Tiktoken, name=name)
    if kind == "ByteLevel" and name == "bytes":
        return fdl.Config(ByteLevel)
    if kind == "TrainedBPE":
        return fdl.Config(TrainedBPE, vocab_size=int(wrote["vocab_size"]))
    return None


def dataset_dir(path: str) -> pathlib.Path:
    """The dataset directory ``path`` names: itself, or what a tokenize run's summary says."""
    where = pathlib.Path(path).expanduser()
    summary = where / "summary.json"
    if not (where / "meta.json").is_file() and summary.is_file():
        where = pathlib.Path(json.loads(summary.read_text())["dataset_dir"])
    if not (where / "meta.json").is_file():
        raise ConfigError(f"{path} is neither a dataset directory (with meta.json) nor the run "
                          f"directory of a finished tokenize job; run the tokenize job first and "
                          f"pass its --workdir or the dataset directory it printed.")
    return where


def shards_config(path: str, previous: Any, serving: tuple[str, ...] = SERVING
                  ) -> fdl.Config[Shards]:
    """``Shards`` of the dataset at ``path``, its tokenizer from ``meta.json`` (else the one
    ``previous`` names) and the ``serving`` settings of ``previous``."""
    where = dataset_dir(path)
    try:
        meta = shards.read_meta(where)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    tok = tokenizer_config(meta["tokenizer"]) or getattr(previous, "tokenizer", None)
    cfg = fdl.Config(Shards, path=str(where))
    if tok is not None:
        cfg.tokenizer = tok
    cfg.__arguments__.update(_given(previous, serving))
    return cfg


def _given(previous: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields among ``names`` that the config ``previous`` sets."""
    given = getattr(previous, "__arguments__", {})
    return {name: given[name] for name in names if name in given}


def _vocab_of(data: fdl.Config[Shards]) -> int:
    return int(shards.read_meta(data.path)["tokenizer"]["vocab_size"])


def train_on(cfg: fdl.Config, *paths: str, weights: tuple[float, ...] = ()) -> None:
    """Fiddler: ``cfg.data`` becomes the shards at ``paths`` (a ``Mixture`` by ``weights``,
    equal by default, when there are several); see the module docstring."""
    if not paths:
        raise ConfigError("train_on needs at least one path: a dataset directory or the "
                          "--workdir of a tokenize job.")
    if weights and len(weights) != len(paths):
        raise ConfigError(f"train_on got {len(weights)} weights for {len(paths)} paths; give one "
                          f"weight per path, or none for equal weights.")
    previous = cfg.data
    if len(paths) == 1:
        parts = [shards_config(paths[0], previous)]
        cfg.data = parts[0]
    else:  # the mixture reads (workers); its parts only give records (packed or not)
        parts = [shards_config(p, previous, SERVING[:1]) for p in paths]
        cfg.data = fdl.Config(Mixture, datasets=tuple(parts),
                              weights=tuple(float(w) for w in weights) or (1.0,) * len(parts),
                              **_given(previous, SERVING[1:]))
    vocab = max(_vocab_of(p) for p in parts)
    model = getattr(cfg, "model", None)
    if model is not None and getattr(model, "vocab_size", vocab) < vocab:
        model.vocab_size = -(-vocab // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
