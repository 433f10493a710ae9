"""Data, FSDP and tensor parallelism on 8 simulated CPU devices, and the size checks.

``parallel_worker.py`` runs once in a subprocess with 8 CPU devices (this process may have
initialised JAX with one). Tolerances, float32 with ``highest`` matmul precision, against
one device: loss within 1e-5 nats, every gradient within 1e-6 (the largest is ~0.2), the
parameters after one AdamW step (lr 1e-2, eps 1e-4) within 1e-5; parameters created
sharded from the seed equal the one-device ones within 1e-6.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import fiddle as fdl
import pytest

from configs import gpt as gpt_configs
from tests.conftest import ROOT, run_launch, tiny_args
from theseus.models.gpt import GPTConfig
from theseus.training import sharding
from theseus.training.trainer import Trainer

WORKER = ROOT / "tests" / "training" / "parallel_worker.py"
MESHES = ("8x1x1", "1x8x1", "2x2x2", "1x1x8")


@pytest.fixture(scope="module")
def results() -> dict:
    """The worker's comparisons, per model and mesh shape."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    proc = subprocess.run([sys.executable, str(WORKER)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_matches(model: str, mesh: str, m: dict) -> None:
    assert m["loss_diff"] <= 1e-5, (model, mesh, m)
    assert m["grad_diff"] <= 1e-6 and m["grad_scale"] > 1e-2, (model, mesh, m)
    assert m["step_diff"] <= 1e-5, (model, mesh, m)
    assert m["init_diff"] <= 1e-6, (model, mesh, m)
    assert m["step_keeps_placement"], (model, mesh)


@pytest.mark.slow
@pytest.mark.parametrize("mesh", MESHES)
def test_gpt_loss_and_gradients_match_one_device(results, mesh):
    _assert_matches("gpt", mesh, results["gpt"][mesh])


@pytest.mark.slow
def test_llama_and_moe_match_one_device_too(results):
    assert {"llama": ["2x2x2", "1x2x4"], "moe": ["2x2x2", "1x2x1x4"]} == {
        k: [m for m in v if m != "ref_loss"] for k, v in results.items() if k != "gpt"}
    for model in ("llama", "moe"):
        for mesh, m in results[model].items():
            if mesh != "ref_loss":
                _assert_matches(model, mesh, m)
    experts = results["moe"]["1x2x1x4"]["shards"]["mu['blocks'][0]['moe']['gate']['kernel']"]
    assert experts == {"shape": [8, 32, 64], "shard": [2, 16, 64]}  # [expert, embed, mlp]


@pytest.mark.slow
def test_parameters_and_moments_are_sharded_as_the_table_says(results):
    gpt = results["gpt"]
    qkv, up, down = ("['blocks'][0]['attn']['qkv']['kernel']", "['blocks'][0]['mlp']['up']['kernel']",
                     "['blocks'][0]['mlp']['down']['kernel']")
    expect = {  # [embed, heads/mlp] kernels: embed over fsdp, heads and mlp over tensor
        "8x1x1": {qkv: [32, 96], up: [32, 128], down: [128, 32]},
        "1x8x1": {qkv: [4, 96], up: [4, 128], down: [128, 4]},
        "2x2x2": {qkv: [16, 48], up: [16, 64], down: [64, 16]},
        "1x1x8": {qkv: [32, 12], up: [32, 16], down: [16, 32]},
    }
    for mesh, shapes in expect.items():
        for path, shard in shapes.items():
            for tree in ("params", "mu"):  # Adam's moments are placed like the parameters
                assert gpt[mesh]["shards"][tree + path]["shard"] == shard, (mesh, tree, path)
    emb = "params['wte']['embedding']"  # [vocab, embed]
    assert gpt["2x2x2"]["shards"][emb]["shard"] == [32, 16]


@pytest.mark.slow
def test_fsdp_and_tensor_parallelism_divide_the_state_per_device(results):
    per_device = {m: results["gpt"][m]["per_device_bytes"] for m in MESHES}
    assert per_device["1x8x1"] < per_device["8x1x1"] / 5
    assert per_device["1x1x8"] < per_device["8x1x1"] / 4
    assert per_device["2x2x2"] < per_device["8x1x1"] / 2


def test_the_rest_of_the_devices_go_to_the_minus_one_axis():
    assert sharding.MeshShape(data=-1, fsdp=2, tensor=2).sizes(8) == {
        "data": 2, "fsdp": 2, "expert": 1, "tensor": 2}
    assert sharding.MeshShape(data=1, fsdp=-1).sizes(4)["fsdp"] == 4


