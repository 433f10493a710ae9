"""Which cluster the environment describes (``theseus.distributed``), and its errors.

Joining a real 2-process cluster is tested in ``tests/training/test_multiprocess.py``.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_launch, tiny_args
from theseus.distributed import cluster_from_env, initialize_from_env

OURS = {"THESEUS_COORDINATOR": "127.0.0.1:1234", "THESEUS_NUM_PROCESSES": "2",
        "THESEUS_PROCESS_ID": "1"}


def test_a_plain_environment_is_a_single_process():
    assert cluster_from_env({}) is None
    assert initialize_from_env({}) is False


def test_theseus_variables_give_an_explicit_cluster():
    assert cluster_from_env(OURS) == {
        "coordinator_address": "127.0.0.1:1234", "num_processes": 2, "process_id": 1,
        "cluster_detection_method": "deactivate"}


def test_srun_tasks_use_jax_slurm_detection_and_a_single_task_does_not():
    srun = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "3", "SLURM_JOB_ID": "7"}
    assert cluster_from_env(srun) == {"cluster_detection_method": "slurm"}
    assert cluster_from_env({**srun, "SLURM_STEP_NUM_TASKS": "1"}) is None
    assert cluster_from_env({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}) is None  # sbatch script


def test_theseus_distributed_0_turns_it_off():
    assert cluster_from_env({**OURS, "THESEUS_DISTRIBUTED": "0"}) is None


@pytest.mark.parametrize("change, message", [
    ({"THESEUS_PROCESS_ID": ""}, "set all of THESEUS_COORDINATOR, THESEUS_NUM_PROCESSES and "
                                 "THESEUS_PROCESS_ID"),
    ({"THESEUS_COORDINATOR": "localhost"}, "must be host:port"),
    ({"THESEUS_NUM_PROCESSES": "two"}, "must be integers"),
    ({"THESEUS_PROCESS_ID": "2"}, r"THESEUS_PROCESS_ID=2 must be in \[0, THESEUS_NUM_PROCESSES=2\)"),
])
def test_bad_settings_are_one_clear_sentence(change, message):
    with pytest.raises(ValueError, match=message):
        cluster_from_env({**OURS, **change})


@pytest.mark.slow
def test_launch_reports_an_incomplete_cluster_and_writes_nothing(tmp_path):
    result = run_launch(*tiny_args(tmp_path / "run"), env={"THESEUS_COORDINATOR": "127.0.0.1:9"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: set all of THESEUS_COORDINATOR, THESEUS_NUM_PROCESSES and THESEUS_PROCESS_ID")
    assert not (tmp_path / "run").exists()
