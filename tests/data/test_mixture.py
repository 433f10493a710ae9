"""Tests for theseus.data.mixture: weighted mixtures of datasets through the grain loader."""

import numpy as np
import pytest

from tests.data.resume_check import assert_resumes_at_the_next_batch
from tests.data.shard_writer import write_blockwise, write_streaming
from theseus.data.mixture import Mixture, MixtureSource
from theseus.data.pipeline import Shards, TokenWindows
from theseus.data.tokenizers import ByteLevel

SEQ, BATCH = 8, 8


def letters(letter: str, n: int) -> list[str]:
    """``n`` documents of one repeated letter: every window of them holds that letter."""
    return [letter * (20 + i % 7) for i in range(n)]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    write_streaming(root / "a", {"train": letters("a", 60), "val": letters("a", 10)})
    write_streaming(root / "b", {"train": letters("b", 15), "val": letters("b", 10)})
    return Shards(path=str(root / "a"), tokenizer=ByteLevel()), \
        Shards(path=str(root / "b"), tokenizer=ByteLevel())


def mixture(parts, weights=(3.0, 1.0), **kw):
    return Mixture(datasets=parts, weights=weights, **kw)


def share_of_a(batches) -> float:
    rows = np.concatenate(batches)
    from_a = (rows == ord("a")).any(axis=1)
    assert not ((rows == ord("b")).any(axis=1) & from_a).any()  # a row comes from one dataset
    return float(from_a.mean())


def test_mixture_proportions(parts):
    mix = mixture(parts)
    prepared = mix.prepare()
    it = iter(mix.train_loader(prepared, SEQ, BATCH, seed=0))
    batches = [next(it) for _ in range(150)]  # 1,200 rows: several epochs of the mixture
    assert share_of_a(batches) == pytest.approx(0.75, abs=0.03)
    other = mixture(parts, weights=(1.0, 4.0))
    it = iter(other.train_loader(other.prepare(), SEQ, BATCH, seed=0))
    assert share_of_a([next(it) for _ in range(150)]) == pytest.approx(0.2, abs=0.03)


def test_one_epoch_reads_every_dataset_whole(parts):
    mix = mixture(parts, weights=(1.0, 1.0))
    prepared = mix.prepare()
    sources = [d.source(p, "train", SEQ) for d, p in zip(mix.datasets, prepared.parts)]
    src = MixtureSource(sources, (1.0, 1.0), cover_all=True)
    assert len(src) == 2 * max(len(s) for s in sources)
    seen = {tuple(src[i]) for i in range(len(src))}
    for s in sources:
        assert {tuple(s[i]) for i in range(len(s))} <= seen


def test_resumed_mixture_continues_at_the_next_batch(parts):
    mix = mixture(parts)
    prepared = mix.prepare()
    assert_resumes_at_the_next_batch(lambda: mix.train_loader(prepared, SEQ, BATCH, seed=5), 7, 4)


def test_validation_mixes_in_order_without_repeats(parts):
    mix = mixture(parts, weights=(1.0, 1.0))
    prepared = mix.prepare()
    a = mix.val_batches(prepared, SEQ, 4, max_batches=100)
    assert len(a) >= 2
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(
        mix.val_batches(prepared, SEQ, 4, max_batches=100)))
    sources = [d.source(p, "val", SEQ) for d, p in zip(mix.datasets, prepared.parts)]
    rows = np.concatenate(a)
    for i, row in enumerate(rows):  # equal weights alternate: a0, b0, a1, b1, ...
        np.testing.assert_array_equal(row, sources[i % 2][i // 2])
    assert len(rows) <= 2 * min(len(s) for s in sources)


def test_mixture_source_repr_is_stable():
    srcs = [TokenWindows(np.arange(50), 4), TokenWindows(np.arange(90), 4)]
    one = MixtureSource(srcs, (1.0, 2.0), cover_all=True)
    two = MixtureSource(srcs, (1.0, 2.0), cover_all=True)
    assert repr(one) == repr(two) and "weights=(1.0, 2.0)" in repr(one)
    assert repr(one) != repr(MixtureSource(srcs, (2.0, 1.0), cover_all=True))


def test_tokenizers_must_agree(tmp_path, parts):
    other = ByteLevel(extra_special_tokens=("<x>",))
    write_streaming(tmp_path / "c", {"train": letters("c", 10), "val": letters("c", 5)}, spec=other)
    mix = mixture((parts[0], Shards(path=str(tmp_path / "c"), tokenizer=other)))
    with pytest.raises(ValueError, match=r"data.datasets\[1\] uses tokenizer .* a mixture needs "
                                         r"one tokenizer"):
        mix.prepare()


def test_styles_must_agree(tmp_path, parts):
    rows = np.full((40, SEQ + 1), ord("c"), dtype=np.uint16)
    write_blockwise(tmp_path / "rows", {"train": rows, "val": rows}, {"train": rows > 0,
                                                                       "val": rows > 0})
    mix = mixture((parts[0], Shards(path=str(tmp_path / "rows"), tokenizer=ByteLevel())))
    with pytest.raises(ValueError, match=r"data.datasets\[1\] gives records of \(loss_mask, "
                                         r"tokens\), but data.datasets\[0\] gives \(tokens\)"):
        mix.train_loader(mix.prepare(), SEQ, BATCH, seed=0)


def test_packed_mixture_gives_dict_batches(parts):
    packed = tuple(Shards(path=p.path, tokenizer=ByteLevel(), packing=True) for p in parts)
    mix = mixture(packed)
    batch = next(iter(mix.train_loader(mix.prepare(), SEQ, BATCH, seed=0)))
    assert set(batch) == {"tokens", "segment_ids", "positions"}
    assert batch["segment_ids"].shape == (BATCH, SEQ + 1)


@pytest.mark.parametrize("kw, message", [
    ({"weights": (1.0,)}, "one weight per dataset"),
    ({"weights": (1.0, 0.0)}, "must all be positive"),
    ({"weights": (1.0, float("nan"))}, "must all be positive"),
    ({"worker_count": -1}, "worker_count must be >= 0"),
])
def test_invalid_mixtures(parts, kw, message):
    with pytest.raises(ValueError, match=message):
        mixture(parts, **kw)


def test_check_names_the_component(parts):
    with pytest.raises(ValueError, match=r"data.datasets\[0\]: model.vocab_size \(100\) is smaller"):
        mixture(parts).check(SEQ, 100)


@pytest.mark.slow
def test_orbax_checkpoint_resumes_a_mixture_read_by_workers(parts, tmp_path):
    """The iterator position saved in the run's orbax checkpoint (a worker process)."""
    import jax
    import jax.numpy as jnp

    from theseus.training.checkpoint import Checkpointer

    mix = mixture(parts, worker_count=1, worker_buffer_size=2)
    prepared = mix.prepare()
    state = {"w": jnp.arange(3.0)}
    it = iter(mix.train_loader(prepared, SEQ, BATCH, seed=2))
    for _ in range(6):
        next(it)
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
    ckpt.save(6, state, it)
    ckpt.close()
    expected = [next(it) for _ in range(3)]
    resumed = iter(mix.train_loader(prepared, SEQ, BATCH, seed=2))
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            state)
    again = Checkpointer(tmp_path / "ckpt", keep=2)
    step, restored = again.restore_newest(abstract, resumed)
    again.close()
    assert step == 6
    np.testing.assert_array_equal(restored["w"], state["w"])
    for want in expected:
        np.testing.assert_array_equal(next(resumed), want)
