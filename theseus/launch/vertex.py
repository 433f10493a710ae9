"""Vertex AI: the container a run ships in and the CustomJob request that starts it.

The image is the code snapshot with its uv environment (``uv sync --group tpu`` or
``cuda12``), built from :func:`dockerfile`; every work unit's config travels inside it as
``launch/<unit>.json``. :func:`custom_job` is the exact request
``JobServiceClient.create_custom_job`` sends; :func:`submit` sends it. The run's workdir is on
Cloud Storage through the ``/gcs/BUCKET`` mount every Vertex AI job has, so a restarted job
resumes from its checkpoints.

Cluster settings (``kind="vertex"``): ``work`` and ``cache`` under ``/gcs/BUCKET/...``; the
project, region and image repository come from the cluster's ``vertex`` settings when the
Cluster type has them, else from its ``env`` keys ``VERTEX_PROJECT``, ``VERTEX_REGION`` and
``VERTEX_IMAGE_REPOSITORY`` (``VERTEX_SERVICE_ACCOUNT`` optional). None of them is a secret:
credentials come from Application Default Credentials on the submitting machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from theseus.config.errors import ConfigError
from theseus.launch.vertex_hardware import Slice

UV_IMAGE = "ghcr.io/astral-sh/uv:0.9.5"
PYTHON_IMAGE = "python:3.11-slim-bookworm"
APP = "/app"
_SETTING_KEYS = {"project": "VERTEX_PROJECT", "region": "VERTEX_REGION",
                 "image_repository": "VERTEX_IMAGE_REPOSITORY",
                 "service_account": "VERTEX_SERVICE_ACCOUNT"}


@dataclasses.dataclass(frozen=True)
class VertexSettings:
    """Where jobs go: a project, a region, the image repository and an optional account."""

    project: str
    region: str
    image_repository: str
    service_account: str | None = None

    @property
    def parent(self) -> str:
        """``projects/P/locations/R``, the parent of every CustomJob."""
        return f"projects/{self.project}/locations/{self.region}"

    @property
    def endpoint(self) -> str:
        """The regional API endpoint."""
        return f"{self.region}-aiplatform.googleapis.com"


def settings_for(cluster: Any) -> VertexSettings:
    """The Vertex AI settings of a ``kind="vertex"`` cluster; one sentence if any is missing."""
    vertex = getattr(cluster, "vertex", None)
    if vertex is not None:
        return VertexSettings(vertex.project, vertex.region, vertex.image_repository,
                              getattr(vertex, "service_account", None))
    env = dict(getattr(cluster, "env", {}) or {})
    missing = [key for name, key in _SETTING_KEYS.items()
               if name != "service_account" and not env.get(key)]
    if missing:
        raise ConfigError(f"cluster {cluster.name} (vertex) needs {', '.join(missing)} in its "
                          "env, e.g. env={'VERTEX_PROJECT': 'my-project', 'VERTEX_REGION': "
                          "'us-central1', 'VERTEX_IMAGE_REPOSITORY': "
                          "'us-central1-docker.pkg.dev/my-project/theseus'}")
    return VertexSettings(env["VERTEX_PROJECT"], env["VERTEX_REGION"],
                          env["VERTEX_IMAGE_REPOSITORY"], env.get("VERTEX_SERVICE_ACCOUNT"))


def check_storage(cluster: Any) -> None:
    """A Vertex AI cluster keeps runs and data in a bucket (``/gcs/BUCKET/...``): anything
    else is inside the container and gone when a job restarts, checkpoints included."""
    for field in ("work", "cache"):
        value = getattr(cluster, field)
        if not value.startswith("/gcs/"):
            raise ConfigError(f"cluster {cluster.name} (vertex): {field}={value!r} is inside the "
                              "container and lost when the job restarts; put it in a bucket, "
                              f"e.g. {field}='/gcs/my-bucket/{'runs' if field == 'work' else 'data'}'")


def uv_group(machine: Slice) -> str:
    """The dependency group the image installs: ``tpu`` or ``cuda12``."""
    return "tpu" if machine.is_tpu else "cuda12"


def dockerfile(group: str) -> str:
    """The Dockerfile that turns a code snapshot (the build context) into the run's image.

    Dependencies are installed from ``uv.lock`` before the code is copied, so a code change
    rebuilds only the last layers.
    """
    sync = f"uv sync --frozen --no-default-groups --group {group}"
    return "\n".join([
        f"FROM {PYTHON_IMAGE}",
        f"COPY --from={UV_IMAGE} /uv /uvx /bin/",
        (f"ENV UV_PROJECT_ENVIRONMENT={APP}/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy "
        "PYTHONUNBUFFERED=1"),
        f"WORKDIR {APP}",
        "COPY pyproject.toml uv.lock ./",
        f"RUN {sync} --no-install-project",
        "COPY . .",
        f"RUN {sync}",
        "",
    ])


def image_uri(settings: VertexSettings, tag: str) -> str:
    """Where the image of one experiment is pushed."""
    return f"{settings.image_repository}/theseus:{tag}"


def container_command(unit_config: str, workdir: str) -> list[str]:
    """The command every replica runs. On a multi-host TPU slice each host runs it and JAX
    joins them into one run by itself (from the TPU metadata); nothing else is needed."""
    return [f"{APP}/.venv/bin/python", "launch.py", f"--config={unit_config}",
            f"--workdir={workdir}"]


def custom_job(name: str, image: str, machine: Slice, command: Sequence[str],
               env: Mapping[str, str], settings: VertexSettings,
               labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``CustomJob`` (proto field names) for one work unit."""
    container = {"image_uri": image, "command": [command[0]], "args": list(command[1:]),
                 "env": [{"name": k, "value": v} for k, v in sorted(env.items())]}
    job_spec: dict[str, Any] = {
        "worker_pool_specs": [{"machine_spec": machine.machine_spec(),
                               "replica_count": machine.replica_count,
                               "container_spec": container}],
        # A replica that restarts (maintenance, preemption) restarts the job, which resumes.
        "scheduling": {"restart_job_on_worker_restart": True},
    }
    if settings.service_account:
        job_spec["service_account"] = settings.service_account
    return {"display_name": name, "job_spec": job_spec, "labels": dict(labels or {})}


def job_env(cluster_env: Mapping[str, str], cache: str) -> dict[str, str]:
    """The container's environment: the cluster's variables (without the Vertex settings
    keys) and the data cache."""
    env = {k: v for k, v in cluster_env.items() if k not in _SETTING_KEYS.values()}
    env["THESEUS_DATA"] = cache
    return env


def make_client(settings: VertexSettings) -> Any:
    """A ``JobServiceClient`` on the region's endpoint (credentials: ADC)."""
    try:
        from google.cloud import aiplatform_v1
    except ImportError:
        raise ConfigError("submitting to Vertex AI needs google-cloud-aiplatform; install "
                          "the launch dependencies (uv sync --group launch)") from None
    return aiplatform_v1.JobServiceClient(client_options={"api_endpoint": settings.endpoint})


def submit(request: Mapping[str, Any], settings: VertexSettings, client: Any = None) -> str:
    """Sends one CustomJob; returns its resource name (``projects/.../customJobs/ID``)."""
    from google.cloud import aiplatform_v1

    client = client or make_client(settings)
    proto = aiplatform_v1.CreateCustomJobRequest(parent=settings.parent, custom_job=dict(request))
    return client.create_custom_job(request=proto).name