def test_largest_divisible_axis_takes_fsdp_without_an_embed_axis():
    sizes = {"data": 1, "fsdp": 4, "expert": 1, "tensor": 2}
    assert sharding.param_spec((64, 12), (None, None), sizes) == sharding.P("fsdp", None)
    assert sharding.param_spec((6, 12), (None, None), sizes) == sharding.P(None, "fsdp")
    assert sharding.param_spec((6, 10), (None, None), sizes) == sharding.P(None, None)
    assert sharding.param_spec((64, 12), ("mlp", None), sizes) == sharding.P("tensor", "fsdp")


def test_expert_weights_split_over_the_expert_axis():
    sizes = {"data": 1, "fsdp": 2, "expert": 4, "tensor": 1}
    spec = sharding.param_spec((8, 32, 64), ("expert", "embed", "mlp"), sizes)
    assert spec == sharding.P("expert", "fsdp", "tensor")


@pytest.mark.parametrize("mesh, n, message", [
    (dict(data=3), 8, "trainer.mesh data=3 x fsdp=1 x expert=1 x tensor=1 needs a multiple of 3 "
                      "devices, but there are 8"),
    (dict(data=-1, fsdp=3), 8, "needs a multiple of 3 devices, but there are 8"),
    (dict(data=2, fsdp=2), 8, "does not cover the 8 devices"),
])
def test_a_mesh_that_does_not_cover_the_devices_names_the_sizes(mesh, n, message):
    with pytest.raises(ValueError, match=message):
        sharding.MeshShape(**mesh).sizes(n)


@pytest.mark.parametrize("mesh, message", [
    (dict(data=0), "trainer.mesh.data must be a positive integer or -1"),
    (dict(data=-1, fsdp=-1), "only one of trainer.mesh's axes may be -1"),
])
def test_bad_mesh_settings_are_rejected(mesh, message):
    with pytest.raises(ValueError, match=message):
        sharding.MeshShape(**mesh)


def _trainer(batch_size: int = 8, **mesh: int) -> Trainer:
    return Trainer(batch_size=batch_size, mesh=sharding.MeshShape(**mesh))


MODEL = GPTConfig(vocab_size=64, seq_len=16, num_layers=1, d_model=32, num_heads=8)


@pytest.mark.parametrize("trainer, model, message", [
    (_trainer(data=1, tensor=8), GPTConfig(vocab_size=64, seq_len=16, num_layers=1, d_model=36,
                                           num_heads=6),
     r"model.num_heads \(6\) does not split over trainer.mesh.tensor=8"),
    (_trainer(data=1, fsdp=8), GPTConfig(vocab_size=64, seq_len=16, num_layers=1, d_model=36,
                                         num_heads=4),
     "has 36 on its 'embed' axis, which does not split over trainer.mesh.fsdp=8; change "
     "trainer.mesh or model.d_model"),
    (_trainer(data=1, tensor=8), GPTConfig(vocab_size=60, seq_len=16, num_layers=1, d_model=32,
                                           num_heads=8),
     "wte.embedding has 60 on its 'vocab' axis, which does not split over "
     "trainer.mesh.tensor=8; change trainer.mesh or model.vocab_size"),
    (_trainer(batch_size=12, data=8), MODEL,
     r"12 sequences cannot be split over the 8 batch shards of trainer.mesh \(data=8 x fsdp=1 "
     r"x expert=1\)"),
    (_trainer(batch_size=4, data=2, fsdp=4), MODEL, "over the 8 batch shards"),
    (_trainer(data=4, tensor=4), MODEL, "needs a multiple of 16 devices, but there are 8"),
])
def test_sizes_that_do_not_divide_are_named_before_any_compute(trainer, model, message):
    with pytest.raises(ValueError, match=message):
        trainer.check_devices(8, model)


def test_tensor_parallelism_across_processes_is_refused():
    sizes = {"data": 2, "fsdp": 1, "expert": 1, "tensor": 2}
    sharding.check_processes(sizes, n_processes=2, local_devices=2)  # inside each process
    sharding.check_processes(sizes, n_processes=1, local_devices=1)
    with pytest.raises(ValueError, match="trainer.mesh.tensor=2 spans processes of 1 devices "
                                         "each; keep tensor parallelism inside a process"):
        sharding.check_processes(sizes, n_processes=2, local_devices=1)


def test_the_mesh_fiddler_sets_a_configurable_mesh():
    cfg = gpt_configs.tiny()
    sharding.use_mesh(cfg, fsdp=2)
    cfg.trainer.mesh.tensor = 2
    assert fdl.build(cfg.trainer).mesh == sharding.MeshShape(data=-1, fsdp=2, tensor=2)


@pytest.mark.slow
def test_launch_reports_a_mesh_that_does_not_fit_and_writes_nothing(tmp_path):
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir, "--fiddler=theseus.training.sharding.use_mesh(data=2)"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: trainer.mesh data=2 x fsdp=1 x expert=1 x tensor=1 needs a multiple of 2 "
        "devices, but there are 1")
    assert not (workdir / "config.json").exists()
