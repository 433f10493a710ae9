"""Cluster definitions: fields, validation (one sentence per mistake), loading from files."""

from __future__ import annotations

import pathlib

import pytest

from tests.conftest import ROOT
from theseus.config.errors import ConfigError
from theseus.launch.cluster import (
    Cluster,
    JuiceFS,
    check_password_file,
    clusters_file,
    get_cluster,
    load_clusters,
)


def _write(tmp_path: pathlib.Path, body: str) -> pathlib.Path:
    path = tmp_path / "clusters.py"
    path.write_text("from theseus.launch.cluster import Cluster, JuiceFS\n" + body)
    return path


def test_example_file_loads_every_kind():
    clusters = load_clusters(ROOT / "configs" / "clusters.py")
    assert {c.kind for c in clusters.values()} == {"slurm", "vertex", "ssh", "local"}
    big = clusters["big-gpu"]
    assert big.gres_per_chip == "gpu:h100" and big.chips_per_node == 8
    assert big.juicefs.password_env == "JFS_META_PASSWORD" and not big.is_local


def test_clusters_may_be_functions_or_a_function(tmp_path):
    path = _write(tmp_path, "def a():\n    return Cluster('a', 'local')\n"
                            "def CLUSTERS():\n    return [a, Cluster('b', 'ssh', login='h')]\n")
    assert sorted(load_clusters(path)) == ["a", "b"]


def test_unknown_cluster_lists_the_known_ones(tmp_path):
    path = _write(tmp_path, "CLUSTERS = [Cluster('alpha', 'local'), Cluster('beta', 'local')]\n")
    with pytest.raises(ConfigError, match=r"unknown cluster 'alpah' \(did you mean 'alpha'\?\);"
                       r" .* defines: alpha, beta"):
        get_cluster("alpah", path)


def test_wrong_kind_for_the_backend(tmp_path):
    path = _write(tmp_path, "CLUSTERS = [Cluster('v', 'vertex')]\n")
    with pytest.raises(ConfigError, match="cluster v is kind 'vertex', but this needs slurm"):
        get_cluster("v", path, kinds=("slurm",))


def test_file_location_from_argument_env_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("THESEUS_CLUSTERS", str(tmp_path / "env.py"))
    assert clusters_file(tmp_path / "arg.py") == tmp_path / "arg.py"
    assert clusters_file() == tmp_path / "env.py"
    monkeypatch.delenv("THESEUS_CLUSTERS")
    assert clusters_file() == pathlib.Path("~/.theseus/clusters.py").expanduser()


@pytest.mark.parametrize("body, message", [
    ("", "defines no CLUSTERS"),
    ("CLUSTERS = Cluster('a', 'local')\n", "CLUSTERS must be a list"),
    ("CLUSTERS = ['a']\n", "holds 'a', which is not a Cluster"),
    ("CLUSTERS = [Cluster('a', 'local'), Cluster('a', 'ssh')]\n", "two clusters are named 'a'"),
    ("CLUSTERS = [Cluster('a', 'kube')]\n", "kind='kube' must be one of slurm, vertex, ssh, local"),
])
def test_bad_files(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_clusters(_write(tmp_path, body))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no clusters file at .*; copy configs/clusters.py"):
        load_clusters(tmp_path / "none.py")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "a b"}, "cluster name 'a b' must be letters"),
    ({"partitions": "gpu"}, "partitions must be a tuple of strings"),
    ({"chips_per_node": -1}, "chips_per_node=-1 must be 0"),
    ({"chips_per_node": 8}, "chips_per_node=8 needs gres_per_chip"),
    ({"root": "theseus"}, "root='theseus' must be an absolute path or start with '~/'"),
    ({"venv": "venv"}, "venv='venv' must be an absolute path"),
    ({"env": {"A-B": "1"}}, "env key 'A-B' is not a valid environment variable name"),
    ({"signal_seconds": -5}, "signal_seconds=-5 must be a number of seconds"),
    ({"time_limit": "1h"}, "cluster c: time_limit='1h' is not a SLURM time limit; use minutes"),
])
def test_bad_cluster_fields(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Cluster(**{"name": "c", "kind": "slurm", **kwargs})


@pytest.mark.parametrize("kwargs, message", [
    ({"meta_url": "redis://:hunter2@h:6379/1"}, "must not contain a password"),
    ({"meta_url": "h:6379"}, "needs a scheme"),
    ({"mount": "jfs"}, "mount='jfs' must be an absolute path"),
    ({"cache_size_mib": 0}, "cache_size_mib=0 must be a positive number"),
    ({"password_env": "P", "password_file": "/p"}, "password_env or password_file, not both"),
    ({"password_env": "1P"}, "password_env='1P' must be the name of an environment variable"),
])
def test_bad_juicefs_fields(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        JuiceFS(**{"meta_url": "redis://h:6379/1", **kwargs})


def test_password_from_env(monkeypatch):
    jfs = JuiceFS("redis://h:6379/1", password_env="TEST_PW")
    monkeypatch.delenv("TEST_PW", raising=False)
    with pytest.raises(ConfigError, match=r"\$TEST_PW is not set; export it before submitting"):
        jfs.password()
    monkeypatch.setenv("TEST_PW", "s3cret")
    assert jfs.password() == "s3cret"
    assert "s3cret" not in repr(jfs)


def test_password_file_must_be_private(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=f"{path} has mode 0644; make it private with "
                                          f"`chmod 600 {path}`"):
        check_password_file(str(path))
    path.chmod(0o600)
    assert check_password_file(str(path)) == "s3cret"
    with pytest.raises(ConfigError, match="does not exist"):
        check_password_file(str(tmp_path / "missing"))
