"""Training speed of the transformer: `chatbot train`'s loop against a plain Keras fit() in the
style of keras-io's "English-to-Spanish translation with a sequence-to-sequence Transformer".

Both train the same Keras model (chatbot.models.transformer.build with the transformer preset:
the same layers, sizes and initial weights) on the same examples
(chatbot.training.prepare.prepare_data with the preset: the run's training split with its noisy
copies), with the same optimizer (compile_model: Adam, clipnorm) and batch size, and both minimize
the same loss, the mean cross-entropy per scored token (reply tokens and <EOS>). What differs
(`PIPELINES`):

    ours     chatbot.training.batches.Batches: rows of similar length batched together, each
             batch padded to its own longest row; chatbot.training.loop.Loop: the output layer
             (Dense over the whole vocabulary, and its softmax) only at the scored positions
    fit      every row padded to the longest training row, one array; model.fit(x, target,
             shuffle=True) with the model's compiled loss, SparseCategoricalCrossentropy(
             from_logits=True, ignore_class=0) (keras-io's masked sparse cross-entropy, computed
             on logits rather than after a softmax layer): the output layer and its softmax at
             every position, padding included, and the MaskedAccuracy metric

After every epoch, outside its time, both are scored alike: chatbot train's loss (Loop.evaluate,
mean cross-entropy per scored token) on fixed batches of all the training examples, so that
what an epoch of each taught the model compares as well as how long it took.

FLOPs (`flops`), matmuls only, forward + backward = 3 x forward, with d the model width, f the
feed-forward width, L the blocks, V the vocabulary:

    weights     2 x (L (4 d^2 + 2 d f)) per position: Q, K, V and output projections and the
                two feed-forward layers (6 x these parameters x positions, forward + backward)
    attention   causal, per block: position i scores i+1 keys and sums i+1 values,
                4 d (i+1) forward; 2 d n (n+1) for a sequence of n positions
    output      2 d V per position whose logits are computed

"model" FLOPs are what the task needs, the same for both pipelines: weights and causal
attention over each example's real positions, the output layer at its scored positions.
"executed" FLOPs are what a pipeline runs: every padded position, the full square of attention
scores that keras.layers.MultiHeadAttention computes before masking (4 d T^2 per row and block
for a batch padded to T), and the output layer where the pipeline computes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness import EpochClock, rss_mib
from pipelines import ValidationLoss

PIPELINES = {
    "ours": "chatbot train: length-bucketed Batches, chatbot.training.loop.Loop with the output "
            "layer at scored positions only",
    "fit": "keras-io style: every row padded to the longest training row, model.fit() with "
           "SparseCategoricalCrossentropy(from_logits=True, ignore_class=0) and the output "
           "layer (full softmax) at every position",
}


@dataclass(frozen=True)
class SpeedJob:
    """One pipeline training the transformer preset on `data` for `epochs` epochs."""

    data: str  # TSV; the run's training split (and its noisy copies) is trained on
    pipeline: str  # a key of PIPELINES
    epochs: int = 3  # epoch 1 (tracing) is left out of the speed
    examples: int = 0  # train on the first this many examples (0: all), for smoke runs
    score: bool = True  # after every epoch, outside its time: the loss on all training examples
    preset: str = "transformer"
    seed: int = 1234
    name: str = ""

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ValueError(f"unknown pipeline {self.pipeline!r}; choose one of: "
                             f"{', '.join(PIPELINES)}")
        if self.epochs < 2:
            raise ValueError(f"epochs must be at least 2 (epoch 1 traces), received "
                             f"{self.epochs}")

    def run(self) -> dict[str, Any]:
        """Seconds per epoch, losses, and the positions and FLOPs of one epoch."""
        import keras
        import numpy as np
        import tensorflow as tf

        from chatbot.config import preset
        from chatbot.models import transformer
        from chatbot.models.common import compile_model
        from chatbot.training.batches import Batches
        from chatbot.training.loop import Loop
        from chatbot.training.prepare import prepare_data

        config = preset(self.preset)
        config.train.seed = self.seed
        data = prepare_data(config, self.data)
        config.model.vocab_size = len(data.vocab)
        transformer.fit_to_data(config)
        examples, batch = data.train_examples, config.train.batch_size
        if self.examples:
            examples = examples[: self.examples]
        keras.utils.set_random_seed(self.seed)  # the same initial weights in both jobs
        model = transformer.build(config.model)
        init_checksum = float(sum(np.abs(w).sum() for w in model.get_weights()))
        compile_model(model, config.train)
        # The same figure for both pipelines: chatbot train's loss (mean cross-entropy per
        # scored token) on fixed batches of the training examples, after every epoch. (fit()'s
        # own epoch loss weighs every batch equally, and both are running means.)
        clock = EpochClock(self.name, ValidationLoss(model, examples, batch) if self.score
                           else None)
        fit_called = time.perf_counter()
        if self.pipeline == "ours":
            batches = Batches(examples, batch, seed=self.seed)
            Loop(model, tf.distribute.get_strategy()).fit(
                batches.dataset(repeat=True), epochs=self.epochs, steps=len(batches),
                callbacks=[clock.callback()], verbose=0)
        else:
            rows = Batches(examples, len(examples), bucket_by_length=False, shuffle=False)
            longest = max(len(target) for _, target in examples)
            x, target = rows.collate(range(len(examples)), [longest, longest])
            model.fit(x, target, batch_size=batch, shuffle=True, epochs=self.epochs,
                      callbacks=[clock.callback()], verbose=0)
        m = config.model
        sizes = [(len(target), int(np.count_nonzero(target))) for _, target in examples]
        shapes = batch_shapes(examples, batch, self.pipeline, self.seed)
        return {
            "pipeline": self.pipeline, "examples": len(examples), "vocab": len(data.vocab),
            "batch_size": batch, "model": {"width": m.embedding_dim, "ff": m.hidden_dim,
                                           "blocks": m.num_layers, "heads": m.num_heads,
                                           "max_positions": m.max_positions},
            "parameters": int(sum(np.prod(w.shape) for w in model.get_weights())),
            "init_weights_abs_sum": round(init_checksum, 4),
            "fit_setup_s": round(clock.began - fit_called, 2),
            "epoch_s": [round(s, 3) for s in clock.seconds],
            "other_cores_busy": [None if v is None else round(v, 2) for v in clock.others],
            "train_loss": [round(v, 4) for v in clock.train_loss],
            "train_set_loss": [round(v, 4) for v in clock.val_loss],
            "positions_real": sum(n for n, _ in sizes),
            "positions_processed": sum(rows * t for rows, t in shapes),
            "positions_scored": sum(s for _, s in sizes),
            "longest_positions": max(n for n, _ in sizes),
            "flops_model_per_epoch": flops(m, len(data.vocab), sizes),
            "flops_executed_per_epoch": executed_flops(m, len(data.vocab), self.pipeline,
                                                       shapes, sizes),
            "peak_rss_mib": rss_mib()["peak"],
        }


def weight_flops_per_position(width: int, ff: int, blocks: int) -> int:
    """Forward FLOPs of the blocks' weight matmuls at one position (see the module)."""
    return 2 * blocks * (4 * width * width + 2 * width * ff)


