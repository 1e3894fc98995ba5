"""Batches streamed from a prepared corpus's shards (chatbot.training.shards) by tf.data.

The training examples are one endless stream, pass after pass over the shards:

    the worker's own shards, in an order drawn for the pass   (worker k of n: every n-th shard)
    -> records of a few shards at a time (interleave)         -> token numbers to vocabulary
    -> each pass: the originals and their noisy copies        -> a bounded, seeded shuffle
                                                                 (of the whole stream)
    -> batches of similar length (bucket_by_sequence_length)  -> prefetched

The noisy copies are those the shards hold, if `data prepare --noise-copies N` wrote some (the
next `noise_copies` of them in turn, each pass); otherwise they are drawn in the stream
(chatbot.training.stream_noise), as a run in memory has them: `noise_pool` copies of every
prompt, each pass the next `noise_copies` of them in turn.

An epoch is the next `steps` batches of that stream (one pass, unless steps_per_epoch says
fewer), so a run resumed after epoch k skips k epochs of batches and goes on exactly where the
uninterrupted run was: every order is drawn from (seed, pass). Memory is the shuffle buffer and
a few shards' read-ahead, whatever the corpus's size.

Validation is read differently: every worker reads every validation shard and takes every
n-th record of them (at most VALIDATION_MOST in all), so that the workers' shares differ by
one record at most. Each gives the same number of batches an epoch (`steps`), the shorter
share ending on a batch with nothing to score (all padding), so that every validation pair is
measured once: a share that wrapped around would count some twice and, where another share
is longer than `steps`, miss others.

`ShardBatches` offers what chatbot.training.train asks of chatbot.training.batches.Batches:
`steps()`, `dataset()`, `distributed()`, `rows_per_epoch` and `scored_tokens`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from chatbot.errors import ChatbotError
from chatbot.text.vocab import Vocabulary
from chatbot.training.shards import Manifest, check_present, read_remap

SHUFFLE_BUFFER = 20000  # examples: the shuffle's memory, whatever the corpus's size
CYCLE = 4  # shards read at a time
VALIDATION_MOST = 10000  # validation examples measured each epoch (the first ones)
_BOUNDARIES = [8, 12, 16, 24, 32, 48, 64]  # scored tokens: where one length bucket ends
NOISE_STREAMS = 1 << 16  # the noise's seeds: seed * NOISE_STREAMS + slot (noise_pool < 2^16)


class ShardBatches:
    """The batches of one split of a prepared corpus (see the module doc)."""

    def __init__(self, manifest: Manifest, split: str, vocab: Vocabulary, encode: Callable,
                 batch_size: int, seed: int = 0, epoch: int = 0, steps_per_epoch: int = 0,
                 noise_copies: int = 0, bucket_by_length: bool = True, noise=None,
                 noise_pool: int = 0):
        self.files = [str(p) for p in manifest.shards(split)]
        if not self.files:
            raise ChatbotError(f"{manifest.path}: no {split} shards")
        self.manifest, self.split, self.vocab = manifest, split, vocab
        self.batch_size, self.seed, self.epoch = batch_size, seed, epoch
        self.layout = _layout(encode, vocab)
        self.pool = manifest.copies if split == "train" else 0
        self.per_epoch = min(noise_copies, self.pool)
        self.training = split == "train"
        # Copies drawn in the stream, where the shards hold none (`noise`: a StreamNoise): of
        # `noise_pool` per record (at least noise_copies: prepare.noise_pool_size), the next
        # `fresh` in turn each pass (what a run in memory sees: prepare.noise_rotation).
        self.fresh = noise_copies if self.training and not self.pool and noise else 0
        if self.fresh > noise_pool:
            raise ValueError(f"noise_pool {noise_pool} cannot give {self.fresh} copies a pass")
        self.noise, self.noise_pool = noise, noise_pool
        pairs = manifest.pairs[split]
        rows = (pairs * (1 + self.per_epoch + self.fresh) if self.training else
                min(pairs, VALIDATION_MOST))
        self.rows_per_epoch = rows if not (self.training and steps_per_epoch) else (
            steps_per_epoch * batch_size)
        tokens = manifest.raw["reply_tokens"][split] + pairs  # each reply and its end token
        self.scored_tokens = round(tokens / max(1, pairs) * self.rows_per_epoch)
        self.bucket_by_length = bucket_by_length

    def steps(self, devices: int = 1) -> int:
        """Batches of an epoch, per device."""
        return max(1, math.ceil(self.rows_per_epoch / self.batch_size / devices))

    def dataset(self, shard: int = 0, shards: int = 1, multiple: int = 1, repeat: bool = True):
        """This worker's batches (worker `shard` of `shards`), endless when `repeat`; one
        epoch's (validation: its first VALIDATION_MOST examples) otherwise."""
        import tensorflow as tf

        # Training: every n-th shard (too few shards: every worker reads all, and takes every
        # n-th record); validation: every n-th record (see the module doc).
        split_records = len(self.files) < shards or not self.training
        own = self.files if split_records else self.files[shard::shards]
        check_present(own, f"worker {shard} of {shards}" if shards > 1 else self.split)
        remap = read_remap(self.manifest)
        table = tf.constant(remap if remap is not None else np.zeros(0, np.int32))

        def records(files):
            ds = tf.data.Dataset.from_tensor_slices(files).interleave(
                tf.data.TFRecordDataset, cycle_length=min(CYCLE, len(own)), block_length=8)
            if split_records:
                ds = ds.shard(shards, shard)
            return ds.map(lambda r: self._decoded(tf, r, table, remap is not None),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        if not self.training:
            ds = records(tf.constant(own)).take(-(-VALIDATION_MOST // shards))
            ds = self._batch(tf, self._laid_out(tf, ds), bucket=False)
            # ceil(ceil(R / n) / B) = ceil(R / (n B)): no share has more batches than that.
            steps = self.steps(shards * multiple) * multiple
            nothing = tf.nest.map_structure(lambda spec: tf.zeros([1, 1], spec.dtype),
                                            ds.element_spec)
            ds = ds.concatenate(tf.data.Dataset.from_tensors(nothing).repeat()).take(steps)
            return (ds.repeat() if repeat else ds).prefetch(tf.data.AUTOTUNE)

        tables = self.noise.tables(tf) if self.fresh else None

        def one_pass(p):
            order = tf.random.experimental.stateless_shuffle(
                tf.constant(own), seed=tf.stack([tf.constant(self.seed, tf.int64), p]))
            ds = records(order).filter(lambda copy, key, x, y: self._seen(tf, copy, p))
            if self.fresh:
                ds = ds.map(lambda *example: self._with_copies(tf, tables, p, *example),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
            return ds

        # One shuffle of the endless stream, seeded (a seed must be a Python int: a pass's
        # tensor fails where a global seed is set), so its order is the same on every run.
        ds = tf.data.Dataset.range(1 << 40).flat_map(one_pass).shuffle(SHUFFLE_BUFFER,
                                                                       seed=self.seed)
        ds = self._batch(tf, self._laid_out(tf, ds), bucket=self.bucket_by_length)
        # Epoch k starts k epochs of batches into the stream: what an uninterrupted run reads.
        ds = ds.skip(self.epoch * self.steps(shards * multiple) * multiple)
        if not repeat:
            ds = ds.take(self.steps(shards * multiple) * multiple)
        return ds.prefetch(tf.data.AUTOTUNE)

    def distributed(self, strategy, repeat: bool = True):
        """The batches spread over a tf.distribute strategy's workers, each reading its own
        shards (chatbot.training.batches.Batches.distributed does the same in memory)."""
        def per_worker(context):
            return self.dataset(context.input_pipeline_id, context.num_input_pipelines,
                                context.num_replicas_in_sync // context.num_input_pipelines,
                                repeat)
        return strategy.distribute_datasets_from_function(per_worker)

    # --- the pipeline's steps ---------------------------------------------------------------

    def _seen(self, tf, copy, p):
        """Whether pass `p` takes a record: every original, and of each prompt's `pool`
        noisy copies the `per_epoch` next in turn."""
        if not self.per_epoch:
            return tf.equal(copy, 0)
        turn = tf.math.floormod(tf.cast(copy, tf.int64) - 1 - p * self.per_epoch, self.pool)
        return tf.logical_or(tf.equal(copy, 0), turn < self.per_epoch)

    def _decoded(self, tf, record, table, remapped: bool):
        """A record's (copy, key, prompt ids, reply ids), in the vocabulary's numbers; `key` a
        fingerprint of the record, which seeds its noise."""
        values = tf.io.decode_raw(record, tf.int32)
        copy, length = values[0], values[1]
        tokens = tf.gather(table, values[2:]) if remapped else values[2:]
        key = (tf.strings.to_hash_bucket_fast(record, 1 << 62) if self.fresh else
               tf.constant(0, tf.int64))  # only noise drawn in the stream needs it
        return copy, key, tokens[:length], tokens[length:]

    def _with_copies(self, tf, tables, p, copy, key, prompt, reply):
        """A record and `fresh` noisy copies of its prompt, as a batch of 1 + fresh rows
        (unbatched next). The copies of pass `p` are the next `fresh` of the record's
        `noise_pool`: copy slot s is drawn with the seed (seed, s; key), whatever the pass."""
        first = p * self.fresh
        prompts = [prompt] + [
            self.noise.copy(tf, tables, prompt, tf.stack([
                self.seed * NOISE_STREAMS + tf.math.floormod(first + k, self.noise_pool), key]))
            for k in range(self.fresh)]
        rows = 1 + self.fresh
        return (tf.range(rows, dtype=tf.int32), tf.fill([rows], key), tf.ragged.stack(prompts),
                tf.ragged.stack([reply] * rows))

    def _laid_out(self, tf, ds):
        """(inputs, target) of each (copy, key, prompt, reply)."""
        return ds.map(lambda copy, key, prompt, reply: self.layout(tf, prompt, reply),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _batch(self, tf, ds, bucket: bool):
        inputs = [None] if self.layout.inputs == 1 else tuple([None] for _ in range(2))
        shapes = (inputs, [None])
        if not bucket:
            return ds.padded_batch(self.batch_size, padded_shapes=shapes)
        return ds.bucket_by_sequence_length(
            lambda x, y: tf.shape(y)[0], _BOUNDARIES, [self.batch_size] * (len(_BOUNDARIES) + 1),
            padded_shapes=shapes)


class _Layout:
    """An architecture's (inputs, target) of an example, in TensorFlow: decoder-only (one
    input: <SOS> prompt <SEP> reply) or encoder-decoder (the prompt, then <SOS> reply)."""

    def __init__(self, inputs: int, vocab: Vocabulary):
        self.inputs, self.vocab = inputs, vocab

    def __call__(self, tf, prompt, reply):
        v = self.vocab
        end = tf.constant([v.eos_id], tf.int32)
        start = tf.constant([v.sos_id], tf.int32)
        sep = tf.constant([v.sep_id], tf.int32)
        if self.inputs == 1:
            tokens = tf.concat([start, prompt, sep, reply], 0)
            target = tf.concat([tf.zeros_like(prompt), [0], reply, end], 0)
            return tokens, target
        encoder = tf.cond(tf.size(prompt) > 0, lambda: prompt, lambda: sep)
        return (encoder, tf.concat([start, reply], 0)), tf.concat([reply, end], 0)

    def python(self, prompt: list[int], reply: list[int]):
        """The same in Python, to compare with the architecture's encode_example."""
        v = self.vocab
        if self.inputs == 1:
            return ([v.sos_id, *prompt, v.sep_id, *reply],), [0] * (len(prompt) + 1) + [
                *reply, v.eos_id]
        return (list(prompt) or [v.sep_id], [v.sos_id, *reply]), [*reply, v.eos_id]


def _layout(encode: Callable, vocab: Vocabulary) -> _Layout:
    """The layout the architecture's `encode_example` makes, checked on a few examples: a
    new architecture with another layout is refused here, not trained on wrong examples."""
    first = len(vocab.tokens)  # any ids do: the layout only moves them
    probes = [([first, first + 1], [first + 2]), ([], [first + 3, first + 4]), ([first], [])]
    for layout in (_Layout(1, vocab), _Layout(2, vocab)):
        if all(_same(encode(p, r, vocab), layout.python(p, r)) for p, r in probes):
            return layout
    raise ChatbotError("this architecture lays its examples out in a way the shard reader "
                       "does not know; train it from a TSV or JSONL file instead")


def _same(a, b) -> bool:
    return [list(x) for x in a[0]] == [list(x) for x in b[0]] and list(a[1]) == list(b[1])
