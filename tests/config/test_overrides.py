"""Tests for theseus.config.overrides: --fdl_set paths, values, type checks and fiddlers."""

from __future__ import annotations

import types
from typing import Any, Literal, Optional

import fiddle as fdl
import pytest

from theseus.config import ConfigError, apply_overrides, apply_set
from theseus.config.overrides import NO_ANNOTATION, TypeMismatch, coerce, parse_path, type_name

from .fixtures import toy


@pytest.fixture
def cfg() -> fdl.Config[toy.Experiment]:
    """A fresh toy experiment config."""
    return toy.tiny()


def _set(cfg: fdl.Buildable, *assignments: str) -> fdl.Buildable:
    """Applies --fdl_set assignments in order."""
    return apply_overrides(cfg, [("set", a) for a in assignments], toy)


# Setting values


def test_set_ints_floats_bools_and_strings(cfg: fdl.Config) -> None:
    _set(cfg, "model.num_layers=6", "model.dropout=0.1", "model.use_bias=False", "model.name='big one'")
    assert (cfg.model.num_layers, cfg.model.dropout, cfg.model.use_bias, cfg.model.name) == (6, 0.1, False, "big one")


def test_int_is_accepted_and_stored_as_float(cfg: fdl.Config) -> None:
    _set(cfg, "model.dropout=1")
    assert cfg.model.dropout == 1.0 and isinstance(cfg.model.dropout, float)


@pytest.mark.parametrize(
    ("text", "value"), [("bigmodel", "bigmodel"), ("/data/x-1.txt", "/data/x-1.txt"), ("gs://b/k", "gs://b/k")]
)
def test_bare_words_are_strings(cfg: fdl.Config, text: str, value: str) -> None:
    _set(cfg, f"model.name={text}")
    assert cfg.model.name == value


def test_optional_literal_enum_and_tuple(cfg: fdl.Config) -> None:
    _set(cfg, "model.head_dim=8", "model.mlp=relu", "model.activation=RELU", "model.shape=[3, 4]")
    assert cfg.model.head_dim == 8 and cfg.model.mlp == "relu"
    assert cfg.model.activation is toy.Activation.RELU and cfg.model.shape == (3, 4)
    _set(cfg, "model.head_dim=None")
    assert cfg.model.head_dim is None


def test_nested_index_and_dict_key_paths(cfg: fdl.Config) -> None:
    _set(cfg, "data.sources[1].path=z.txt", "data.sources[-1].weight=3", "data.named['main'].path=\"m.txt\"")
    assert cfg.data.sources[1].path == "z.txt" and cfg.data.sources[1].weight == 3.0
    assert cfg.data.named["main"].path == "m.txt"


def test_setting_a_tuple_element_replaces_the_tuple(cfg: fdl.Config) -> None:
    original = cfg.data.weights
    _set(cfg, "data.weights=[1.0, 2.0]", "data.weights[1]=5")
    assert cfg.data.weights == (1.0, 5.0) and original == (1.0,)


def test_setting_a_list_element_copies_the_list(cfg: fdl.Config) -> None:
    shared = ["a", "b"]
    cfg.model.tags = shared
    _set(cfg, "model.tags[0]=c")
    assert cfg.model.tags == ["c", "b"] and shared == ["a", "b"]


def test_buildable_field_takes_none_only_if_annotation_allows(cfg: fdl.Config) -> None:
    _set(cfg, "model.norm=None")
    assert cfg.model.norm is None
    with pytest.raises(ConfigError, match=r"model.norm expects Norm \| None, got int 3"):
        _set(toy.tiny(), "model.norm=3")


def test_unannotated_field_uses_current_value_type(cfg: fdl.Config) -> None:
    _set(cfg, "extra.b=7", "extra.c=word", "extra.a=5")
    assert (cfg.extra.a, cfg.extra.b, cfg.extra.c) == (5, 7, "word")
    with pytest.raises(ConfigError, match="extra.b expects int, got float 1.5"):
        _set(cfg, "extra.b=1.5")


def test_partial_and_unset_fields(cfg: fdl.Config) -> None:
    _set(cfg, "schedule.value=2", "schedule.step=3")
    assert cfg.schedule.value == 2.0 and cfg.schedule.step == 3


# Path errors


def test_misspelt_top_level_field(cfg: fdl.Config) -> None:
    with pytest.raises(ConfigError) as e:
        _set(cfg, "modle.num_layers=3")
    assert str(e.value) == (
        "unknown field 'modle': Experiment has no field 'modle' (did you mean 'model'?); "
        "valid fields: model, data, schedule, extra"
    )


