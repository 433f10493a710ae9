"""`theseus show`, `theseus diff` and `theseus graph`."""

from __future__ import annotations

import shutil

import pytest

from configs import gpt
from tests.cli.conftest import one_error_line, run_theseus
from theseus.config import to_text, write_config


def test_show_prints_the_flattened_config_with_overrides():
    result = run_theseus("show", "gpt:tiny", "model.num_layers=3", "--fiddler", "rope")
    assert result.returncode == 0, result.stderr
    cfg = gpt.tiny()
    cfg.model.num_layers, cfg.model.position = 3, "rope"
    assert result.stdout == to_text(cfg)


def test_diff_between_jobs_files_and_runs(tmp_path):
    small, medium = gpt.small(), gpt.medium()
    write_config(small, tmp_path / "a")
    write_config(medium, tmp_path / "b")
    result = run_theseus("diff", str(tmp_path / "a"), str(tmp_path / "b" / "config.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("4 fields differ")
    assert "  model.num_layers: 12 -> 24" in lines and "  model.d_model: 768 -> 1024" in lines

    same = run_theseus("diff", "gpt:small", str(tmp_path / "a"), "--exit-code")
    assert same.returncode == 0 and same.stdout.startswith("no differences")
    differ = run_theseus("diff", "gpt:small", "gpt:medium", "--exit-code")
    assert differ.returncode == 1 and differ.stdout == result.stdout.replace(
        f"{tmp_path / 'a'} -> {tmp_path / 'b' / 'config.json'}", "gpt:small -> gpt:medium")


def test_graph_writes_graphviz_source_without_dot(tmp_path):
    out = tmp_path / "tiny.dot"
    result = run_theseus("graph", "gpt:tiny", str(out))
    assert result.returncode == 0, result.stderr
    source = out.read_text()
    assert source.startswith("graph {") and "GPTConfig" in source and "TokenizedText" in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")
def test_graph_renders_svg(tmp_path):
    out = tmp_path / "tiny.svg"
    result = run_theseus("graph", "gpt:tiny", str(out), "model.num_layers=2")
    assert result.returncode == 0, result.stderr
    svg = out.read_text()
    assert "<svg" in svg and "GPTConfig" in svg


def test_graph_without_dot_says_how_to_get_it(tmp_path):
    out = tmp_path / "tiny.svg"
    line = one_error_line(run_theseus("graph", "gpt:tiny", str(out), env={"PATH": "/nonexistent"}))
    assert "graphviz's `dot`" in line and not out.exists()
