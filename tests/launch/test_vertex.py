"""Vertex AI: machine specs for current TPUs and GPUs, the exact CustomJob request (only the
Google Cloud client is replaced, and the request it receives is checked), and the image's
build context and Dockerfile."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from configs.gpt import tiny
from theseus.config.errors import ConfigError
from theseus.launch import vertex, xm_launch, xm_targets
from theseus.launch.cluster import Cluster
from theseus.launch.vertex_hardware import Slice, machine_for

SETTINGS = vertex.VertexSettings("my-project", "us-east5", "us-east5-docker.pkg.dev/my-project/theseus")


@pytest.mark.parametrize("chip, n, expected", [
    ("v5e", 1, Slice("ct5lp-hightpu-1t", 1, tpu_topology="1x1")),
    ("v5e", 4, Slice("ct5lp-hightpu-4t", 1, tpu_topology="2x2")),
    ("v5litepod-16", None, Slice("ct5lp-hightpu-4t", 4, tpu_topology="4x4")),
    ("v5p-8", None, Slice("ct5p-hightpu-4t", 1, tpu_topology="2x2x1")),
    ("v5p-16", None, Slice("ct5p-hightpu-4t", 2, tpu_topology="2x2x2")),
    ("v5p", 64, Slice("ct5p-hightpu-4t", 16, tpu_topology="4x4x4")),
    ("v6e", 8, Slice("ct6e-standard-8t", 1, tpu_topology="2x4")),
    ("v6e-32", None, Slice("ct6e-standard-4t", 8, tpu_topology="4x8")),
    ("a100", 8, Slice("a2-highgpu-8g", 1, "NVIDIA_TESLA_A100", 8)),
    ("a100-80gb", 4, Slice("a2-ultragpu-4g", 1, "NVIDIA_A100_80GB", 4)),
    ("h100", 8, Slice("a3-highgpu-8g", 1, "NVIDIA_H100_80GB", 8)),
    ("h200", 8, Slice("a3-ultragpu-8g", 1, "NVIDIA_H200_141GB", 8)),
    ("l4", 1, Slice("g2-standard-8", 1, "NVIDIA_L4", 1)),
])
def test_machine_specs(chip, n, expected):
    assert machine_for(chip, n) == expected


@pytest.mark.parametrize("chip, n, message", [
    ("tpu9", 1, ("unknown accelerator 'tpu9' for Vertex AI; use one of v5e, v6e, v5p, a100, "
     "a100-80gb, h100, h100-mega, h200, l4 (TPU slices may also be named like v5p-16 or v6e-32)")),
    ("v5p", 12, ("v5p has no slice of 12 chips on Vertex AI; valid chip counts: 4 (v5p-8, 2x2x1), "
     "8 (v5p-16, 2x2x2), 16 (v5p-32, 2x2x4)")),
    ("h200", 4, ("h200 on Vertex AI comes in machines of [8] GPUs (a3-ultragpu-8g), not 4; jobs "
     "span one machine for now")),
    ("v5p-16", 4, ("v5p-16 is a slice of 8 chips, but 4 chips were asked for; pass just --chip "
     "v5p-16, or --chip v5p -n 4")),
])
def test_bad_accelerators_are_one_sentence(chip, n, message):
    with pytest.raises(ConfigError) as info:
        machine_for(chip, n)
    assert str(info.value).startswith(message)


def test_the_custom_job_for_a_multi_host_tpu_slice():
    machine = machine_for("v5p-16")
    assert machine.hosts == 2 and machine.replica_count == 1
    env = vertex.job_env({"JAX_PLATFORMS": "tpu", "VERTEX_PROJECT": "my-project"},
                         "/gcs/bucket/cache")
    command = vertex.container_command("launch/run.json", "/gcs/bucket/runs/r1")
    request = vertex.custom_job("r1", "IMAGE", machine, command, env, SETTINGS,
                                {"theseus-experiment": "7"})
    assert request == {
        "display_name": "r1",
        "job_spec": {
            "worker_pool_specs": [{
                "machine_spec": {"machine_type": "ct5p-hightpu-4t", "tpu_topology": "2x2x2"},
                # one replica for the whole slice: Vertex AI starts its 2 hosts from the
                # topology (configure-compute#tpu, cited in vertex_hardware.Slice)
                "replica_count": 1,
                "container_spec": {
                    "image_uri": "IMAGE",
                    "command": ["/app/.venv/bin/python"],
                    "args": ["launch.py", "--config=launch/run.json",
                             "--workdir=/gcs/bucket/runs/r1"],
                    "env": [{"name": "JAX_PLATFORMS", "value": "tpu"},
                            {"name": "THESEUS_DATA", "value": "/gcs/bucket/cache"}],
                },
            }],
            "scheduling": {"restart_job_on_worker_restart": True},
        },
        "labels": {"theseus-experiment": "7"},
    }


def test_submit_sends_exactly_that_request_to_the_job_service():
    pytest.importorskip("xmanager")  # the optional `launch` group
    pytest.importorskip("google.cloud.aiplatform_v1")  # the optional `launch` group
    machine = machine_for("h100", 8)
    command = vertex.container_command("launch/run.json", "/gcs/b/runs/r2")
    request = vertex.custom_job("r2", "IMAGE", machine, command,
                                vertex.job_env({}, "/gcs/b/cache"), SETTINGS)
    client = mock.Mock()
    client.create_custom_job.return_value.name = "projects/1/locations/us-east5/customJobs/42"
    assert vertex.submit(request, SETTINGS, client) == "projects/1/locations/us-east5/customJobs/42"
    [call] = client.create_custom_job.call_args_list
    proto = call.kwargs["request"]
    sent = json.loads(type(proto).to_json(proto, preserving_proto_field_name=True,
                                          use_integers_for_enums=False,
                                          always_print_fields_with_no_presence=False))
    assert sent["parent"] == "projects/my-project/locations/us-east5"
    job = sent["custom_job"]
    assert job["display_name"] == "r2"
    [pool] = job["job_spec"]["worker_pool_specs"]
    assert pool["machine_spec"] == {"machine_type": "a3-highgpu-8g",
                                    "accelerator_type": "NVIDIA_H100_80GB", "accelerator_count": 8}
    assert pool["replica_count"] == "1"  # int64 fields are strings in proto JSON
    assert pool["container_spec"] == {
        "image_uri": "IMAGE", "command": ["/app/.venv/bin/python"],
        "args": ["launch.py", "--config=launch/run.json", "--workdir=/gcs/b/runs/r2"],
        "env": [{"name": "THESEUS_DATA", "value": "/gcs/b/cache"}]}


def test_the_dockerfile():
    assert vertex.dockerfile("tpu") == (
        "FROM python:3.11-slim-bookworm\n"
        "COPY --from=ghcr.io/astral-sh/uv:0.9.5 /uv /uvx /bin/\n"
        "ENV UV_PROJECT_ENVIRONMENT=/app/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy "
        "PYTHONUNBUFFERED=1\n"
        "WORKDIR /app\n"
        "COPY pyproject.toml uv.lock ./\n"
        "RUN uv sync --frozen --no-default-groups --group tpu --no-install-project\n"
        "COPY . .\n"
        "RUN uv sync --frozen --no-default-groups --group tpu\n")
    assert vertex.uv_group(machine_for("a100", 8)) == "cuda12"


def test_the_build_context_holds_the_snapshot_the_configs_and_the_dockerfile(tmp_path):
    units = xm_launch.plan(tiny(), ["model.num_layers=1,2"])
    context = xm_targets.vertex_context(tmp_path, units, "tpu")
    assert (context / "Dockerfile").read_text() == vertex.dockerfile("tpu")
    assert (context / "launch.py").exists() and (context / "uv.lock").exists()
    saved = json.loads((context / "launch" / "num_layers=2.json").read_text())
    assert saved == json.loads(units[1].config_json)


def test_vertex_settings_come_from_the_cluster():
    cluster = Cluster("tpu", kind="vertex", work="/gcs/b/runs", cache="/gcs/b/cache",
                      env={"VERTEX_PROJECT": "p", "VERTEX_REGION": "us-east5",
                           "VERTEX_IMAGE_REPOSITORY": "us-east5-docker.pkg.dev/p/t"})
    assert vertex.settings_for(cluster) == vertex.VertexSettings("p", "us-east5",
                                                                 "us-east5-docker.pkg.dev/p/t")
    with pytest.raises(ConfigError) as info:
        vertex.settings_for(Cluster("tpu", kind="vertex"))
    assert str(info.value).startswith("cluster tpu (vertex) needs VERTEX_PROJECT, VERTEX_REGION, "
                                      "VERTEX_IMAGE_REPOSITORY in its env")
    vertex.check_storage(cluster)
    with pytest.raises(ConfigError) as info:
        xm_targets.remote_backend("vertex", cluster, "r", [], None)
    assert str(info.value).startswith("Vertex AI needs an accelerator: pass --chip")
    with pytest.raises(ConfigError) as info:
        vertex.check_storage(Cluster("tpu", kind="vertex", work="/gcs/b/runs"))
    assert str(info.value) == ("cluster tpu (vertex): cache='~/theseus/cache' is inside the "
                               "container and lost when the job restarts; put it in a bucket, "
                               "e.g. cache='/gcs/my-bucket/data'")


@pytest.mark.skipif(xm_targets.docker_works(), reason="docker runs here: it would build")
def test_launching_without_docker_says_how_to_build_the_image(tmp_path, monkeypatch):
    pytest.importorskip("xmanager")  # the optional `launch` group
    pytest.importorskip("google.cloud.aiplatform_v1")  # the optional `launch` group
    monkeypatch.setenv("THESEUS_LAUNCH_DIR", str(tmp_path / "launch"))
    clusters = tmp_path / "clusters.py"
    clusters.write_text(
        "from theseus.launch.cluster import Cluster\n"
        "CLUSTERS = [Cluster('tpu', kind='vertex', work='/gcs/b/runs', cache='/gcs/b/cache', env={\n"
        "    'VERTEX_PROJECT': 'p', 'VERTEX_REGION': 'us-east5',\n"
        "    'VERTEX_IMAGE_REPOSITORY': 'us-east5-docker.pkg.dev/p/t'})]\n")
    from theseus.config.codegen import Hardware

    with pytest.raises(ConfigError) as info:
        xm_launch.launch(tiny(), target="vertex:tpu", workdir="r3", hardware=Hardware("v6e", 8),
                         clusters=str(clusters))
    assert str(info.value).startswith("building the Vertex AI image needs docker with a running "
                                      "daemon, which this machine lacks; build ")


def test_a_sweep_on_vertex_goes_through_the_launch_path(tmp_path, monkeypatch):
    """The whole path with the Google Cloud side replaced: the image push to Artifact Registry
    (``build_image``) and the Vertex AI client. Everything else is real: the plan, the
    experiment in xmanager's database, the build context, one CustomJob per point."""
    pytest.importorskip("xmanager")  # the optional `launch` group
    pytest.importorskip("google.cloud.aiplatform_v1")  # the optional `launch` group
    monkeypatch.setenv("THESEUS_LAUNCH_DIR", str(tmp_path / "launch"))
    built = []
    monkeypatch.setattr(xm_targets, "build_image", lambda context, image: built.append((context, image)))
    responses = [mock.Mock() for _ in range(2)]
    for i, response in enumerate(responses):
        response.name = f"projects/p/locations/us-east5/customJobs/{i}"
    client = mock.Mock()
    client.return_value.create_custom_job.side_effect = responses
    monkeypatch.setattr("google.cloud.aiplatform_v1.JobServiceClient", client)
    clusters = tmp_path / "clusters.py"
    clusters.write_text(
        "from theseus.launch.cluster import Cluster\n"
        "CLUSTERS = [Cluster('tpu', kind='vertex', work='/gcs/b/runs', cache='/gcs/b/cache', env={\n"
        "    'VERTEX_PROJECT': 'p', 'VERTEX_REGION': 'us-east5',\n"
        "    'VERTEX_IMAGE_REPOSITORY': 'us-east5-docker.pkg.dev/p/t', 'JAX_PLATFORMS': 'tpu'})]\n")
    from theseus.config.codegen import Hardware

    launched = xm_launch.launch(tiny(), target="vertex:tpu", workdir="runs/lr", sweeps=[
        "optimizer.learning_rate=1e-3,3e-3"], hardware=Hardware("v6e-32"), clusters=str(clusters))
    [(context, image)] = built
    assert image.startswith("us-east5-docker.pkg.dev/p/t/theseus:lr-")
    assert sorted(p.name for p in (context / "launch").iterdir()) == [
        "learning_rate=1e-3.json", "learning_rate=3e-3.json"]
    client.assert_called_once_with(client_options={"api_endpoint": "us-east5-aiplatform.googleapis.com"})
    calls = client.return_value.create_custom_job.call_args_list
    sent = [json.loads(type(c.kwargs["request"]).to_json(
        c.kwargs["request"], preserving_proto_field_name=True, use_integers_for_enums=False,
        always_print_fields_with_no_presence=False)) for c in calls]
    for value, request in zip(("1e-3", "3e-3"), sent):
        assert request["parent"] == "projects/p/locations/us-east5"
        job = request["custom_job"]
        assert job["display_name"] == f"lr-learning_rate_{value}"
        assert job["job_spec"]["worker_pool_specs"] == [{
            "machine_spec": {"machine_type": "ct6e-standard-4t", "tpu_topology": "4x8"},
            "replica_count": "1",  # a 32-chip slice on 8 hosts is still one replica
            "container_spec": {
                "image_uri": image, "command": ["/app/.venv/bin/python"],
                "args": ["launch.py", f"--config=launch/learning_rate={value}.json",
                         f"--workdir=/gcs/b/runs/lr/learning_rate={value}"],
                "env": [{"name": "JAX_PLATFORMS", "value": "tpu"},
                        {"name": "THESEUS_DATA", "value": "/gcs/b/cache"}]}}]
    assert [x.where for x in launched] == ["projects/p/locations/us-east5/customJobs/0",
                                          "projects/p/locations/us-east5/customJobs/1"]
