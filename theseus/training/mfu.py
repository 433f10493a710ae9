"""Model FLOPs utilisation: achieved training FLOPs over the hardware's peak.

The FLOPs of a step come from ``GPTConfig.flops_per_token`` (6N plus the 12·L·T·D attention
term of PaLM, appendix B). The peak is a datasheet figure for known accelerators (dense
bf16) and, on CPU, measured at start-up with a float32 matmul, since CPUs have no datasheet
number that XLA reaches.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

# Dense bf16 peak FLOP/s per chip, from the vendors' datasheets.
DATASHEET_PEAK = {
    "H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12,
    "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}


def measure_matmul_peak(n: int = 1024, repeats: int = 5, precision: str = "float32") -> float:
    """FLOP/s of the best of ``repeats`` ``n x n`` matmuls on the default device: float32,
    or (``precision='bfloat16'``) bfloat16 operands summed in float32, the matmuls of
    ``model.matmul_precision='bfloat16'`` (on AMX CPUs about 5x the float32 figure)."""
    dtype = jnp.bfloat16 if precision == "bfloat16" else jnp.float32
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: jnp.dot(x, x, preferred_element_type=jnp.float32))
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best


def peak_flops(matmul_precision: str = "float32") -> tuple[float, str]:
    """Peak FLOP/s of all local devices together, and where the figure comes from. On CPU
    it is measured at the model's ``matmul_precision``."""
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        name = "bf16 x bf16 -> f32" if matmul_precision == "bfloat16" else "f32"
        return (measure_matmul_peak(precision=matmul_precision),
                f"measured {name} matmul on the CPU")
    for name, flops in DATASHEET_PEAK.items():
        if name.lower() in device.device_kind.lower():
            return flops * jax.local_device_count(), f"datasheet bf16 ({device.device_kind})"
    return float("nan"), f"unknown peak for {device.device_kind}"


def mfu(tokens_per_sec: float, flops_per_token: float, peak: float) -> float:
    """Achieved model FLOP/s as a fraction of the peak."""
    return tokens_per_sec * flops_per_token / peak
