"""The training loop: one compiled step per batch, on any tf.distribute strategy, driving the
same Keras callbacks (checkpoints, history, early stopping, progress bar) that fit() would.

Why not model.fit():
- fit() computes the output layer (a Dense over the whole vocabulary, most of the work) at every
  position of the batch, then the loss throws away all but the scored ones. Here the hidden
  states are gathered at the scored positions first (target != 0: reply tokens and <EOS>), so
  the Dense, the softmax and their gradients run on those rows only. The loss is the same
  masked mean cross-entropy per scored token (tests compare it with the compiled Keras loss).
- Keras 3.15's fit() fails under MultiWorkerMirroredStrategy before the first step
  (keras-team/keras#20585): it reduces the first batch, and then every step's scalar logs, with
  `strategy.reduce(..., axis=0)`, which that strategy refuses. This loop reduces scalars with
  axis=None, so default, mirrored and multi-worker training all run through it.

The model stays the plain functional model of its architecture (what `chatbot chat` loads): the
loop reads its layers through a sub-model that ends where the output layer begins.
"""

from __future__ import annotations

import itertools
import signal
import threading

import keras
import tensorflow as tf

from chatbot.models.base import OUTPUT_LAYER  # every architecture's output layer has this name

METRICS = ("loss", "masked_accuracy")


# Optimizer options that apply() would honour and Loop._update does not.
UNSUPPORTED = ("clipvalue", "weight_decay", "use_ema", "gradient_accumulation_steps",
               "loss_scale_factor")


def clip(gradients: list, optimizer: keras.optimizers.Optimizer) -> tuple[list, tf.Tensor]:
    """The gradients as the optimizer clips them on one device, and their global norm before
    clipping (from the norms clipping computes anyway; a graph that does not use it drops it).

    Keras 3.15 (optimizers/base_optimizer.py, _clip_gradients) gives `clipnorm` to each
    variable's gradient on its own, through the TF backend's _clip_by_norm, which is
    tf.clip_by_norm(g, clipnorm): every variable's gradient is scaled to a norm of at most
    `clipnorm`, independently of the others. (An embedding's gradient is a tf.IndexedSlices
    with one row per token read, and its norm is taken over those rows as they are, a token read
    twice counting twice; the cross-replica sum of IndexedSlices concatenates the replicas'
    rows, so the norm is the one device's.) `global_clipnorm` scales all by one factor.
    Here each variable's squared norm is summed once, for both; the clipped values are
    tf.clip_by_norm's, `values * clipnorm / max(norm, clipnorm)`.
    """
    squares = [tf.reduce_sum(tf.square(_values(g))) for g in gradients]
    norm = tf.sqrt(tf.add_n(squares))
    limit = optimizer.clipnorm
    if limit and limit > 0:
        return [_with_values(g, _values(g) * limit / tf.maximum(tf.sqrt(square), limit))
                for g, square in zip(gradients, squares)], norm
    if optimizer.global_clipnorm and optimizer.global_clipnorm > 0:
        return tf.clip_by_global_norm(gradients, optimizer.global_clipnorm, norm)[0], norm
    return list(gradients), norm


def _values(gradient):
    """A gradient's values: an embedding's tf.IndexedSlices, its rows."""
    return gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient


