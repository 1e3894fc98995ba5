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

    def plan(self, group: int = 1) -> list[list[list[int]]]:
        """One epoch as steps of `group` batches each (lists of example indices), new order
        on every call. With bucketing, the batches of a step hold rows of similar length.

        `group` > 1 is for several workers or devices (see chatbot.distribute): each step gives
        one batch to every device, and every device must run the same number of steps, so the
        epoch is padded to a multiple of `group` batches by repeating its first batches.
        """
        order = list(range(len(self.examples)))
        if self.shuffle:
            self.rng.shuffle(order)
        if self.bucket_by_length:
            order.sort(key=lambda i: len(self.examples[i][1]))  # stable: ties keep random order
        batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches += batches[: (-len(batches)) % group]
        steps = [batches[i: i + group] for i in range(0, len(batches), group)]
        if self.shuffle:
            self.rng.shuffle(steps)
        return steps

    def __len__(self) -> int:
        return -(-len(self.examples) // self.batch_size)

    def __iter__(self):
        return self.iterate()

    def iterate(self, shard: int = 0, shards: int = 1, multiple: int = 1):
        """One epoch of (inputs, target) batches; with `shards` > 1, worker `shard`'s part.

        Each step holds `shards * multiple` batches: one per device of every worker. They are
        all padded to the same length, so that devices finish a step together (and Keras,
        which combines the first step's batches to build the model, sees equal shapes).
        """
        for step in self.plan(shards * multiple):
            lengths = self._longest([i for rows in step for i in rows]) if len(step) > 1 else None
            for rows in step[shard::shards]:
                yield self.collate(rows, lengths)

    def _longest(self, rows: Sequence[int]) -> list[int]:
        """The longest input sequences and target among `rows`: [input 0, ..., target]."""
        picked = [self.examples[i] for i in rows]
        return [max(len(r[0][k]) for r in picked) for k in range(self.n_inputs)] + [
            max(len(r[1]) for r in picked)]

    def collate(self, rows: Sequence[int], lengths: Sequence[int] | None = None):
        """(inputs, target) arrays for the given example indices; with `lengths`
        ([input 0, ..., target]), padded to at least those lengths."""
        picked = [self.examples[i] for i in rows]
        lengths = lengths or [None] * (self.n_inputs + 1)
        inputs = [_pad([r[0][k] for r in picked], self.pad_multiple, lengths[k])
                  for k in range(self.n_inputs)]
        target = _pad([r[1] for r in picked], self.pad_multiple, lengths[-1])
        return (inputs[0] if self.n_inputs == 1 else tuple(inputs)), target

    def dataset(self, shard: int = 0, shards: int = 1, multiple: int = 1):
        import tensorflow as tf

        spec = tf.TensorSpec(shape=(None, None), dtype=tf.int32)  # (batch, time): any length
        inputs = spec if self.n_inputs == 1 else tuple(spec for _ in range(self.n_inputs))
        ds = tf.data.Dataset.from_generator(lambda: self.iterate(shard, shards, multiple),
                                            output_signature=(inputs, spec))
        # The generator runs again at every epoch, so every epoch gets a new batch order.
        steps = -(-len(self) // (shards * multiple)) * multiple
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
        return ds.prefetch(tf.data.AUTOTUNE)

    def distributed(self, strategy):
        """The batches spread over a tf.distribute strategy's workers and devices."""
        def per_worker(context):
            return self.dataset(context.input_pipeline_id, context.num_input_pipelines,
                                context.num_replicas_in_sync // context.num_input_pipelines)
        return strategy.distribute_datasets_from_function(per_worker)


def _pad(seqs: Sequence[Sequence[int]], multiple: int = 1, longest: int | None = None
         ) -> np.ndarray:
    # (batch, longest in this batch rounded up to `multiple`), zeros after each row.
    longest = max(max(len(s) for s in seqs), longest or 0)
    length = -(-longest // multiple) * multiple
    return keras.utils.pad_sequences(seqs, maxlen=length, padding="post", value=0, dtype="int32")
