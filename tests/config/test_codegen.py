"""Writing configs as Python files: readable, importable, and exactly reproducing the config."""

from __future__ import annotations

import dataclasses
import types

import fiddle as fdl
import pytest

from tests.config.fixtures import toy
from theseus.config import ConfigError, load_config
from theseus.config.carry import carry_over
from theseus.config.codegen import (
    Base,
    Fiddler,
    Hardware,
    check_reproduces,
    read_hardware,
    render,
    write_config_file,
)
from theseus.config.compare import differences
from theseus.config.pyexpr import Imports, expression


def _changed() -> fdl.Config:
    cfg = toy.tiny()
    cfg.model.num_layers = 5
    cfg.model.activation = toy.Activation.RELU
    cfg.model.shape = (3, 4)
    cfg.model.norm = None
    cfg.data.sources[1].path = "z.txt"
    cfg.data.named["main"].weight = 0.25
    cfg.schedule = fdl.Partial(toy.constant, value=float("inf"))
    return cfg


def test_changes_become_assignments_after_the_base_call():
    cfg = _changed()
    text = render(cfg, Base("toy:tiny", toy, "tiny"), how="Written by a test.")
    assert "from tests.config.fixtures import toy\n" in text
    body = text[text.index("def config()"):].splitlines()
    assert body[0] == "def config() -> fdl.Config[Experiment]:"
    assert body[2:] == [
        "    cfg = toy.tiny()",
        "    cfg.model.num_layers = 5",
        "    cfg.model.activation = Activation.RELU",
        "    cfg.model.shape = (3, 4)",
        "    cfg.model.norm = None",
        "    cfg.data.sources[1].path = 'z.txt'",
        "    cfg.data.named['main'].weight = 0.25",
        "    cfg.schedule.value = math.inf",
        "    return cfg",
    ]
    assert text.startswith('"""A config for theseus: toy:tiny with 7 changes.\n\nWritten by a test.\n"""')
    check_reproduces(text, cfg, "t.py")


def test_base_arguments_fiddlers_and_a_replaced_part():
    cfg = toy.small(6, d_model=8)
    toy.set_layers(cfg, 3, heads=4)
    cfg.model.norm = fdl.Config(toy.Norm, kind="layer")  # same class: only the field differs
    cfg.extra = fdl.Config(toy.Source, path="p")          # another class: written out whole
    fiddlers = [Fiddler(toy.set_layers, (3,), {"heads": 4})]
    text = render(cfg, Base("toy:small(6)", toy, "small", (6,), {"d_model": 8}), fiddlers=fiddlers)
    assert "    cfg = toy.small(6, d_model=8)\n    toy.set_layers(cfg, 3, heads=4)\n" in text
    assert "    cfg.model.norm.kind = 'layer'\n" in text
    assert "    cfg.extra = fdl.Config(Source, path='p')\n" in text
    check_reproduces(text, cfg, "t.py")


def test_a_fiddler_that_returns_a_new_config():
    cfg = toy.swap_for_small(toy.tiny())
    text = render(cfg, Base("toy:tiny", toy, "tiny"), fiddlers=[Fiddler(toy.swap_for_small, returns_new=True)])
    assert "    cfg = toy.swap_for_small(cfg)\n    return cfg" in text
    check_reproduces(text, cfg, "t.py")


def test_without_a_base_the_config_is_written_out_in_full():
    cfg = _changed()
    text = render(cfg, None)
    assert "cfg = fdl.Config(\n        Experiment,\n" in text
    assert "from tests.config.fixtures.toy import Activation, " not in text  # one import per line
    assert "from tests.config.fixtures.toy import Activation\n" in text and "import math\n" in text
    check_reproduces(text, cfg, "t.py")


def test_two_objects_with_one_name_are_told_apart():
    @dataclasses.dataclass
    class Experiment:  # same name as toy.Experiment, another module
        x: int = 1

    imports = Imports()
    assert imports.reference(toy.Experiment) == "Experiment"
    with pytest.raises(ConfigError, match="define it at module level"):
        imports.reference(Experiment)
    assert imports.reference(fdl.Config) == "Config"
    assert imports.module("tests.config.fixtures.toy") == "toy"
    assert imports.module("theseus.config.fixtures.toy") == "fixtures_toy"


