"""Submitted jobs remembered on this machine, so ``theseus logs RUN`` and ``theseus status``
can find them: one JSON file per submission under ``$THESEUS_HOME/jobs`` (default
``~/.theseus/jobs``), never holding a secret."""

from __future__ import annotations

import json
import os
import pathlib

from theseus.fileio import atomic_write_text


def jobs_dir() -> pathlib.Path:
    """Where the records are."""
    return pathlib.Path(os.environ.get("THESEUS_HOME", "~/.theseus")).expanduser() / "jobs"


def save(record: dict) -> pathlib.Path:
    """Writes one submission's record (cluster, job_id, name, job_dir, workdir, log_path)."""
    path = jobs_dir() / f"{record['cluster']}-{record['job_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def load_all() -> list[dict]:
    """Every record, oldest submission first."""
    folder = jobs_dir()
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in files]


def find(run: str) -> list[dict]:
    """Records whose run name, job id or ``CLUSTER-JOBID`` is ``run``, newest last."""
    return [r for r in load_all()
            if run in (r["name"], r["job_id"], f"{r['cluster']}-{r['job_id']}")]
