"""``theseus logs`` mistakes: one ``error:`` line each (the real-job cases are in
tests/launch/test_slurm.py, against a real SLURM)."""

from __future__ import annotations

import json

from tests.cli.conftest import one_error_line, run_theseus


def test_unknown_run_lists_the_known_ones(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "c-7.json").write_text(json.dumps({
        "cluster": "c", "job_id": "7", "name": "alpha", "job_dir": "/x", "workdir": "/y",
        "log_path": "/x/slurm-7.out", "login": "local"}))
    result = run_theseus("logs", "beta", env={"THESEUS_HOME": str(tmp_path)})
    assert one_error_line(result) == (f"error: no submitted job named 'beta' in {jobs}; "
                                      "known: alpha")


def test_tail_must_be_positive(tmp_path):
    result = run_theseus("logs", "alpha", "--tail", "0", env={"THESEUS_HOME": str(tmp_path)})
    assert one_error_line(result) == "error: --tail 0 must be a positive number of lines"
