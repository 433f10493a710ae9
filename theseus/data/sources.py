"""Sources of documents on local disk: text files, JSON Lines and Parquet, named by globs.

A *source* yields ``(document id, text)`` pairs from ``documents()``, in a fixed order, and
has a ``fingerprint()`` that changes when its content does (here: every file's path, size
and modification time) and a one-line ``describe()``. Sources are frozen dataclasses, so a
config names them like anything else::

    fdl.Config(JsonLines, paths=("data/*.jsonl",), text_field="text")

Ids are ``path`` (a whole file) or ``path:line`` (a line or a paragraph starting there) or
``path:row`` (parquet), so they are stable and unique. Every bad input (a missing file, a
glob that matches nothing, bytes that are not UTF-8, a line that is not JSON, a source with
no documents) raises ``ValueError`` with one sentence naming the place.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import json
import pathlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

GLOB_CHARS = frozenset("*?[")
TEXT_SPLITS = ("file", "paragraph", "line")


def as_tuple(value: Any, where: str) -> tuple[str, ...]:
    """``value`` (one string, or a list or tuple of strings from fiddle) as a non-empty tuple."""
    items = (value,) if isinstance(value, (str, pathlib.PurePath)) else tuple(value or ())
    if not items or not all(isinstance(p, (str, pathlib.PurePath)) and str(p) for p in items):
        raise ValueError(f"{where} must be one or more non-empty paths or glob patterns, "
                         f"got {value!r}.")
    return tuple(str(p) for p in items)


def expand(patterns: Iterable[str]) -> list[pathlib.Path]:
    """The files named by ``patterns`` (globs sorted, ``**`` recursive), each once, in order."""
    files: dict[pathlib.Path, None] = {}
    for pattern in patterns:
        expanded = str(pathlib.Path(pattern).expanduser())
        if GLOB_CHARS & set(expanded):
            matches = sorted(p for p in glob.glob(expanded, recursive=True)
                             if pathlib.Path(p).is_file())
            if not matches:
                raise ValueError(f"the pattern {pattern!r} matches no file; check the path "
                                 f"(relative paths start at {pathlib.Path.cwd()}).")
            files.update((pathlib.Path(p), None) for p in matches)
        elif pathlib.Path(expanded).is_file():
            files[pathlib.Path(expanded)] = None
        elif pathlib.Path(expanded).is_dir():
            raise ValueError(f"{pattern} is a folder; name its files with a glob such as "
                             f"'{pathlib.Path(pattern) / '*'}'.")
        else:
            raise ValueError(f"the file {pattern} does not exist; check the path (relative paths "
                             f"start at {pathlib.Path.cwd()}).")
    return list(files)


def files_fingerprint(kind: str, settings: dict, files: Iterable[pathlib.Path]) -> str:
    """sha256 of a source's kind, settings and every file's absolute path, size and mtime."""
    h = hashlib.sha256(kind.encode() + b"\0")
    h.update(json.dumps(settings, sort_keys=True).encode() + b"\0")
    for path in files:
        st = path.stat()
        h.update(f"{path.absolute()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def decode_utf8(data: bytes, where: str, offset: int = 0) -> str:
    """``data`` as text; bytes that are not UTF-8 raise one sentence naming the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where} is not valid UTF-8 at byte offset {offset + e.start} "
                         f"({data[e.start:e.start + 1]!r}); convert the file to UTF-8.") from None


def nonempty(documents: Iterator[tuple[str, str]], description: str) -> Iterator[tuple[str, str]]:
    """Passes ``documents`` through; raises at the end if there were none."""
    count = 0
    for doc in documents:
        count += 1
        yield doc
    if count == 0:
        raise ValueError(f"the source {description} has no documents; point it at files with text "
                         f"in them.")


