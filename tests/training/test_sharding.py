"""Mesh construction and logical-axis shardings."""

from __future__ import annotations

import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from theseus.models.gpt import GPTConfig
from theseus.training import sharding


def test_mesh_takes_every_device_on_data_by_default():
    mesh = sharding.make_mesh()
    assert mesh.axis_names == ("data", "fsdp", "tensor")
    assert mesh.devices.size == len(mesh.devices.flat)


def test_mesh_that_does_not_cover_the_devices_is_a_clear_error():
    with pytest.raises(ValueError, match="does not cover"):
        sharding.make_mesh(data=3, fsdp=1, tensor=1)


def test_logical_names_map_through_the_table():
    assert sharding.logical_to_spec(("embed", "mlp")) == P("fsdp", "tensor")
    assert sharding.logical_to_spec(("batch", None)) == P(("data", "fsdp"), None)
    assert sharding.logical_to_spec(None) == P()


def test_every_parameter_gets_a_named_sharding():
    cfg = GPTConfig(vocab_size=64, seq_len=8, num_layers=1, d_model=16, num_heads=2)
    _, abstract = nnx.split(nnx.eval_shape(lambda: cfg.make(nnx.Rngs(0))))
    shardings = nnx.to_pure_dict(sharding.state_shardings(abstract, sharding.make_mesh()))
    qkv = shardings["blocks"][0]["attn"]["qkv"]["kernel"]
    assert isinstance(qkv, NamedSharding) and qkv.spec == P("fsdp", "tensor")
