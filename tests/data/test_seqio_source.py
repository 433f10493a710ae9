"""Tests for theseus.data.seqio_source: seqio Tasks and Mixtures over local text files, with a
SentencePiece vocabulary trained here. TensorFlow makes these slow; they run in CI."""

import functools
import io
import sys

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

from theseus.data.corpus import Shakespeare
from theseus.data.seqio_source import SeqioData, SeqioTask, TokenStream

pytestmark = pytest.mark.slow

TASK, OTHER, MIXTURE = "theseus_test_lines", "theseus_test_lines_b", "theseus_test_mix"


def lines_to_text(ds):
    """A TextLineDataSource yields bare strings; name them ``text``."""
    return ds.map(lambda line: {"text": line})


def register(name, vocab, train, val):
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name, source=seqio.TextLineDataSource({"train": str(train), "validation": str(val)}),
        preprocessors=[lines_to_text,
                       functools.partial(seqio.preprocessors.rekey, key_map={"targets": "text"}),
                       seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features={"targets": seqio.Feature(vocab, add_eos=True)})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two Tasks over lines of two plays and a Mixture of them; seqio's id conventions."""
    import sentencepiece

    tmp = tmp_path_factory.mktemp("seqio")
    plays = [text for _, text in Shakespeare().documents()][:2]
    lines = [[ln for ln in play.splitlines() if ln.strip()][:400] for play in plays]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines[0]), model_writer=model, vocab_size=400, model_type="bpe",
        byte_fallback=True, num_threads=1, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        minloglevel=2)
    (tmp / "spm.model").write_bytes(model.getvalue())
    vocab = seqio.SentencePieceVocabulary(str(tmp / "spm.model"))
    files = {}
    for name, play in zip((TASK, OTHER), lines):
        files[name] = (tmp / f"{name}.train.txt", tmp / f"{name}.val.txt")
        files[name][0].write_text("\n".join(play[:300]) + "\n")
        files[name][1].write_text("\n".join(play[300:]) + "\n")
        register(name, vocab, *files[name])
    seqio.MixtureRegistry.remove(MIXTURE)
    seqio.MixtureRegistry.add(MIXTURE, [(TASK, 3.0), (OTHER, 1.0)])
    return {"vocab": vocab, "lines": lines, "files": files}


def test_task_text_before_tokenization(setup):
    source = SeqioTask(TASK, split="train", text_feature="targets")
    docs = list(source.documents())
    assert docs == [(f"{TASK}/train:{i}", line) for i, line in enumerate(setup["lines"][0][:300])]
    assert source.fingerprint() == SeqioTask(TASK, "train", "targets").fingerprint()
    assert source.fingerprint() != SeqioTask(TASK, "validation", "targets").fingerprint()
    assert "theseus_test_lines" in source.describe() and source.num_documents() is None
    mixed = [doc_id for doc_id, _ in SeqioTask(MIXTURE, "validation", "targets").documents()]
    assert mixed[0] == f"{TASK}/validation:0" and mixed[-1] == f"{OTHER}/validation:99"
    assert len(mixed) == 200


def test_task_fingerprint_follows_files(setup, tmp_path):
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    train.write_text("one line\n"), val.write_text("another\n")
    register("theseus_test_changing", setup["vocab"], train, val)
    before = SeqioTask("theseus_test_changing", text_feature="targets").fingerprint()
    train.write_text("one line, changed\n")
    assert SeqioTask("theseus_test_changing", text_feature="targets").fingerprint() != before


def test_task_errors(setup):
    with pytest.raises(ValueError, match=r"no seqio Task or Mixture is registered as 'absent_task'"):
        list(SeqioTask("absent_task").documents())
    with pytest.raises(ValueError, match=r"has no split 'test' \(it has: train, validation\)"):
        list(SeqioTask(TASK, split="test", text_feature="targets").documents())
    with pytest.raises(ValueError, match=r"has no text feature 'text' before tokenization "
                                         r"\(it has: targets\)"):
        list(SeqioTask(TASK).documents())