def test_values_that_cannot_be_written_are_a_config_error():
    cfg = toy.tiny()
    cfg.extra = fdl.Config(toy.untyped, a=lambda: 1)
    with pytest.raises(ConfigError, match="define it at module level"):
        render(cfg, Base("toy:tiny", toy, "tiny"))
    with pytest.raises(ConfigError, match="cannot be written as Python"):
        expression(object(), Imports())


def test_write_config_file_checks_the_path_and_records_hardware(tmp_path):
    cfg = _changed()
    out = tmp_path / "mine.py"
    write_config_file(out, cfg, Base("toy:tiny", toy, "tiny"), hardware=Hardware("v5e", 16))
    assert 'HARDWARE = {"chip": "v5e", "n_chips": 16}' in out.read_text()
    loaded, module = load_config(f"{out}:config")
    assert differences(loaded, cfg) == [] and read_hardware(module) == Hardware("v5e", 16)
    for bad, words in [(out, "already exists"), (tmp_path / "x.yaml", ".py file"),
                       (tmp_path / "1x.py", "Python identifier"), (tmp_path / "no" / "x.py", "does not exist")]:
        with pytest.raises(ConfigError, match=words):
            write_config_file(bad, cfg, None)
    write_config_file(out, toy.tiny(), None, overwrite=True)
    assert "HARDWARE" not in out.read_text()


def test_hardware_requests_are_checked():
    with pytest.raises(ConfigError, match="chip 'H100!'"):
        Hardware("H100!")
    with pytest.raises(ConfigError, match="positive integer"):
        Hardware("h100", 0)

    module = types.ModuleType("m")
    module.HARDWARE = {"chip": "h100", "gpus": 8}
    with pytest.raises(ConfigError, match="HARDWARE in m must be a dict like"):
        read_hardware(module)
    assert read_hardware(None) is None


def test_differences_walk_configs_lists_and_dicts():
    assert differences(toy.tiny(), toy.tiny()) == []
    found = {d.path: (d.a, d.b) for d in differences(toy.tiny(), _changed())}
    assert found["model.num_layers"] == (2, 5)
    assert found["data.sources[1].path"] == ("b.txt", "z.txt")
    assert found["data.named['main'].weight"] == (1.0, 0.25)
    assert set(found) == {"model.num_layers", "model.activation", "model.shape", "model.norm",
                          "data.sources[1].path", "data.named['main'].weight", "schedule.value"}


def test_carry_over_takes_matching_paths_and_reports_the_rest():
    source = _changed()
    target = toy.small(9)
    target.model = fdl.Config(toy.Norm)  # a different class at 'model'
    report = carry_over(source, target)
    assert "data.sources[1].path = 'z.txt'" in report.changed
    assert target.data.sources[1].path == "z.txt" and target.schedule.value == float("inf")
    not_carried = dict(report.not_carried)
    assert "is fdl.Config(tests.config.fixtures.toy.Model) there" in not_carried["model"]
    assert not_carried["model.num_layers"] == "no such field here"
    assert target.model == fdl.Config(toy.Norm)


def test_a_base_outside_the_working_directory_is_imported_by_path(tmp_path):
    from theseus.config import import_file

    (tmp_path / "elsewhere_exps.py").write_text(
        "from tests.config.fixtures import toy\n\n\ndef deep():\n    return toy.small(8)\n")
    module = import_file(tmp_path / "elsewhere_exps.py")
    cfg = module.deep()
    cfg.model.d_model = 4
    text = render(cfg, Base("elsewhere_exps:deep", module, "deep"))
    assert f"elsewhere_exps = import_file(pathlib.Path({str(tmp_path / 'elsewhere_exps.py')!r}))" in text
    assert "    cfg = elsewhere_exps.deep()\n    cfg.model.d_model = 4\n" in text
    check_reproduces(text, cfg, "t.py")
