"""Code snapshots: the repository as a tar file, shipped to a cluster with each job.

A clean tree is ``git archive HEAD``. A tree with changes is archived as it is on disk (the
tracked files plus untracked ones that git does not ignore), with a warning that names the
changed files, so that what runs is what you see. Neither touches the repository.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import subprocess
import sys
import tarfile

MANIFEST = ".theseus-snapshot.json"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A snapshot on disk: the tar file, the commit it starts from and the changed files."""

    path: pathlib.Path
    commit: str
    dirty: tuple[str, ...]

    @property
    def description(self) -> str:
        """``abc1234`` or ``abc1234 + 3 changed files``."""
        short = self.commit[:12]
        return f"{short} + {len(self.dirty)} changed files" if self.dirty else short


def _git(repo: pathlib.Path, *args: str) -> str:
    """Runs a read-only git command in ``repo`` and returns its output."""
    from theseus.config.errors import ConfigError

    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        raise ConfigError("git is not installed; a code snapshot needs it") from None
    if done.returncode != 0:
        raise ConfigError(f"{repo} is not a git repository with a commit ({done.stderr.strip()}); "
                          "a code snapshot needs one (git init && git commit)")
    return done.stdout


def changed_files(repo: pathlib.Path) -> tuple[str, ...]:
    """Files that differ from HEAD: modified, added, deleted or untracked (not ignored)."""
    lines = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all").split("\0")
    names, skip = [], False
    for line in lines:
        if skip or not line:
            skip = False
            continue
        names.append(line[3:])
        skip = line[0] in "RC"  # a rename is followed by its old name
    return tuple(sorted(names))


def _add_manifest(tar: tarfile.TarFile, commit: str, dirty: tuple[str, ...]) -> None:
    """Records the commit and the changed files inside the archive."""
    data = json.dumps({"commit": commit, "dirty": list(dirty)}, indent=1).encode()
    info = tarfile.TarInfo(MANIFEST)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _archive_worktree(repo: pathlib.Path, dest: pathlib.Path, commit: str,
                      dirty: tuple[str, ...]) -> None:
    """Tars the files git would see: tracked ones as on disk plus untracked, not ignored."""
    listed = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    with tarfile.open(dest, "w") as tar:
        for name in sorted(set(filter(None, listed.split("\0")))):
            path = repo / name
            if path.is_file() or path.is_symlink():  # deleted files are still "cached"
                tar.add(path, arcname=name, recursive=False)
        _add_manifest(tar, commit, dirty)


def _archive_head(repo: pathlib.Path, dest: pathlib.Path, commit: str) -> None:
    """``git archive HEAD`` plus the manifest."""
    raw = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit],
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(dest, "w") as tar:
        for member in src.getmembers():
            tar.addfile(member, src.extractfile(member) if member.isfile() else None)
        _add_manifest(tar, commit, ())


def make_snapshot(repo: str | pathlib.Path, dest: str | pathlib.Path, *,
                  warn: bool = True) -> Snapshot:
    """Writes the snapshot of ``repo`` to ``dest`` (a .tar); warns on stderr when dirty."""
    repo = pathlib.Path(_git(pathlib.Path(repo), "rev-parse", "--show-toplevel").strip())
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    commit = _git(repo, "rev-parse", "HEAD").strip()
    dirty = changed_files(repo)
    if dirty:
        if warn:
            shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
            print(f"warning: the code snapshot includes uncommitted changes on top of "
                  f"{commit[:12]}: {shown}", file=sys.stderr)
        _archive_worktree(repo, dest, commit, dirty)
    else:
        _archive_head(repo, dest, commit)
    return Snapshot(dest, commit, dirty)
