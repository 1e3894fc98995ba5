"""Turn pairs into padded batches of token ids, grouped by length so little compute is padding."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import keras
import numpy as np

from chatbot.data import Pair
from chatbot.text import Tokenizer
from chatbot.vocab import Vocabulary

Example = tuple[tuple[list[int], ...], list[int]]  # (input sequences, target sequence)
EncodeFn = Callable[[Sequence[int], Sequence[int], Vocabulary], Example]


def encode_pairs(
    pairs: Sequence[Pair], tokenizer: Tokenizer, vocab: Vocabulary, max_len: int,
    encode_example: EncodeFn,
) -> tuple[list[Example], int]:
    """Examples for an architecture's `encode_example`, and how many sides were truncated."""
    examples, truncated = [], 0
    for pair in pairs:
        prompt, reply = tokenizer.tokenize(pair.prompt), tokenizer.tokenize(pair.reply)
        truncated += (len(prompt) > max_len) + (len(reply) > max_len)
        examples.append(
            encode_example(vocab.encode(prompt[:max_len]), vocab.encode(reply[:max_len]), vocab)
        )
    return examples, truncated


class Batches(keras.utils.PyDataset):
    """Padded batches, reshuffled every epoch; each batch is padded only to its own longest row.

    With `bucket_by_length`, rows are sorted by length (ties in random order) before being cut
    into batches, and the batches are then shuffled, so every batch holds rows of similar length.
    """

    def __init__(
        self, examples: Sequence[Example], batch_size: int, bucket_by_length: bool = True,
        seed: int = 0, shuffle: bool = True,
    ):
        super().__init__()
        if not examples:
            raise ValueError("Batches needs at least one example")
        self.examples = list(examples)
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.shuffle = shuffle
        self.rng = random.Random(seed)
        self.scored_tokens = sum(int(np.count_nonzero(target)) for _, target in self.examples)
        self._plan()

    def _plan(self) -> None:
        order = list(range(len(self.examples)))
        if self.shuffle:
            self.rng.shuffle(order)
        if self.bucket_by_length:
            order.sort(key=lambda i: len(self.examples[i][1]))  # stable: ties keep random order
        self.batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            self.rng.shuffle(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        rows = [self.examples[i] for i in self.batches[index]]
        n_inputs = len(rows[0][0])
        inputs = [_pad([r[0][k] for r in rows]) for k in range(n_inputs)]
        target = _pad([r[1] for r in rows])
        return (inputs[0] if n_inputs == 1 else tuple(inputs)), target

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._plan()


def _pad(seqs: Sequence[Sequence[int]]) -> np.ndarray:
    # (batch, longest in this batch), zeros after each row: post-padding keeps real tokens first.
    return keras.utils.pad_sequences(seqs, padding="post", value=0, dtype="int32")
