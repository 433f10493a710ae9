#!/usr/bin/env bash
# GPT-2 small (124M), context 1024, bf16, on one GPU (written for an H200): a sweep of batch
# size, remat and attention kernel, ~100 timed steps each; prints tokens/s, MFU (PaLM:
# 6N + 12·L·T·D FLOPs per token against the dense bf16 datasheet peak) and peak memory.
# Installs nothing: it needs the project venv built with a CUDA jax (`uv sync --group cuda12`).
#
#     bash bench/gpu.sh                 # the whole sweep, about 8-10 minutes
#     bash bench/gpu.sh --sweep=16:0:dot_product --steps=50
#
# Extra arguments go to bench/gpu_sweep.py. The output is also written to
# $OUT/gpu_sweep.txt when $OUT is set (else bench/out/gpu_sweep.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v uv >/dev/null 2>&1; then
    PY=(uv run --no-sync --offline python)
elif [ -x .venv/bin/python ]; then
    PY=(.venv/bin/python)
else
    echo "error: neither uv nor .venv/bin/python found; build the project venv with a CUDA jax first (uv sync --group cuda12)." >&2
    exit 2
fi

if ! "${PY[@]}" -c 'import jax, sys; sys.exit(0 if jax.default_backend() == "gpu" else 1)' >/dev/null 2>&1; then
    echo "error: jax in this venv has no GPU backend ($("${PY[@]}" -c 'import jax; print(jax.__version__, jax.default_backend())' 2>/dev/null || echo 'jax not importable')); build the venv with 'uv sync --group cuda12' (jax[cuda12]) before running this script." >&2
    exit 2
fi

out_dir="${OUT:-bench/out}"
mkdir -p "$out_dir"
{
    date -u +"date: %Y-%m-%d %H:%M UTC"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
        | sed 's/^/gpu: /' || true
    "${PY[@]}" -c 'import jax, jaxlib; print("jax", jax.__version__, "jaxlib", jaxlib.__version__, jax.devices())'
    # The sweep stops starting new configurations after 480 s; each runs ~100 steps.
    XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.95}" \
        timeout 590 "${PY[@]}" bench/gpu_sweep.py --steps=100 --budget_s=480 "$@"
} 2>&1 | tee "$out_dir/gpu_sweep.txt"
