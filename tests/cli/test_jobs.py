"""`theseus jobs`: every experiment grouped by file, --load, models and datasets."""

from __future__ import annotations

import textwrap

from tests.cli.conftest import one_error_line, run_theseus
from tests.conftest import ROOT

ROOT_CONFIGS = ROOT / "configs"

EXTRA = '''
"""Experiments loaded with --load."""
import fiddle as fdl
from configs import gpt
from theseus.experiment import Experiment


def deeper() -> fdl.Config[Experiment]:
    """Tiny, but eight layers deep.

    More text that is not shown.
    """
    cfg = gpt.tiny()
    cfg.model.num_layers = 8
    return cfg


def with_knob(n: int) -> fdl.Config[Experiment]:
    """Needs an argument, so it is not a job."""
    return gpt.tiny()


def widen(cfg: fdl.Config[Experiment]) -> None:
    """A fiddler, not a job."""
    cfg.model.d_model = 256
'''


def test_lists_the_project_presets_by_file_with_their_first_docstring_line():
    result = run_theseus("jobs")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("configs/gpt.py\n")
    for name in ("tiny", "small", "medium", "large", "xl"):
        assert f"gpt:{name} " in out
    assert "gpt:tiny    Tiny GPT (1.07M parameters) on Shakespeare" in out
    for not_a_job in ("gpt:base", "gpt:bf16", "gpt:_gpt2", "gpt:rope"):
        assert not_a_job not in out
    assert "models (swap one in with model=NAME)" in out and "theseus.models.gpt.GPTConfig" in out
    assert "datasets (swap one in with data=NAME)" in out and "shakespeare" in out


def test_load_adds_a_file_and_a_broken_config_file_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "__init__.py").write_text("")
    (tmp_path / "configs" / "gpt.py").write_text((ROOT_CONFIGS / "gpt.py").read_text())
    (tmp_path / "configs" / "broken.py").write_text("def oops(:\n")
    (tmp_path / "extra.py").write_text(textwrap.dedent(EXTRA))
    result = run_theseus("jobs", "--load", "extra.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: skipped configs/broken.py: syntax error" in result.stderr
    out = result.stdout
    assert "configs/gpt.py" in out and "extra.py\n  extra:deeper  Tiny, but eight layers deep.\n" in out
    assert "with_knob" not in out and "widen" not in out and "not shown" not in out


def test_load_of_a_missing_file_is_an_error():
    assert "'nope.py' does not exist" in one_error_line(run_theseus("jobs", "--load", "nope.py"))
