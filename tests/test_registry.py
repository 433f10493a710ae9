"""The experiment registry (jobs) and the model and dataset registries."""

from __future__ import annotations

import dataclasses
import textwrap

import fiddle as fdl
import pytest

from configs import gpt
from theseus import jobs, registry
from theseus.config import ConfigError
from theseus.config.resolve import customize, resolve

EXTRA = '''
"""A --load file: a model, a dataset and an experiment."""
import dataclasses
import fiddle as fdl
from configs import gpt
from theseus.experiment import Experiment
from theseus.registry import dataset, model, register_dataset, register_model


@register_model("mini_MARK")
@dataclasses.dataclass(frozen=True)
class Mini:
    """A model with a few of GPTConfig's fields."""
    vocab_size: int = 10
    seq_len: int = 8
    width: int = 4


@register_dataset("letters_MARK")
def letters() -> fdl.Config:
    """Shakespeare with a small BPE."""
    cfg = dataset("shakespeare")
    cfg.tokenizer.vocab_size = 300
    return cfg


def exp() -> fdl.Config[Experiment]:
    """Tiny with the mini model."""
    cfg = gpt.tiny()
    cfg.model = model("mini_MARK", width=5)
    return cfg
'''


@pytest.fixture
def extra(tmp_path, request):
    """A --load file whose registered names are unique to the test."""
    mark = request.node.name.replace("[", "_").replace("]", "_")
    path = tmp_path / f"extra_{mark}.py"
    path.write_text(textwrap.dedent(EXTRA).replace("MARK", mark))
    return path, mark


def test_project_jobs_are_the_zero_argument_config_functions():
    groups, warnings = jobs.all_groups()
    assert warnings == []
    names = [job.name for group in groups for job in group.jobs()]
    assert names[:5] == ["gpt:tiny", "gpt:small", "gpt:medium", "gpt:large", "gpt:xl"]
    assert not {"gpt:base", "gpt:bf16", "gpt:remat", "gpt:rope", "gpt:_gpt2"} & set(names)
    tiny = next(job for group in groups for job in group.jobs() if job.name == "gpt:tiny")
    assert tiny.summary.startswith("Tiny GPT (1.07M parameters) on Shakespeare") and tiny.group.source == "configs/gpt.py"


def test_resolve_names_files_and_runs(tmp_path):
    from theseus.config import write_config

    assert resolve("gpt:small").config == gpt.small()
    assert resolve("configs/gpt.py:small").config == gpt.small()
    found = resolve("gpt:tiny")
    assert (found.base.label, found.base.function, found.module.__name__) == ("gpt:tiny", "tiny", "configs.gpt")
    write_config(gpt.tiny(), tmp_path / "run")
    assert resolve(str(tmp_path / "run")).config == gpt.tiny()
    assert resolve(str(tmp_path / "run" / "config.json")).base.module is None
    with pytest.raises(ConfigError, match="wrong arguments for job 'gpt:small\\(4\\)'"):
        resolve("gpt:small(4)")
    with pytest.raises(ConfigError, match="is a directory without a config.json"):
        resolve(str(tmp_path))
    with pytest.raises(ConfigError, match="unknown job 'gpt:smal'.*did you mean 'small'.*tiny, small"):
        resolve("gpt:smal")


def test_load_adds_jobs_models_and_datasets(extra):
    path, mark = extra
    found = resolve(f"extra_{mark}:exp", [str(path)])
    assert found.config.model.__fn_or_cls__.__name__ == "Mini" and found.config.model.width == 5
    assert f"mini_{mark}" in registry.MODELS.names()
    assert registry.dataset(f"letters_{mark}").tokenizer.vocab_size == 300
    group = jobs.load_groups([str(path)])[0]
    assert [job.name for job in group.jobs()] == [f"extra_{mark}:exp"]


def test_swap_part_keeps_the_fields_both_parts_have(extra):
    path, mark = extra
    jobs.load_groups([str(path)])
    cfg, _ = customize(gpt.tiny(), None, [f"model=mini_{mark}", f"data=letters_{mark}"])
    assert cfg.model.__fn_or_cls__.__name__ == "Mini"
    assert (cfg.model.vocab_size, cfg.model.seq_len, cfg.model.width) == (2048, 128, 4)
    assert cfg.data.tokenizer.vocab_size == 300  # set by the registered dataset: not carried
    same, _ = customize(gpt.tiny(), None, ["model=gpt"])
    assert same == gpt.tiny()


def test_registry_mistakes(extra):
    path, mark = extra
    jobs.load_groups([str(path)])
    with pytest.raises(ConfigError, match=f"unknown model 'mini_{mark}x'.*registered models: .*gpt"):
        registry.model(f"mini_{mark}x")

    @dataclasses.dataclass
    class Other:
        """Another model."""

    with pytest.raises(ConfigError, match=f"model 'mini_{mark}' is registered twice"):
        registry.register_model(f"mini_{mark}")(Other)
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        customize(gpt.tiny(), None, ["data=nope"])
    assert isinstance(registry.model("gpt", num_layers=3), fdl.Config)


def test_two_groups_with_one_name_are_an_error(tmp_path):
    other = tmp_path / "gpt.py"
    other.write_text("")
    with pytest.raises(ConfigError, match="two experiment files are named 'gpt'"):
        jobs.all_groups([str(other)])


def test_jobs_mapping_as_in_the_original():
    from theseus.registry import JOBS

    assert "gpt:tiny" in JOBS and "gpt:base" not in JOBS
    assert JOBS["gpt:small"].config() == gpt.small()