def test_modules_register_tasks(tmp_path, monkeypatch):
    (tmp_path / "theseus_test_tasks.py").write_text(
        "import seqio\n"
        "seqio.TaskRegistry.remove('theseus_test_function_task')\n"
        "seqio.TaskRegistry.add('theseus_test_function_task', source=seqio.FunctionDataSource(\n"
        "    lambda split, shuffle_files: __import__('tensorflow').data.Dataset.from_tensor_slices(\n"
        "        {'text': ['alpha', 'beta']}), splits=['train']),\n"
        "    preprocessors=[], output_features={})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = SeqioTask("theseus_test_function_task", modules=["theseus_test_tasks"])
    assert source.modules == ("theseus_test_tasks",)
    assert list(source.documents()) == [("theseus_test_function_task/train:0", "alpha"),
                                        ("theseus_test_function_task/train:1", "beta")]
    sys.modules.pop("theseus_test_tasks", None)


def expected_stream(setup, lines):
    eos = setup["vocab"].eos_id
    return np.concatenate([[*setup["vocab"].encode(line), eos] for line in lines])


def test_training_feed_windows(setup):
    data = SeqioData(TASK, shuffle=False)
    prepared = data.prepare()
    tok = prepared.tokenizer
    assert (tok.vocab_size, tok.eot_id) == (400, 1) and data.tokenizer.vocab_size == 400
    assert tok.decode(tok.encode("To be, or not")) == "To be, or not"
    stream = expected_stream(setup, setup["lines"][0][:300])
    it = iter(data.train_loader(prepared, seq_len=16, global_batch=4, seed=0))
    for b in range(3):
        batch = next(it)
        assert batch.shape == (4, 17) and batch.dtype == np.int32
        for row in range(4):
            start = (b * 4 + row) * 16
            np.testing.assert_array_equal(batch[row], stream[start:start + 17])
    val = data.val_batches(prepared, seq_len=16, global_batch=4, max_batches=2)
    val_stream = expected_stream(setup, setup["lines"][0][300:])
    assert len(val) == 2
    np.testing.assert_array_equal(val[1][0], val_stream[64:81])


def test_resume_continues_at_the_next_example(setup, tmp_path):
    """Through the real Checkpointer: a restored iterator yields exactly what the original
    would have, across epoch boundaries of the shuffled, repeated stream."""
    import jax
    import jax.numpy as jnp

    from theseus.training.checkpoint import Checkpointer, abstract_like

    for name in (MIXTURE,):  # a Task alone: test_training_resumes_on_the_next_example
        data = SeqioData(name)
        prepared = data.prepare()
        loader = data.train_loader(prepared, seq_len=32, global_batch=8, seed=3)
        it = iter(loader)
        for _ in range(5):
            next(it)
        ckpt = Checkpointer(tmp_path / name, keep=2)
        state = {"w": jnp.zeros(3)}
        ckpt.save(5, state, it)
        ckpt.wait()
        expected = [next(it) for _ in range(12)]  # past the end of an epoch of either Task
        fresh = iter(loader)
        abstract = abstract_like(jax.tree.map(lambda x: x.sharding, state), state)
        ckpt.restore(5, abstract, fresh)
        ckpt.close()
        for want in expected:
            np.testing.assert_array_equal(next(fresh), want)
        assert not np.array_equal(expected[0], next(iter(loader)))


def test_restore_into_other_settings_fails(setup):
    data = SeqioData(TASK)
    prepared = data.prepare()
    state = iter(data.train_loader(prepared, seq_len=16, global_batch=4, seed=0)).get_state()
    other = iter(data.train_loader(prepared, seq_len=16, global_batch=8, seed=0))
    with pytest.raises(ValueError, match=r"belongs to other data or shapes \(rows 4 -> 8\)"):
        other.set_state(state)


def test_training_feed_errors(setup):
    with pytest.raises(ValueError, match=r"has no output feature 'inputs' \(it has: targets\)"):
        SeqioData(TASK, feature="inputs").prepare()
    with pytest.raises(ValueError, match=r"has no split 'test'"):
        SeqioData(TASK, val_split="test").prepare()
    data = SeqioData(TASK)
    with pytest.raises(ValueError, match=r"split 'validation' has fewer than "
                                         r"trainer.batch_size=4096 windows of 33 tokens"):
        data.val_batches(data.prepare(), seq_len=32, global_batch=4096, max_batches=1)


def test_token_stream_positions():
    """The (example, offset) position names the next window's first token exactly."""
    examples = [np.arange(1, 6), np.array([], np.int64), np.arange(10, 13), np.arange(20, 30)]
    stream = TokenStream(iter(examples * 3), seq_len=3, rows=2, eot=0)
    flat = np.concatenate([np.append(e, 0) for e in examples * 3])
    for b in range(4):
        np.testing.assert_array_equal(next(stream), [flat[b * 6:b * 6 + 4], flat[b * 6 + 3:b * 6 + 7]])
        resumed = TokenStream(iter((examples * 3)[stream.example:]), 3, 2, 0, stream.example,
                              stream.offset)
        np.testing.assert_array_equal(next(resumed)[0], flat[(b + 1) * 6:(b + 1) * 6 + 4])


def test_task_written_to_shards(setup, tmp_path):
    """The other way to train on a Task: its raw text through a tokenize job."""
    from theseus.data import shards
    from theseus.data.tokenize_job import tokenize
    from theseus.data.tokenizers import ByteLevel

    out = tokenize(SeqioTask(TASK, text_feature="targets"), ByteLevel(), val_fraction=0.1,
                   out_root=tmp_path, workers=1, progress=False)
    meta = shards.read_meta(out)
    lines = setup["lines"][0][:300]
    splits = meta["splits"]
    assert splits["train"]["documents"] + splits["val"]["documents"] == len(lines)
    total = sum(len(line.encode()) + 1 for line in lines)  # bytes and one end-of-text each
    assert splits["train"]["tokens"] + splits["val"]["tokens"] == total
    assert meta["source"]["fingerprint"] == SeqioTask(TASK, text_feature="targets").fingerprint()


def test_training_resumes_on_the_next_example(setup, tmp_path):
    """Training on a seqio Task, cut back to its step-3 checkpoint and resumed, logs the same
    losses for steps 4-6 as the run that was never interrupted."""
    import shutil

    import fiddle as fdl

    from configs import gpt
    from theseus.training.metrics import read_metrics

    cfg = gpt.tiny()
    cfg.data = fdl.Config(SeqioData, task=TASK)
    for name, value in {"vocab_size": 400, "num_layers": 1, "d_model": 32, "num_heads": 2,
                        "seq_len": 32}.items():
        setattr(cfg.model, name, value)
    for name, value in {"batch_size": 4, "num_steps": 6, "eval_every": 6, "checkpoint_every": 3,
                        "eval_batches": 1, "sample_tokens": 0, "log_every": 1,
                        "progress": False}.items():
        setattr(cfg.trainer, name, value)
    cfg.optimizer.schedule.warmup_steps = 1
    exp = fdl.build(cfg)
    whole = tmp_path / "whole"
    summary = exp.run(whole)
    assert summary["step"] == 6
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    shutil.rmtree(resumed / "checkpoints" / "6")
    assert exp.run(resumed)["step"] == 6
    losses = {d: [(r["step"], r["train/loss"]) for r in read_metrics(d / "metrics.jsonl")
                  if "train/loss" in r] for d in (whole, resumed)}
    assert [step for step, _ in losses[whole]] == [1, 2, 3, 4, 5, 6]
    assert losses[resumed] == losses[whole]
