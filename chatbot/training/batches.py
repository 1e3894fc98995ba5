"""Turn pairs into padded batches of token ids, grouped by length so little compute is padding."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from chatbot.data.pairs import Pair
from chatbot.text.context import context_tokens
from chatbot.text.vocab import Vocabulary
from chatbot.text.words import TextTokenizer

Example = tuple[tuple[list[int], ...], list[int]]  # (input sequences, target sequence)
EncodeFn = Callable[[Sequence[int], Sequence[int], Vocabulary], Example]


def encode_pairs(
    pairs: Sequence[Pair], tokenizer: TextTokenizer, vocab: Vocabulary, max_len: int,
    encode_example: EncodeFn, context_turns: int = 1,
) -> tuple[list[Example], int, int]:
    """Examples for an architecture's `encode_example`, how many sides (prompts or replies)
    were truncated to max_len, and how many contexts were cut to fit (chatbot.text.context: with
    `context_turns` above 1 the prompt is the conversation's last turns, joined by <TURN>)."""
    if context_turns > 1 and vocab.turn_id is None:
        raise ValueError("a context model's vocabulary must hold <TURN>")
    examples, truncated, cut = [], 0, 0
    for pair in pairs:
        prompt, shortened = context_tokens([*pair.context, pair.prompt], tokenizer, max_len,
                                           context_turns)
        reply = tokenizer.tokenize(pair.reply)
        truncated += (len(tokenizer.tokenize(pair.prompt)) > max_len) + (len(reply) > max_len)
        cut += shortened
        examples.append(encode_example(vocab.encode(prompt), vocab.encode(reply[:max_len]), vocab))
    return examples, truncated, cut


@dataclass(frozen=True)
class Rotation:
    """Examples seen a few at a time: the last `originals * copies` examples are `copies`
    variants of each of the first `originals` (its copies in a row), and each epoch takes
    `per_epoch` of every original's copies, the next ones in turn. So an epoch holds
    `originals * (1 + per_epoch)` rows, and the copies seen change from epoch to epoch at no
    cost to the epoch (chatbot.training.prepare: the typing noise of the prompts)."""

    originals: int
    copies: int
    per_epoch: int

    def __post_init__(self):
        if not 0 <= self.per_epoch <= self.copies:
            raise ValueError(f"per_epoch must be between 0 and copies ({self.copies}); "
                             f"received {self.per_epoch}")

    def rows(self, epoch: int) -> list[int]:
        """The example indices of 0-based `epoch`: every original, then its copies of the
        epoch."""
        n, k = self.originals, self.copies
        picks = [(epoch * self.per_epoch + j) % k for j in range(self.per_epoch)]
        return [*range(n), *(n + i * k + c for i in range(n) for c in picks)]


class Batches:
    """Padded batches, reshuffled every epoch; each batch is padded only to its own longest row.

    With `bucket_by_length`, rows are sorted by length (ties in random order) before being cut
    into batches, and the batches are then shuffled, so every batch holds rows of similar length.
    `dataset()` gives the same batches as a tf.data pipeline whose time axis is declared unknown,
    so batches of different lengths never retrace or fail a shape check. With a `rotation`, an
    epoch holds the examples it picks (see Rotation), all of them otherwise.
    """

    def __init__(
        self, examples: Sequence[Example], batch_size: int, bucket_by_length: bool = True,
        seed: int = 0, shuffle: bool = True, pad_multiple: int = 1, epoch: int = 0,
        rotation: Rotation | None = None,
    ):
        if not examples:
            raise ValueError("Batches needs at least one example")
        if rotation and rotation.originals * (1 + rotation.copies) != len(examples):
            raise ValueError(f"the rotation needs {rotation.originals} examples and "
                             f"{rotation.copies} copies of each; received {len(examples)} "
                             "examples")
        self.examples = list(examples)
        self.rotation = rotation
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.shuffle = shuffle
        self.pad_multiple = pad_multiple
        self.seed = seed
        self.epoch = epoch  # the 0-based epoch that plan() plans next (a resumed run's first)
        self.n_inputs = len(self.examples[0][0])
        # Of one epoch (on average, with a rotation: its epochs differ a little)
        scored = [int(np.count_nonzero(target)) for _, target in self.examples]
        self.rows = self.rows_per_epoch = len(self.examples)  # rows: the examples given
        self.scored_tokens = sum(scored)
        if rotation:
            n = rotation.originals
            self.rows_per_epoch = n * (1 + rotation.per_epoch)
            self.scored_tokens = sum(scored[:n]) + round(
                sum(scored[n:]) * rotation.per_epoch / rotation.copies)
        # Without shuffling (validation), a step is filled with batches of one row of padding,
        # which scores nothing, rather than with repeats, which would count rows twice.
        self.padding = None if shuffle else len(self.examples)
        if self.padding is not None:
            self.examples.append((((),) * self.n_inputs, ()))  # (inputs, target), empty

    def plan(self, group: int = 1) -> list[list[list[int]]]:
        """One epoch as steps of `group` batches each (lists of example indices), new order
        on every call. With bucketing, the batches of a step hold rows of similar length.

        `group` > 1 is for several workers or devices (see chatbot.training.distribute): each step
        gives one batch to every device, and every device must run the same number of steps, so the
        epoch is padded to a multiple of `group` batches by repeating its first batches, as
        often as it takes: 1 batch on 3 devices is that batch 3 times. Without shuffling
        (validation), by batches of a row of padding instead, so that no row counts twice.
        """
        # Each epoch's order comes from (seed, epoch) alone, not from a generator shared by all
        # epochs: a run resumed at epoch k shuffles as the uninterrupted run did, whatever
        # tf.data had prefetched when it was stopped.
        rng = random.Random(f"{self.seed}:{self.epoch}")
        order = self.rotation.rows(self.epoch) if self.rotation else list(range(self.rows))
        self.epoch += 1
        if self.shuffle:
            rng.shuffle(order)
        if self.bucket_by_length:
            order.sort(key=lambda i: len(self.examples[i][1]))  # stable: ties keep random order
        batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # Cycled, not sliced: 1 batch on 3 devices needs 2 more, and batches[:2] has only one;
        # a device left without a batch would keep the others waiting in the step.
        missing = (-len(batches)) % group
        batches += ([[self.padding]] * missing if self.padding is not None
                    else [batches[i % len(batches)] for i in range(missing)])
        steps = [batches[i: i + group] for i in range(0, len(batches), group)]
        if self.shuffle:
            rng.shuffle(steps)
        return steps

    def __len__(self) -> int:
        return -(-self.rows_per_epoch // self.batch_size)

    def steps(self, devices: int = 1) -> int:
        """Steps in an epoch when every step gives one batch to each of `devices`."""
        return -(-len(self) // devices)

    def __iter__(self):
        return self.iterate()

    def iterate(self, shard: int = 0, shards: int = 1, multiple: int = 1):
        """One epoch of (inputs, target) NumPy batches; with `shards` > 1, worker `shard`'s part.

        Each step holds `shards * multiple` batches: one per device of every worker. They are
        all padded to the same length, so that devices finish a step together.
        """
        for rows, lengths in self.layout(shard, shards, multiple):
            yield self.collate(rows, lengths)

    def layout(self, shard: int = 0, shards: int = 1, multiple: int = 1):
        """One epoch as (example indices, padded lengths [input 0, ..., target]) per batch."""
        for step in self.plan(shards * multiple):
            common = self._longest([i for rows in step for i in rows]) if len(step) > 1 else None
            for rows in step[shard::shards]:
                longest = common or self._longest(rows)
                yield rows, [-(-n // self.pad_multiple) * self.pad_multiple for n in longest]

    def _longest(self, rows: Sequence[int]) -> list[int]:
        """The longest input sequences and target among `rows`: [input 0, ..., target]."""
        picked = [self.examples[i] for i in rows]
        return [max(len(r[0][k]) for r in picked) for k in range(self.n_inputs)] + [
            max(len(r[1]) for r in picked)]

    def collate(self, rows: Sequence[int], lengths: Sequence[int]):
        """(inputs, target) arrays of the given example indices, padded to `lengths`."""
        picked = [self.examples[i] for i in rows]
        inputs = [_pad([r[0][k] for r in picked], lengths[k]) for k in range(self.n_inputs)]
        target = _pad([r[1] for r in picked], lengths[-1])
        return (inputs[0] if self.n_inputs == 1 else tuple(inputs)), target

    def dataset(self, shard: int = 0, shards: int = 1, multiple: int = 1, repeat: bool = False):
        """The batches of `iterate()` as a tf.data pipeline that pads them in TensorFlow.

        Python only plans the epoch (which rows go together, padded to which length); the
        rows are gathered from ragged tensors and padded by parallel map calls outside the
        interpreter, and prefetched, so the next batches are ready while a step runs.

        With `repeat`, epoch after epoch without end, each in a new order: what the training
        loop wants, so that one iterator serves the whole run. (Destroying an iterator of this
        pipeline waits for tf.data's autotuning thread: with a new iterator every epoch, 2 to
        10 s in 9 of 16 epoch changes, measured here.)
        """
        import tensorflow as tf

        columns = [self._ragged(tf, [ex[0][k] for ex in self.examples])
                   for k in range(self.n_inputs)] + [
            self._ragged(tf, [ex[1] for ex in self.examples])]

        def layout():
            for rows, lengths in self.layout(shard, shards, multiple):
                yield np.asarray(rows, dtype=np.int32), np.asarray(lengths, dtype=np.int32)

        def collate(rows, lengths):
            # (batch, lengths[k]) for every column, zeros after each row.
            shapes = tf.cast(tf.stack([tf.fill(tf.shape(lengths), tf.size(rows)), lengths],
                                      axis=1), tf.int64)
            padded = [tf.ensure_shape(tf.gather(column, rows).to_tensor(0, shape=shapes[k]),
                                      (None, None)) for k, column in enumerate(columns)]
            inputs = padded[0] if self.n_inputs == 1 else tuple(padded[:-1])
            return inputs, padded[-1]

        plan = tf.data.Dataset.from_generator(layout, output_signature=(
            tf.TensorSpec((None,), tf.int32), tf.TensorSpec((self.n_inputs + 1,), tf.int32)))
        # The generator runs again at every epoch, so every epoch gets a new batch order.
        batches = self.steps(shards * multiple) * multiple  # this worker's share
        ds = plan.apply(tf.data.experimental.assert_cardinality(batches))
        if repeat:
            ds = ds.repeat()
        ds = ds.map(collate, num_parallel_calls=tf.data.AUTOTUNE)  # in order (deterministic)
        return ds.prefetch(tf.data.AUTOTUNE)

    @staticmethod
    def _ragged(tf, rows: Sequence[Sequence[int]]):
        lengths = [len(row) for row in rows]
        flat = np.fromiter((t for row in rows for t in row), dtype=np.int32, count=sum(lengths))
        return tf.RaggedTensor.from_row_lengths(flat, np.asarray(lengths, dtype=np.int64))

    def distributed(self, strategy, repeat: bool = False):
        """The batches spread over a tf.distribute strategy's workers and devices."""
        def per_worker(context):
            return self.dataset(context.input_pipeline_id, context.num_input_pipelines,
                                context.num_replicas_in_sync // context.num_input_pipelines,
                                repeat)
        return strategy.distribute_datasets_from_function(per_worker)


def _pad(seqs: Sequence[Sequence[int]], length: int) -> np.ndarray:
    import keras  # here: preparing data (chatbot data prepare) needs no TensorFlow

    # (batch, length), zeros after each row.
    return keras.utils.pad_sequences(seqs, maxlen=length, padding="post", value=0, dtype="int32")
