"""Tests for theseus.data.hf_source: Hugging Face datasets from local files and folders, with
the hub switched off so that nothing reaches the network."""

import json
import os
import re

import datasets
import fiddle as fdl
import huggingface_hub
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from theseus.data.hf_source import HFDataset


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_json_files_streamed_and_converted(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "alpha", "n": 1}, {"text": "béta", "n": 2}])
    write_jsonl(tmp_path / "b.jsonl", [{"text": None, "n": 3}, {"text": "gamma", "n": 4}])
    pattern = str(tmp_path / "*.jsonl")
    config = fdl.Config(HFDataset, name="json", data_files=[pattern], cache_dir=str(tmp_path / "c"))
    source = fdl.build(config)
    assert source.data_files == (pattern,)
    docs = list(source.documents())
    assert docs == [("json/default/train:0", "alpha"), ("json/default/train:1", "béta"),
                    ("json/default/train:3", "gamma")]
    converted = HFDataset("json", data_files=(pattern,), streaming=False, cache_dir=str(tmp_path / "c"))
    assert list(converted.documents()) == docs
    assert converted.num_documents() == 4


def test_parquet_files_and_fingerprint(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"content": ["one", "two", "three"]}), path)
    source = HFDataset("parquet", data_files=(str(path),), text_field="content")
    assert [t for _, t in source.documents()] == ["one", "two", "three"]
    first = source.fingerprint()
    assert len(first) == 64 and first == HFDataset("parquet", data_files=[str(path)],
                                                   text_field="content").fingerprint()
    assert HFDataset("parquet", data_files=(str(path),), text_field="content",
                     revision="abc").fingerprint() != first
    pq.write_table(pa.table({"content": ["one", "two", "three", "four"]}), path)
    assert source.fingerprint() != first


def test_local_folder_of_files(tmp_path):
    folder = tmp_path / "corpus"
    write_jsonl(folder / "train.jsonl", [{"text": "first"}, {"text": "second"}])
    write_jsonl(folder / "test.jsonl", [{"text": "held out"}])
    assert [t for _, t in HFDataset(str(folder)).documents()] == ["first", "second"]
    test = HFDataset(str(folder), split="test")
    assert list(test.documents()) == [(f"{folder}/default/test:0", "held out")]
    assert HFDataset(str(folder)).fingerprint() != test.fingerprint()


def test_folder_written_by_save_to_disk(tmp_path):
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["x", "y"]}),
                               "validation": datasets.Dataset.from_dict({"text": ["z"]})})
    dd.save_to_disk(str(tmp_path / "saved"))
    source = HFDataset(str(tmp_path / "saved"), split="validation")
    assert [t for _, t in source.documents()] == ["z"]
    whole = HFDataset(str(tmp_path / "saved"), streaming=False)
    assert [t for _, t in whole.documents()] == ["x", "y"] and whole.num_documents() == 2


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(ValueError, match=r"the file .*absent.jsonl does not exist"):
        list(HFDataset("json", data_files=(str(tmp_path / "absent.jsonl"),)).documents())
    pattern = str(tmp_path / "*.parquet")
    with pytest.raises(ValueError, match=re.escape(f"the pattern '{pattern}' matches no file")):
        HFDataset("parquet", data_files=(pattern,)).fingerprint()
    with pytest.raises(ValueError, match=r"the dataset folder /absent/folder does not exist"):
        list(HFDataset("/absent/folder").documents())


def test_packaged_builder_needs_files():
    with pytest.raises(ValueError, match=r"HFDataset\(name='json'\) reads local files: name them "
                                         r"in data_files"):
        HFDataset("json")


def test_missing_column(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"body": "x"}])
    path = str(tmp_path / "a.jsonl")
    with pytest.raises(ValueError, match=r"has no column 'text' \(it has: 'body'\); set text_f"):
        list(HFDataset("json", data_files=(path,)).documents())
    with pytest.raises(ValueError, match=r"has no column 'text' \(it has: 'body'\)"):
        list(HFDataset("json", data_files=(path,), streaming=False,
                       cache_dir=str(tmp_path / "c")).documents())


def test_unknown_split_and_hub_dataset_offline(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}])
    with pytest.raises(ValueError, match=r"cannot load the Hugging Face dataset 'json' split "
                                         r"'validation'.*check the name, config, split"):
        list(HFDataset("json", split="validation", data_files=(str(tmp_path / "a.jsonl"),))
             .documents())
    with pytest.raises(ValueError, match=r"cannot load the Hugging Face dataset "
                                         r"'theseus-test/absent-dataset' split 'train'"):
        list(HFDataset("theseus-test/absent-dataset").documents())


def test_empty_source(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"the source 'json' split 'train' .* has no documents"):
        list(HFDataset("json", data_files=(str(tmp_path / "empty.jsonl"),)).documents())


def test_describe():
    text = HFDataset("HuggingFaceFW/fineweb", config="sample-10BT", revision="abc123").describe()
    assert text == "'HuggingFaceFW/fineweb' config 'sample-10BT' split 'train' revision abc123 " \
                   "(column 'text')"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
