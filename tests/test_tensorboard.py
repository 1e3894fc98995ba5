"""TensorBoard logs of every run: the scalars (mirroring history.csv), the probe replies, the
projector, the settings as HParams; a killed and resumed run shows each step once, with the
figures of the run that was never interrupted."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import metadata as hparams_metadata

from chatbot import rundir
from chatbot.config import RunConfig
from chatbot.decoding.probes import TAG, ProbeReplies
from chatbot.errors import ChatbotError
from chatbot.training.callbacks import EpochBackup
from chatbot.training.loop import Loop
from chatbot.training.tensorboard import finished, hparams, log_dir, purge
from chatbot.training.train import train
from tests.conftest import TINY_PAIRS, tiny_config, write_tsv
from tests.test_loop import batches, gradient_norms, make_model

EPOCHS = 4
STEPS = 2  # per epoch: six training pairs in batches of 4
RTOL = 1e-4  # CPU, same seeds: resumed epochs compute what the uninterrupted ones did


def read(directory: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """tag -> [(step, value)] of every event file in `directory`, as TensorBoard reads them,
    but with nothing purged: a step written twice shows twice."""
    events = ea.EventAccumulator(str(directory), size_guidance={ea.TENSORS: 0},
                                 purge_orphaned_data=False)
    events.Reload()
    return {tag: [(e.step, tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def steps(logs: dict, tag: str) -> list[int]:
    return [step for step, _ in logs[tag]]


def values(logs: dict, tag: str) -> np.ndarray:
    return np.array([float(value) for _, value in logs[tag]])


# --- without training ---------------------------------------------------------------------------


def test_logs_go_inside_the_run_unless_absolute_or_off(tmp_path):
    config = RunConfig()
    assert log_dir(tmp_path, config) == tmp_path / "runs"  # on by default
    config.train.tensorboard = str(tmp_path / "elsewhere")
    assert log_dir(tmp_path / "run", config) == tmp_path / "elsewhere"
    config.train.tensorboard = "off"
    assert log_dir(tmp_path, config) is None
    config.train.tensorboard = " "
    with pytest.raises(ChatbotError, match="expected a folder .* or 'off'"):
        log_dir(tmp_path, config)


def test_the_settings_are_config_json_flattened():
    config = RunConfig()
    config.data.text = ["a.txt", "b.txt"]
    flat = hparams(config)
    assert flat["train.epochs"] == config.train.epochs and flat["model.arch"] == "lstm"
    assert flat["data.text"] == "a.txt, b.txt"
    assert "format_version" not in flat
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


def write(directory: Path, tags_steps: list[tuple[str, int]]) -> None:
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        for tag, step in tags_steps:
            tf.summary.scalar(tag, float(step), step=step)
    writer.close()


def test_purge_keeps_what_finished_epochs_wrote_each_once(tmp_path):
    def epoch(e: int) -> list[tuple[str, int]]:  # three steps, then the epoch's figures
        return [("batch_loss", 3 * e + 1), ("batch_loss", 3 * e + 2), ("batch_loss", 3 * e + 3),
                ("epoch_loss", e)]

    # Three epochs logged, two backed up: the third was killed before its backup.
    write(tmp_path, [*epoch(0), *epoch(1), *epoch(2)])
    # A purge cut short left the first file's kept events in a second file too.
    write(tmp_path, [("batch_loss", 1), ("epoch_loss", 0)])
    purge(tmp_path, lambda event: finished(event, epochs=2, steps=6))
    assert len(list(tmp_path.iterdir())) == 1
    logs = read(tmp_path)
    assert steps(logs, "batch_loss") == [1, 2, 3, 4, 5, 6]
    assert steps(logs, "epoch_loss") == [0, 1]
    purge(tmp_path, lambda event: False)
    assert list(tmp_path.iterdir()) == []


def test_a_new_run_in_the_same_folder_drops_the_old_logs(tmp_path):
    write(tmp_path / "runs" / "train", [("epoch_loss", 0)])
    rundir.start_run(tmp_path)
    rundir.finish_run(tmp_path)
    rundir.create_run(tmp_path, overwrite=True)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_loop_measures_the_gradient_norm_before_clipping():
    model, data = make_model("lstm", clipnorm=0.05), batches("lstm")
    batch = next(iter(data))
    norms = gradient_norms(model, batch)
    assert max(norms) > 0.05  # clipping changes some: the norm is taken before it
    loop = Loop(model, tf.distribute.get_strategy(), gradient_norm=True)
    loop.fit(data.dataset(repeat=True), epochs=1, steps=1, verbose=0)
    assert loop.totals.steps == 1
    assert loop.totals.norm == pytest.approx(float(np.sqrt(np.sum(np.square(norms)))),
                                             rel=1e-5)


# --- a tiny run, straight and killed then resumed ---------------------------------------------

PAIRS = [*TINY_PAIRS, ("good night", "sleep well."), ("thank you", "you are welcome.")]


def config_for_logs():
    config = tiny_config(epochs=EPOCHS, run_eagerly=True)
    config.data.val_fraction = 0.25  # two validation pairs, six training pairs
    config.train.probes = 2
    config.train.tensorboard_steps = STEPS  # one point per epoch, at its last step
    return config


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tensorboard")
    out = root / "run"
    train(write_tsv(root / "pairs.tsv", PAIRS), out, config_for_logs(), log=quiet, verbose=0,
          callbacks=[ProbeReplies.of])
    return out


@pytest.mark.slow
def test_a_run_logs_its_scalars_probe_replies_projector_and_settings(straight):
    model = keras.saving.load_model(straight / "model.keras")
    assert int(model.optimizer.iterations) == EPOCHS * STEPS
    history = pd.read_csv(straight / "history.csv")
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]  # it learned something
    logs = straight / "runs"
    train_logs, validation = read(logs / "train"), read(logs / "validation")
    for name in ("loss", "masked_accuracy"):  # the figures of history.csv, each epoch once
        assert steps(train_logs, f"epoch_{name}") == list(range(EPOCHS))
        np.testing.assert_allclose(values(train_logs, f"epoch_{name}"), history[name], rtol=1e-6)
        np.testing.assert_allclose(values(validation, f"epoch_{name}"), history[f"val_{name}"],
                                   rtol=1e-6)
    # Every STEPS steps, the figures of those steps: here an epoch's, at its last step.
    for name in ("loss", "masked_accuracy", "gradient_norm", "scored_tokens_per_second",
                 "learning_rate"):
        assert steps(train_logs, f"batch_{name}") == [STEPS * (e + 1) for e in range(EPOCHS)]
    for name in ("loss", "masked_accuracy", "gradient_norm"):
        np.testing.assert_allclose(values(train_logs, f"batch_{name}"),
                                   values(train_logs, f"epoch_{name}"), rtol=1e-6)
    assert values(train_logs, "epoch_learning_rate") == pytest.approx([5e-3] * EPOCHS)  # tiny
    assert (values(train_logs, "epoch_gradient_norm") > 0).all()
    assert (values(train_logs, "epoch_scored_tokens_per_second") > 0).all()
    # The probe replies of each epoch: a table of the probe prompts and their replies.
    assert steps(train_logs, TAG) == list(range(EPOCHS))
    table = [[cell.decode() for cell in row] for row in train_logs[TAG][-1][1]]
    assert table[0] == ["prompt", "reply"] and len(table) == 3
    assert {prompt for prompt, _ in table[1:]} <= {prompt for prompt, _ in PAIRS}
    assert_projector(straight, model)
    assert_settings(straight)


def assert_projector(run: Path, model: keras.Model) -> None:
    """The vocabulary labels the rows of the last epoch's embedding matrix."""
    where = run / "runs" / "train"
    tokens = rundir.read_json(run / "vocab.json")["tokens"]
    assert (where / "metadata.tsv").read_text(encoding="utf-8").splitlines() == tokens
    config = (where / "projector_config.pbtxt").read_text()
    assert 'metadata_path: "metadata.tsv"' in config
    tensor = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    assert f'tensor_name: "{tensor}"' in config
    saved = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(where))).get_tensor(tensor)
    # The monitor (training loss) improved every epoch: model.keras is the last epoch's too.
    np.testing.assert_array_equal(saved, model.get_layer("embedding").embeddings.numpy())


