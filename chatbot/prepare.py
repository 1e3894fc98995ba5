"""From a TSV to the examples a model trains on, with a report of every change made on the way.

    read_pairs -> split_pairs -> Vocabulary.build (unless given) -> encode_pairs
                                                 -> noisy copies of the training prompts

The report counts what the data loses before training sees it: bad lines skipped, duplicate
pairs dropped, sides truncated to max_len, and tokens read as <UNK> (too rare for the
vocabulary, or not in it at all), in the training and the validation pairs. `chatbot train`
prints it; `bench/train.py` prepares its data the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatbot.batches import Example, encode_pairs
from chatbot.config import RunConfig
from chatbot.data import Pair, read_pairs, split_pairs
from chatbot.models import arch_module
from chatbot.noise import noisy_copies
from chatbot.text import Tokenizer
from chatbot.vocab import Vocabulary


@dataclass(frozen=True)
class Split:
    """Counts of one side of the split (training or validation)."""

    pairs: int
    truncated: int  # sides (prompts or replies) longer than max_len, cut to it
    tokens: int  # tokens the model reads (after truncation), prompts and replies
    unknown: int  # of those, tokens not in the vocabulary: read as <UNK>


@dataclass(frozen=True)
class DataReport:
    path: str
    bad_lines: list[tuple[int, str]]  # (line, reason) of the lines skipped
    duplicates: int  # exact repeats of an earlier pair, dropped
    max_len: int
    vocab_size: int
    vocab_source: str  # where the vocabulary came from, for the <UNK> line
    train: Split
    validation: Split
    noisy: int = 0  # noisy copies of training prompts added (chatbot.noise)

    def lines(self) -> list[str]:
        """What `chatbot train` prints: one line per kind of change, only those that happened."""
        out = []
        if self.bad_lines:
            line, reason = self.bad_lines[0]
            out.append(f"skipped {len(self.bad_lines)} bad lines of {self.path} "
                       f"(first: line {line}: {reason})")
        if self.duplicates:
            out.append(f"dropped {self.duplicates} duplicate pairs of {self.path} (exact "
                       "repeats of an earlier prompt and reply)")
        out.append(f"{self.train.pairs} training pairs, {self.validation.pairs} validation "
                   f"pairs, vocabulary {self.vocab_size} tokens")
        if self.train.truncated or self.validation.truncated:
            out.append(f"truncated to {self.max_len} tokens: {self._share('truncated', 'sides')}")
        if self.noisy:
            out.append(f"added {self.noisy} noisy copies of the training prompts (typing noise, "
                       "each with its prompt's reply)")
        if self.train.unknown or self.validation.unknown:
            out.append(f"read as <UNK>: {self._share('unknown', 'tokens')}, not in the "
                       f"vocabulary {self.vocab_source}")
        return out

    def _share(self, count: str, unit: str) -> str:
        parts = []
        for name, split in (("training", self.train), ("validation", self.validation)):
            if split.pairs:
                total = split.tokens if unit == "tokens" else 2 * split.pairs
                n = getattr(split, count)
                parts.append(f"{n:,} of {total:,} {name} {unit} ({n / max(1, total):.1%})")
        return " and ".join(parts)


@dataclass(frozen=True)
class Prepared:
    train_pairs: list[Pair]
    val_pairs: list[Pair]
    vocab: Vocabulary
    train_examples: list[Example]
    val_examples: list[Example]
    report: DataReport


def prepare_data(config: RunConfig, data_path: str | Path, vocab: Vocabulary | None = None,
                 vocab_source: str | None = None) -> Prepared:
    """Reads `data_path` as `config.data` says, splits it with `config.train.seed`, builds the
    vocabulary from the training pairs (unless `vocab` is given: `vocab_source` then says
    where it came from), and encodes both splits for `config.model.arch`."""
    loaded = read_pairs(data_path, config.data.on_bad_lines)
    train_pairs, val_pairs = split_pairs(loaded.pairs, config.data.val_fraction, config.train.seed)
    tokenizer = Tokenizer(lowercase=config.text.lowercase)
    if vocab is None:
        vocab = Vocabulary.build(
            (tokenizer.tokenize(text) for p in train_pairs for text in (p.prompt, p.reply)),
            min_count=config.data.min_count, max_size=config.data.max_vocab)
        vocab_source = (f"built from the training pairs (min_count {config.data.min_count}, "
                        f"max_vocab {config.data.max_vocab})")
    encode = arch_module(config.model.arch).encode_example
    max_len = config.data.max_len
    splits, examples = [], []
    for pairs in (train_pairs, val_pairs):
        encoded, truncated = encode_pairs(pairs, tokenizer, vocab, max_len, encode)
        tokens = [t for p in pairs for text in (p.prompt, p.reply)
                  for t in tokenizer.tokenize(text)[:max_len]]
        splits.append(Split(len(pairs), truncated, len(tokens),
                            sum(t not in vocab for t in tokens)))
        examples.append(encoded)
    # Noise after the vocabulary: a typo is as new to the model in training as in the chat.
    words = [w for p in train_pairs for w in p.prompt.split() if w.isalpha()]
    noisy = noisy_copies(train_pairs, config.train.noise_copies, config.train.seed, words)
    examples[0] += encode_pairs(noisy, tokenizer, vocab, max_len, encode)[0]
    report = DataReport(str(data_path), loaded.bad_lines, loaded.duplicates, max_len, len(vocab),
                        vocab_source or "given", *splits, noisy=len(noisy))
    return Prepared(train_pairs, val_pairs, vocab, *examples, report)
