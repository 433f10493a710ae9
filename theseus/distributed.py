"""Joining a multi-process JAX run: ``jax.distributed.initialize`` from the environment.

``launch.py`` calls ``initialize_from_env()`` first thing, so every process of a run joins
the same cluster before any JAX array exists. It reads, in this order:

1. ``THESEUS_COORDINATOR`` (``host:port`` of process 0), ``THESEUS_NUM_PROCESSES`` and
   ``THESEUS_PROCESS_ID``: an explicit cluster (e.g. processes on one machine over loopback);
   each process sees all its local devices.
2. SLURM ``srun`` tasks (``SLURM_STEP_NUM_TASKS`` > 1): jax's own SLURM detection
   (coordinator on the step's first node; one GPU per task, unless
   ``JAX_LOCAL_DEVICE_IDS`` says otherwise).
3. Otherwise nothing: a single process, or a TPU slice (JAX initialises itself there).

``THESEUS_DISTRIBUTED=0`` turns all of this off. Processes talk over gloo for collectives
between CPU devices (``jax_cpu_collectives_implementation``), so a CPU-only cluster works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax

ENV_COORDINATOR = "THESEUS_COORDINATOR"
ENV_NUM_PROCESSES = "THESEUS_NUM_PROCESSES"
ENV_PROCESS_ID = "THESEUS_PROCESS_ID"


def cluster_from_env(env: Mapping[str, str]) -> dict[str, object] | None:
    """The ``jax.distributed.initialize`` arguments the environment asks for; None for a
    single process. Raises ValueError for incomplete or malformed settings."""
    if env.get("THESEUS_DISTRIBUTED", "1") == "0":
        return None
    ours = [env.get(k) for k in (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)]
    if any(ours):
        if not all(ours):
            raise ValueError(f"set all of {ENV_COORDINATOR}, {ENV_NUM_PROCESSES} and "
                             f"{ENV_PROCESS_ID} for a multi-process run, or none of them.")
        coordinator, num, pid = ours
        if ":" not in coordinator:
            raise ValueError(f"{ENV_COORDINATOR}={coordinator!r} must be host:port, e.g. "
                             f"127.0.0.1:12345.")
        try:
            num_processes, process_id = int(num), int(pid)
        except ValueError:
            raise ValueError(f"{ENV_NUM_PROCESSES}={num!r} and {ENV_PROCESS_ID}={pid!r} must "
                             f"be integers.") from None
        if not 0 <= process_id < num_processes:
            raise ValueError(f"{ENV_PROCESS_ID}={process_id} must be in [0, "
                             f"{ENV_NUM_PROCESSES}={num_processes}).")
        return {"coordinator_address": coordinator, "num_processes": num_processes,
                "process_id": process_id, "cluster_detection_method": "deactivate"}
    if int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1 and "SLURM_PROCID" in env:
        return {"cluster_detection_method": "slurm"}
    return None


def initialize_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Joins the cluster the environment describes (see the module docstring); returns
    whether this is a multi-process run. Safe to call twice."""
    args = cluster_from_env(os.environ if env is None else env)
    if args is None:
        return False
    if jax.distributed.is_initialized():
        return True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**args)
    return True
