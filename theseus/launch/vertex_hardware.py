"""Vertex AI machine specs for a chip and a count: current TPUs (v5e, v5p, v6e) and GPUs.

xmanager's own Vertex executor maps only TPU v2/v3 (google-deepmind/xmanager#63) and names
some GPUs wrongly, so theseus builds the ``MachineSpec`` itself. A TPU slice is one worker
pool with ONE replica: the host machine type and the slice's topology; Vertex AI provisions
every host of a multi-host slice from the topology and runs the container on each (all run
the same program; ``jax.distributed`` initialises itself from the TPU metadata). A GPU job is
one machine of the right family with that many GPUs.
"""

from __future__ import annotations

import dataclasses
import re

from theseus.config.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Slice:
    """What one request maps to: machine type, hosts, accelerator and topology."""

    machine_type: str
    hosts: int
    accelerator_type: str | None = None
    accelerator_count: int = 0
    tpu_topology: str | None = None

    @property
    def replica_count(self) -> int:
        """The worker pool's ``replica_count``: always 1. For a TPU slice, even a multi-host
        one, Vertex AI wants a single worker pool with a single replica; the topology decides
        the hosts ("When you use a TPU VM in Vertex AI, you must only use a single worker pool
        for custom training, and you must configure this worker pool to use only one
        replica": https://cloud.google.com/vertex-ai/docs/training/configure-compute#tpu).
        GPU jobs span one machine."""
        return 1

    @property
    def is_tpu(self) -> bool:
        """True for a TPU slice."""
        return self.tpu_topology is not None

    def machine_spec(self) -> dict:
        """The ``MachineSpec`` as a dict (proto field names)."""
        spec: dict = {"machine_type": self.machine_type}
        if self.accelerator_type:
            spec["accelerator_type"] = self.accelerator_type
            spec["accelerator_count"] = self.accelerator_count
        if self.tpu_topology:
            spec["tpu_topology"] = self.tpu_topology
        return spec


# chips in the slice -> (topology, chips per host). v5e and v6e share their 2D shapes.
_2D = {1: ("1x1", 1), 4: ("2x2", 4), 8: ("2x4", 8), 16: ("4x4", 4), 32: ("4x8", 4),
       64: ("8x8", 4), 128: ("8x16", 4), 256: ("16x16", 4)}
_V5P = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
        256: "4x8x8", 512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16"}
# generation -> (machine type by chips per host, chips per name unit, name prefix)
TPUS = {
    "v5e": ({1: "ct5lp-hightpu-1t", 4: "ct5lp-hightpu-4t", 8: "ct5lp-hightpu-8t"}, 1, "v5litepod"),
    "v6e": ({1: "ct6e-standard-1t", 4: "ct6e-standard-4t", 8: "ct6e-standard-8t"}, 1, "v6e"),
    "v5p": ({4: "ct5p-hightpu-4t"}, 2, "v5p"),  # v5p-N counts TensorCores: 2 per chip
}
_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "tpu-v5e": "v5e", "tpu-v5p": "v5p",
            "tpu-v6e": "v6e", "trillium": "v6e"}
# chip -> (accelerator type, {GPU count: machine type})
GPUS = {
    "a100": ("NVIDIA_TESLA_A100", {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g",
                                   8: "a2-highgpu-8g", 16: "a2-megagpu-16g"}),
    "a100-80gb": ("NVIDIA_A100_80GB", {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g",
                                       4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"}),
    "h100": ("NVIDIA_H100_80GB", {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g",
                                  8: "a3-highgpu-8g"}),
    "h100-mega": ("NVIDIA_H100_MEGA_80GB", {8: "a3-megagpu-8g"}),
    "h200": ("NVIDIA_H200_141GB", {8: "a3-ultragpu-8g"}),
    "l4": ("NVIDIA_L4", {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48",
                         8: "g2-standard-96"}),
}


def valid_chips() -> str:
    """Every chip name this module knows, for error messages."""
    return ", ".join([*TPUS, *GPUS])


def _split_named_slice(chip: str, n_chips: int | None) -> tuple[str, int | None]:
    """``v5p-16`` -> (``v5p``, 8 chips); ``v5litepod-16`` -> (``v5e``, 16)."""
    match = re.fullmatch(r"([a-z0-9-]+?)-(\d+)", chip)
    name = _ALIASES.get(match[1], match[1]) if match else None
    if not match or name not in TPUS:
        return _ALIASES.get(chip, chip), n_chips
    chips = int(match[2]) // TPUS[name][1]
    if n_chips not in (None, 1, chips):
        raise ConfigError(f"{chip} is a slice of {chips} chips, but {n_chips} chips were asked "
                          f"for; pass just --chip {chip}, or --chip {name} -n {n_chips}")
    return name, chips


def tpu_slice(generation: str, n_chips: int) -> Slice:
    """The worker pool shape of a ``generation`` slice with ``n_chips`` chips."""
    machines, per_unit, prefix = TPUS[generation]
    if generation == "v5p":
        shapes = {n: (t, 4) for n, t in _V5P.items()}
    else:
        shapes = _2D
    if n_chips not in shapes:
        sizes = ", ".join(f"{n} ({prefix}-{n * per_unit}, {shapes[n][0]})" for n in shapes)
        raise ConfigError(f"{generation} has no slice of {n_chips} chips on Vertex AI; valid "
                          f"chip counts: {sizes}")
    topology, per_host = shapes[n_chips]
    return Slice(machines[per_host], n_chips // per_host, tpu_topology=topology)


def gpu_machine(chip: str, n_chips: int) -> Slice:
    """One machine with ``n_chips`` GPUs of kind ``chip``."""
    accelerator, machines = GPUS[chip]
    if n_chips not in machines:
        raise ConfigError(f"{chip} on Vertex AI comes in machines of {sorted(machines)} GPUs "
                          f"({', '.join(machines.values())}), not {n_chips}; jobs span one "
                          "machine for now")
    return Slice(machines[n_chips], 1, accelerator, n_chips)


def machine_for(chip: str, n_chips: int | None = None) -> Slice:
    """The Vertex AI shape for ``chip`` x ``n_chips`` (``v5p-16`` names its own count)."""
    name, count = _split_named_slice(chip.lower(), n_chips)
    count = 1 if count is None else count
    if name in TPUS:
        return tpu_slice(name, count)
    if name in GPUS:
        return gpu_machine(name, count)
    raise ConfigError(f"unknown accelerator {chip!r} for Vertex AI; use one of {valid_chips()} "
                      "(TPU slices may also be named like v5p-16 or v6e-32)")
