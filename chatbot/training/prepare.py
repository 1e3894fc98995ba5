"""From a TSV to the examples a model trains on, with a report of every change made on the way.

    read_pairs -> split_pairs -> tokenizer and Vocabulary (unless given) -> encode_pairs
                                                         -> noisy copies of the training prompts

The report counts what the data loses before training sees it: bad lines skipped, duplicate
pairs dropped, sides truncated to max_len, and tokens read as <UNK> (too rare for the
vocabulary, or not in it at all), in the training and the validation pairs. `chatbot train`
prints it; `bench/train.py` prepares its data the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.config import RunConfig
from chatbot.data.noise import noisy_copies
from chatbot.data.pairs import LoadReport, Pair, read_pairs, split_pairs
from chatbot.errors import ChatbotError
from chatbot.models import arch_module
from chatbot.text.subword import SubwordTokenizer
from chatbot.text.tokenizer import train_tokenizer
from chatbot.text.vocab import SPECIALS, TURN, Vocabulary
from chatbot.text.words import TextTokenizer, Tokenizer
from chatbot.training.batches import Example, Rotation, encode_pairs
from chatbot.training.shards import Manifest


@dataclass(frozen=True)
class Split:
    """Counts of one side of the split (training or validation)."""

    pairs: int
    truncated: int  # sides (prompts or replies) longer than max_len, cut to it
    tokens: int  # tokens the model reads (after truncation), prompts and replies
    unknown: int  # of those, tokens not in the vocabulary: read as <UNK>
    context_cut: int = 0  # contexts whose earlier turns were cut to fit (chatbot.text.context)


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
    noisy: int = 0  # noisy copies of training prompts added (chatbot.data.noise)
    # Plain text (chatbot.training.pretrain_data): `pairs` count windows of at most max_len tokens,
    # and `truncated` the passages cut into several.
    text: bool = False
    conversations: int = 0  # chat JSONL: the conversations the pairs come from
    context_turns: int = 1  # turns read before each reply (chatbot.text.context)
    taught: dict[str, int] = field(default_factory=dict)  # taught pairs folded in, by file
    noisy_per_epoch: int = 0  # of each prompt's noisy copies, those an epoch sees
    streamed: str = ""  # prepared data (chatbot.training.from_shards): where it streams from
    memory_note: str = ""  # prepared data: what the bot's memory keeps of its prompts

    def lines(self) -> list[str]:
        """What `chatbot train` prints: one line per kind of change, only those that happened."""
        out = [f"folded in {n} taught pairs from {path} (training side)"
               for path, n in self.taught.items()]
        if self.bad_lines:
            line, reason = self.bad_lines[0]
            out.append(f"skipped {len(self.bad_lines)} bad lines of {self.path} "
                       f"(first: line {line}: {reason})")
        if self.duplicates:
            out.append(f"dropped {self.duplicates} duplicate pairs of {self.path} (exact "
                       "repeats of an earlier prompt and reply)")
        if self.text:
            cut = self.train.truncated + self.validation.truncated
            out.append(f"{self.train.pairs} training windows of text, {self.validation.pairs} "
                       f"validation windows (at most {self.max_len} tokens each; {cut} long "
                       f"passages cut into several), vocabulary {self.vocab_size} tokens")
        else:
            out.append(f"{self.train.pairs} training pairs, {self.validation.pairs} validation "
                       f"pairs, vocabulary {self.vocab_size} tokens")
        if self.conversations:
            out.append(f"{self.conversations} conversations; each reply reads "
                       + (f"up to {self.context_turns} turns (its prompt and the turns before "
                          f"it, at most {self.context_turns * self.max_len} tokens)"
                          if self.context_turns > 1 else "its prompt only (--context-turns 1)"))
        if self.train.context_cut or self.validation.context_cut:
            out.append(f"contexts cut to {self.context_turns * self.max_len} tokens (the oldest "
                       f"turns first): {self._share('context_cut', 'replies')}")
        if not self.text and (self.train.truncated or self.validation.truncated):
            out.append(f"truncated to {self.max_len} tokens: {self._share('truncated', 'sides')}")
        if self.noisy:
            pool = self.noisy // max(1, self.train.pairs)
            each = (f"; each epoch sees {self.noisy_per_epoch} of every prompt's {pool}, the next "
                    "in turn" if self.noisy_per_epoch < pool else "")
            out.append(f"added {self.noisy} noisy copies of the training prompts (typing noise, "
                       f"each with its prompt's reply{each})")
        if self.streamed:
            out.append(self.streamed)
        if self.memory_note:
            out.append(self.memory_note)
        if self.train.unknown or self.validation.unknown:
            out.append(f"read as <UNK>: {self._share('unknown', 'tokens')}, not in the "
                       f"vocabulary {self.vocab_source}")
        return out

    def _share(self, count: str, unit: str) -> str:
        parts = []
        for name, split in (("training", self.train), ("validation", self.validation)):
            if split.pairs:
                total = {"tokens": split.tokens, "sides": 2 * split.pairs}.get(unit, split.pairs)
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
    tokenizer: TextTokenizer  # the run's (a sentencepiece model is saved in the run directory)
    rotation: Rotation | None = None  # which noisy copies of the prompts each epoch sees
    # Prepared data (chatbot.training.from_shards): the examples stream from these shards, the
    # pairs above are samples to measure with, and the memory holds `memory_pairs`.
    shards: Manifest | None = None
    memory_pairs: list[Pair] | None = None

    def targets(self, max_len: int) -> Iterator[list[int]]:
        """The target ids of the training examples (0: not scored); for prepared data, whose
        examples stream from its shards, those of the replies of its measured sample (each
        reply's tokens, cut to `max_len`, and <EOS>)."""
        if self.train_examples:
            return (target for _, target in self.train_examples)
        return ([*self.vocab.encode(self.tokenizer.tokenize(pair.reply, max_len)),
                 self.vocab.eos_id] for pair in self.train_pairs)


def prepare_data(config: RunConfig, data_path: str | Path, vocab: Vocabulary | None = None,
                 vocab_source: str | None = None, tokenizer: TextTokenizer | None = None,
                 taught: Sequence[str | Path] = (), loaded: LoadReport | None = None
                 ) -> Prepared:
    """Reads `data_path` as `config.data` says, splits it with `config.train.seed`, makes the
    tokenizer and the vocabulary from the training pairs, and encodes both splits for
    `config.model.arch`. A given `vocab` comes with the `tokenizer` it was made with (None: the
    word tokenizer) and `vocab_source`, which says where they came from. The pairs of the
    `taught` files (chat JSONL, chatbot.data.taught) join the training side: what a user
    taught is learned, never held out. `loaded`: the pairs of `data_path` as read_pairs read
    them already with `config.data.on_bad_lines` (None: read here)."""
    if loaded is None:
        loaded = read_pairs(data_path, config.data.on_bad_lines)
    train_pairs, val_pairs = split_pairs(loaded.pairs, config.data.val_fraction, config.train.seed)
    folded = {}
    for path in taught:
        pairs = read_pairs(path, "skip").pairs
        folded[str(path)] = len(pairs)
        train_pairs += pairs
    if vocab is None:
        # A turn that is only ever context (a conversation's opening assistant turn) counts too.
        texts = [text for p in train_pairs for text in (*p.context, p.prompt, p.reply)]
        tokenizer = train_tokenizer(config.text, texts)
        vocab, vocab_source = build_vocabulary(tokenizer, texts, config, "the training pairs")
    elif tokenizer is None:
        if config.text.tokenizer != "word":
            raise ValueError("a given vocabulary needs the tokenizer it was made with")
        tokenizer = Tokenizer(lowercase=config.text.lowercase)
    encode = arch_module(config.model.arch).encode_example
    max_len, turns = config.data.max_len, config.data.context_turns
    if turns > 1 and vocab.turn_id is None:
        raise ChatbotError(f"--context-turns {turns} needs a vocabulary with the turn separator "
                           f"{TURN}; the vocabulary {vocab_source} has none (it was made for "
                           "single turns): train from scratch, or keep --context-turns 1")
    splits, examples = [], []
    for pairs in (train_pairs, val_pairs):
        encoded, truncated, cut = encode_pairs(pairs, tokenizer, vocab, max_len, encode, turns)
        tokens = [t for p in pairs for text in (p.prompt, p.reply)
                  for t in tokenizer.tokenize(text)[:max_len]]
        splits.append(Split(len(pairs), truncated, len(tokens),
                            sum(t not in vocab for t in tokens), cut))
        examples.append(encoded)
    # Noise after the vocabulary: a typo is as new to the model in training as in the chat.
    words = [w for p in train_pairs for w in p.prompt.split() if w.isalpha()]
    rotation = noise_rotation(config, len(train_pairs))
    noisy = noisy_copies(train_pairs, rotation.copies if rotation else 0, config.train.seed,
                         words)
    examples[0] += encode_pairs(noisy, tokenizer, vocab, max_len, encode, turns)[0]
    report = DataReport(str(data_path), loaded.bad_lines, loaded.duplicates, max_len, len(vocab),
                        vocab_source or "given", *splits, noisy=len(noisy),
                        conversations=loaded.conversations, context_turns=turns,
                        taught=folded, noisy_per_epoch=config.train.noise_copies)
    return Prepared(train_pairs, val_pairs, vocab, *examples, report, tokenizer, rotation)


def noise_rotation(config: RunConfig, pairs: int) -> Rotation | None:
    """How the training examples hold the prompts' noisy copies: `noise_pool_size` of each,
    of which each epoch sees `noise_copies`; None without noise."""
    per_epoch = config.train.noise_copies
    if not per_epoch or not pairs:
        return None
    return Rotation(pairs, noise_pool_size(config), per_epoch)


def noise_pool_size(config: RunConfig) -> int:
    """The noisy copies made of every training prompt, in memory or in a prepared corpus's
    stream: `noise_pool`, and at least the `noise_copies` an epoch sees."""
    return max(config.train.noise_pool, config.train.noise_copies)


def build_vocabulary(tokenizer: TextTokenizer, texts: list[str], config: RunConfig,
                     what: str) -> tuple[Vocabulary, str]:
    """A new run's vocabulary, and where it came from: every piece of a sentencepiece model
    (bytes included, so every input is in it), or the words of `texts` (`what` they are)."""
    reserved = (TURN,) if config.data.context_turns > 1 else ()
    if isinstance(tokenizer, SubwordTokenizer):
        text = config.text
        return (Vocabulary([*SPECIALS, *reserved, *tokenizer.pieces]),
                f"of the sentencepiece model ({text.subword_model}, at most "
                f"{text.subword_vocab} pieces) learned from {what}")
    vocab = Vocabulary.build((tokenizer.tokenize(t) for t in texts),
                             min_count=config.data.min_count, max_size=config.data.max_vocab,
                             reserved=reserved)
    return vocab, (f"built from {what} (min_count {config.data.min_count}, "
                   f"max_vocab {config.data.max_vocab})")
