"""``--sweep`` parsing: values split at top-level commas, the cartesian product, point names."""

from __future__ import annotations

import pytest

from configs.gpt import tiny
from theseus.config.errors import ConfigError
from theseus.launch import sweep


def test_values_split_only_at_top_level_commas():
    assert sweep.split_values("[1,2],'a,b',(3, 4),5") == ["[1,2]", "'a,b'", "(3, 4)", "5"]


def test_points_are_the_cartesian_product_first_axis_slowest():
    axes = sweep.parse_axes(["optimizer.learning_rate=1e-3,3e-3", "model.num_layers=2,4"])
    names = [p.name for p in sweep.points(axes)]
    assert names == ["learning_rate=1e-3,num_layers=2", "learning_rate=1e-3,num_layers=4",
                     "learning_rate=3e-3,num_layers=2", "learning_rate=3e-3,num_layers=4"]
    assert [p.name for p in sweep.points([])] == [""]


def test_a_point_is_applied_to_a_copy():
    cfg = tiny()
    [point] = sweep.points(sweep.parse_axes(["model.num_layers=3"]))
    changed = sweep.apply_point(cfg, point)
    assert changed.model.num_layers == 3 and cfg.model.num_layers != 3


def test_long_point_names_are_hashed():
    [point] = sweep.points([sweep.Axis("data.path", ("'" + "x" * 80 + "'",))])
    assert point.name.startswith("point-") and len(point.name) == 16


@pytest.mark.parametrize("specs, message", [
    (["a=1,1"], "--sweep='a=1,1' lists a value twice; give each value once"),
    (["a=1", "a=2"], "--sweep names 'a' twice; put all its values in one --sweep"),
    (["a b=1"], "invalid override path 'a b'"),
])
def test_bad_sweeps_are_one_sentence(specs, message):
    with pytest.raises(ConfigError) as info:
        sweep.parse_axes(specs)
    assert str(info.value).startswith(message)