def assert_settings(run: Path) -> None:
    """config.json's settings, written once, for the HParams dashboard."""
    events = ea.EventAccumulator(str(run / "runs"), purge_orphaned_data=False)
    events.Reload()
    (tag,) = events.Tags()["tensors"]
    assert len(events.Tensors(tag)) == 1
    content = events.SummaryMetadata(tag).plugin_data.content
    info = hparams_metadata.parse_session_start_info_plugin_data(content)
    assert info.hparams["train.epochs"].number_value == EPOCHS
    assert info.hparams["model.arch"].string_value == "lstm"
    assert info.hparams["data.val_fraction"].number_value == 0.25


@pytest.mark.slow
def test_a_killed_run_resumes_its_logs_without_showing_a_step_twice(straight, tmp_path,
                                                                    monkeypatch):
    out = tmp_path / "run"
    backup = EpochBackup.on_epoch_end

    def killed_before_the_third_backup(self, epoch, logs=None):
        if epoch == 2:  # its steps and its figures are logged, its backup never written
            raise KeyboardInterrupt
        backup(self, epoch, logs)

    monkeypatch.setattr(EpochBackup, "on_epoch_end", killed_before_the_third_backup)
    with pytest.raises(KeyboardInterrupt):
        train(write_tsv(tmp_path / "pairs.tsv", PAIRS), out, config_for_logs(), log=quiet,
              verbose=0, callbacks=[ProbeReplies.of])
    assert steps(read(out / "runs" / "train"), "epoch_loss") == [0, 1, 2]
    monkeypatch.setattr(EpochBackup, "on_epoch_end", backup)
    train(None, out, resume=True, log=quiet, verbose=0, callbacks=[ProbeReplies.of])

    for run in ("train", "validation"):
        resumed, expected = read(out / "runs" / run), read(straight / "runs" / run)
        assert set(resumed) == set(expected)
        for tag in expected:
            if tag.endswith("_per_second"):  # timings: the steps alone
                assert steps(resumed, tag) == steps(expected, tag), tag
            elif tag == TAG:
                assert [(s, v.tolist()) for s, v in resumed[tag]] == \
                    [(s, v.tolist()) for s, v in expected[tag]]
            else:  # each step once, with the uninterrupted run's figures
                assert steps(resumed, tag) == steps(expected, tag), tag
                np.testing.assert_allclose(values(resumed, tag), values(expected, tag),
                                           rtol=RTOL, err_msg=tag)
    assert_settings(out)
