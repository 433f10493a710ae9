"""Two JAX processes on this machine (``jax.distributed`` over loopback, gloo collectives)
train the tiny model through ``launch.py`` and match the one-process run.

Both runs use the tiny preset; the shipped loader's training batches do not depend on the
number of processes (``GlobalOrderSampler``). Tolerance: every logged training and validation loss, and every final
parameter, within 1e-5 of the one-process run (float32; the gradient all-reduce sums in a
different order, so the parameters are close but not bit-identical).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT, TINY_OVERRIDES
from theseus.evaluation.restore import restore_params
from theseus.training.checkpoint import COMMIT_MARKER
from theseus.training.metrics import read_metrics

CONFIG = "--config=configs/gpt.py:tiny"
TOLERANCE = 1e-5
# float32 matmuls (the preset's are bfloat16): the layouts sum in different orders, and
# TOLERANCE is that of float32 rounding.
FLOAT32 = "--fdl_set=model.matmul_precision=float32"

pytestmark = pytest.mark.slow


def _args(workdir: pathlib.Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "launch.py"), CONFIG, f"--workdir={workdir}",
            *[f"--fdl_set={o}" for o in TINY_OVERRIDES], FLOAT32, *extra]


def _env(devices: int, **extra: str) -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "THESEUS_COMPILE_CACHE": "off",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_pair(workdir: pathlib.Path, devices: int, *extra: str) -> list[subprocess.Popen]:
    """Starts process 0 and 1 of a 2-process run of launch.py; their output goes to files
    (a full pipe would block one process while the other waits for it in a collective)."""
    coordinator = f"127.0.0.1:{_free_port()}"
    logs = workdir.parent / f"{workdir.name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(2):
        with open(logs / f"process-{i}.txt", "w") as out:
            procs.append(subprocess.Popen(
                _args(workdir, *extra), cwd=ROOT, text=True, stdout=out, stderr=subprocess.STDOUT,
                env=_env(devices, THESEUS_COORDINATOR=coordinator, THESEUS_NUM_PROCESSES="2",
                         THESEUS_PROCESS_ID=str(i))))
            procs[-1].log = logs / f"process-{i}.txt"  # type: ignore[attr-defined]
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str]]:
    """``(exit code, output)`` of each process; kills the ones still running at the end."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, p.log.read_text()) for p in procs]  # type: ignore[attr-defined]


def _run_pair(workdir: pathlib.Path, devices: int, *extra: str) -> list[tuple[int, str]]:
    return _finish(_start_pair(workdir, devices, *extra))


def _losses(workdir: pathlib.Path) -> dict[tuple[int, str], float]:
    return {(r["step"], k): r[k] for r in read_metrics(workdir / "metrics.jsonl")
            for k in ("train/loss", "val/loss") if k in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
    """The one-process, one-device run (it also prepares the data set for the others)."""
    workdir = tmp_path_factory.mktemp("one") / "run"
    result = subprocess.run(_args(workdir), cwd=ROOT, env=_env(1), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_two_processes_with_fsdp_across_them_match_one_process_and_resume(reference, tmp_path):
    workdir = tmp_path / "two"
    fsdp = "--fiddler=theseus.training.sharding.use_mesh(data=1, fsdp=-1)"  # over 4 devices
    first = _run_pair(workdir, 2, fsdp)
    assert [code for code, _ in first] == [0, 0], first[0][1][-3000:] + first[1][1][-3000:]
    _assert_matches(workdir, reference)

    # As if the run had died after checkpoint 3: it resumes there and computes 4-6 again.
    shutil.rmtree(workdir / "checkpoints" / "6")
    second = _run_pair(workdir, 2, fsdp)
    assert [code for code, _ in second] == [0, 0], second[0][1][-3000:] + second[1][1][-3000:]
    assert "from the checkpoint of step 3" in second[0][1]
    _assert_matches(workdir, reference)


def _assert_matches(workdir: pathlib.Path, reference: pathlib.Path) -> None:
    """Losses, final parameters and summary of ``workdir`` equal the reference run's."""
    ours, theirs = _losses(workdir), _losses(reference)
    assert ours.keys() == theirs.keys() and len(ours) >= 8
    for key, loss in theirs.items():
        assert abs(ours[key] - loss) <= TOLERANCE, (key, ours[key], loss)
    a, b = restore_params(workdir).params, restore_params(reference).params
    leaves = zip(*(sorted(_flat(p).items()) for p in (a, b)))
    assert max(float(np.max(np.abs(x - y))) for (_, x), (_, y) in leaves) <= TOLERANCE
    summary = json.loads((workdir / "summary.json").read_text())
    ref_summary = json.loads((reference / "summary.json").read_text())
    assert summary["step"] == 6
    assert summary["val/unigram_entropy"] == pytest.approx(ref_summary["val/unigram_entropy"])


def _flat(params: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.asarray(v)
    return out


def test_a_stop_signal_to_one_process_stops_both_at_the_same_step(reference, tmp_path):
    workdir = tmp_path / "stop"
    procs = _start_pair(workdir, 1, "--fdl_set=trainer.num_steps=100000",
                        "--fdl_set=trainer.eval_every=100000",
                        "--fdl_set=trainer.checkpoint_every=100000")
    rows = workdir / "process-1" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (rows.exists() and rows.read_text()) and procs[1].poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)  # only process 1 is told to stop
    results = _finish(procs)
    assert [code for code, _ in results] == [75, 75], results[0][1][-2000:] + results[1][1][-2000:]
    steps = {line.split("after step ")[1].split(";")[0] for _, err in results
             for line in err.splitlines() if line.startswith("stopped:")}
    assert len(steps) == 1, steps
    step = int(steps.pop())
    assert step % 2 == 0  # processes agree at log_every boundaries
    assert (workdir / "checkpoints" / str(step) / COMMIT_MARKER).exists()
