"""The training loop: the same loss, accuracy and updates as Keras's compiled model, although
the output layer only runs at scored positions; batches of different lengths; on two devices,
the same updates as on one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from chatbot import models
from chatbot.config import ModelConfig
from chatbot.models import arch_module
from chatbot.models.common import MaskedAccuracy, masked_loss
from chatbot.text.vocab import SPECIALS, Vocabulary
from chatbot.training.batches import Batches
from chatbot.training.distribute import make_strategy
from chatbot.training.loop import UNSUPPORTED, Loop

VOCAB = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(25)])
ARCHS = sorted(models.ARCHS)  # every registered architecture


def make_model(arch: str, seed: int = 0, clipnorm: float | None = None,
               strategy: tf.distribute.Strategy | None = None,
               run_eagerly: bool = False) -> keras.Model:
    """A small model; with `clipnorm`, compiled as training compiles it (Adam, clipnorm);
    `run_eagerly`: its fit() runs op by op."""
    keras.utils.set_random_seed(seed)
    config = ModelConfig(arch=arch, embedding_dim=8, hidden_dim=16, vocab_size=len(VOCAB),
                         max_positions=16)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = arch_module(arch).build(config)
        optimizer = (keras.optimizers.SGD(learning_rate=0.5) if clipnorm is None else
                     keras.optimizers.Adam(learning_rate=0.05, clipnorm=clipnorm))
        model.compile(optimizer=optimizer, loss=masked_loss(), metrics=[MaskedAccuracy()],
                      run_eagerly=run_eagerly)
    return model


def gradient_norms(model: keras.Model, batch) -> list[float]:
    """Each variable's gradient norm on `batch`, as clipnorm measures it (tf.clip_by_norm: an
    embedding's IndexedSlices by their rows)."""
    inputs, target = batch
    with tf.GradientTape() as tape:
        loss = masked_loss()(target, model(inputs, training=True))
    return [float(tf.norm(g.values if isinstance(g, tf.IndexedSlices) else g))
            for g in tape.gradient(loss, model.trainable_variables)]


# A MultiHeadAttention's key bias adds the same q·b to all of a query's scores, which the softmax
# ignores: its gradient is 0 but for float rounding (~1e-10), and Adam scales that noise up to
# steps of ~1e-4 that differ between any two computations of the same step. Comparisons skip it.
SHIFT_INVARIANT = "/key/bias"


