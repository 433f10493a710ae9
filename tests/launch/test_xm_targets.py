"""The cluster targets of the launch path: ``--xm=slurm:CLUSTER`` with a sweep against the
real single-node SLURM (tests/launch/fixtures_slurm.py), and the shapes asked of SLURM."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

from tests.conftest import run_launch, tiny_args
from tests.launch.conftest import wait_for_job
from theseus.config.codegen import Hardware
from theseus.config.errors import ConfigError
from theseus.launch import records
from theseus.launch.cluster import Cluster
from theseus.launch.xm_launch import Unit
from theseus.launch.xm_targets import job_name, slurm_shape

GPU = Cluster("gpu", kind="slurm", gres_per_chip="gpu:h100", chips_per_node=8)


@pytest.mark.parametrize("hardware, shape", [
    (None, {"nodes": 1, "gpus": None}),
    (Hardware("cpu", 1), {"nodes": 1, "gpus": 0}),
    (Hardware("h100", 4), {"nodes": 1, "gpus": 4}),
    (Hardware("h100", 16), {"nodes": 2, "gpus": 8}),
])
def test_slurm_nodes_and_gpus_from_the_chip_count(hardware, shape):
    assert slurm_shape(GPU, hardware) == shape


def test_a_chip_count_that_does_not_fill_nodes_is_one_sentence():
    with pytest.raises(ConfigError) as info:
        slurm_shape(GPU, Hardware("h100", 12))
    assert str(info.value) == ("12 chips do not fill whole nodes of cluster gpu (8 chips each); "
                               "ask for a multiple of 8")


def test_job_names_are_scheduler_safe():
    assert job_name("tiny", Unit("run", "{}", "")) == "tiny"
    assert job_name("tiny", Unit("x", "{}", "learning_rate=1e-3,num_layers=2")) == \
        "tiny-learning_rate_1e-3_num_layers_2"


@pytest.mark.slow
def test_a_sweep_on_slurm_submits_one_job_per_point(slurm, theseus_home, tmp_path):
    pytest.importorskip("xmanager")  # the optional `launch` group
    cluster = Cluster("xmslurm", kind="slurm", login="local", partitions=(slurm.partition,),
                      root=str(tmp_path / "root"), work=str(tmp_path / "runs"),
                      cache=str(tmp_path / "data"), venv=sys.prefix,
                      env={"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}, time_limit="5:00")
    clusters = tmp_path / "clusters.py"
    clusters.write_text(f"from theseus.launch.cluster import Cluster\nCLUSTERS = [{cluster!r}]\n")
    args = [a for a in tiny_args(tmp_path / "x", "--fdl_set=trainer.num_steps=2",
                                 "--fdl_set=trainer.eval_every=2",
                                 "--fdl_set=trainer.checkpoint_every=2")
            if not a.startswith("--workdir")]
    result = run_launch(*args, "--workdir=tiny-xm", "--xm=slurm:xmslurm", f"--clusters={clusters}",
                        "--sweep=model.num_layers=1,2",
                        env={"THESEUS_LAUNCH_DIR": str(tmp_path / "launch")})
    assert result.returncode == 0, result.stderr[-3000:]
    for layers in (1, 2):
        [record] = records.find(f"tiny-xm-num_layers_{layers}")
        assert f"submitted job {record['job_id']} to xmslurm" in result.stdout
        assert "#SBATCH --time=0:05:00" in (pathlib.Path(record["job_dir"]) / "job.sbatch").read_text()
        info = wait_for_job(record["job_id"], timeout=900)  # generous: 2 cores, many tests
        workdir = tmp_path / "runs" / "tiny-xm" / f"num_layers={layers}"
        log = pathlib.Path(record["log_path"]).read_text(errors="replace") if info["JobState"] != "COMPLETED" else ""
        assert info["JobState"] == "COMPLETED", log
        assert json.loads((workdir / "status.json").read_text())["state"] == "finished"
        assert f"model.num_layers = {layers}" in (workdir / "config.txt").read_text()
