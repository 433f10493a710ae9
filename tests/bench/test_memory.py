"""``bench/memory.py``: per-device bytes of parameters and optimizer state, no allocation."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT
from theseus.models.gpt import GPTConfig
from theseus.training.optimizer import AdamW
from theseus.training.sharding import MeshShape

_spec = importlib.util.spec_from_file_location("bench_memory", ROOT / "bench" / "memory.py")
memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(memory)

MODEL = GPTConfig(vocab_size=64, seq_len=16, num_layers=1, d_model=32, num_heads=8)


def test_fsdp_divides_parameters_and_moments_by_its_size():
    tx = AdamW().make(10)
    count, params, opt = memory.per_device_bytes(MODEL, tx, MeshShape(data=1), 1)
    _, params8, opt8 = memory.per_device_bytes(MODEL, tx, MeshShape(data=1, fsdp=8), 8)
    assert params == 4 * count and opt >= 2 * params  # float32; Adam's two moments
    assert params8 == params // 8  # every axis of this model divides by 8
    assert opt8 < opt // 7


def test_table_names_the_meshes_a_model_does_not_fit():
    text = memory.table(["gpt:tiny"], 8)
    assert "| gpt:tiny | 1.07M | 1×8×1×1 | 0.51 MiB | 1.02 MiB | 1.53 MiB | 0.125 |" in text
    assert "1×1×8×1 | does not fit: model.num_heads (4) does not split over " \
           "trainer.mesh.tensor=8" in text
