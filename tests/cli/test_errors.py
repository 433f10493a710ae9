"""User mistakes: one `error:` sentence on stderr, exit status 2, nothing written."""

from __future__ import annotations

import pytest

from tests.cli.conftest import one_error_line, run_theseus

# name: (arguments, with OUT standing for a path in the test's tmp dir; words the error must hold)
MISTAKES = {
    "unknown job": (["configure", "gpt:tinyy", "OUT/x.py"], ["gpt:tinyy", "did you mean 'tiny'"]),
    "unknown group": (["run", "r", "gtp:tiny", "OUT"], ["'gtp'", "did you mean 'gpt'", "theseus jobs"]),
    "unknown field": (["configure", "gpt:tiny", "OUT/x.py", "model.num_layer=2"], ["num_layer", "num_layers"]),
    "malformed override": (["run", "r", "gpt:tiny", "OUT", "model.num_layers"], ["path=value"]),
    "unparsable value": (["configure", "gpt:tiny", "OUT/x.py", "trainer.num_steps=[1,"], ["trainer.num_steps"]),
    "invalid value": (["run", "r", "gpt:tiny", "OUT", "model.num_heads=3"], ["num_heads"]),
    "unknown fiddler": (["configure", "gpt:tiny", "OUT/x.py", "--fiddler", "fast"], ["fast", "bf16"]),
    "missing config file": (["show", "configs/nope.py:tiny"], ["nope.py", "does not exist"]),
    "bad output folder": (["configure", "gpt:tiny", "OUT/no/such/x.py"], ["does not exist"]),
    "output not python": (["configure", "gpt:tiny", "OUT/x.yaml"], [".py"]),
    "chip count alone": (["configure", "gpt:tiny", "OUT/x.py", "-n", "8"], ["--chip"]),
    "bad run name": (["run", "a/b", "gpt:tiny", "OUT"], ["one folder name"]),
    "unknown dataset": (["configure", "gpt:tiny", "OUT/x.py", "data=wikitext"], ["wikitext", "shakespeare"]),
    "not a run": (["sample", "OUT"], ["not a run directory"]),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_mistake_is_one_sentence_and_writes_nothing(tmp_path, case):
    arguments, words = MISTAKES[case]
    out = tmp_path / "out"
    out.mkdir()
    line = one_error_line(run_theseus(*[a.replace("OUT", str(out)) for a in arguments]))
    for word in words:
        assert word in line
    assert list(out.iterdir()) == []


def test_configure_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "x.py"
    out.write_text("# mine\n")
    assert "--force" in one_error_line(run_theseus("configure", "gpt:tiny", str(out)))
    assert out.read_text() == "# mine\n"
