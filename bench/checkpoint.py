"""How long an asynchronous checkpoint save blocks the training loop, and restore time.

    uv run python bench/checkpoint.py            # tiny and a GPT-2-small-shaped (124M) model

For each model: the median train step time, the median time ``Checkpointer.save`` blocks
(the device-to-host copy; the write continues in the background), that as a fraction of a
step, the time until the save is committed, and the time to restore it.
Goal: a save blocks for less than 10% of one step.
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import tempfile
import time

import jax
import numpy as np
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
flags.FLAGS.mark_as_parsed()

from theseus.models.gpt import GPTConfig  # noqa: E402
from theseus.training import sharding  # noqa: E402
from theseus.training.checkpoint import Checkpointer  # noqa: E402
from theseus.training.optimizer import AdamW  # noqa: E402
from theseus.training.state import StateFactory  # noqa: E402
from theseus.training.train_step import make_train_step  # noqa: E402

MODELS = {
    "tiny": (GPTConfig(vocab_size=2048, seq_len=128, num_layers=4, d_model=128, num_heads=4), 16),
    "gpt2-small (124M)": (GPTConfig(vocab_size=50304, seq_len=256, num_layers=12, d_model=768,
                                    num_heads=12), 4),
}


class _FakeIterator:
    """Stands in for the grain iterator: the checkpoint's data item is a few hundred bytes."""

    def __init__(self, loader):
        self._it = iter(loader)

    def __getattr__(self, name):
        return getattr(self._it, name)


def bench(name: str, model: GPTConfig, batch: int, steps: int = 3) -> None:
    """Prints step, save-blocking, commit and restore times for one model."""
    import grain

    mesh = sharding.make_mesh()
    opt = AdamW()
    factory = StateFactory(model, opt.make(100), 0, mesh)
    state = factory.init()
    step_fn = jax.jit(make_train_step(factory.graphdef, opt.make(100),
                                      opt.schedule.make(opt.learning_rate, 100), 0, False),
                      donate_argnums=0)
    tokens = sharding.global_batch(np.zeros((batch, model.seq_len + 1), np.int32), mesh)
    state, m = step_fn(state, tokens)
    jax.block_until_ready(m)
    step_times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, m = step_fn(state, tokens)
        jax.block_until_ready(m)
        step_times.append(time.perf_counter() - t)
    loader = grain.DataLoader(data_source=grain.sources.RangeDataSource(0, 1000, 1),
                              sampler=grain.samplers.IndexSampler(1000, seed=0))
    it = iter(loader)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Checkpointer(pathlib.Path(tmp), keep=2)
        blocked, committed = [], []
        for i in range(steps):
            t = time.perf_counter()
            blocked.append(ckpt.save(i + 1, state, it))
            ckpt.wait()
            committed.append(time.perf_counter() - t)
        t = time.perf_counter()
        restored = ckpt.restore(steps, factory.abstract, iter(loader))
        jax.block_until_ready(restored)
        restore_s = time.perf_counter() - t
        ckpt.close()
    step_s, block_s = statistics.median(step_times), statistics.median(blocked)
    n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    print(f"{name}: {n_params / 1e6:.1f}M params, batch {batch}x{model.seq_len}: "
          f"step {step_s * 1e3:.1f} ms; save blocks {block_s * 1e3:.1f} ms "
          f"= {block_s / step_s:.1%} of a step; committed after {statistics.median(committed):.2f} s; "
          f"restore {restore_s:.2f} s")


def main() -> None:
    """Benchmarks every model in ``MODELS`` on the default devices."""
    print(f"devices: {jax.devices()}")
    for name, (model, batch) in MODELS.items():
        bench(name, model, batch)


if __name__ == "__main__":
    main()
