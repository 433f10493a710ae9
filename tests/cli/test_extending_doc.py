"""docs/extending.md, done exactly as it says in a fresh copy of the project's configs/.

The guide's code blocks are replayed in order: a ```python block whose first line is
``# PATH`` creates that file (``# PATH (continued)`` appends to it; ``# written by theseus
configure: PATH`` must match what the command wrote), every ```bash block runs in the
directory, and a ```text block must appear in the output of the bash block before it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.cli.conftest import BIN
from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "extending.md"
BLOCK_RE = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _squash(text: str) -> str:
    """Whitespace runs as one space, so table alignment does not matter."""
    return " ".join(text.split())


def _blocks() -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in BLOCK_RE.finditer(GUIDE.read_text())]


def _python_block(code: str, cwd) -> None:
    first, _, rest = code.partition("\n")
    match = re.fullmatch(r"# (written by theseus configure: )?(\S+)( \(continued\))?", first)
    assert match, f"a python block must start with '# PATH': {first!r}"
    path = cwd / match[2]
    if match[1]:
        written = path.read_text().splitlines()
        for line in rest.splitlines():
            assert not line.strip() or line in written, (line, path.read_text())
    elif match[3]:
        with path.open("a") as f:
            f.write(rest)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rest)


def _bash_block(script: str, cwd) -> str:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, (script, result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


@pytest.mark.slow
def test_the_guide_works_as_written(tmp_path):
    (tmp_path / "configs").mkdir()
    for name in ("__init__.py", "gpt.py"):
        shutil.copy(ROOT / "configs" / name, tmp_path / "configs" / name)
    blocks = _blocks()
    assert [kind for kind, _ in blocks].count("bash") >= 5
    output = None
    for kind, body in blocks:
        if kind == "python":
            _python_block(body, tmp_path)
        elif kind == "bash":
            output = _bash_block(body, tmp_path)
        elif kind == "text":
            assert output is not None, "a text block must follow a bash block"
            for line in body.splitlines():
                assert _squash(line) in _squash(output), (line, output)
    assert (tmp_path / "runs" / "bigram-code" / "summary.json").is_file()
