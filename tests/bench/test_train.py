"""bench/train.py: the experiments it times and the environment of its workers."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def load():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_is_gpt2_small_at_a_cpu_sized_batch_in_float32():
    bench = load()
    exp = bench.build_experiment("small", small_batch=2, small_seq_len=64)
    m = exp.model
    assert (m.num_layers, m.d_model, m.num_heads, m.vocab_size) == (12, 768, 12, 50304)
    assert (m.seq_len, exp.trainer.batch_size, m.dtype) == (64, 2, "float32")
    assert exp.data.tokenizer.vocab_size == 2048  # the tiny preset's tokens


def test_tiny_is_the_preset_unchanged():
    bench = load()
    exp = bench.build_experiment("tiny", small_batch=2, small_seq_len=64)
    assert (exp.model.num_layers, exp.model.d_model, exp.model.seq_len) == (4, 128, 128)
    assert exp.trainer.batch_size == 16 and exp.optimizer.learning_rate == 3e-3


def test_worker_environment_pins_threads_and_turns_the_compile_cache_off():
    bench = load()
    one = bench.worker_env("jax", 1)
    assert "--xla_cpu_multi_thread_eigen=false" in one["XLA_FLAGS"]
    assert one["THESEUS_COMPILE_CACHE"] == "off" and one["JAX_PLATFORMS"] == "cpu"
    assert "--xla_cpu_multi_thread_eigen=false" not in bench.worker_env("jax", 2).get("XLA_FLAGS", "")
    assert bench.worker_env("torch", 2)["OMP_NUM_THREADS"] == "2"


def test_one_thread_flags_follow_the_users_and_are_all_read_by_xla(monkeypatch):
    """XLA stops reading XLA_FLAGS at the first word without "--" (it once had one, which
    silently dropped every flag a user put after it)."""
    bench = load()
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_xnnpack=true")
    flags = bench.worker_env("jax", 1)["XLA_FLAGS"].split()
    assert flags == ["--xla_cpu_use_xnnpack=true", "--xla_cpu_multi_thread_eigen=false"]


def test_the_twin_gets_huge_pages_only_when_asked(monkeypatch):
    bench = load()
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert "GLIBC_TUNABLES" not in bench.worker_env("torch", 1)
    tuned = bench.worker_env("torch", 1, twin_huge_pages=True)
    assert tuned["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    # theseus's worker restarts itself with the tunable (as launch.py does); the parent
    # does not set it for either side.
    assert "GLIBC_TUNABLES" not in bench.worker_env("jax", 1, twin_huge_pages=True)


def test_precision_sets_the_models_matmul_precision():
    bench = load()
    for precision in ("float32", "bfloat16"):
        exp = bench.build_experiment("tiny", 2, 64, precision)
        assert exp.model.matmul_precision == precision


def test_compare_reports_each_precision_and_each_side_at_its_faster_one(capsys):
    bench = load()
    speeds = {("jax", "float32"): 80.0, ("torch", "float32"): 100.0,
              ("jax", "bfloat16"): 150.0, ("torch", "bfloat16"): 50.0}

    def fake_launch(framework, preset, threads, precision, args):
        return {"framework": "theseus" if framework == "jax" else "torch twin",
                "precision": precision, "tokens_per_sec": speeds[(framework, precision)],
                "step_s": 0.1, "data_s": 0.0, "device_s": 0.1, "logging_s": 0.0, "mfu": 0.1,
                "peak_gflops": 100.0, "compile_s": 1.0, "first_loss": 7.0, "last_loss": 6.0,
                "batch": 16, "seq_len": 128}

    args = type("Args", (), {"repeats": 1, "precisions": ["float32", "bfloat16"]})()
    ratios = bench.compare("tiny", 2, args, launch=fake_launch)
    assert ratios == {"float32": [0.8], "bfloat16": [3.0], "fastest": [1.5]}
    assert "each at its faster precision, ours/twin = 1.50" in capsys.readouterr().out


def test_an_unknown_precision_is_refused_before_any_worker_runs(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "bench" / "train.py"),
                             "--precisions=float32,fp16", "--presets=tiny"],
                            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: unknown precision(s) ['fp16']; choose from float32, bfloat16."]
    assert list(tmp_path.iterdir()) == []  # nothing written