def compared(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """(path, value) of the weights whose updates two computations must agree on."""
    return [(v.path, w) for v, w in zip(model.weights, model.get_weights())
            if not v.path.endswith(SHIFT_INVARIANT)]


def largest_difference(a: keras.Model, b: keras.Model) -> float:
    return max(float(np.max(np.abs(x - y))) for (_, x), (_, y) in zip(compared(a), compared(b)))


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


@pytest.mark.parametrize("clipnorm", [None, 0.05])
@pytest.mark.parametrize("arch", ARCHS)
def test_an_epoch_updates_the_weights_as_keras_fit_does(arch, clipnorm):
    # With clipnorm, Keras clips each variable's gradient by its own norm; the loop must too.
    # Keras's fit runs eagerly (tracing its six steps would take longer than running them);
    # the loop's steps are traced with clipnorm and eager without it, so both of the loop's
    # ways are compared with Keras's for every architecture.
    ours = make_model(arch, clipnorm=clipnorm)
    theirs = make_model(arch, clipnorm=clipnorm, run_eagerly=True)
    theirs.set_weights(ours.get_weights())
    data = batches(arch)
    if clipnorm:
        norms = gradient_norms(ours, next(iter(data)))
        assert max(norms) > clipnorm > min(norms)  # some variables are clipped, some not
    history = Loop(ours, tf.distribute.get_strategy(), run_eagerly=clipnorm is None).fit(
        data.dataset(repeat=True), epochs=2, steps=3, verbose=0)
    fitted = theirs.fit(data.dataset(), epochs=2, verbose=0, shuffle=False)
    assert largest_difference(ours, make_model(arch)) > 0.01  # the weights did change
    for (path, a), (_, b) in zip(compared(ours), compared(theirs)):
        np.testing.assert_allclose(a, b, atol=2e-5, err_msg=path)
    # Keras averages batch losses weighted by rows, ours by scored tokens: compare the end.
    assert history[-1]["loss"] < history[0]["loss"]
    assert fitted.history["loss"][-1] < fitted.history["loss"][0]


class CountedLoop(Loop):
    """A Loop that counts the Python calls of its step: once per step when it runs eagerly,
    once per trace when the step is a tf.function."""

    calls = 0  # this loop's, from its first step

    def _scored(self, inputs, target, training: bool):
        if training:
            self.calls += 1
        return super()._scored(inputs, target, training)


def test_an_eager_loop_runs_the_python_of_every_step_and_updates_as_a_traced_one_does():
    models, calls = [], []
    for run_eagerly in (False, True):
        model, data = make_model("lstm", clipnorm=0.05), batches("lstm")
        loop = CountedLoop(model, tf.distribute.get_strategy(), run_eagerly=run_eagerly)
        loop.fit(data.dataset(repeat=True), epochs=2, steps=3, verbose=0)
        models.append(model)
        calls.append(loop.calls)
    traced, eager = models
    assert calls[0] < 6 and calls[1] == 6  # Python in a step (print, pdb) runs at every step
    assert largest_difference(traced, make_model("lstm")) > 0.01  # the weights did change
    for (path, a), (_, b) in zip(compared(traced), compared(eager)):
        np.testing.assert_allclose(a, b, atol=2e-5, err_msg=path)


CLIPNORM = 0.05  # small enough that the first step clips some variables' gradients


def global_batches(arch: str) -> list:
    """Four steps of 4 rows: the first two rows of each have long replies, the last two short,
    so the two devices' halves score different numbers of tokens. Every step has the same
    shape, so each loop traces its step once (different shapes are test_distribute.py's)."""
    encode = arch_module(arch).encode_example
    examples = [encode([5 + n % 7] * (n % 4 + 1), [6 + n % 9] * (6 + n % 2 if n % 4 < 2 else 1),
                       VOCAB) for n in range(16)]
    return list(Batches(examples, batch_size=4, shuffle=False, bucket_by_length=False))


def halves(batch) -> list:
    """Rows 0-1 and rows 2-3 of a batch of 4 (inputs, target), padded as the whole batch."""
    return [tf.nest.map_structure(lambda a, i=i: a[2 * i: 2 * i + 2], batch) for i in range(2)]


class KerasReplicaUpdates(Loop):
    """The loop as it was: each replica calls apply_gradients, Keras clips, then sums."""

    def _train_step(self, batch):
        return self._reduce(self.strategy.run(self._keras_replica, args=batch))

    def _keras_replica(self, inputs, target):
        with tf.GradientTape() as tape:
            loss_sum, count, hits = self._scored(inputs, target, training=True)
            loss = loss_sum / tf.distribute.get_replica_context().all_reduce("SUM", count)
        variables = self.model.trainable_variables
        self.model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss_sum, count, hits


def two_devices_against_one() -> None:
    """Run in a process of its own (the CPU must be split before TensorFlow starts): trains
    the architectures 4 steps on one device and on two, from the same weights over the same
    global batches, and prints as JSON what test_two_devices_update_as_one_device_does checks.
    """
    mirrored, one = make_strategy("mirrored"), tf.distribute.get_strategy()
    figures, trained = {}, {}
    # seq2seq is left out: its layers are a subset of attention's (two inputs, two LSTMs), and
    # the loop treats every model alike; each architecture costs this test a quarter.
    for arch in ("lstm", "attention", "transformer"):
        data = global_batches(arch)
        split = [mirrored.experimental_distribute_values_from_function(
            lambda context, b=b: halves(b)[context.replica_id_in_sync_group]) for b in data]
        single = make_model(arch, clipnorm=CLIPNORM)
        double = make_model(arch, clipnorm=CLIPNORM, strategy=mirrored)
        norms = gradient_norms(single, data[0])
        loops, steps = [Loop(single, one), Loop(double, mirrored)], [iter(data), iter(split)]
        logs = [loop.fit(batches, epochs=3, steps=1, verbose=0)
                for loop, batches in zip(loops, steps)]
        # The token mean of the 4th step's loss and the mean of its halves' token means.
        token_mean = loops[0].evaluate([data[3]])["loss"]
        half_means = [loops[0].evaluate([half])["loss"] for half in halves(data[3])]
        for loop, batches, history in zip(loops, steps, logs):
            history += loop.fit(batches, epochs=4, initial_epoch=3, steps=1, verbose=0)
        figures[arch] = {
            "norms": norms, "weight_gap": largest_difference(single, double),
            "moved": largest_difference(single, make_model(arch)),
            "losses": [[step["loss"] for step in history] for history in logs],
            "token_mean": token_mean, "half_means": half_means,
            "iterations": [int(m.optimizer.iterations.numpy()) for m in (single, double)]}
        trained[arch] = single
    # The check can fail: Keras's own per-replica updates end elsewhere than the lstm's 4 steps
    # on one device.
    keras_way = make_model("lstm", clipnorm=CLIPNORM, strategy=mirrored)
    KerasReplicaUpdates(keras_way, mirrored).fit(
        iter([mirrored.experimental_distribute_values_from_function(
            lambda context, b=b: halves(b)[context.replica_id_in_sync_group])
            for b in global_batches("lstm")]), epochs=4, steps=1, verbose=0)
    figures["keras_replica_gap"] = largest_difference(trained["lstm"], keras_way)
    print(json.dumps(figures))


@pytest.mark.slow
def test_two_devices_update_as_one_device_does():
    result = subprocess.run(
        [sys.executable, "-c", "from tests.test_loop import two_devices_against_one as run; run()"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    figures = json.loads(result.stdout.decode().splitlines()[-1])
    # Keras's per-replica clipping would differ: the comparison below can tell.
    assert figures.pop("keras_replica_gap") > 1e-2
    for arch, got in figures.items():
        assert max(got["norms"]) > CLIPNORM, arch  # clipping is on and triggers
        assert got["moved"] > 0.05, arch
        assert got["weight_gap"] < 1e-5, arch
        assert got["iterations"] == [4, 4], arch
        one, two = got["losses"]
        assert two == pytest.approx(one, rel=1e-6), arch
        # The logged loss is the token mean over the whole step, not a mean of the devices'.
        assert two[3] == pytest.approx(got["token_mean"], rel=1e-6), arch
        assert np.mean(got["half_means"]) != pytest.approx(got["token_mean"], rel=1e-4), arch


def test_optimizer_options_the_loop_cannot_apply_are_refused():
    model = make_model("lstm")
    model.compile(optimizer=keras.optimizers.Adam(clipvalue=0.5), loss=masked_loss())
    assert "clipvalue" in UNSUPPORTED
    with pytest.raises(ValueError, match=r"does not apply the optimizer options \{'clipvalue'"):
        Loop(model, tf.distribute.get_strategy())


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
    Loop(model, tf.distribute.get_strategy(), run_eagerly=True).fit(
        data.dataset(repeat=True), epochs=3, initial_epoch=1, steps=3,
        validation=data.dataset(repeat=True), validation_steps=3, callbacks=[record], verbose=0)
    keys = ["loss", "masked_accuracy", "val_loss", "val_masked_accuracy"]
    assert record.epochs == [(1, keys), (2, keys)] and record.steps == 6


def test_validation_runs_its_steps_on_the_weights_after_the_epoch():
    model, data = make_model("lstm"), batches("lstm")
    loop = Loop(model, tf.distribute.get_strategy(), run_eagerly=True)
    whole = loop.evaluate(data.dataset())  # one pass of a finite dataset: its 3 batches
    history = Loop(model, tf.distribute.get_strategy(), run_eagerly=True).fit(
        data.dataset(repeat=True), epochs=1, steps=3, validation=data.dataset(repeat=True),
        validation_steps=3, verbose=0)
    after = loop.evaluate(data.dataset())
    assert whole != after  # the epoch trained; validation saw the weights after it
    assert history[0]["val_loss"] == pytest.approx(after["loss"], rel=1e-6)


def test_a_dataset_that_ends_is_refused_with_what_to_pass_instead():
    model, data = make_model("lstm"), batches("lstm")
    with pytest.raises(ValueError, match=r"ended after 0 of the 3 steps of epoch 2.*repeat=True"):
        Loop(model, tf.distribute.get_strategy(), run_eagerly=True).fit(
            data.dataset(), epochs=2, steps=3, verbose=0)


def test_early_stopping_ends_the_loop():
    model, data = make_model("lstm"), batches("lstm")
    model.optimizer.learning_rate.assign(0.0)  # nothing improves
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=1e-3)
    history = Loop(model, tf.distribute.get_strategy(), run_eagerly=True).fit(
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
