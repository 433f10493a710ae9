"""SentencePiece models (``.model`` files, as T5 and Llama 2 ship) as theseus tokenizers.

The end-of-text token is the model's end-of-sentence piece (``</s>``) unless
``SentencePiece(eot=...)`` names another piece. SentencePiece cannot take new special tokens
after training: train the model with ``user_defined_symbols`` (chat markers, say) instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from theseus.data.tokenizers import as_text, digest, existing_file


class SentencePieceTokenizer:
    """A ``sentencepiece.SentencePieceProcessor`` behind theseus's ``Tokenizer`` interface."""

    def __init__(self, model: bytes, where: str, name: str, eot: str = ""):
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(model)
        except (RuntimeError, OSError, TypeError) as e:
            raise ValueError(f"{where} is not a SentencePiece model ({e}).") from None
        self.name = name
        self.vocab_size = self._sp.get_piece_size()
        # Control pieces (<s>, </s>, <pad>) are never produced from text.
        self.special_tokens = {self._sp.id_to_piece(i): i for i in range(self.vocab_size)
                               if self._sp.is_control(i)}
        if eot:
            eot_id = self._sp.piece_to_id(eot)
            if self._sp.id_to_piece(eot_id) != eot:
                raise ValueError(f"SentencePiece model {where} has no piece {eot!r} to end texts "
                                 f"with; name one of its pieces in SentencePiece(eot=...).")
            self.special_tokens[eot] = eot_id
        else:
            eot_id = self._sp.eos_id()
            if eot_id < 0:
                raise ValueError(f"SentencePiece model {where} has no end-of-text token (it was "
                                 f"trained with eos_id=-1); name a piece in SentencePiece(eot=...).")
        self.eot_id = eot_id
        self._identity = digest("sentencepiece", {"eot_id": eot_id}, model)

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of ``text`` (no beginning- or end-of-sentence ids added)."""
        return self._sp.encode(as_text(text), out_type=int, add_bos=False, add_eos=False)

    def encode_batch(self, texts: Sequence[str | bytes]) -> list[list[int]]:
        """Token ids of several texts, encoded on SentencePiece's own threads."""
        return self._sp.encode([as_text(t) for t in texts], out_type=int, add_bos=False,
                               add_eos=False)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens and ids outside the vocabulary are dropped."""
        special = set(self.special_tokens.values())
        return self._sp.decode([int(i) for i in ids
                                if 0 <= int(i) < self.vocab_size and int(i) not in special])

    def fingerprint(self) -> str:
        """sha256 of the model file and the end-of-text id."""
        return self._identity


@dataclasses.dataclass(frozen=True)
class SentencePiece:
    """A trained SentencePiece ``.model`` file; ``eot`` names its end-of-text piece if not
    ``</s>``."""

    path: str
    eot: str = ""

    def _model(self) -> bytes:
        return existing_file(self.path, "SentencePiece model").read_bytes()

    @property
    def name(self) -> str:
        """``spm-`` and the start of the file's sha256: path-safe."""
        return "spm-" + digest("sentencepiece", {"eot": self.eot}, self._model())[:12]

    def load(self) -> SentencePieceTokenizer:
        model = self._model()
        return SentencePieceTokenizer(model, self.path, self.name, self.eot)
