"""``theseus convert``: a trained run to a transformers checkpoint and back, as a user would."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tests.cli.conftest import one_error_line
from tests.conftest import run_launch, tiny_args

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("convert") / "run"
    result = run_launch(*tiny_args(workdir))
    assert result.returncode == 0, result.stderr
    return workdir


@pytest.mark.slow
def test_to_hf_and_back(trained, tmp_path, theseus):
    import jax
    import orbax.checkpoint as ocp
    from flax import nnx

    from theseus.evaluation.restore import restore_params

    out = tmp_path / "hf"
    result = theseus("convert", "to-hf", str(trained), str(out))
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["vocab_size"] == 2048

    restored = restore_params(trained)
    ids = np.random.default_rng(0).integers(0, 2048, size=(2, 32))
    # transformers computes in float32; so do we here (the tiny preset's matmuls are bfloat16).
    model_cfg = dataclasses.replace(restored.experiment.model, matmul_precision="float32")
    graphdef = nnx.split(model_cfg.make(nnx.Rngs(0)))[0]
    ours = np.asarray(jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(restored.params, ids))
    with torch.no_grad():
        theirs = transformers.AutoModelForCausalLM.from_pretrained(out).eval()(
            torch.as_tensor(ids)).logits.numpy()
    np.testing.assert_allclose(theirs, ours[..., :2048], atol=1e-4)

    back = tmp_path / "back"
    result = theseus("convert", "from-hf", str(out), str(back))
    assert result.returncode == 0, result.stderr
    assert json.loads((back / "model.json").read_text())["class"] == "GPTConfig"
    with ocp.StandardCheckpointer() as ckpt:
        params = ckpt.restore((back / "params").absolute())
    np.testing.assert_array_equal(params["blocks"]["0"]["attn"]["qkv"]["kernel"]
                                  if "0" in params["blocks"] else
                                  params["blocks"][0]["attn"]["qkv"]["kernel"],
                                  np.asarray(restored.params["blocks"][0]["attn"]["qkv"]["kernel"]))


def test_errors(tmp_path, theseus):
    (tmp_path / "exists").mkdir()
    assert "already exists" in one_error_line(
        theseus("convert", "to-hf", str(tmp_path), str(tmp_path / "exists")))
    assert "not a run directory" in one_error_line(
        theseus("convert", "to-hf", str(tmp_path), str(tmp_path / "out")))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"")
    line = one_error_line(theseus("convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "o")))
    assert "model_type 'bert'" in line
    assert not (tmp_path / "o").exists()
