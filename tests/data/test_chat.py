"""Tests for theseus.data.chat: the ChatML template and its assistant-only loss mask."""

import fiddle as fdl
import pytest
from fiddle.experimental import serialization

from theseus.data.chat import CHATML_TOKENS, IM_END, IM_START, ChatML
from theseus.data.tiktoken_files import Tiktoken
from theseus.data.tokenizers import ByteLevel, HFTokenizerFile, TrainedBPE

CONVERSATION = [
    {"role": "system", "content": "You are a courtier of Elsinore."},
    {"role": "user", "content": "Who's there?"},
    {"role": "assistant", "content": "Nay, answer me: stand, and unfold yourself."},
    {"role": "user", "content": "Long live the king!"},
    {"role": "assistant", "content": "Bernardo? — He. 🙂"},
]
ANSWERS = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]


def spans(mask):
    """(start, end) of each run of ones."""
    out, start = [], None
    for i, m in enumerate(mask + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    return out


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory):
    texts = ["Who's there? Nay, answer me: stand, and unfold yourself."] * 20
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    TrainedBPE(300).load_or_train(iter(texts), path)
    return path


@pytest.fixture(scope="module", params=["bytes", "gpt2", "cl100k_base", "hf"])
def tok(request, bpe_file):
    """Each backend that can take the markers as special tokens."""
    if request.param == "bytes":
        return ByteLevel(extra_special_tokens=CHATML_TOKENS).load()
    if request.param == "hf":
        return HFTokenizerFile(str(bpe_file), extra_special_tokens=CHATML_TOKENS).load()
    return Tiktoken(request.param, extra_special_tokens=CHATML_TOKENS).load()


def test_mask_covers_assistant_content_and_end_only(tok):
    ids, mask = ChatML().encode(tok, CONVERSATION)
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    start, end = tok.special_tokens[IM_START], tok.special_tokens[IM_END]
    assert ids.count(start) == ids.count(end) == len(CONVERSATION)
    runs = spans(mask)
    assert len(runs) == len(ANSWERS)
    for (a, b), answer in zip(runs, ANSWERS):
        assert ids[a:b] == tok.encode(answer) + [end]
        assert tok.decode(ids[a:b]) == answer
        assert ids[a - len(tok.encode("assistant\n")) - 1] == start  # the turn's opening, unmasked
    assert tok.decode([i for i, m in zip(ids, mask) if not m]) == (
        "system\nYou are a courtier of Elsinore.\nuser\nWho's there?\nassistant\n\n"
        "user\nLong live the king!\nassistant\n\n")


def test_generation_prompt(tok):
    ids, mask = ChatML().encode(tok, CONVERSATION[:2], generation_prompt=True)
    tail = [tok.special_tokens[IM_START]] + tok.encode("assistant\n")
    assert ids[-len(tail):] == tail and not any(mask)


def test_markers_as_text_without_special_tokens():
    tok = ByteLevel().load()
    ids, mask = ChatML().encode(tok, CONVERSATION)
    text = ChatML().render(CONVERSATION)
    assert bytes(ids).decode() == text
    assert text.startswith(f"{IM_START}system\nYou are") and text.endswith(f"🙂{IM_END}\n")
    masked = [bytes(ids[a:b]).decode() for a, b in spans(mask)]
    assert masked == [a + IM_END for a in ANSWERS]


def test_markers_in_content_need_special_tokens():
    bad = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": f"x{IM_END}y"}]
    with pytest.raises(ValueError, match=r"message 1's content contains '<\|im_end\|>'"):
        ChatML().encode(ByteLevel().load(), bad)
    ids, _ = ChatML().encode(ByteLevel(extra_special_tokens=CHATML_TOKENS).load(), bad)
    assert ids.count(258) == 2  # the text in the content is not the marker


def test_only_assistant_messages_are_learned():
    tok = ByteLevel(extra_special_tokens=CHATML_TOKENS).load()
    assert not any(ChatML().encode(tok, CONVERSATION[:2])[1])
    assert ChatML().encode(tok, []) == ([], [])


@pytest.mark.parametrize("messages, match", [
    ("hello", "a conversation is a list"),
    ({"role": "user", "content": "hi"}, "a conversation is a list"),
    ([{"role": "user"}], "message 0 must be a dict with exactly the keys"),
    ([{"role": "user", "content": "hi"}, ("user", "hi")], "message 1 must be a dict"),
    ([{"role": "narrator", "content": "hi"}], r"message 0 has role 'narrator'; the roles are"),
    ([{"role": "user", "content": b"hi"}], "message 0's content must be a str, got bytes"),
])
def test_bad_conversations(messages, match):
    with pytest.raises(ValueError, match=match):
        ChatML().encode(ByteLevel().load(), messages)


def test_template_round_trips_through_fiddle_json():
    cfg = fdl.Config(ChatML, start="<|s|>", end="<|e|>")
    template = fdl.build(serialization.load_json(serialization.dump_json(cfg)))
    assert template == ChatML("<|s|>", "<|e|>")
    assert template.render([{"role": "user", "content": "hi"}]) == "<|s|>user\nhi<|e|>\n"
