"""Hugging Face datasets as a source of documents: by name from the hub (streamed, for fineweb
and the like), or from local files and directories.

::

    HFDataset("HuggingFaceFW/fineweb", config="sample-10BT")      streamed from the hub
    HFDataset("json", data_files=("data/*.jsonl",))              local files, any packaged builder
    HFDataset("/data/my_dataset")                                a folder of data files, or one
                                                                 written by ``save_to_disk``

Documents are ``(name/config/split:row, text)``. The fingerprint covers the name, config,
split, revision, data files and text field, and, for local files and folders, every file's
path, size and modification time. A hub dataset's content can change under the same name:
pin ``revision`` (a commit sha) for a fingerprint that follows it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

from theseus.data.sources import as_tuple, expand, files_fingerprint, nonempty, text_of

PACKAGED = ("json", "parquet", "text", "csv", "arrow", "pandas", "webdataset")


@dataclasses.dataclass(frozen=True)
class HFDataset:
    """One split of a Hugging Face dataset; its text is the string column ``text_field``.

    ``streaming`` reads rows as they arrive instead of downloading and converting the whole
    split first; ``cache_dir`` is where a non-streamed split is converted (datasets' own
    cache by default).
    """

    name: str
    config: str | None = None
    split: str = "train"
    text_field: str = "text"
    streaming: bool = True
    data_files: tuple[str, ...] | None = None
    revision: str | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if not self.name:
            raise ValueError("HFDataset.name must name a dataset (a hub id, a packaged builder "
                             "such as 'json', or a local folder).")
        if self.data_files is not None:
            object.__setattr__(self, "data_files", as_tuple(self.data_files, "HFDataset.data_files"))
        if self.name in PACKAGED and not self.data_files:
            raise ValueError(f"HFDataset(name={self.name!r}) reads local files: name them in "
                             f"data_files.")
        if not self.text_field:
            raise ValueError("HFDataset.text_field must name the column that holds the text.")

    def _local_dir(self) -> pathlib.Path | None:
        """The local folder ``name`` names, if it is one (a path that must exist)."""
        path = pathlib.Path(self.name).expanduser()
        if path.is_dir():
            return path
        if self.name.startswith(("/", "./", "../", "~")):
            raise ValueError(f"the dataset folder {self.name} does not exist; check HFDataset.name.")
        return None

    def _local_files(self) -> list[pathlib.Path]:
        """Local data files (checked: a missing file or empty glob is named), or []."""
        if self.data_files and (self.name in PACKAGED or self._local_dir()):
            base = self._local_dir()
            return expand([str(base / f) if base and not pathlib.Path(f).is_absolute() else f
                           for f in self.data_files])
        folder = self._local_dir()
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder else []

    def load(self) -> Any:
        """The split as a ``datasets`` (Iterable)Dataset."""
        import datasets

        local = self._local_files()  # our sentences for missing local files, before datasets'
        if local and all(f.stat().st_size == 0 for f in local):
            raise ValueError(f"the source {self.describe()} has no documents (its files are "
                             f"empty); point it at files with text in them.")
        folder = self._local_dir()
        try:
            if folder and ((folder / "state.json").exists() or (folder / "dataset_dict.json").exists()):
                ds = datasets.load_from_disk(str(folder))
                ds = ds[self.split] if isinstance(ds, datasets.DatasetDict) else ds
                return ds.to_iterable_dataset() if self.streaming else ds
            return datasets.load_dataset(
                self.name, self.config, split=self.split, streaming=self.streaming,
                data_files=list(self.data_files) if self.data_files else None,
                revision=self.revision, cache_dir=self.cache_dir)
        except Exception as e:  # noqa: BLE001 - datasets raises many kinds; say which, once
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ValueError(f"cannot load the Hugging Face dataset {self.describe()} "
                             f"({type(e).__name__}: {first[:300]}); check the name, config, split "
                             f"and data_files (and the network, unless HF_HUB_OFFLINE=1).") from None

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(name/config/split:row, text)`` in the dataset's order."""
        return nonempty(self._documents(), self.describe())

    def _documents(self) -> Iterator[tuple[str, str]]:
        ds = self.load()
        columns = ds.column_names
        if columns is not None:
            if self.text_field not in columns:
                raise ValueError(f"the Hugging Face dataset {self.describe()} has no column "
                                 f"{self.text_field!r} (it has: {', '.join(map(repr, columns))}); "
                                 f"set text_field to the text column.")
            ds = ds.select_columns([self.text_field])
        prefix = f"{self.name}/{self.config or 'default'}/{self.split}"
        for row, record in enumerate(ds):
            value = record.get(self.text_field) if isinstance(record, dict) else None
            if value is None and isinstance(record, dict) and self.text_field in record:
                continue  # a null text
            yield f"{prefix}:{row}", text_of(record, self.text_field, f"{prefix} row {row}")

    def fingerprint(self) -> str:
        """sha256 of the settings and, for local files and folders, their stats."""
        settings = {"name": self.name, "config": self.config, "split": self.split,
                    "text_field": self.text_field, "revision": self.revision,
                    "data_files": list(self.data_files or ())}
        local = self._local_files()
        if local:
            return files_fingerprint("HFDataset", settings, local)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """One line: the dataset, config, split and text column."""
        config = f" config {self.config!r}" if self.config else ""
        files = f" files {', '.join(self.data_files[:3])}" if self.data_files else ""
        revision = f" revision {self.revision}" if self.revision else ""
        return (f"{self.name!r}{config} split {self.split!r}{files}{revision} "
                f"(column {self.text_field!r})")

    def num_documents(self) -> int | None:
        """Rows in the split when known without reading it (from the dataset's metadata)."""
        import datasets

        if not self.streaming:
            return len(self.load())
        try:
            builder = datasets.load_dataset_builder(
                self.name, self.config, data_files=list(self.data_files) if self.data_files else None,
                revision=self.revision, cache_dir=self.cache_dir)
            splits = builder.info.splits
            return int(splits[self.split].num_examples) if splits and self.split in splits else None
        except Exception:  # noqa: BLE001 - only an ETA depends on it
            return None
