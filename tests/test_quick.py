"""quick(): configure a job as a real fdl.Config, run it in-process, save it, restore it."""

from __future__ import annotations

import fiddle as fdl
import pytest

from configs import gpt
from tests.conftest import TINY_OVERRIDES
from theseus.config import ConfigError, load_config
from theseus.config.codegen import Hardware, read_hardware
from theseus.quick import quick


@pytest.mark.slow
def test_quick_runs_saves_restores_and_samples(tmp_path):
    with quick("gpt:tiny", tmp_path / "runs", "q", overrides=TINY_OVERRIDES) as j:
        assert isinstance(j.config, fdl.Config)
        j.config.trainer.num_steps = 4
        j.config.trainer.progress = False
        summary = j()
        assert summary["step"] == 4 and j.workdir == tmp_path / "runs" / "q"
        assert (j.workdir / "checkpoints" / "4").is_dir()

        path = j.save(tmp_path / "saved.py", chip="h100", n_chips=8)
        text = path.read_text()
        assert "cfg = gpt.tiny()" in text and "cfg.trainer.num_steps = 4" in text
        saved, module = load_config(str(path))
        assert saved == j.config and read_hardware(module) == Hardware("h100", 8)

        params = j.params()
        assert set(params) >= {"wte", "blocks", "ln_f"}
        assert isinstance(j.sample("ROMEO:", num_tokens=4), str)

        j.config.trainer.num_steps = 99
        assert j.restore().trainer.num_steps == 4 and j.config.trainer.num_steps == 4


def test_config_is_a_real_fdl_config_so_typos_fail_at_once(tmp_path):
    with quick("gpt:tiny", tmp_path, "r") as j:
        with pytest.raises(AttributeError, match="batch_sise"):
            j.config.trainer.batch_sise = 16  # fiddle names the valid fields
        j.config.model.num_layers = 2
        j.save(tmp_path / "two.py")
    cfg, module = load_config(str(tmp_path / "two.py"))
    expected = gpt.tiny()
    expected.model.num_layers = 2
    assert cfg == expected and read_hardware(module) is None


def test_restore_reads_another_run_config(tmp_path):
    from theseus.config import write_config

    other = gpt.tiny()
    other.trainer.seed = 9
    write_config(other, tmp_path / "other")
    with quick("gpt:small", tmp_path, "r") as j:
        assert j.restore(tmp_path / "other") == other
        with pytest.raises(ConfigError, match="no saved config"):
            j.restore(tmp_path / "missing")


def test_user_mistakes_raise_config_error(tmp_path):
    for job, overrides, words in [("gpt:tinyy", [], "did you mean 'tiny'"),
                                  ("gpt:tiny", ["model.num_layer=2"], "num_layers"),
                                  ("gpt:tiny", ["model.num_layers"], "path=value")]:
        with pytest.raises(ConfigError, match=words), quick(job, tmp_path, "r", overrides=overrides):
            pass
    with pytest.raises(ConfigError, match="one folder name"), quick("gpt:tiny", tmp_path, "a/b"):
        pass
    with pytest.raises(ConfigError, match="n_chips needs a chip"), quick("gpt:tiny", tmp_path, "r") as j:
        j.save(tmp_path / "x.py", n_chips=8)
    assert not (tmp_path / "x.py").exists()
    with pytest.raises(ConfigError, match="num_heads"), quick("gpt:tiny", tmp_path, "r") as j:
        j.config.model.num_heads = 3
        j()
    assert not (tmp_path / "r").exists()