def open_binary(path: pathlib.Path) -> IO[bytes]:
    """``path`` opened for reading bytes; ``.gz`` files are decompressed on the fly."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def numbered_lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line of ``path`` (1-based, line end kept), streamed."""
    offset = 0
    with open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            yield number, decode_utf8(raw, f"{path}:{number}", offset)
            offset += len(raw)


def _files_summary(patterns: tuple[str, ...]) -> str:
    return ", ".join(patterns) if len(patterns) <= 3 else f"{', '.join(patterns[:3])}, ..."


@dataclasses.dataclass(frozen=True)
class TextFiles:
    """Plain UTF-8 text files named by paths or globs (``.gz`` is decompressed).

    ``split`` decides what a document is: ``"file"`` (the whole file), ``"paragraph"`` (runs
    of lines separated by blank lines) or ``"line"`` (each non-blank line).
    """

    paths: tuple[str, ...]
    split: str = "file"

    def __post_init__(self):
        object.__setattr__(self, "paths", as_tuple(self.paths, "TextFiles.paths"))
        if self.split not in TEXT_SPLITS:
            raise ValueError(f"TextFiles.split must be one of {', '.join(TEXT_SPLITS)}, "
                             f"got {self.split!r}.")

    def files(self) -> list[pathlib.Path]:
        """The files the patterns name, in order."""
        return expand(self.paths)

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(id, text)``: ``path`` per file, or ``path:line`` per paragraph or line."""
        return nonempty(self._documents(), self.describe())

    def _documents(self) -> Iterator[tuple[str, str]]:
        for path in self.files():
            if self.split == "file":
                with open_binary(path) as f:
                    text = decode_utf8(f.read(), str(path))
                if text.strip():
                    yield str(path), text
            else:
                yield from self._pieces(path)

    def _pieces(self, path: pathlib.Path) -> Iterator[tuple[str, str]]:
        start, lines = 0, []
        for number, line in numbered_lines(path):
            if line.strip() and self.split == "line":
                yield f"{path}:{number}", line.rstrip("\r\n")
            elif line.strip():
                start = start or number
                lines.append(line)
            elif lines:
                yield f"{path}:{start}", "".join(lines).rstrip("\r\n")
                start, lines = 0, []
        if lines:
            yield f"{path}:{start}", "".join(lines).rstrip("\r\n")

    def fingerprint(self) -> str:
        """sha256 of the settings and each file's path, size and modification time."""
        return files_fingerprint("TextFiles", {"split": self.split}, self.files())

    def describe(self) -> str:
        """One line: the patterns and what a document is."""
        return f"text files {_files_summary(self.paths)} (one document per {self.split})"

    def num_documents(self) -> int | None:
        """The number of files when each is one document; otherwise unknown (None)."""
        return len(self.files()) if self.split == "file" else None


@dataclasses.dataclass(frozen=True)
class JsonLines:
    """JSON Lines files (``.jsonl``, or ``.jsonl.gz``): one object per line, its text in
    ``text_field``. Blank lines are skipped. ``as_json=True`` passes the field's value on as
    JSON text whatever it holds: a ``messages`` list for ``Blockwise(chat=ChatML())``."""

    paths: tuple[str, ...]
    text_field: str = "text"
    as_json: bool = False

    def __post_init__(self):
        object.__setattr__(self, "paths", as_tuple(self.paths, "JsonLines.paths"))
        if not self.text_field:
            raise ValueError("JsonLines.text_field must name the field that holds the text.")

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(path:line, text)`` for each line."""
        return nonempty(self._documents(), self.describe())

    def _documents(self) -> Iterator[tuple[str, str]]:
        for path in expand(self.paths):
            for number, line in numbered_lines(path):
                if line.strip():
                    where = f"{path}:{number}"
                    record = parse_json(line, where)
                    if self.as_json:
                        yield where, json.dumps(field_of(record, self.text_field, where))
                    else:
                        yield where, text_of(record, self.text_field, where)

    def fingerprint(self) -> str:
        """sha256 of the text field and each file's path, size and modification time."""
        settings = {"text_field": self.text_field, **({"as_json": True} if self.as_json else {})}
        return files_fingerprint("JsonLines", settings, expand(self.paths))

    def describe(self) -> str:
        """One line: the patterns and the text field."""
        return f"JSON Lines {_files_summary(self.paths)} (field {self.text_field!r})"

    def num_documents(self) -> int | None:
        """Unknown without reading every file: None."""
        return None


