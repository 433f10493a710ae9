"""A real sshd on loopback for the tests: its own host key, a temp authorized key for the
current user, a non-default port, all state in a temp dir; an ssh config file that names it.

Needs openssh-server and openssh-client. Skips with the reason when they are missing or sshd
does not start. Tests use ``THESEUS_SSH_CONFIG`` (set by the fixture) and the host alias
``theseus-test``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from tests.launch.fixtures_process import env_set, stop_process

SSHD = "/usr/sbin/sshd"
ALIAS = "theseus-test"


@dataclasses.dataclass
class Sshd:
    """A running test sshd and the ssh config that reaches it as ``ALIAS``."""

    root: pathlib.Path
    port: int
    config: pathlib.Path
    proc: subprocess.Popen


def _free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: pathlib.Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def start_sshd(root: pathlib.Path) -> Sshd:
    """Starts ``sshd -D`` on a free loopback port; returns once a login works."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    _keygen(root / "host_key")
    _keygen(root / "client_key")
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = _free_port()
    (root / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}", "StrictModes no",
        "PasswordAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin yes",
        "UsePAM no", f"PidFile {root / 'sshd.pid'}", "LogLevel ERROR", ""]))
    config = root / "ssh_config"
    config.write_text("\n".join([
        f"Host {ALIAS}", "  HostName 127.0.0.1", f"  Port {port}", f"  User {_user()}",
        f"  IdentityFile {root / 'client_key'}", "  IdentitiesOnly yes",
        "  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", ""]))
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    with open(root / "sshd.log", "w") as log:  # sshd keeps its own copy of the descriptor
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                stdout=log, stderr=subprocess.STDOUT)
    sshd = Sshd(root, port, config, proc)
    for _ in range(200):
        if proc.poll() is not None:
            break
        probe = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", ALIAS, "true"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return sshd
        time.sleep(0.05)
    stop_sshd(sshd)
    raise RuntimeError(f"sshd did not accept a login: {(root / 'sshd.log').read_text()[-2000:]}")


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def stop_sshd(sshd: Sshd) -> None:
    """Stops the sshd this fixture started (by its pid)."""
    stop_process(sshd.proc, timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A running sshd and ``THESEUS_SSH_CONFIG`` pointing at its ssh config."""
    missing = [t for t in ("ssh", "ssh-keygen") if shutil.which(t) is None]
    if missing or not os.path.exists(SSHD):
        pytest.skip(f"openssh is not installed ({', '.join(missing) or SSHD} missing; "
                    "apt-get install openssh-server openssh-client)")
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except (RuntimeError, subprocess.CalledProcessError) as e:
        pytest.skip(f"sshd did not start: {e}")
    with env_set("THESEUS_SSH_CONFIG", str(server.config)):
        yield server
    stop_sshd(server)
