"""`theseus configure`: a Python config file that reads as if a person wrote it."""

from __future__ import annotations

import fiddle as fdl

from configs import gpt
from tests.cli.conftest import run_theseus
from tests.conftest import run_launch
from theseus.config import load_config
from theseus.config.codegen import Hardware, read_hardware


def test_writes_a_file_that_imports_the_preset_and_sets_the_changes(tmp_path):
    out = tmp_path / "my_run.py"
    result = run_theseus("configure", "gpt:tiny", str(out), "model.num_layers=2",
                         "trainer.batch_size=8", "--fiddler", "rope", "--chip", "h100", "-n", "8")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out} (gpt:tiny, 8 x h100)" in result.stdout
    text = out.read_text()
    assert "from configs import gpt\n" in text
    assert 'HARDWARE = {"chip": "h100", "n_chips": 8}' in text
    body = text[text.index("def config()"):]
    assert body.splitlines()[2:7] == [
        "    cfg = gpt.tiny()", "    gpt.rope(cfg)", "    cfg.model.num_layers = 2",
        "    cfg.trainer.batch_size = 8", "    return cfg"]
    assert "yaml" not in text.lower()

    cfg, module = load_config(f"{out}:config")
    expected = gpt.tiny()
    gpt.rope(expected)
    expected.model.num_layers, expected.trainer.batch_size = 2, 8
    assert cfg == expected
    assert read_hardware(module) == Hardware("h100", 8)

    # launch.py loads the file (the misspelt override stops it before any training).
    launched = run_launch(f"--config={out}:config", f"--workdir={tmp_path / 'w'}",
                          "--fdl_set=model.num_layer=3")
    assert launched.returncode == 2 and "num_layers" in launched.stderr
    assert "'model.num_layer'" in launched.stderr and not (tmp_path / "w").exists()


def test_from_carries_matching_paths_and_reports_the_rest(tmp_path):
    out = tmp_path / "carried.py"
    result = run_theseus("configure", "gpt:small", str(out),
                         "--from", "tests/config/fixtures/toy.py:tiny", "trainer.num_steps=7000")
    assert result.returncode == 0, result.stderr
    report = result.stdout
    assert "carried over from tests/config/fixtures/toy.py:tiny" in report
    assert "  model.num_layers = 2" in report and "  model.d_model = 16" in report
    skipped = report[report.index("not carried over"):]
    for path in ("model.name", "model.head_dim", "data.sources", "schedule", "extra"):
        assert f"  {path}" in skipped
    cfg, _ = load_config(str(out))
    assert (cfg.model.num_layers, cfg.model.d_model, cfg.trainer.num_steps) == (2, 16, 7000)
    assert cfg.model.vocab_size == 50304  # gpt:small's own value where the toy has none


def test_from_a_run_config_and_a_saved_hardware_request(tmp_path):
    first = tmp_path / "first.py"
    assert run_theseus("configure", "gpt:tiny", str(first), "trainer.seed=5",
                       "--chip", "a100", "-n", "2").returncode == 0
    second = tmp_path / "second.py"
    result = run_theseus("configure", "gpt:tiny", str(second), "--from", str(first))
    assert result.returncode == 0, result.stderr
    assert "trainer.seed = 5" in result.stdout and "not carried" not in result.stdout
    cfg, module = load_config(str(second))
    assert cfg.trainer.seed == 5 and read_hardware(module) == Hardware("a100", 2)


def test_a_saved_config_json_is_written_out_in_full(tmp_path):
    from theseus.config import write_config

    cfg = gpt.tiny()
    cfg.model.num_heads = 2
    write_config(cfg, tmp_path / "run")
    out = tmp_path / "again.py"
    result = run_theseus("configure", str(tmp_path / "run"), str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "cfg = fdl.Config(\n        Experiment," in text and "num_heads=2" in text
    again, _ = load_config(str(out))
    assert again == cfg and isinstance(again, fdl.Config)
