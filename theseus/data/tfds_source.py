"""TensorFlow Datasets: a tfds builder over local text, JSON Lines or parquet files, and a
source that reads any tfds builder's split.

::

    Tfds("theseus_text_files", data_dir="/data/tfds",
         files=fdl.Config(JsonLines, paths=("raw/*.jsonl",)))    build over local files, read
    Tfds("my_dataset", data_dir="/data/tfds", text_field="body")  any registered or prepared
                                                                  builder in data_dir

The builder ``theseus_text_files`` turns a theseus file source (``TextFiles``, ``JsonLines``,
``Parquet``) into a tfds dataset with features ``id`` and ``text`` and one split, ``train``,
stored as array_record (random access; read without TensorFlow). Its config is named after
the files' fingerprint, so changed files are prepared afresh in their own folder.
Builders stored as tfrecord are read through tf.data (TensorFlow is imported then).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any, ClassVar

from theseus.data.sources import JsonLines, Parquet, TextFiles, decode_utf8, nonempty

TEXT_FILES = "theseus_text_files"
FileSource = TextFiles | JsonLines | Parquet


@functools.lru_cache(maxsize=1)
def tensorflow_off_gpus() -> Any:
    """TensorFlow, imported on first use and kept off GPUs (JAX owns them)."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow was initialised before us; leave its devices as they are
        pass
    return tf


@functools.lru_cache(maxsize=1)
def text_files_builder_class() -> type:
    """The ``theseus_text_files`` GeneratorBasedBuilder class (defined, and registered with
    tfds, on first use so that importing this module imports neither tfds nor TensorFlow)."""
    import tensorflow_datasets as tfds

    @dataclasses.dataclass
    class TextFilesConfig(tfds.core.BuilderConfig):
        """Names the local files to build from: a theseus file source."""

        source: Any = None

    class TheseusTextFiles(tfds.core.GeneratorBasedBuilder):
        """Documents of local files (a theseus file source) as a tfds dataset."""

        name = TEXT_FILES
        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Documents with their source ids."}
        BUILDER_CONFIG_CLASS = TextFilesConfig

        def _info(self) -> Any:
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict({"id": tfds.features.Text(),
                                                     "text": tfds.features.Text()}),
                description=f"theseus documents of {self.builder_config.source.describe()}",
                disable_shuffling=True)  # keep the source's order

        def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
            del dl_manager  # nothing to download: the files are local
            return {"train": self._generate_examples()}

        def _generate_examples(self) -> Iterator[tuple[str, dict[str, str]]]:
            for doc_id, text in self.builder_config.source.documents():
                yield doc_id, {"id": doc_id, "text": text}

    TheseusTextFiles.Config = TextFilesConfig
    return TheseusTextFiles


def text_files_builder(source: FileSource, data_dir: str | pathlib.Path) -> Any:
    """A ``theseus_text_files`` builder over ``source`` in ``data_dir`` (not yet prepared)."""
    cls = text_files_builder_class()
    config = cls.Config(name=f"files-{source.fingerprint()[:16]}", source=source,
                        description=source.describe())
    return cls(config=config, data_dir=str(data_dir), file_format="array_record")


@dataclasses.dataclass(frozen=True)
class Tfds:
    """The split ``split`` of a tfds builder in ``data_dir``, prepared there if it is not yet;
    the text is the feature ``text_field``.

    ``files`` (a ``TextFiles``, ``JsonLines`` or ``Parquet``) is read by the builder
    ``theseus_text_files``; ``modules`` are imported first (they register builders).
    """

    name: str
    data_dir: str
    split: str = "train"
    text_field: str = "text"
    files: FileSource | None = None
    modules: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "modules", tuple(self.modules))
        if not self.name or not self.data_dir:
            raise ValueError("Tfds needs a builder name and a data_dir to prepare it in.")
        if self.files is not None and self.name != TEXT_FILES:
            raise ValueError(f"Tfds.files is read by the builder {TEXT_FILES!r}; set "
                             f"name={TEXT_FILES!r} or drop files.")
        if self.files is None and self.name == TEXT_FILES:
            raise ValueError(f"the builder {TEXT_FILES!r} needs Tfds.files: the local files to "
                             f"build from (TextFiles, JsonLines or Parquet).")

    def builder(self) -> Any:
        """The tfds builder (registered, or read from its prepared files in ``data_dir``)."""
        import importlib

        import tensorflow_datasets as tfds

        for module in self.modules:
            importlib.import_module(module)
        if self.files is not None:
            return text_files_builder(self.files, self.data_dir)
        try:
            return tfds.builder(self.name, data_dir=self.data_dir)
        except Exception as e:  # noqa: BLE001 - tfds raises DatasetNotFoundError and others
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"no tfds builder {self.name!r} is registered or prepared in "
                             f"{self.data_dir} ({first[:200]}); name the module that defines "
                             f"it in modules=(...).") from None

    def _prepared(self) -> Any:
        builder = self.builder()
        builder.download_and_prepare()
        splits = builder.info.splits
        if self.split not in splits:
            raise ValueError(f"tfds {builder.info.full_name} has no split {self.split!r} (it "
                             f"has: {', '.join(splits)}).")
        features = list(builder.info.features)
        if self.text_field not in features:
            raise ValueError(f"tfds {builder.info.full_name} has no feature {self.text_field!r} "
                             f"(it has: {', '.join(features)}); set text_field.")
        return builder

    def _examples(self, builder: Any) -> Iterator[dict[str, Any]]:
        """Examples in the split's stored order; array_record without TensorFlow."""
        import tensorflow_datasets as tfds

        if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
            source = builder.as_data_source(split=self.split)
            for i in range(len(source)):
                yield source[i]
        else:
            tensorflow_off_gpus()
            yield from tfds.as_numpy(builder.as_dataset(split=self.split, shuffle_files=False))

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(id, text)``: the ``theseus_text_files`` ids, else ``name/split:index``."""
        return nonempty(self._documents(), self.describe())

    def _documents(self) -> Iterator[tuple[str, str]]:
        builder = self._prepared()
        for i, example in enumerate(self._examples(builder)):
            where = f"{self.name}/{self.split}:{i}"
            text = example[self.text_field]
            text = decode_utf8(text, f"tfds example {where}") if isinstance(text, bytes) else str(text)
            if self.files is not None:
                where = decode_utf8(example["id"], f"tfds example {where} id")
            yield where, text

    def fingerprint(self) -> str:
        """sha256 of the builder's full name (name, config, version), split, text feature,
        data folder and, for local files, their fingerprint."""
        builder = self.builder()
        settings = [builder.info.full_name, self.split, self.text_field,
                    str(pathlib.Path(self.data_dir).expanduser().absolute()),
                    self.files.fingerprint() if self.files is not None else ""]
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()

    def describe(self) -> str:
        """One line: the builder, split, folder and feature."""
        files = f" over {self.files.describe()}" if self.files is not None else ""
        return (f"tfds {self.name!r}{files} split {self.split!r} in {self.data_dir} "
                f"(feature {self.text_field!r})")

    def num_documents(self) -> int | None:
        """Examples in the split, once the builder is prepared (None before)."""
        builder = self.builder()
        if not (pathlib.Path(str(builder.data_path)) / "dataset_info.json").exists():
            return None
        splits = builder.info.splits
        return splits[self.split].num_examples if self.split in splits else None