def _with_values(gradient, values):
    """`gradient` with other values (the same rows, for tf.IndexedSlices)."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(values, gradient.indices, gradient.dense_shape)
    return values


class Loop:
    """Trains `model` (compiled: its optimizer is used) on batches of (inputs, target).

    A step on N devices computes what one device computes on all the step's pairs: one token
    mean of the loss, its gradients summed across replicas, clipped once, one update.

    gradient_norm: also measure each step's global gradient norm (of the summed gradients,
        before clipping), summed in `totals.norm` (chatbot.training.tensorboard logs it).
    run_eagerly: run the steps op by op, as Keras's `compile(run_eagerly=True)` does, instead
        of as tf.functions: the same computation, with no tracing before the first step, but
        slower steps (train.run_eagerly).
    """

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy,
                 gradient_norm: bool = False, run_eagerly: bool = False):
        self.model, self.strategy, self.gradient_norm = model, strategy, gradient_norm
        self.totals = Totals()  # the running sums of the epoch being trained
        received = {name: getattr(model.optimizer, name, None) for name in UNSUPPORTED}
        if any(received.values()):
            raise ValueError(f"the training loop does not apply the optimizer options "
                             f"{ {k: v for k, v in received.items() if v} }; compile the model "
                             f"without them (clipnorm and global_clipnorm are applied)")
        self.head = model.get_layer(OUTPUT_LAYER)
        # The same layers and weights as `model`, up to the output layer's input.
        self.features = keras.Model(model.inputs, self.head.input, name="features")
        with strategy.scope():  # before tracing: variables must not be created inside a step
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        if run_eagerly:
            self._train, self._test = self._train_step, self._test_step
        else:
            self._train = tf.function(self._train_step, reduce_retracing=True)
            self._test = tf.function(self._test_step, reduce_retracing=True)

    # --- one step ------------------------------------------------------------------------------

    def _scored(self, inputs, target, training: bool):
        """Sums over the scored positions of one replica's batch: (loss, tokens, hits)."""
        hidden = self.features(inputs, training=training)  # (batch, time, hidden)
        scored = tf.not_equal(target, 0)  # (batch, time)
        labels = tf.boolean_mask(target, scored)  # (scored,)
        logits = self.head(tf.boolean_mask(hidden, scored))  # (scored, vocab)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)  # (scored,)
        hits = tf.equal(tf.argmax(logits, axis=-1, output_type=labels.dtype), labels)
        return (tf.reduce_sum(losses), tf.cast(tf.size(labels), tf.float32),
                tf.reduce_sum(tf.cast(hits, tf.float32)))

    def _train_replica(self, inputs, target):
        """One replica's sums, and the step's clipped gradients (the same on every replica)."""
        replica = tf.distribute.get_replica_context()
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss_sum, count, hits = self._scored(inputs, target, training=True)
            # Divided by the scored tokens of all replicas: summed over the replicas, these
            # gradients are those of one token mean over the whole step.
            everywhere = replica.all_reduce("SUM", count)
            loss = loss_sum / tf.maximum(everywhere, 1.0)
        # Summed first, clipped after: what one device computes on the whole step's pairs.
        # (Left to the optimizer, Keras 3.15 would clip each replica's share, then sum.)
        gradients, norm = clip(replica.all_reduce("SUM", tape.gradient(loss, variables)),
                               self.model.optimizer)
        if self.gradient_norm:  # the same on every replica: averaged, not summed, below
            return (loss_sum, count, hits), gradients, norm
        return (loss_sum, count, hits), gradients

    def _train_step(self, batch):
        sums, gradients, *norm = self.strategy.run(self._train_replica, args=batch)
        self._update(gradients)
        return self._reduce(sums) + [self.strategy.reduce("MEAN", n, axis=None) for n in norm]

    def _update(self, gradients) -> None:
        """The optimizer's update of every variable, once per step, in cross-replica context.

        Not optimizer.apply_gradients(): in replica context, Keras's TF optimizer clips each
        replica's gradients, then sums them across replicas (TFOptimizer._backend_update_step);
        here they are summed and clipped already. So this does the rest of what apply() does
        for our optimizers: update_step() on each copy of each variable, then one iteration.
        """
        optimizer = self.model.optimizer
        learning_rate = optimizer.learning_rate
        for gradient, variable in zip(gradients, self.model.trainable_variables):
            # On every device that holds a copy; `gradient` has the same value on each.
            self.strategy.extended.update(
                variable.value, lambda var, grad: optimizer.update_step(grad, var, learning_rate),
                args=(gradient,), group=False)
        optimizer.iterations.assign_add(1)

    def _test_replica(self, inputs, target):
        return self._scored(inputs, target, training=False)

    def _test_step(self, batch):
        return self._reduce(self.strategy.run(self._test_replica, args=batch))

    def _reduce(self, sums):
        # One scalar at a time, axis=None: what every strategy can reduce.
        return [self.strategy.reduce("SUM", value, axis=None) for value in sums]

    # --- epochs --------------------------------------------------------------------------------

    def evaluate(self, batches, steps: int | None = None,
                 interrupts: Interrupts | None = None) -> dict[str, float]:
        """Masked mean loss and accuracy per scored token over `steps` batches of `batches`
        (a dataset or an iterator), or over all of them if `steps` is None."""
        totals = Totals()
        for batch in itertools.islice(batches, steps):
            totals.add(self._test(batch))
            if interrupts:
                interrupts.check()
        return totals.logs()

    def fit(self, dataset, *, epochs: int, steps: int, initial_epoch: int = 0,
            validation=None, validation_steps: int | None = None, callbacks=(),
            verbose: int = 1) -> list[dict[str, float]]:
        """Trains epochs initial_epoch+1 .. epochs of `steps` batches each; returns each
        epoch's logs, as fit() would give them to the callbacks: loss, masked_accuracy, then
        val_... of the same over `validation_steps` batches of `validation`.

        Both datasets repeat without end (`Batches.dataset(repeat=True)`): one iterator of each
        serves the whole run, so no epoch waits for the previous epoch's iterator to be torn
        down (see Batches.dataset).
        """
        hooks = keras.callbacks.CallbackList(
            list(callbacks), add_progbar=verbose != 0, model=self.model,
            verbose=verbose, epochs=epochs, steps=steps)
        self.model.stop_training = False
        history, logs = [], {}
        batches = iter(dataset)
        val_batches = iter(validation) if validation is not None else None
        with Interrupts() as interrupts:
            hooks.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                hooks.on_epoch_begin(epoch)
                totals = self.totals = Totals()
                step = -1
                for step, batch in enumerate(itertools.islice(batches, steps)):
                    hooks.on_train_batch_begin(step)
                    totals.add(self._train(batch))
                    hooks.on_train_batch_end(step, totals.logs())
                    interrupts.check()
                if step + 1 < steps:
                    raise ValueError(f"the training dataset ended after {step + 1} of the "
                                     f"{steps} steps of epoch {epoch + 1}; the loop needs one "
                                     f"that repeats, such as Batches.dataset(repeat=True)")
                logs = totals.logs()
                if val_batches is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(
                        val_batches, validation_steps, interrupts).items()})
                hooks.on_epoch_end(epoch, logs)
                history.append(logs)
                if self.model.stop_training:
                    break
            hooks.on_train_end(logs)
        return history


class Interrupts:
    """Ctrl-C while training becomes a KeyboardInterrupt between two steps.

    Python raises KeyboardInterrupt wherever the main thread is when the signal is handled.
    In this loop that is often inside TensorFlow's C++ code, and twice in the test suite a
    Ctrl-C got lost (probably there) and training ran to its end. Here the handler only takes
    note, and the loop raises at the next step. A second Ctrl-C raises at once.
    """

    def __enter__(self) -> Interrupts:
        self.requested, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class Totals:
    """Sums of per-token loss, scored tokens and hits over `steps` steps (and of their
    gradient norms, when the loop measures them); the logs are their means."""

    def __init__(self):
        self.loss = self.count = self.hits = self.norm = 0.0
        self.steps = 0

    def add(self, sums) -> None:
        loss, count, hits, *norm = (float(v) for v in sums)
        self.loss, self.count, self.hits = self.loss + loss, self.count + count, self.hits + hits
        self.norm += sum(norm)
        self.steps += 1

    def logs(self) -> dict[str, float]:
        count = max(self.count, 1.0)
        return {"loss": self.loss / count, "masked_accuracy": self.hits / count}