def parse_json(line: str, where: str) -> Any:
    """One JSON value; a line that is not JSON raises one sentence naming ``where``."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where} is not valid JSON ({e.msg} at column {e.colno}); each line "
                         f"of a JSON Lines file must be one JSON object.") from None


def field_of(record: Any, field: str, where: str) -> Any:
    """``record[field]``; one sentence naming ``where`` if the record has no such field."""
    if not isinstance(record, dict) or field not in record:
        keys = ", ".join(map(repr, record)) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{where} has no field {field!r} (it has: {keys or 'nothing'}); set "
                         f"text_field to the field that holds the text.")
    return record[field]


def text_of(record: Any, field: str, where: str) -> str:
    """``record[field]`` if it is a string; otherwise one sentence naming ``where``."""
    value = field_of(record, field, where)
    if isinstance(value, bytes):
        return decode_utf8(value, f"{where} field {field!r}")
    if not isinstance(value, str):  # bad data, not a bad call: ValueError, like the rest
        message = (f"{where} field {field!r} is a {type(value).__name__}, not text; set "
                   f"text_field to a field that holds strings (or as_json=True for JSON).")
        raise ValueError(message)  # noqa: TRY004
    return value


@dataclasses.dataclass(frozen=True)
class Parquet:
    """Parquet files; the text is the string (or UTF-8 binary) column ``text_field``.

    Files are read ``batch_size`` rows at a time (never a whole file in memory); null values
    are skipped.
    """

    paths: tuple[str, ...]
    text_field: str = "text"
    batch_size: int = 1024

    def __post_init__(self):
        object.__setattr__(self, "paths", as_tuple(self.paths, "Parquet.paths"))
        if not self.text_field:
            raise ValueError("Parquet.text_field must name the column that holds the text.")
        if self.batch_size < 1:
            raise ValueError(f"Parquet.batch_size must be at least 1, got {self.batch_size}.")

    def _open(self, path: pathlib.Path):
        import pyarrow.parquet as pq

        try:
            f = pq.ParquetFile(path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
            raise ValueError(f"{path} is not a readable parquet file ({e}).") from None
        names = f.schema_arrow.names
        if self.text_field not in names:
            raise ValueError(f"{path} has no column {self.text_field!r} (it has: "
                             f"{', '.join(map(repr, names))}); set text_field to the text column.")
        return f

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(path:row, text)`` for each non-null row (rows count from 0)."""
        return nonempty(self._documents(), self.describe())

    def _documents(self) -> Iterator[tuple[str, str]]:
        for path in expand(self.paths):
            row = 0
            for batch in self._open(path).iter_batches(batch_size=self.batch_size,
                                                       columns=[self.text_field]):
                for value in batch.column(0).to_pylist():
                    if value is not None:
                        where = f"{path}:row {row}"
                        yield f"{path}:{row}", text_of({self.text_field: value},
                                                       self.text_field, where)
                    row += 1

    def fingerprint(self) -> str:
        """sha256 of the column and each file's path, size and modification time."""
        return files_fingerprint("Parquet", {"text_field": self.text_field}, expand(self.paths))

    def describe(self) -> str:
        """One line: the patterns and the text column."""
        return f"parquet {_files_summary(self.paths)} (column {self.text_field!r})"

    def num_documents(self) -> int | None:
        """Rows in all files, from the parquet footers (nulls included)."""
        return sum(self._open(path).metadata.num_rows for path in expand(self.paths))
