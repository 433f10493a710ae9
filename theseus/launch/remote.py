"""Running shell commands on a cluster's login node: here when ``login`` is ``local``, else
over ssh (``BatchMode``: keys or an agent, never a password prompt; ``-F
$THESEUS_SSH_CONFIG`` when that is set)."""

from __future__ import annotations

import os
import subprocess

from theseus.config.errors import ConfigError
from theseus.launch.cluster import Cluster


def shell(cluster: Cluster, script: str, *, stdin: bytes | None = None,
          env: dict[str, str] | None = None, check: bool = True,
          timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs a bash snippet on the login node and returns its result (text output).

    ``stdin`` is fed to it (a tar file, a secret): what goes there never shows in argv.
    ``env`` adds variables locally; over ssh, pass values through ``stdin`` instead.
    """
    if cluster.login_setup:
        script = f"{cluster.login_setup}\n{script}"
    if cluster.is_local:
        argv = ["bash", "-c", script]
        full_env = {**os.environ, **(env or {})}
    else:
        config = os.environ.get("THESEUS_SSH_CONFIG")  # an ssh config file, as for SSH hosts
        argv = ["ssh", "-o", "BatchMode=yes", *(["-F", config] if config else []),
                cluster.login, "bash", "-c", _quote(script)]
        full_env = dict(os.environ)
    try:
        done = subprocess.run(argv, input=stdin if stdin is not None else b"", env=full_env,
                              capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as e:
        raise ConfigError(f"cannot run {argv[0]} to reach cluster {cluster.name}: {e}") from None
    result = subprocess.CompletedProcess(argv, done.returncode, done.stdout.decode(errors="replace"),
                                         done.stderr.decode(errors="replace"))
    if check and done.returncode != 0:
        where = "here" if cluster.is_local else f"on {cluster.login}"
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()  # its last word
        raise ConfigError(f"a command {where} (cluster {cluster.name}) failed with status "
                          f"{done.returncode}: {said[-1] if said else 'no output'}")
    return result


def _quote(script: str) -> str:
    """ssh joins its arguments with spaces for the remote shell: quote the snippet once."""
    import shlex

    return shlex.quote(script)


def home(cluster: Cluster) -> str:
    """The login user's home directory on the cluster."""
    if cluster.is_local:
        return os.path.expanduser("~")
    return shell(cluster, 'printf %s "$HOME"').stdout.strip()


def expand(path: str, home_dir: str) -> str:
    """A cluster path with a leading ``~`` replaced by the cluster's home directory."""
    if path == "~":
        return home_dir
    if path.startswith("~/"):
        return home_dir.rstrip("/") + path[1:]
    return path
