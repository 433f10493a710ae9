"""Mesh construction and logical-axis shardings."""

from __future__ import annotations

import jax
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from theseus.models.gpt import GPTConfig
from theseus.training import sharding


def test_mesh_takes_every_device_on_data_by_default():
    mesh = sharding.make_mesh()
    assert mesh.axis_names == ("data", "fsdp", "expert", "tensor")
    assert sharding.mesh_sizes(mesh) == {"data": jax.device_count(), "fsdp": 1, "expert": 1,
                                         "tensor": 1}


def test_mesh_that_does_not_cover_the_devices_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a multiple of 3 devices"):
        sharding.make_mesh(sharding.MeshShape(data=3), devices=jax.devices()[:1])


def test_logical_names_map_through_the_table():
    assert sharding.logical_to_spec(("embed", "mlp")) == P("fsdp", "tensor")
    assert sharding.logical_to_spec(("batch", None)) == P(("data", "fsdp", "expert"), None)
    assert sharding.logical_to_spec(("expert", "embed", "mlp")) == P("expert", "fsdp", "tensor")
    assert sharding.logical_to_spec(None) == P()


def test_every_parameter_gets_a_named_sharding():
    cfg = GPTConfig(vocab_size=64, seq_len=8, num_layers=1, d_model=16, num_heads=2)
    _, abstract = nnx.split(nnx.eval_shape(lambda: cfg.make(nnx.Rngs(0))))
    shardings = nnx.to_pure_dict(sharding.state_shardings(abstract, sharding.make_mesh()))
    qkv = shardings["blocks"][0]["attn"]["qkv"]["kernel"]
    assert isinstance(qkv, NamedSharding) and qkv.spec == P("fsdp", "tensor")
