"""The jobs of bench/scale.py that are not a `chatbot` command, each run alone in a child
process through bench/harness.py's worker:

    TokenizeJob   reading and tokenizing alone: the pairs of a file streamed
                  (chatbot.data.stream.stream_pairs) and both sides tokenized with the word
                  tokenizer, nothing else: the baseline `chatbot data prepare` is compared with
    SpeedJob      training steps per second of one pipeline (shards, or examples in memory),
                  with chatbot.training.loop.Loop on the model and batches `chatbot train` makes
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from harness import EpochClock, JobError, cpu_seconds, rss_mib

PIPELINES = ("shards", "memory")


@dataclass(frozen=True)
class TokenizeJob:
    """Streams `path` and tokenizes both sides of every pair, as `chatbot data prepare` reads
    them (its on_bad_lines and lowercase, the default settings), and does nothing else."""

    path: str
    name: str = "tokenize"

    def run(self) -> dict[str, Any]:
        from chatbot.config import RunConfig
        from chatbot.data.stream import stream_pairs
        from chatbot.text.words import Tokenizer

        config = RunConfig()
        tokenizer = Tokenizer(config.text.lowercase)
        pairs = tokens = 0
        for _, pair in stream_pairs([self.path], config.data.on_bad_lines):
            tokens += len(tokenizer.tokenize(pair.prompt)) + len(tokenizer.tokenize(pair.reply))
            pairs += 1
        return {"pairs": pairs, "tokens": tokens}


@dataclass(frozen=True)
class SpeedJob:
    """Steps per second of `chatbot train`'s loop on one pipeline: an epoch of `steps` steps
    to warm up, then `epochs` epochs of `steps` steps each, timed (the median is reported).

    shards: `ShardBatches(...).dataset()` of the prepared directory `prepared`, as
        chatbot.training.train._batches makes it (load_prepared, the config adopting its
        settings);
    memory: `Batches(prepare_data(...).train_examples, ...).dataset(repeat=True)` of the TSV
        `tsv`, as _batches makes it. The same preset, model and batch size on both sides."""

    pipeline: str
    tsv: str
    prepared: str
    preset: str = "tiny"
    steps: int = 200
    epochs: int = 3
    name: str = "speed"

    def run(self) -> dict[str, Any]:
        if self.pipeline not in PIPELINES:
            raise JobError(f"pipeline must be one of {', '.join(PIPELINES)}, received "
                           f"{self.pipeline!r}")
        from chatbot.training.distribute import make_strategy

        strategy = make_strategy("default")  # before any other TensorFlow work
        config, data, batches = self._data()
        loop = self._loop(config, strategy)
        clock, own = EpochClock(f"{self.pipeline}/{self.preset}"), _OwnCpu()
        ready = rss_mib()
        # One iterator for the whole job, as in training: epoch 1 is the warm-up (tracing, the
        # pipeline and its shuffle buffer filling), the others are timed.
        loop.fit(batches.dataset(repeat=True), epochs=1 + self.epochs, steps=self.steps,
                 callbacks=[clock.callback(), own.callback()], verbose=0)
        timed, cpu = clock.seconds[1:], own.seconds[1:]
        rates = [self.steps / s for s in timed]
        return {
            "pipeline": self.pipeline, "preset": self.preset,
            "batch_size": config.train.batch_size, "vocab": len(data.vocab),
            "noise_copies": config.train.noise_copies, "rows_per_epoch": batches.rows_per_epoch,
            "warmup_seconds": round(clock.seconds[0], 2), "timed_steps": self.steps * self.epochs,
            "epoch_seconds": [round(t, 2) for t in timed],
            "steps_per_second": round(statistics.median(rates), 2),
            "steps_per_second_each": [round(r, 2) for r in rates],
            "steps_per_cpu_second": round(statistics.median([self.steps / c for c in cpu]), 2),
            "cpu_seconds_per_epoch": [round(c, 2) for c in cpu],
            "other_cores_busy": [None if o is None else round(o, 2) for o in clock.others[1:]],
            "cpu_seconds_total": round(cpu_seconds()[1], 1),
            "rss_mib_before_training": ready, "rss_mib_end": rss_mib()}

    def _data(self):
        """The run's config, its Prepared data and the training batches, as `chatbot train`
        makes them."""
        from chatbot.config import preset
        from chatbot.models import arch_module
        from chatbot.training.batches import Batches
        from chatbot.training.from_shards import load_prepared
        from chatbot.training.prepare import prepare_data
        from chatbot.training.run_data import run_batches

        config = preset(self.preset)
        options = dict(batch_size=config.train.batch_size,
                       bucket_by_length=config.train.bucket_by_length, seed=config.train.seed)
        if self.pipeline == "shards":
            config.data.path = self.prepared
            data = load_prepared(config, self.prepared, log=lambda line: None)
            batches = run_batches(config, data, 0)[0]  # noise drawn in the stream included
        else:
            config.data.path = self.tsv
            data = prepare_data(config, self.tsv)
            batches = Batches(data.train_examples, epoch=0, rotation=data.rotation, **options)
        config.model.vocab_size = len(data.vocab)
        fit_to_data = getattr(arch_module(config.model.arch), "fit_to_data", None)
        if fit_to_data is not None:
            fit_to_data(config)
        return config, data, batches

    def _loop(self, config, strategy):
        """The model compiled and the loop made as chatbot.training.train does."""
        import keras

        from chatbot.models import arch_module
        from chatbot.models.common import compile_model
        from chatbot.training.loop import Loop

        keras.utils.set_random_seed(config.train.seed)
        with strategy.scope():
            model = arch_module(config.model.arch).build(config.model)
            compile_model(model, config.train, strategy.num_replicas_in_sync)
        return Loop(model, strategy)


class _OwnCpu:
    """This process's CPU seconds (user + system, all its threads: the step and tf.data's
    workers) in each epoch: the work a step costs, steadier than wall time on a shared machine."""

    def __init__(self):
        self.seconds: list[float] = []

    def callback(self):
        import keras

        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: setattr(self, "start", cpu_seconds()[1]),
            on_epoch_end=lambda epoch, logs: self.seconds.append(cpu_seconds()[1] - self.start))
