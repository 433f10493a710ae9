"""Every subcommand has a --help with examples; usage mistakes are one line, exit status 2."""

from __future__ import annotations

import pytest

from tests.cli.conftest import one_error_line, run_theseus

COMMANDS = ["jobs", "configure", "run", "submit", "show", "diff", "graph", "sample", "status"]


def test_top_level_help_lists_every_command():
    result = run_theseus("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help_has_examples(command):
    result = run_theseus(command, "--help")
    assert result.returncode == 0, result.stderr
    usage, _, examples = result.stdout.partition("examples:\n")
    assert usage.startswith(f"usage: theseus {command}")
    assert f"theseus {command} " in examples


def test_unknown_command_and_missing_arguments():
    assert "invalid choice: 'trian'" in one_error_line(run_theseus("trian"))
    line = one_error_line(run_theseus("configure", "gpt:tiny"))
    assert "OUT.py" in line and "--help" in line


def test_no_command_prints_help_and_fails():
    result = run_theseus()
    assert result.returncode == 2 and "COMMAND" in result.stderr