def test_misspelt_nested_field_names_path_class_fields_and_suggestion(cfg: fdl.Config) -> None:
    with pytest.raises(ConfigError) as e:
        _set(cfg, "model.num_layer=3")
    message = str(e.value)
    assert message.startswith(
        "unknown field 'model.num_layer': Model has no field 'num_layer' (did you mean 'num_layers'?)"
    )
    assert "valid fields: d_model, num_layers, num_heads, dropout" in message


def test_misspelt_field_inside_a_list(cfg: fdl.Config) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown field 'data.sources\[0\].pth': Source has no field 'pth' \(did you mean 'path'\?\)"
    ):
        _set(cfg, "data.sources[0].pth=x")


def test_no_suggestion_when_nothing_is_close(cfg: fdl.Config) -> None:
    with pytest.raises(ConfigError) as e:
        _set(cfg, "model.zzzz=1")
    assert "did you mean" not in str(e.value)


@pytest.mark.parametrize(
    ("assignment", "match"),
    [
        ("model.num_layers", "is not of the form path=value"),
        ("=3", "is not of the form path=value"),
        ("model..x=1", "invalid override path 'model..x'"),
        ("[0].x=1", "invalid override path"),
        ("model.x y=1", "invalid override path"),
        ("model.d_model.x=1", "'model.d_model' is an int \\(16\\), not a config with fields"),
        ("data.sources[5].path=x", "index 5 out of range in 'data.sources\\[5\\].path': 'data.sources' has 2 items"),
        ("data.named['other'].path=x", "'data.named' has no key 'other'; its keys: 'main'"),
        ("data.sources['a'].path=x", "index it with \\[0\\]"),
        ("model.num_layers[0]=1", "cannot be indexed"),
        ("model.tags[0]=x", "out of range"),
    ],
)
def test_path_errors(cfg: fdl.Config, assignment: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _set(cfg, assignment)


def test_parse_path() -> None:
    assert parse_path("a.b[0]['k'][\"j\"].c") == [
        ("attr", "a"),
        ("attr", "b"),
        ("item", 0),
        ("item", "k"),
        ("item", "j"),
        ("attr", "c"),
    ]


# Value errors


@pytest.mark.parametrize("text", ["a b", "1abc", "(1, ", "f(x)", "", "{'a': b}"])
def test_unparsable_value(cfg: fdl.Config, text: str) -> None:
    with pytest.raises(ConfigError, match="could not parse value .* for 'model.name'; use a Python literal, e.g."):
        apply_set(cfg, f"model.name={text}")


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("model.num_layers=abc", "model.num_layers expects int, got str 'abc'"),
        ("model.num_layers=2.5", "model.num_layers expects int, got float 2.5"),
        ("model.num_layers=True", "model.num_layers expects int, got bool True"),
        ("model.dropout='x'", "model.dropout expects float, got str 'x'"),
        ("model.dropout=False", "model.dropout expects float, got bool False"),
        ("model.use_bias=1", "model.use_bias expects bool, got int 1"),
        ("model.use_bias=true", "model.use_bias expects bool, got str 'true'; write True for a bool"),
        ("model.name=2024", "model.name expects str, got int 2024; quote it to make a string, e.g. '2024'"),
        ("model.head_dim=x", "model.head_dim expects int | None, got str 'x'"),
        ("model.mlp=tanh", "model.mlp expects Literal['gelu', 'relu'], got str 'tanh'"),
        ("model.activation=TANH", "model.activation expects Activation, got str 'TANH'"),
        ("model.shape=[1]", "model.shape expects tuple[int, int], got list [1]"),
        ("model.tags=[1]", "model.tags expects list[str], got list [1]"),
        ("data.sources[0]=3", r"data.sources[0] expects Source, got int 3"),
        ("data.named['main']=None", "data.named['main'] expects Source, got NoneType None"),
    ],
)
def test_wrong_types(cfg: fdl.Config, assignment: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        apply_set(cfg, assignment)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (1, float, 1.0),
        (1, Optional[float], 1.0),
        (1, int | float, 1),
        ([1, 2], tuple[float, ...], (1.0, 2.0)),
        ((1, "a"), list[int | str], [1, "a"]),
        ({"a": 1}, dict[str, float], {"a": 1.0}),
        ("x", Any, "x"),
        (None, NO_ANNOTATION, None),
        ("bfloat16", __import__("numpy").dtype, "bfloat16"),
    ],
)
def test_coerce_accepts(value: Any, annotation: Any, expected: Any) -> None:
    result = coerce(value, annotation)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (True, int),
        (1, bool),
        (1, str),
        ("a", Literal["b"]),
        (1, Literal[True]),
        ("ab", list[str]),
        (None, int),
        ([1], dict),
    ],
)
def test_coerce_rejects(value: Any, annotation: Any) -> None:
    with pytest.raises(TypeMismatch):
        coerce(value, annotation)


