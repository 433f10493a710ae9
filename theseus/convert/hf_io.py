"""Reading and writing Hugging Face checkpoint directories with numpy (no torch needed)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np

SAFETENSORS = "model.safetensors"


def save_checkpoint(out_dir: pathlib.Path, config: Mapping, tensors: Mapping[str, np.ndarray]) -> None:
    """Writes ``config.json`` and ``model.safetensors`` into ``out_dir`` atomically (the directory
    appears complete or not at all); refuses to overwrite an existing directory."""
    from safetensors.numpy import save_file

    out_dir = pathlib.Path(out_dir)
    if out_dir.exists():
        raise ValueError(f"'{out_dir}' already exists; choose a new output directory.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(dict(config), indent=2))
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp / SAFETENSORS))
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_config(hf_dir: pathlib.Path) -> dict:
    """The ``config.json`` of a checkpoint directory."""
    path = pathlib.Path(hf_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"'{hf_dir}' is not a Hugging Face checkpoint (it has no config.json).")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}).") from None


def load_tensors(hf_dir: pathlib.Path) -> dict[str, np.ndarray]:
    """Every tensor of the ``*.safetensors`` files of a checkpoint directory, as float32."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    files = sorted(pathlib.Path(hf_dir).glob("*.safetensors"))
    if not files:
        raise ValueError(f"'{hf_dir}' has no *.safetensors weights; save the model with "
                         f"save_pretrained(..., safe_serialization=True).")
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        try:
            tensors.update({k: v.astype(np.float32) for k, v in load_file(str(f)).items()})
        except SafetensorError as e:
            raise ValueError(f"{f} is not a readable safetensors file ({e}).") from None
    return tensors


def load_checkpoint(hf_dir: pathlib.Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(config, tensors)`` of a checkpoint directory saved by ``save_pretrained``."""
    return load_config(hf_dir), load_tensors(hf_dir)


def take(tensors: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    """``tensors[key]``, or one sentence naming the missing key and what the file has."""
    if key not in tensors:
        sample = ", ".join(sorted(tensors)[:5])
        raise ValueError(f"the checkpoint has no tensor '{key}' (it has e.g. {sample}); is it the "
                         f"right model type?")
    return np.asarray(tensors[key], dtype=np.float32)


def fit_rows(table: np.ndarray, rows: int) -> np.ndarray:
    """``table`` with exactly ``rows`` rows: extra rows dropped, missing ones zero (vocab padding)."""
    if table.shape[0] >= rows:
        return table[:rows]
    return np.concatenate([table, np.zeros((rows - table.shape[0], *table.shape[1:]), table.dtype)])
