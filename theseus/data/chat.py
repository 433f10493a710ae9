"""Chat conversations as token ids with a loss mask on the assistant's words only.

A conversation is a list of ``{"role": "system" | "user" | "assistant", "content": str}``.
``ChatML`` renders each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` and returns
``(ids, loss_mask)``: the mask is 1 on the tokens of each assistant message's content and its
``<|im_end|>``, so the model learns to answer and to stop, and 0 on everything else.

The markers are single special tokens where the tokenizer has them: ask for them with
``extra_special_tokens=CHATML_TOKENS`` in its spec (``Tiktoken``, ``HFTokenizerFile``,
``ByteLevel``). Otherwise they are encoded as text, and then no message may contain them.
Each piece (marker, role line, content) is encoded on its own, so that the mask is exact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from theseus.data.tokenizers import Tokenizer

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML_TOKENS = (IM_START, IM_END)
ROLES = ("system", "user", "assistant")


def check_messages(messages: Sequence[Mapping[str, str]]) -> None:
    """Raises one sentence on the first message that is not a ``{role, content}`` dict."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ValueError(f"a conversation is a list of {{'role', 'content'}} dicts, got "  # noqa: TRY004
                         f"{type(messages).__name__}.")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or set(m) != {"role", "content"}:
            raise ValueError(f"message {i} must be a dict with exactly the keys 'role' and "
                             f"'content', got {m!r:.80}.")
        if m["role"] not in ROLES:
            raise ValueError(f"message {i} has role {m['role']!r}; the roles are {list(ROLES)}.")
        if not isinstance(m["content"], str):
            raise ValueError(f"message {i}'s content must be a str, got "  # noqa: TRY004
                             f"{type(m['content']).__name__}.")


@dataclasses.dataclass(frozen=True)
class ChatML:
    """The ChatML template: ``<|im_start|>role\\ncontent<|im_end|>\\n`` per message."""

    start: str = IM_START
    end: str = IM_END

    def render(self, messages: Sequence[Mapping[str, str]], generation_prompt: bool = False) -> str:
        """The conversation as text (what ``encode`` tokenizes, piece by piece)."""
        check_messages(messages)
        text = "".join(f"{self.start}{m['role']}\n{m['content']}{self.end}\n" for m in messages)
        return text + (f"{self.start}assistant\n" if generation_prompt else "")

    def _marker(self, tokenizer: Tokenizer, marker: str) -> list[int]:
        if marker in tokenizer.special_tokens:
            return [tokenizer.special_tokens[marker]]
        return tokenizer.encode(marker)

    def encode(self, tokenizer: Tokenizer, messages: Sequence[Mapping[str, str]],
               generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """``(ids, loss_mask)`` of the conversation; ``generation_prompt`` appends the opening
        of an assistant turn (for sampling), unmasked."""
        check_messages(messages)
        as_text = [mk for mk in (self.start, self.end) if mk not in tokenizer.special_tokens]
        for i, m in enumerate(messages):
            for mk in as_text:
                if mk in m["content"]:
                    raise ValueError(f"message {i}'s content contains {mk!r}, which this tokenizer "
                                     f"cannot tell from the template's marker; add the markers to "
                                     f"it with extra_special_tokens=chat.CHATML_TOKENS.")
        start, end = self._marker(tokenizer, self.start), self._marker(tokenizer, self.end)
        newline = tokenizer.encode("\n")
        ids: list[int] = []
        mask: list[int] = []

        def add(piece: list[int], learn: bool) -> None:
            ids.extend(piece)
            mask.extend([int(learn)] * len(piece))

        for m in messages:
            learn = m["role"] == "assistant"
            add(start + tokenizer.encode(m["role"] + "\n"), False)
            add(tokenizer.encode(m["content"]) + end, learn)
            add(newline, False)
        if generation_prompt:
            add(start + tokenizer.encode("assistant\n"), False)
        return ids, mask
