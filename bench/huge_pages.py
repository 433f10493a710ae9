"""What huge pages for the heap change (``theseus/host_memory.py``), on this machine's CPU.

    uv run --no-sync python bench/huge_pages.py                 # the output head's dots
    uv run --no-sync python bench/huge_pages.py --presets=tiny,small --threads=1

Each measurement runs twice in its own process pinned to the first N cores: with 4 KB pages
(``GLIBC_TUNABLES=glibc.malloc.hugetlb=0``) and with the transparent huge pages that
``launch.py`` gives its heap (``glibc.malloc.hugetlb=1``). It prints the time of each
bfloat16 dot of GPT-2 small's output head (float32 result, as ``model.matmul_precision=
'bfloat16'`` runs it) and, with ``--presets``, the train step of ``bench/train.py``'s
theseus worker (tokens/s, step time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
SHAPES = {  # name: (M, K, N) of [M, K] @ [K, N]
    "square 1024": (1024, 1024, 1024),
    "MLP up, batch 2 x 256": (512, 768, 3072),
    "head forward": (512, 768, 50304),
    "head input gradient": (512, 50304, 768),
    "head table gradient": (50304, 512, 768),
}
PAGES = {"4 KB": "glibc.malloc.hugetlb=0", "2 MB": "glibc.malloc.hugetlb=1"}


def time_dots(repeats: int = 10) -> dict[str, float]:
    """Median milliseconds of each ``SHAPES`` dot (bfloat16 operands, float32 result)."""
    import jax
    import jax.numpy as jnp
    from jax.experimental.layout import Layout, with_layout_constraint

    dot = jax.jit(lambda a, b: with_layout_constraint(
        jnp.dot(a, b, preferred_element_type=jnp.float32), Layout(major_to_minor=(0, 1))))
    key = jax.random.key(0)
    out = {}
    for name, (m, k, n) in SHAPES.items():
        a = jax.random.normal(key, (m, k), jnp.bfloat16)
        b = jax.random.normal(key, (k, n), jnp.bfloat16)
        dot(a, b).block_until_ready()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dot(a, b).block_until_ready()
            times.append(time.perf_counter() - start)
        out[name] = 1e3 * float(np.median(times))
    return out


def in_process(args: list[str], pages: str, threads: int) -> str:
    """Runs ``python args`` pinned to ``threads`` cores with ``pages``, in the environment of
    ``bench/train.py``'s theseus worker; returns its stdout."""
    sys.path.insert(0, BENCH)
    from train import worker_env

    cores = ",".join(str(i) for i in range(threads))
    env = {**worker_env("jax", threads), "GLIBC_TUNABLES": PAGES[pages]}
    proc = subprocess.run(["taskset", "-c", cores, sys.executable, *args], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    """Prints the dot table and, with ``--presets``, the train-step comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="", help="also time bench/train.py's presets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dots_worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dots_worker:
        return print(json.dumps(time_dots()))
    dots = {pages: json.loads(in_process([__file__, "--dots_worker"], pages,
                                         args.threads).splitlines()[-1]) for pages in PAGES}
    print(f"bfloat16 dots, float32 result, {args.threads} thread(s): ms (GFLOP/s)")
    for name, (m, k, n) in SHAPES.items():
        gflops = {pages: 2 * m * k * n / dots[pages][name] / 1e6 for pages in PAGES}
        cells = "  ".join(f"{pages} {dots[pages][name]:7.1f} ({gflops[pages]:4.0f})"
                          for pages in PAGES)
        print(f"  {name:<24} [{m}, {k}] @ [{k}, {n}]  {cells}")
    for preset in filter(None, args.presets.split(",")):
        for pages in PAGES:
            worker = [os.path.join(BENCH, "train.py"), "--worker=jax", f"--preset={preset}",
                      f"--threads_now={args.threads}", "--precision_now=bfloat16"]
            out = in_process(worker, pages, args.threads)
            r = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
            print(f"{preset}, bfloat16, {pages} pages: {r['tokens_per_sec']:,.0f} tokens/s, "
                  f"step {r['step_s'] * 1e3:.1f} ms (data {r['data_s'] * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
