"""The training callbacks: one rule for "better", arguments checked in the constructors, and
state that survives a backup and restore so a resumed run continues where it was."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from chatbot import rundir
from chatbot.training.callbacks import (
    AtomicCheckpoint,
    EarlyStopping,
    EpochBackup,
    EpochReport,
    HistoryCSV,
    Monitor,
)


@pytest.mark.parametrize("name, lower_is_better", [
    ("loss", True), ("val_loss", True), ("masked_accuracy", False),
    ("val_masked_accuracy", False)])
def test_one_rule_losses_fall_accuracies_rise(name, lower_is_better):
    monitor = Monitor(name)
    assert monitor.better(0.5, 0.7) is lower_is_better
    assert monitor.better(0.7, 0.5) is not lower_is_better
    assert not monitor.better(0.5, 0.5)  # equal is not better
    assert monitor.better(123.0, None)  # anything beats nothing yet...
    assert not monitor.better(math.nan, None) and not monitor.better(None, 1.0)  # ...but NaN


@pytest.mark.parametrize("make, says", [
    (lambda: Monitor("accuracy"), "monitor must be one of loss, masked_accuracy, val_loss, "
                                  "val_masked_accuracy, answer_rate, variant_rate, quality; "
                                  "received 'accuracy'"),
    (lambda: EarlyStopping("loss", 3, target=0.5), "a target needs a quantity that rises; "
                                                   "loss falls"),
    (lambda: EarlyStopping("loss", patience=-1), "patience must be a whole number of epochs "
                                                 ">= 0; received -1"),
    (lambda: EarlyStopping("loss", patience="5"), "received '5'"),
    (lambda: AtomicCheckpoint("run/model.h5", "loss"), "must end in .keras.*received "
                                                       "'run/model.h5'"),
    (lambda: HistoryCSV("run", keep=-2), "keep must be a number of epochs >= 0; received -2"),
    (lambda: EpochBackup("run", stateful=[EarlyStopping("loss", 1), EarlyStopping("loss", 2)]),
     r"distinct names other than 'random'; received \['early_stopping', 'early_stopping'\]"),
    (lambda: EpochReport(0, 10, print),
     "received 10 pairs and 0 tokens"),
])
def test_bad_arguments_are_refused_in_the_constructor(make, says):
    with pytest.raises(ValueError, match=says):
        make()


class FakeModel:
    """What the callbacks use of a model, without Keras."""

    def __init__(self):
        self.stop_training, self.saved = False, []

    def save(self, path):
        path.write_bytes(b"model after %d epochs" % len(self.saved))
        self.saved.append(path)


def run_epochs(callback, values, first_epoch: int = 0, name: str = "val_loss"):
    callback.set_model(callback.model if callback.model is not None else FakeModel())
    for epoch, value in enumerate(values, start=first_epoch):
        callback.on_epoch_end(epoch, {name: value})
        if callback.model.stop_training:
            break


LOSSES = [3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 1.8, 1.4]


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    stop = EarlyStopping("val_loss", patience=3)
    run_epochs(stop, LOSSES)
    assert stop.stopped_epoch == 7 and (stop.best, stop.best_epoch) == (1.5, 4)
    assert stop.wait == 3


def test_an_equal_rate_improves_when_the_training_loss_falls():
    # A rate stays at 0 while the model learns: the loss decides between equal rates, so the
    # run neither stops early nor keeps its first epoch.
    stop, checkpoint = EarlyStopping("quality", patience=3), AtomicCheckpoint("m.keras", "quality")
    for callback in (stop, checkpoint):
        callback.set_model(FakeModel())
        for epoch, (rate, loss) in enumerate([(0.0, 5.0), (0.0, 4.0), (0.0, 3.0), (0.5, 2.0),
                                              (0.5, 2.5), (0.4, 1.0), (0.5, 1.5)]):
            callback.on_epoch_end(epoch, {"quality": rate, "loss": loss})
    assert (checkpoint.best_epoch, checkpoint.best, checkpoint.best_then) == (7, 0.5, 1.5)
    assert stop.stopped_epoch == 0 and stop.best_epoch == 7  # epochs 5 and 6 did not improve
    assert not Monitor("loss").improves({"loss": 1.0}, 1.0, 5.0)  # no tie rule for losses


RATES = [0.2, 0.6, 0.55, 0.96, 0.97, 0.99]


def test_early_stopping_stops_once_a_rising_quantity_reaches_its_target():
    stop = EarlyStopping("quality", patience=3, target=0.97)
    run_epochs(stop, RATES, name="quality")
    assert (stop.stopped_epoch, stop.reached, stop.best) == (5, True, 0.97)
    patient = EarlyStopping("quality", patience=3, target=0.995)  # never reached
    run_epochs(patient, RATES + [0.98, 0.98, 0.98], name="quality")
    assert (patient.stopped_epoch, patient.reached, patient.best_epoch) == (9, False, 6)


@pytest.mark.parametrize("split", range(1, 5))
def test_early_stopping_resumed_after_its_target_was_reached_trains_no_more(split):
    first = EarlyStopping("quality", patience=3, target=0.97)
    run_epochs(first, RATES[:split + 1], name="quality")
    resumed = EarlyStopping("quality", patience=3, target=0.97)
    resumed.restore(json.loads(json.dumps(first.state())))
    assert resumed.state() == first.state()
    assert resumed.reached == (split >= 4)  # reached at epoch 5 (the split's last)


@pytest.mark.parametrize("split", range(1, 7))
def test_early_stopping_resumed_from_its_state_stops_where_it_would_have(split):
    straight = EarlyStopping("val_loss", patience=3)
    run_epochs(straight, LOSSES)
    first = EarlyStopping("val_loss", patience=3)
    run_epochs(first, LOSSES[:split])
    resumed = EarlyStopping("val_loss", patience=3)
    resumed.restore(json.loads(json.dumps(first.state())))  # as the backup stores it
    run_epochs(resumed, LOSSES[split:], first_epoch=split)
    assert resumed.state() == straight.state()


def test_the_checkpoint_writes_only_when_committed_and_only_improvements(tmp_path):
    checkpoint = AtomicCheckpoint(tmp_path / "model.keras", "val_loss")
    checkpoint.set_model(FakeModel())
    checkpoint.on_epoch_end(0, {"val_loss": 2.0})
    assert not (tmp_path / "model.keras").exists() and checkpoint.pending  # not yet committed
    checkpoint.commit()
    assert (tmp_path / "model.keras").read_bytes() == b"model after 0 epochs"
    checkpoint.on_epoch_end(1, {"val_loss": 2.5})  # worse: nothing to commit
    checkpoint.commit()
    assert len(checkpoint.model.saved) == 1 and checkpoint.best_epoch == 1
    resumed = AtomicCheckpoint(tmp_path / "model.keras", "val_loss")
    resumed.restore(json.loads(json.dumps(checkpoint.state())))
    resumed.set_model(FakeModel())
    resumed.on_epoch_end(2, {"val_loss": 2.1})  # worse than the restored best
    assert not resumed.pending and resumed.best_epoch == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_the_checkpoint_can_write_at_once(tmp_path):
    checkpoint = AtomicCheckpoint(tmp_path / "model.keras", "masked_accuracy", deferred=False)
    run_epochs(checkpoint, [0.5, 0.4, 0.6], name="masked_accuracy")
    assert len(checkpoint.model.saved) == 2 and checkpoint.best_epoch == 3


def test_history_keeps_the_finished_epochs_of_a_resumed_run(tmp_path):
    rundir.write_history(tmp_path, [{"epoch": e, "loss": 3.0 - e} for e in range(4)])
    history = HistoryCSV(tmp_path, keep=2)  # epochs 3 and 4 were not backed up
    history.on_train_begin()
    assert list(rundir.read_history(tmp_path)["epoch"]) == [0, 1]
    history.on_epoch_end(2, {"loss": np.float32(0.5)})
    assert rundir.read_history(tmp_path).to_dict("records")[-1] == {"epoch": 2, "loss": 0.5}


def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


def test_the_backup_restores_weights_optimizer_and_callback_states(tmp_path):
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    model = tiny_model()
    model.fit(x, y, epochs=3, verbose=0)  # 3 steps of Adam: moments and iterations to keep
    stop = EarlyStopping("loss", patience=4)
    run_epochs(stop, [2.0, 1.0, 1.5], name="loss")
    committed = []
    backup = EpochBackup(tmp_path, stateful=[stop],
                         then=[lambda: committed.append(rundir.read_backup(tmp_path).epoch)])
    backup.set_model(model)
    backup.on_epoch_end(2)
    assert committed == [3]  # `then` runs once the epoch is backed up

    fresh, fresh_stop = tiny_model(), EarlyStopping("loss", patience=4)
    assert EpochBackup(tmp_path, stateful=[fresh_stop]).restore(fresh) == 3
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations) == 3
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(fresh.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert fresh_stop.state() == stop.state() == {"best": 1.0, "best_then": None,
                                                  "best_epoch": 2, "wait": 1,
                                                  "stopped_epoch": 0, "reached": False}


def test_no_backup_means_no_epoch_done(tmp_path):
    assert EpochBackup(tmp_path).restore(tiny_model()) == 0
