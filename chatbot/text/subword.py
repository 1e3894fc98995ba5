"""Subword tokens: a sentencepiece model learned from the training text, saved with the run.

A subword tokenizer keeps frequent words whole and splits rare ones into frequent pieces
("chatbots" -> "▁chat", "bots"; "▁" marks the start of a word), so a vocabulary of a few
thousand pieces covers any text. With `byte_fallback`, a character that has no piece of its
own is written as its UTF-8 bytes (`<0xF0>`, `<0x9F>`, ...), which are pieces too: nothing
anyone types is ever `<UNK>`.

    tokenizer = train_subword(texts, "unigram", 4000, lowercase=True)  # in memory, well under 1 s
    tokenizer.tokenize("你好！")                 # ["▁你好", "！"]
    tokenizer.save(run_dir / TOKENIZER)        # then SubwordTokenizer.load(...) at chat time

The model is the small `sentencepiece` library, no TensorFlow, so the chat loads it quickly.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from chatbot.errors import ChatbotError
from chatbot.rundir import atomic_write_bytes
from chatbot.text.words import normalize

# How sentencepiece is trained; what a run may choose (algorithm, size) is in TextConfig
# (chatbot.text.tokenizer).
_TRAINER = dict(
    byte_fallback=True,  # characters without a piece become byte pieces, never <unk>
    character_coverage=0.9995,  # the rarest 0.05% of characters are left to bytes (Chinese has
    # thousands of characters; a few seen once should not each take a piece)
    normalization_rule_name="identity",  # our normalize() instead: NFKC would turn full-width
    # Chinese punctuation "，" into ASCII ",", and text would not come back as it was written
    hard_vocab_limit=False,  # the size is a maximum: a small corpus gets fewer pieces
    unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,  # the Vocabulary has its own specials
    num_threads=1,  # the same pieces on every machine: training is deterministic
    minloglevel=2,  # no training log on stderr
)
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


class SubwordTokenizer:
    """Turns text into sentencepiece pieces and back; the same interface as text.Tokenizer."""

    def __init__(self, model: bytes, lowercase: bool = True, source: str = "tokenizer"):
        try:
            self._processor = spm.SentencePieceProcessor(model_proto=model)
        except RuntimeError:
            raise ChatbotError(f"{source}: not a sentencepiece model; the file is damaged: "
                               "retrain the model") from None
        self.model = model  # the serialized sentencepiece ModelProto, as saved
        self.lowercase = lowercase
        sp = self._processor
        # Every piece but sentencepiece's own <unk>, in its id order; bytes included.
        self.pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
                       if not (sp.is_control(i) or sp.is_unknown(i))]

    def tokenize(self, text: str, limit: int | None = None) -> list[str]:
        return self._processor.encode(_normalize(text, self.lowercase), out_type=str)[:limit]

    def detokenize(self, tokens: Sequence[str]) -> str:
        # By id: byte pieces join into their characters, "▁" becomes a space.
        return self._processor.decode([self._processor.piece_to_id(t) for t in tokens])

    def token_texts(self, tokens: Sequence[str]) -> list[str]:
        # A byte piece adds nothing until its character's last byte: decoded prefix by prefix
        # (in sentencepiece's C++, for at most a reply's tokens).
        # U+FFFD stands for a character whose bytes have not all come: it waits for them.
        ids = [self._processor.piece_to_id(t) for t in tokens]
        out, before = [], ""
        for end in range(1, len(ids) + 1):
            text = self._processor.decode(ids[:end])
            if end < len(ids):
                text = text.rstrip("\ufffd")
            if not text.startswith(before):  # (never seen: decoding only appends)
                text = before
            out.append(text[len(before):])
            before = text
        return out

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(path, self.model)

    @classmethod
    def load(cls, path: str | Path, lowercase: bool = True) -> SubwordTokenizer:
        path = Path(path)
        try:
            model = path.read_bytes()
        except FileNotFoundError:
            raise ChatbotError(f"{path}: missing; the run directory is incomplete") from None
        except OSError as exc:
            raise ChatbotError(f"{path}: cannot read ({exc.strerror})") from None
        return cls(model, lowercase, source=str(path))


def train_subword(texts: Iterable[str], model_type: str, vocab_size: int,
                  lowercase: bool) -> SubwordTokenizer:
    """A sentencepiece model (`model_type`: "unigram" or "bpe") of at most `vocab_size` pieces
    (bytes included), learned from `texts` after the same normalization as at chat time, in
    memory."""
    sentences = [s for s in (_normalize(t, lowercase) for t in texts) if s]
    if not sentences:
        raise ChatbotError("no text to learn sentencepiece pieces from")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model,
            model_type=model_type, vocab_size=vocab_size, **_TRAINER)
    except RuntimeError as exc:
        too_small = _TOO_SMALL.search(str(exc))
        if too_small:
            size, needed = too_small.groups()
            raise ChatbotError(
                f"subword_vocab {size} is too small for this text: its characters and the "
                f"256 byte pieces alone need {needed}; pass --subword-vocab {needed} or more"
            ) from None
        raise ChatbotError(f"sentencepiece could not learn pieces from this text: {exc}") from None
    return SubwordTokenizer(model.getvalue(), lowercase)


def _normalize(text: str, lowercase: bool) -> str:
    """As the word tokenizer reads text (chatbot.text.words.normalize), and every run of whitespace
    (tabs, the full-width space) one space: sentencepiece takes only " " for a word boundary."""
    return " ".join(normalize(text, lowercase).split())
