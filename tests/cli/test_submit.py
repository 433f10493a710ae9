"""`theseus submit`: checks the config and hardware, then says the backends are not there yet."""

from __future__ import annotations

from tests.cli.conftest import one_error_line, run_theseus


def test_submit_is_not_available_yet(tmp_path):
    line = one_error_line(run_theseus("submit", "my-run", "gpt:small", "--cluster", "hpc",
                                      "--chip", "h100", "-n", "8"))
    assert "not available yet" in line and "theseus run my-run gpt:small runs" in line


def test_submit_checks_the_config_and_the_hardware_first():
    line = one_error_line(run_theseus("submit", "r", "gpt:small", "--cluster", "hpc"))
    assert "no hardware requested" in line
    line = one_error_line(run_theseus("submit", "r", "gpt:small", "--cluster", "hpc", "--chip", "h100",
                                      "model.num_layer=2"))
    assert "num_layers" in line
