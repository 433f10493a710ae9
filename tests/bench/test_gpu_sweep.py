"""bench/gpu_sweep.py and bench/gpu.sh, checked on CPU with tiny shapes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def load(name: str):
    """A script of bench/ as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_sweep():
    sweep = load("gpu_sweep")
    assert sweep.parse_sweep("16:0:dot_product, 32:1:reference") == [
        (16, False, "dot_product"), (32, True, "reference")]
    assert len(sweep.parse_sweep(sweep.DEFAULT_SWEEP)) >= 4


@pytest.mark.parametrize("bad", ["16:0", "x:0:reference", "16:2:reference", " , "])
def test_bad_sweep_is_one_clear_error(bad):
    sweep = load("gpu_sweep")
    with pytest.raises(ValueError, match="BATCH:REMAT:ATTENTION"):
        sweep.parse_sweep(bad)


def test_tiny_model_is_the_small_preset_shrunk():
    sweep = load("gpu_sweep")
    model, opt = sweep.build(tiny=True, remat=True, attention="dot_product")
    assert model.remat and model.attention == "dot_product" and model.dtype == "bfloat16"
    # 6N + 12·L·T·D for the tiny shapes: N = 2·(4·32² + 2·32·128) + 256·32.
    assert model.flops_per_token() == 6 * (2 * (4 * 32**2 + 2 * 32 * 128) + 256 * 32) \
        + 12 * 2 * 32 * 32
    assert opt.learning_rate == 6e-4


@pytest.mark.slow
def test_sweep_runs_each_configuration_in_its_own_process():
    out = subprocess.run([sys.executable, "bench/gpu_sweep.py", "--tiny", "--steps=2",
                          "--warmup=0", "--sweep=2:1:dot_product,2:0:no_such_kernel"],
                         check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    rows = [ln for ln in out.stdout.splitlines() if ln.lstrip().startswith("2 x 32")]
    assert len(rows) == 2
    assert "remat  dot_product" in rows[0] and "%" in rows[0]
    assert "no_such_kernel" in rows[1] and "attention" in rows[1]  # the config's own error
    assert "best: batch 2" in out.stdout and "6N + 12·L·T·D" in out.stdout


def test_gpu_script_refuses_a_cpu_only_venv_in_one_line():
    out = subprocess.run(["bash", "bench/gpu.sh"], check=False, cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "cuda12" in lines[0]