def test_type_name() -> None:
    assert type_name(Optional[toy.Norm]) == "Norm | None"
    assert type_name(dict[str, list[int]]) == "dict[str, list[int]]"
    assert type_name(tuple[int, ...]) == "tuple[int, ...]"


# Fiddlers and ordering


def test_fiddler_then_set_set_wins(cfg: fdl.Config) -> None:
    cfg = apply_overrides(cfg, [("fiddler", "double_layers"), ("set", "model.num_layers=3")], toy)
    assert cfg.model.num_layers == 3


def test_set_then_fiddler_fiddler_wins(cfg: fdl.Config) -> None:
    cfg = apply_overrides(cfg, [("set", "model.num_layers=3"), ("fiddler", "double_layers")], toy)
    assert cfg.model.num_layers == 6


def test_interleaved_order(cfg: fdl.Config) -> None:
    overrides = [
        ("set", "model.num_layers=5"),
        ("fiddler", "double_layers"),
        ("set", "model.num_heads=8"),
        ("fiddler", "set_layers(1, heads=4)"),
        ("fiddler", "double_layers"),
    ]
    cfg = apply_overrides(cfg, overrides, toy)
    assert (cfg.model.num_layers, cfg.model.num_heads) == (2, 4)


def test_fiddler_with_args_and_kwargs(cfg: fdl.Config) -> None:
    cfg = apply_overrides(cfg, [("fiddler", "set_layers(9, heads=3)")], toy)
    assert (cfg.model.num_layers, cfg.model.num_heads) == (9, 3)


def test_fiddler_may_return_a_new_config(cfg: fdl.Config) -> None:
    new = apply_overrides(cfg, [("fiddler", "swap_for_small"), ("set", "model.d_model=4")], toy)
    assert new is not cfg and (new.model.num_layers, new.model.d_model) == (7, 4)


def test_fiddler_by_dotted_path_without_module(cfg: fdl.Config) -> None:
    cfg = apply_overrides(cfg, [("fiddler", f"{toy.__name__}.double_layers")], None)
    assert cfg.model.num_layers == 4


def test_unknown_fiddler_lists_functions(cfg: fdl.Config) -> None:
    with pytest.raises(ConfigError) as e:
        apply_overrides(cfg, [("fiddler", "double_layer")], toy)
    message = str(e.value)
    assert message.startswith("unknown fiddler 'double_layer' (did you mean 'double_layers'?); functions in ")
    assert "set_layers, small, swap_for_small" in message


@pytest.mark.parametrize("name", ["nope", "os.path.nope", "no_such_module.fn"])
def test_unknown_fiddler_without_module(cfg: fdl.Config, name: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown fiddler '{name}'; give a dotted path"):
        apply_overrides(cfg, [("fiddler", name)], None)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("set_layers", "wrong arguments for fiddler 'set_layers': missing a required argument: 'n'"),
        ("set_layers(1, 2)", "wrong arguments for fiddler"),
        ("double_layers(x=1)", "wrong arguments for fiddler"),
        ("returns_int", "fiddler 'returns_int' returned int; a fiddler must change the config in place"),
        ("set_layers(n)", "argument 'n' of fiddler 'set_layers\\(n\\)' is not a Python literal"),
        ("set_layers(", "cannot parse fiddler 'set_layers\\('"),
    ],
)
def test_fiddler_errors(cfg: fdl.Config, spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        apply_overrides(cfg, [("fiddler", spec)], toy)


def test_unknown_override_kind_is_a_programming_error(cfg: fdl.Config) -> None:
    with pytest.raises(ValueError):
        apply_overrides(cfg, [("delete", "model")], types.ModuleType("m"))


def test_cannot_descend_into_a_required_field_with_no_value() -> None:
    with pytest.raises(ConfigError, match="'sources' is required and has no value yet"):
        apply_set(fdl.Config(toy.Data), "sources[0].path=x")
