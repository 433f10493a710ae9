"""End-of-run report: unigram entropy baseline, loss-curve PNG, summary.json."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from theseus.fileio import atomic_write_text
from theseus.training.metrics import read_metrics


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy in nats of the tokens' own frequency distribution: the loss of the best model
    that ignores context, measured on the very tokens it is evaluated on."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def plot_losses(metrics_path: pathlib.Path, out_png: pathlib.Path) -> None:
    """Train and validation loss against step, as a PNG."""
    import matplotlib  # imported here: it costs half a second of every start-up otherwise

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [(r["step"], r["train/loss"]) for r in rows if r.get("train/loss") is not None]
    val = [(r["step"], r["val/loss"]) for r in rows if r.get("val/loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out_png)


def write_summary(workdir: pathlib.Path, summary: dict[str, Any]) -> None:
    """Writes ``summary.json`` atomically."""
    atomic_write_text(workdir / "summary.json", json.dumps(summary, indent=2) + "\n")


def params_fingerprint(params: Any) -> str:
    """sha256 over every parameter's bytes, in tree order: equal iff bit-identical."""
    import hashlib

    import jax

    h = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(params)):
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()
