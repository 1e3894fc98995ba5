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


class Batches:
    """Padded batches, reshuffled every epoch; each batch is padded only to its own longest row.

    With `bucket_by_length`, rows are sorted by length (ties in random order) before being cut
    into batches, and the batches are then shuffled, so every batch holds rows of similar length.
    `dataset()` wraps the batches in a tf.data pipeline whose time axis is declared unknown, so
    batches of different lengths never retrace or fail a shape check.
    """

    def __init__(
        self, examples: Sequence[Example], batch_size: int, bucket_by_length: bool = True,
        seed: int = 0, shuffle: bool = True, pad_multiple: int = 1,
    ):
        if not examples:
            raise ValueError("Batches needs at least one example")
        self.examples = list(examples)
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.shuffle = shuffle
        self.pad_multiple = pad_multiple
        self.rng = random.Random(seed)
        self.n_inputs = len(self.examples[0][0])
        self.scored_tokens = sum(int(np.count_nonzero(target)) for _, target in self.examples)

    def plan(self) -> list[list[int]]:
        """One epoch's batches, as lists of example indices (a new order on every call)."""
        order = list(range(len(self.examples)))
        if self.shuffle:
            self.rng.shuffle(order)
        if self.bucket_by_length:
            order.sort(key=lambda i: len(self.examples[i][1]))  # stable: ties keep random order
        batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            self.rng.shuffle(batches)
        return batches

    def __len__(self) -> int:
        return -(-len(self.examples) // self.batch_size)

    def __iter__(self):
        for rows in self.plan():
            yield self.collate(rows)

    def collate(self, rows: Sequence[int]):
        """(inputs, target) arrays for the given example indices."""
        picked = [self.examples[i] for i in rows]
        inputs = [_pad([r[0][k] for r in picked], self.pad_multiple) for k in range(self.n_inputs)]
        target = _pad([r[1] for r in picked], self.pad_multiple)
        return (inputs[0] if self.n_inputs == 1 else tuple(inputs)), target

    def dataset(self):
        import tensorflow as tf

        spec = tf.TensorSpec(shape=(None, None), dtype=tf.int32)  # (batch, time): any length
        inputs = spec if self.n_inputs == 1 else tuple(spec for _ in range(self.n_inputs))
        ds = tf.data.Dataset.from_generator(lambda: iter(self), output_signature=(inputs, spec))
        # The generator runs again at every epoch, so every epoch gets a new batch order.
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(self)))
        return ds.prefetch(tf.data.AUTOTUNE)


def _pad(seqs: Sequence[Sequence[int]], multiple: int = 1) -> np.ndarray:
    # (batch, longest in this batch rounded up to `multiple`), zeros after each row.
    longest = max(len(s) for s in seqs)
    length = -(-longest // multiple) * multiple
    return keras.utils.pad_sequences(seqs, maxlen=length, padding="post", value=0, dtype="int32")
