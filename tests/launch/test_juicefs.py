"""The JuiceFS lines of job scripts, run by bash against a real redis + JuiceFS volume."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from theseus.launch.cluster import JuiceFS
from theseus.launch.juicefs import mount_command, password_lines, shell_path


def _bash(lines: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60, check=False)


def test_shell_path_expands_home_on_the_node():
    done = _bash([f"printf '%s\\n' {shell_path('~/a b/c')} {shell_path('/x y')}"],
                 env={"HOME": "/home/u"})
    assert done.stdout.splitlines() == ["/home/u/a b/c", "/x y"]


def test_password_file_is_read_only_when_private(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    jfs = JuiceFS("redis://h:1/1", password_file=str(secret))
    secret.chmod(0o644)
    done = _bash(password_lines(jfs) + ['echo "got=$META_PASSWORD"'])
    assert done.returncode == 2 and "got=" not in done.stdout
    assert done.stderr.strip() == (f"error: the JuiceFS password file {secret} has mode 644; "
                                   "make it private with chmod 600")
    secret.chmod(0o600)
    done = _bash(password_lines(jfs) + ['[ "$META_PASSWORD" = s3cret ] && echo ok'])
    assert done.stdout.strip() == "ok", done.stderr
    assert "s3cret" not in "\n".join(password_lines(jfs))


def test_missing_password_file(tmp_path):
    jfs = JuiceFS("redis://h:1/1", password_file=str(tmp_path / "none"))
    done = _bash(password_lines(jfs))
    assert done.returncode == 2 and "is missing or unreadable" in done.stderr


@pytest.mark.slow
def test_mount_command_mounts_in_the_foreground(juicefs_volume, tmp_path):
    """The per-node command mounts (password from the environment only), the volume is
    usable, and ``juicefs umount`` ends the foreground process."""
    mount = tmp_path / "mnt"
    jfs = JuiceFS(juicefs_volume.meta_url, mount=str(mount), cache_dir=str(tmp_path / "cache"),
                  cache_size_mib=64, password_env="UNUSED")
    env = {**os.environ, **juicefs_volume.env, "JUICEFS": juicefs_volume.binary}
    proc = subprocess.Popen(["bash", "-c", mount_command(jfs)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if subprocess.run(["mountpoint", "-q", str(mount)], check=False).returncode == 0 or proc.poll():
                break
            time.sleep(0.1)
        argv = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
        assert juicefs_volume.password not in argv
        (mount / "hello.txt").write_text("hi")
        assert (mount / "hello.txt").read_text() == "hi"
        # Already mounted: a second job's command leaves it alone and exits at once.
        again = subprocess.run(["bash", "-c", mount_command(jfs)], env=env, capture_output=True,
                               text=True, timeout=60, check=False)
        assert again.returncode == 0 and "already mounted" in again.stdout
    finally:
        subprocess.run([juicefs_volume.binary, "umount", str(mount)], capture_output=True, check=False)
        proc.wait(timeout=60)
    assert subprocess.run(["mountpoint", "-q", str(mount)], check=False).returncode != 0
