"""Tests for theseus.data.tfds_source: the local-files builder and reading tfds builders.

tfds is in the optional ``seqio`` dependency group; preparing datasets takes seconds."""

import dataclasses
from typing import ClassVar

import fiddle as fdl
import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from theseus.data.sources import JsonLines, TextFiles
from theseus.data.tfds_source import Tfds, text_files_builder

pytestmark = pytest.mark.slow


class TheseusTestPoems(tfds.core.GeneratorBasedBuilder):
    """Any tfds builder: two splits, the text in a feature named ``body``."""

    VERSION = tfds.core.Version("1.0.0")
    POEMS: ClassVar[dict] = {"train": ["Shall I compare thee", "to a summer's day?"], "test": ["Thou art more"]}

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(
            {"body": tfds.features.Text(), "n": tfds.features.Scalar(dtype=np.int32)}))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.POEMS}

    def _generate_examples(self, split):
        for i, text in enumerate(self.POEMS[split]):
            yield i, {"body": text, "n": i}


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_text_files_builder(tmp_path):
    a = write(tmp_path / "raw" / "a.txt", "first paragraph\n\nsecond paragraph\n")
    b = write(tmp_path / "raw" / "b.txt", "héllo wörld\n")
    files = TextFiles(paths=(str(tmp_path / "raw" / "*.txt"),), split="paragraph")
    config = fdl.Config(Tfds, name="theseus_text_files", data_dir=str(tmp_path / "tfds"),
                        files=fdl.Config(TextFiles, paths=[str(tmp_path / "raw" / "*.txt")],
                                         split="paragraph"))
    source = fdl.build(config)
    assert source.num_documents() is None  # not prepared yet
    docs = list(source.documents())
    assert docs == [(f"{a}:1", "first paragraph"), (f"{a}:3", "second paragraph"),
                    (f"{b}:1", "héllo wörld")] == list(files.documents())
    assert source.num_documents() == 3
    builder = text_files_builder(files, tmp_path / "tfds")
    assert builder.info.full_name.startswith("theseus_text_files/files-")
    assert (tmp_path / "tfds" / builder.info.full_name / "dataset_info.json").exists()
    first = source.fingerprint()
    write(b, "changed\n")
    assert source.fingerprint() != first
    assert [t for _, t in source.documents()][-1] == "changed"  # prepared afresh


def test_jsonl_builder(tmp_path):
    rows = write(tmp_path / "d.jsonl", '{"body": "one"}\n{"body": "two"}\n')
    source = Tfds("theseus_text_files", str(tmp_path / "tfds"),
                  files=JsonLines(paths=(str(rows),), text_field="body"))
    assert list(source.documents()) == [(f"{rows}:1", "one"), (f"{rows}:2", "two")]


def test_any_builder_by_name(tmp_path):
    train = Tfds("theseus_test_poems", str(tmp_path), text_field="body")
    docs = list(train.documents())  # in the stored order, which tfds shuffled by key
    assert [i for i, _ in docs] == ["theseus_test_poems/train:0", "theseus_test_poems/train:1"]
    assert sorted(t for _, t in docs) == ["Shall I compare thee", "to a summer's day?"]
    test = Tfds("theseus_test_poems", str(tmp_path), split="test", text_field="body")
    assert [t for _, t in test.documents()] == ["Thou art more"]
    assert train.fingerprint() != test.fingerprint() and len(train.fingerprint()) == 64
    assert "split 'test'" in test.describe()


def test_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no tfds builder 'theseus_absent_builder' is registered "
                                         r"or prepared in"):
        list(Tfds("theseus_absent_builder", str(tmp_path)).documents())
    with pytest.raises(ValueError, match=r"has no feature 'text' \(it has: body, n\); set text_f"):
        list(Tfds("theseus_test_poems", str(tmp_path)).documents())
    with pytest.raises(ValueError, match=r"has no split 'validation' \(it has: "):
        list(Tfds("theseus_test_poems", str(tmp_path), split="validation",
                  text_field="body").documents())
    with pytest.raises(ValueError, match=r"Tfds.files is read by the builder 'theseus_text_files'"):
        Tfds("theseus_test_poems", str(tmp_path), files=TextFiles(paths=("a.txt",)))
    with pytest.raises(ValueError, match=r"the builder 'theseus_text_files' needs Tfds.files"):
        Tfds("theseus_text_files", str(tmp_path))


def test_missing_files_and_empty_source(tmp_path):
    with pytest.raises(ValueError, match=r"the file .*absent.txt does not exist"):
        list(Tfds("theseus_text_files", str(tmp_path),
                  files=TextFiles(paths=(str(tmp_path / "absent.txt"),))).documents())
    blank = write(tmp_path / "blank.txt", "\n \n")
    with pytest.raises(ValueError, match=r"has no documents"):
        list(Tfds("theseus_text_files", str(tmp_path / "tfds"),
                  files=TextFiles(paths=(str(blank),))).documents())
    assert dataclasses.is_dataclass(Tfds)
