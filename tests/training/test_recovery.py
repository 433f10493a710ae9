"""Recovery with real processes and real signals: kill -9 at chosen moments, preemption,
corrupt checkpoints, the workdir lock, non-finite losses, a full disk, config changes,
checkpoint policies, and restoring onto another device count."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_launch, tiny_args

EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def _rows(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _train_losses(workdir) -> list[tuple[int, float]]:
    return [(r["step"], r["train/loss"]) for r in _rows(workdir) if "train/loss" in r]


def _summary(workdir) -> dict:
    return json.loads((workdir / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 6-step run: what every interrupted run must reproduce exactly."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    result = run_launch(*tiny_args(workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["kill:step:5", "kill:save:3", "kill:eval:3"])
def test_kill9_at_any_moment_then_rerun_gives_identical_parameters(tmp_path, reference, fault):
    workdir = tmp_path / "run"
    killed = run_launch(*tiny_args(workdir), env={"THESEUS_FAULT": fault})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    again = run_launch(*tiny_args(workdir))
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summary(workdir)["params_sha256"] == _summary(reference)["params_sha256"]
    assert _train_losses(workdir) == _train_losses(reference)  # one row per step, same values


@pytest.mark.slow
def test_kill9_from_outside_while_training(tmp_path):
    longer = ["--fdl_set=trainer.num_steps=20", "--fdl_set=trainer.checkpoint_every=5"]
    reference = tmp_path / "reference"
    assert run_launch(*tiny_args(reference, *longer)).returncode == 0
    workdir = tmp_path / "run"
    proc = _start(tiny_args(workdir, *longer))
    _wait_for(lambda: (workdir / "checkpoints" / "10").exists(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert run_launch(*tiny_args(workdir, *longer)).returncode == 0
    assert _summary(workdir)["params_sha256"] == _summary(reference)["params_sha256"]
    assert _train_losses(workdir) == _train_losses(reference)


def _start(args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args], cwd=ROOT,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_preemption_saves_and_exits_with_the_requeue_code(tmp_path, sig):
    longer = ["--fdl_set=trainer.num_steps=400", "--fdl_set=trainer.checkpoint_every=1000"]
    workdir = tmp_path / "run"
    proc = _start(tiny_args(workdir, *longer))
    _wait_for(lambda: (workdir / "metrics.jsonl").exists() and len(_rows(workdir)) >= 3, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-3000:]
    status = json.loads((workdir / "status.json").read_text())
    assert status["state"] == "preempted"
    assert (workdir / "checkpoints" / str(status["step"])).is_dir()
    assert "checkpoint" in stderr.splitlines()[-1]
    if sig != signal.SIGTERM:
        return  # resuming after a stop is the same for every signal: checked once
    again = run_launch(*tiny_args(workdir, "--fdl_set=trainer.num_steps=" + str(status["step"] + 2)))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"from the checkpoint of step {status['step']}" in again.stdout


@pytest.mark.slow
def test_second_interrupt_exits_at_once_without_corrupting(tmp_path):
    longer = ["--fdl_set=trainer.num_steps=2000", "--fdl_set=trainer.checkpoint_every=2"]
    workdir = tmp_path / "run"
    proc = _start(tiny_args(workdir, *longer))
    _wait_for(lambda: (workdir / "checkpoints" / "4").exists(), proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode in (130, 75)  # 75 only if the first stop finished in between
    again = run_launch(*tiny_args(workdir, "--fdl_set=trainer.num_steps=6",
                                  "--fdl_set=trainer.checkpoint_every=2", "--allow_config_change"))
    assert again.returncode == 0, again.stderr[-3000:]


def _finished_run(tmp_path, *extra):
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir, "--fdl_set=trainer.keep_checkpoints=5", *extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def _largest_file(directory):
    return max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "no_commit_marker"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, damage):
    workdir = _finished_run(tmp_path)
    newest = workdir / "checkpoints" / "6"
    if damage == "truncate":
        big = _largest_file(newest / "state")
        os.truncate(big, big.stat().st_size // 2)
    else:
        (newest / "commit_success.txt").unlink()
    result = run_launch(*tiny_args(workdir, "--fdl_set=trainer.keep_checkpoints=5",
                                   "--fdl_set=trainer.num_steps=7"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "from the checkpoint of step 3" in result.stdout
    assert "checkpoint 6" in result.stderr  # the warning names what was skipped


@pytest.mark.slow
def test_all_checkpoints_unusable_is_an_error_unless_from_scratch(tmp_path):
    workdir = _finished_run(tmp_path)
    for step in ("3", "6"):
        (workdir / "checkpoints" / step / "commit_success.txt").unlink()
    before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
    result = run_launch(*tiny_args(workdir, "--fdl_set=trainer.keep_checkpoints=5"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the 2 checkpoints")
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before
    fresh = run_launch(*tiny_args(workdir, "--fdl_set=trainer.keep_checkpoints=5", "--from_scratch"))
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert list(workdir.glob("checkpoints.unusable-*"))


def test_a_second_process_on_the_same_workdir_is_refused(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import pathlib, sys, time; from theseus.training.lock import WorkdirLock; "
        f"l = WorkdirLock(pathlib.Path({str(workdir)!r})); l.acquire(); print('held', flush=True); "
        "time.sleep(60)")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_launch(*tiny_args(workdir))
        assert result.returncode == 2
        assert f"in use by pid {holder.pid}" in result.stderr
        assert not (workdir / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder died (kill -9): its lock is stale and the next run takes it over.
    assert (workdir / ".lock").exists()
    assert run_launch(*tiny_args(workdir, "--fdl_set=trainer.num_steps=2")).returncode == 0


@pytest.mark.slow
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir, "--fdl_set=optimizer.learning_rate=1e30",
                                   "--fdl_set=optimizer.clip_norm=None"))
    assert result.returncode == 1, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: the loss at step ") and "not finite" in message
    bad_step = int(message.split("step ")[1].split()[0])
    saved = [int(p.name) for p in (workdir / "checkpoints").glob("[0-9]*")]
    assert all(step < bad_step for step in saved)
    assert json.loads((workdir / "status.json").read_text())["state"] == "failed"


@pytest.mark.slow
def test_bad_steps_are_skipped_up_to_the_limit_with_a_log_line_each(tmp_path):
    workdir = tmp_path / "run"
    result = run_launch(*tiny_args(workdir, "--fdl_set=optimizer.learning_rate=1e30",
                                   "--fdl_set=optimizer.clip_norm=None",
                                   "--fdl_set=trainer.max_bad_steps=2"))
    assert result.returncode == 1
    assert result.stderr.count("update skipped") == 3  # two tolerated, the third stops the run
    assert "(1 of at most 2)" in result.stderr and "(2 of at most 2)" in result.stderr


def _can_mount_tmpfs(path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(path)], check=True)
    return ok


@pytest.mark.slow
def test_disk_full_during_a_save_keeps_earlier_checkpoints_and_says_so(tmp_path):
    workdir = tmp_path / "run"
    ckpts = workdir / "checkpoints"
    if not _can_mount_tmpfs(ckpts):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    one = _finished_run(tmp_path / "size", "--fdl_set=trainer.num_steps=2",
                        "--fdl_set=trainer.checkpoint_every=2")
    size_kb = sum(p.stat().st_size for p in (one / "checkpoints").rglob("*") if p.is_file()) // 1024
    # Room for two checkpoints and a half: the third save runs out of space.
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size_kb * 2.5)}k", "tmpfs",
                    str(ckpts)], check=True)
    try:
        args = tiny_args(workdir, "--fdl_set=trainer.checkpoint_every=1",
                         "--fdl_set=trainer.keep_checkpoints=10")
        result = run_launch(*args)
        assert result.returncode == 1, result.stderr[-3000:]
        # orbax's writer threads may print their own tracebacks around ours: find our line.
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr[-3000:]
        assert errors[0].startswith("error: saving checkpoint") and "are intact" in errors[0]
        subprocess.run(["mount", "-o", "remount,size=64m", str(ckpts)], check=True)
        again = run_launch(*args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "from the checkpoint of step 2" in again.stdout
    finally:
        subprocess.run(["umount", str(ckpts)])


@pytest.mark.slow
def test_config_change_on_resume_is_refused_with_a_diff(tmp_path):
    workdir = _finished_run(tmp_path)
    before = (workdir / "config.json").read_text()
    changed = run_launch(*tiny_args(workdir, "--fdl_set=trainer.keep_checkpoints=5",
                                     "--fdl_set=optimizer.learning_rate=0.01"))
    assert changed.returncode == 2
    assert "optimizer.learning_rate: 0.003 -> 0.01" in changed.stderr
    assert (workdir / "config.json").read_text() == before
    allowed = run_launch(*tiny_args(workdir, "--fdl_set=trainer.keep_checkpoints=5",
                                     "--fdl_set=optimizer.learning_rate=0.01",
                                     "--fdl_set=trainer.num_steps=8", "--allow_config_change"))
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "optimizer.learning_rate" in (workdir / "config.txt").read_text()


@pytest.mark.slow
def test_best_and_keep_every_policies(tmp_path):
    workdir = tmp_path / "run"
    args = tiny_args(workdir, "--fdl_set=trainer.num_steps=8", "--fdl_set=trainer.eval_every=1",
                     "--fdl_set=trainer.checkpoint_every=1", "--fdl_set=trainer.keep_checkpoints=2",
                     "--fdl_set=trainer.keep_every=4")
    assert run_launch(*args).returncode == 0
    kept = sorted(int(p.name) for p in (workdir / "checkpoints").glob("[0-9]*"))
    assert kept == [4, 7, 8]
    vals = {r["step"]: r["val/loss"] for r in _rows(workdir) if "val/loss" in r}
    best = list((workdir / "best").glob("[0-9]*"))
    assert len(best) == 1 and (best[0] / "commit_success.txt").exists()
    meta = json.loads(next((best[0] / "meta").glob("*")).read_text())
    assert meta == {"step": min(vals, key=vals.get), "val/loss": min(vals.values())}


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [({}, EIGHT_DEVICES), (EIGHT_DEVICES, {})])
def test_restore_onto_a_different_device_count(tmp_path, reference, first, second):
    workdir = tmp_path / "run"
    assert run_launch(*tiny_args(workdir), env=first).returncode == 0
    shutil.rmtree(workdir / "checkpoints" / "6")  # as if it had stopped after step 3
    again = run_launch(*tiny_args(workdir), env=second)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "from the checkpoint of step 3" in again.stdout
    ref = dict(_train_losses(reference))
    for step, loss in _train_losses(workdir):
        assert loss == pytest.approx(ref[step], rel=1e-5), step
