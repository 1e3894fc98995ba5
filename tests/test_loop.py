"""The training loop: the same loss, accuracy and updates as Keras's compiled model, although
the output layer only runs at scored positions; batches of different lengths."""

from __future__ import annotations

import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from chatbot.batches import Batches
from chatbot.config import ModelConfig
from chatbot.loop import Loop
from chatbot.models import arch_module
from chatbot.models.common import MaskedAccuracy, masked_loss
from chatbot.vocab import SPECIALS, Vocabulary

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])
ARCHS = ["lstm", "seq2seq", "attention"]


def make_model(arch: str, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    config = ModelConfig(arch=arch, embedding_dim=8, hidden_dim=16, vocab_size=len(VOCAB))
    model = arch_module(arch).build(config)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=masked_loss(),
                  metrics=[MaskedAccuracy()])
    return model


def batches(arch: str) -> Batches:
    """Nine pairs in batches of 3 rows whose lengths differ from batch to batch."""
    encode = arch_module(arch).encode_example
    examples = [encode([5 + n % 7] * (n % 4 + 1), [6 + n % 9] * (n % 5 + 1), VOCAB)
                for n in range(9)]
    return Batches(examples, batch_size=3, shuffle=False)


@pytest.mark.parametrize("arch", ARCHS)
def test_batches_differ_in_length(arch):
    shapes = {tuple(part.shape[1] for part in tf.nest.flatten(batch)) for batch in batches(arch)}
    assert len(shapes) == 3


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_and_accuracy_equal_keras_compiled_ones(arch):
    model, data = make_model(arch), batches(arch)
    loop = Loop(model, tf.distribute.get_strategy())
    loss_fn, total, scored, hits = masked_loss(), 0.0, 0, 0.0
    for inputs, target in data:
        logits = model(inputs)  # every position, as fit() computes it
        count = np.count_nonzero(target)
        total += float(loss_fn(target, logits)) * count  # Keras: mean over scored tokens
        accuracy = MaskedAccuracy()
        accuracy.update_state(target, logits)
        hits += float(accuracy.result()) * count
        scored += count
    ours = loop.evaluate(data.dataset())
    assert ours["loss"] == pytest.approx(total / scored, rel=1e-5)
    assert ours["masked_accuracy"] == pytest.approx(hits / scored, abs=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_an_epoch_updates_the_weights_as_keras_fit_does(arch):
    ours, theirs = make_model(arch), make_model(arch)
    theirs.set_weights(ours.get_weights())
    data = batches(arch)
    history = Loop(ours, tf.distribute.get_strategy()).fit(data.dataset(repeat=True), epochs=2,
                                                           steps=3, verbose=0)
    fitted = theirs.fit(data.dataset(), epochs=2, verbose=0, shuffle=False)
    moved = max(np.max(np.abs(a - b)) for a, b in zip(ours.get_weights(),
                                                       make_model(arch).get_weights()))
    assert moved > 0.01  # the weights did change
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, atol=2e-5)
    # Keras averages batch losses weighted by rows, ours by scored tokens: compare the end.
    assert history[-1]["loss"] < history[0]["loss"]
    assert fitted.history["loss"][-1] < fitted.history["loss"][0]


def test_logs_reach_the_callbacks_as_fit_gives_them():
    model, data = make_model("lstm"), batches("lstm")

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs, self.steps = [], 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((epoch, sorted(logs)))

    record = Record()
    Loop(model, tf.distribute.get_strategy()).fit(
        data.dataset(repeat=True), epochs=3, initial_epoch=1, steps=3,
        validation=data.dataset(repeat=True), validation_steps=3, callbacks=[record], verbose=0)
    keys = ["loss", "masked_accuracy", "val_loss", "val_masked_accuracy"]
    assert record.epochs == [(1, keys), (2, keys)] and record.steps == 6


def test_validation_runs_its_steps_on_the_weights_after_the_epoch():
    model, data = make_model("lstm"), batches("lstm")
    loop = Loop(model, tf.distribute.get_strategy())
    whole = loop.evaluate(data.dataset())  # one pass of a finite dataset: its 3 batches
    history = Loop(model, tf.distribute.get_strategy()).fit(
        data.dataset(repeat=True), epochs=1, steps=3, validation=data.dataset(repeat=True),
        validation_steps=3, verbose=0)
    after = loop.evaluate(data.dataset())
    assert whole != after  # the epoch trained; validation saw the weights after it
    assert history[0]["val_loss"] == pytest.approx(after["loss"], rel=1e-6)


def test_a_dataset_that_ends_is_refused_with_what_to_pass_instead():
    model, data = make_model("lstm"), batches("lstm")
    with pytest.raises(ValueError, match=r"ended after 0 of the 3 steps of epoch 2.*repeat=True"):
        Loop(model, tf.distribute.get_strategy()).fit(data.dataset(), epochs=2, steps=3,
                                                      verbose=0)


def test_early_stopping_ends_the_loop():
    model, data = make_model("lstm"), batches("lstm")
    model.optimizer.learning_rate.assign(0.0)  # nothing improves
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=1e-3)
    history = Loop(model, tf.distribute.get_strategy()).fit(
        data.dataset(repeat=True), epochs=10, steps=3, callbacks=[stop], verbose=0)
    assert len(history) == 2


def test_ctrl_c_stops_the_loop_at_the_next_step_and_restores_the_handler():
    model, data = make_model("lstm"), batches("lstm")
    steps = []

    class CtrlC(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)
            if len(steps) == 4:  # the second batch of epoch 2
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        Loop(model, tf.distribute.get_strategy()).fit(
            data.dataset(repeat=True), epochs=5, steps=3, callbacks=[CtrlC()], verbose=0)
    assert len(steps) == 4  # no step after the one that was running
    assert signal.getsignal(signal.SIGINT) is before
