"""Code snapshots of a real git repository: HEAD when clean, the tree on disk when dirty."""

from __future__ import annotations

import json
import pathlib
import subprocess
import tarfile

import pytest

from theseus.config.errors import ConfigError
from theseus.launch.snapshot import MANIFEST, make_snapshot


def _git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path) -> pathlib.Path:
    """A repository with one commit: a.py, pkg/b.py and an ignored runs/ folder."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "a.py").write_text("A = 1\n")
    (root / "pkg" / "b.py").write_text("B = 2\n")
    (root / ".gitignore").write_text("runs/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    (root / "runs").mkdir()
    (root / "runs" / "big.bin").write_bytes(b"x" * 100)
    return root


def _contents(tar_path: pathlib.Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_clean_tree_is_head(repo, tmp_path, capsys):
    snap = make_snapshot(repo, tmp_path / "s.tar")
    files = _contents(snap.path)
    assert set(files) == {".gitignore", "a.py", "pkg/b.py", MANIFEST}
    assert json.loads(files[MANIFEST]) == {"commit": _git(repo, "rev-parse", "HEAD").strip(),
                                           "dirty": []}
    assert snap.dirty == () and capsys.readouterr().err == ""


def test_dirty_tree_is_archived_as_on_disk_with_a_warning(repo, tmp_path, capsys):
    (repo / "a.py").write_text("A = 10\n")
    (repo / "new.py").write_text("N = 3\n")
    (repo / "pkg" / "b.py").unlink()
    index_before = (repo / ".git" / "index").read_bytes()
    snap = make_snapshot(repo, tmp_path / "s.tar")
    files = _contents(snap.path)
    assert files["a.py"] == b"A = 10\n" and files["new.py"] == b"N = 3\n"
    assert "pkg/b.py" not in files and not any(n.startswith("runs/") for n in files)
    assert snap.dirty == ("a.py", "new.py", "pkg/b.py")
    err = capsys.readouterr().err
    assert err.startswith("warning: the code snapshot includes uncommitted changes")
    assert "a.py, new.py, pkg/b.py" in err
    # The repository itself is untouched.
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert "new.py" in _git(repo, "status", "--porcelain")


def test_not_a_repository(tmp_path):
    with pytest.raises(ConfigError, match="is not a git repository with a commit"):
        make_snapshot(tmp_path, tmp_path / "s.tar")