def flops(m, vocab: int, sizes: list[tuple[int, int]]) -> int:
    """Model FLOPs (forward + backward) of one epoch of examples with (positions, scored)."""
    d, per_position = m.embedding_dim, weight_flops_per_position(
        m.embedding_dim, m.hidden_dim, m.num_layers)
    forward = sum(per_position * n + m.num_layers * 2 * d * n * (n + 1) + 2 * d * vocab * s
                  for n, s in sizes)
    return 3 * forward


def batch_shapes(examples, batch: int, pipeline: str, seed: int) -> list[tuple[int, int]]:
    """(rows, padded positions) of every batch of one epoch of `pipeline`. Bucketed batches
    hold the same lengths every epoch (rows are sorted by length; only ties are shuffled)."""
    from chatbot.training.batches import Batches

    if pipeline == "ours":
        return [(len(rows), lengths[-1])
                for rows, lengths in Batches(examples, batch, seed=seed).layout()]
    longest = max(len(target) for _, target in examples)
    return [(min(batch, len(examples) - start), longest)
            for start in range(0, len(examples), batch)]


def executed_flops(m, vocab: int, pipeline: str, shapes: list[tuple[int, int]],
                   sizes: list[tuple[int, int]]) -> int:
    """FLOPs (forward + backward) one epoch of `pipeline` computes (see the module), given its
    batch shapes and the examples' (positions, scored)."""
    d = m.embedding_dim
    per_position = weight_flops_per_position(d, m.hidden_dim, m.num_layers)
    forward = sum(rows * (per_position * t + m.num_layers * 4 * d * t * t) for rows, t in shapes)
    output_rows = (sum(s for _, s in sizes) if pipeline == "ours"
                   else sum(rows * t for rows, t in shapes))
    return 3 * (forward + 2 * d * vocab * output_rows)
