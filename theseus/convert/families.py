"""Which converter handles which model: dispatch on the theseus config or the HF model type."""

from __future__ import annotations

import importlib
import pathlib
from types import ModuleType
from typing import Any

import numpy as np

from theseus.convert import hf_io

# HF model_type -> converter module; each has config_from_hf, config_to_hf, from_hf, to_hf.
CONVERTERS = {"gpt2": "theseus.convert.hf_gpt2", "llama": "theseus.convert.hf_llama"}
# theseus config class name -> HF model_type.
BY_CONFIG = {"GPTConfig": "gpt2", "LlamaConfig": "llama"}


def converter_for_config(model_cfg: Any) -> ModuleType:
    """The converter module of a theseus model config."""
    kind = BY_CONFIG.get(type(model_cfg).__name__)
    if kind is None:
        raise ValueError(f"no Hugging Face converter for {type(model_cfg).__name__}; "
                         f"supported: {', '.join(sorted(BY_CONFIG))}.")
    return importlib.import_module(CONVERTERS[kind])


def converter_for_hf(hf_config: dict) -> ModuleType:
    """The converter module of an HF ``config.json``."""
    kind = hf_config.get("model_type")
    if kind not in CONVERTERS:
        raise ValueError(f"no converter for Hugging Face model_type {kind!r}; supported: "
                         f"{', '.join(sorted(CONVERTERS))}.")
    return importlib.import_module(CONVERTERS[kind])


def export_params(model_cfg: Any, params: dict, out_dir: pathlib.Path,
                  vocab_size: int | None = None) -> None:
    """Writes theseus ``params`` as an HF checkpoint that ``from_pretrained`` loads."""
    conv = converter_for_config(model_cfg)
    params = _to_numpy(params)
    hf_io.save_checkpoint(out_dir, conv.config_to_hf(model_cfg, vocab_size),
                          conv.to_hf(params, model_cfg, vocab_size))


def import_params(hf_dir: pathlib.Path, vocab_size: int | None = None) -> tuple[Any, dict]:
    """``(model config, params)`` of an HF checkpoint directory."""
    config = hf_io.load_config(hf_dir)
    conv = converter_for_hf(config)
    model_cfg = conv.config_from_hf(config, vocab_size)
    return model_cfg, conv.from_hf(hf_io.load_tensors(hf_dir), model_cfg)


def _to_numpy(tree: Any) -> Any:
    """A nested dict of arrays as float32 numpy arrays (gathered from devices)."""
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float32)
