"""Plain text as training examples: what `chatbot pretrain` trains a language model on.

A pretraining run reads any UTF-8 text, no pairs needed. Each non-blank line is a passage; a
passage is cut into windows one token shorter than the longest training sequence of pairs
(`2 * max_len + 1` tokens for single turns: chatbot.text.context), so the transformer's positions
are the same in both steps. A window is one example for a decoder-only architecture's `encode_text`:

    tokens: <SOS> t1 t2 .. tn
    target:  t1   t2 .. tn <EOS>

every token scored: the model learns to predict text, whatever comes next. Its vocabulary (and
sentencepiece model) are made from this text, and `chatbot train --init-from DIR` fine-tunes
the same model on pairs, `<SOS> prompt <SEP> reply`, keeping them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from chatbot.config import RunConfig
from chatbot.errors import ChatbotError
from chatbot.models import arch_module
from chatbot.text.context import longest_sequence
from chatbot.text.tokenizer import train_tokenizer
from chatbot.text.vocab import Vocabulary
from chatbot.text.words import TextTokenizer
from chatbot.training.prepare import DataReport, Prepared, Split, build_vocabulary


def read_text(paths: Sequence[str | Path]) -> list[str]:
    """The non-blank lines of UTF-8 text files, stripped; a file that is missing, not UTF-8 or
    empty is refused with its name (and line)."""
    passages: list[str] = []
    for path in map(Path, paths):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ChatbotError(f"{path}: cannot be read ({exc.strerror or exc}); check the path "
                               "given to --text") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ChatbotError(f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x}); save the "
                               "file as UTF-8 and run again") from None
        found = [line.strip() for line in text.splitlines() if line.strip()]
        if not found:
            raise ChatbotError(f"{path}: holds no text; give --text files with at least one "
                               "non-blank line")
        passages += found
    return passages


def windows(ids: Sequence[int], size: int) -> list[list[int]]:
    """A passage's ids cut into windows of at most `size` (the last one may be shorter)."""
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def prepare_text(config: RunConfig, paths: Sequence[str | Path],
                 vocab: Vocabulary | None = None, tokenizer: TextTokenizer | None = None,
                 passages: list[str] | None = None) -> Prepared:
    """Examples of plain text for `config.model.arch`, split into training and validation
    passages with `config.data.val_fraction` and `config.train.seed`. `passages`: those of
    `paths` as read_text read them already (None: read here)."""
    encode_text = getattr(arch_module(config.model.arch), "encode_text", None)
    if encode_text is None:
        raise ChatbotError(
            f"pretraining reads text with a decoder-only model; {config.model.arch!r} is an "
            "encoder-decoder: use --arch transformer or --arch lstm")
    if passages is None:
        passages = read_text(paths)
    order = list(range(len(passages)))
    random.Random(config.train.seed).shuffle(order)
    held = round(len(order) * config.data.val_fraction)
    val_rows, train_rows = sorted(order[:held]), sorted(order[held:])
    train_text = [passages[i] for i in train_rows]
    if vocab is None:
        tokenizer = train_tokenizer(config.text, train_text)
        vocab, source = build_vocabulary(tokenizer, train_text, config, "the training text")
    elif tokenizer is None:
        raise ValueError("a given vocabulary needs the tokenizer it was made with")
    else:
        source = "given"
    size = longest_sequence(config.data.max_len, config.data.context_turns) - 1
    splits, examples = [], []
    for rows in (train_rows, val_rows):
        encoded, tokens, unknown, cut = [], 0, 0, 0
        for i in rows:
            ids = vocab.encode(tokenizer.tokenize(passages[i]))
            tokens += len(ids)
            unknown += ids.count(vocab.unk_id)
            parts = windows(ids, size)
            cut += len(parts) - 1
            encoded += [encode_text(part, vocab) for part in parts]
        splits.append(Split(len(encoded), cut, tokens, unknown))
        examples.append(encoded)
    report = DataReport(", ".join(map(str, paths)), [], 0, size, len(vocab), source, *splits,
                        text=True)
    return Prepared([], [], vocab, *examples, report, tokenizer)
