"""A tiny training run: it must learn its pairs, and leave a complete, reloadable run directory."""

from __future__ import annotations

import copy
import json

import keras
import numpy as np
import pandas as pd
import pytest

from chatbot import models
from chatbot.data.memory import Memory
from chatbot.decoding.bot import Bot
from chatbot.decoding.probes import ProbeReplies
from chatbot.errors import ChatbotError
from chatbot.evaluate import evaluate_training
from chatbot.models.common import MaskedAccuracy  # noqa: F401  (registers it for load_model)
from chatbot.models.layers import PositionEmbedding  # noqa: F401  (the transformer's, too)
from chatbot.rundir import check_run_dir
from chatbot.training.prepare import prepare_data
from chatbot.training.train import train
from tests.conftest import TINY_PAIRS, TINY_RUN_EPOCHS, tiny_config, write_tsv

pytestmark = pytest.mark.slow


def test_tiny_run_answers_every_training_prompt_exactly(tiny_run):
    bot = Bot.load(tiny_run)
    for prompt, reply in TINY_PAIRS:
        assert bot.reply(prompt).tokens == bot.tokenizer.tokenize(reply), prompt
    assert bot.reply("你好").text == "你好！很高兴认识你。"


def test_run_directory_holds_what_chat_needs_and_nothing_else(tiny_run):
    check_run_dir(tiny_run)
    names = sorted(p.name for p in tiny_run.iterdir())
    assert names == ["calibration.json", "config.json", "history.csv", "memory.json",
                     "metrics.json", "model.keras", "runs", "status.json", "vocab.json"]
    status = json.loads((tiny_run / "status.json").read_text())
    assert status == {"state": "finished", "epochs": TINY_RUN_EPOCHS,
                      "best_epoch": status["best_epoch"]}
    assert status["best_epoch"] == json.loads((tiny_run / "metrics.json").read_text())[
        "best_epoch"] > TINY_RUN_EPOCHS * 2 // 3
    history = pd.read_csv(tiny_run / "history.csv")
    assert list(history["epoch"]) == list(range(TINY_RUN_EPOCHS))
    assert {"loss", "masked_accuracy"} <= set(history.columns)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] / 10
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["train"]["answer_rate"]["answer_rate"] == 1.0
    assert metrics["train"]["prompts"] == len(TINY_PAIRS)
    assert metrics["train"]["masked_accuracy"] == 1.0 and metrics["train"]["bleu"] > 99


ARCHS = sorted(models.ARCHS)  # every registered architecture


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_learns_its_training_pairs(tiny_runs, arch):
    bot = Bot.load(tiny_runs[arch])
    assert bot.config.model.arch == arch
    for prompt, reply in TINY_PAIRS:
        assert bot.reply(prompt).tokens == bot.tokenizer.tokenize(reply), (arch, prompt)


def _keras_inputs(arch: str, vocab, prompt_ids: list[int], reply_ids: list[int]):
    """The full-pass model input for a prompt and the reply so far."""
    if arch in ("lstm", "transformer"):  # one sequence: <SOS> prompt <SEP> reply
        return np.array([[vocab.sos_id, *prompt_ids, vocab.sep_id, *reply_ids]])
    return (np.array([prompt_ids]), np.array([[vocab.sos_id, *reply_ids]]))


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_model_reloads_in_keras_and_replies_identically(tiny_runs, arch):
    """Greedy decoding by full forward passes of the reloaded .keras model = the NumPy engine."""
    bot = Bot.load(tiny_runs[arch])
    model = keras.saving.load_model(tiny_runs[arch] / "model.keras")  # safe_mode is on
    vocab = bot.vocab
    for prompt, _ in TINY_PAIRS:
        prompt_ids = vocab.encode(bot.tokenizer.tokenize(prompt))
        reply = []
        for _ in range(bot.config.decode.max_reply_len):
            logits = np.array(model(_keras_inputs(arch, vocab, prompt_ids, reply)))[0, -1]
            logits[[vocab.pad_id, vocab.sos_id, vocab.sep_id, vocab.unk_id]] = -np.inf
            token = int(logits.argmax())
            if token == vocab.eos_id:
                break
            reply.append(token)
        assert bot.vocab.decode(reply) == bot.reply(prompt).tokens


def test_refuses_to_overwrite_a_trained_model_unless_asked(tiny_run, tiny_tsv):
    before = (tiny_run / "model.keras").read_bytes()
    with pytest.raises(ChatbotError, match="--overwrite"):
        train(tiny_tsv, tiny_run, tiny_config(epochs=1), log=lambda _: None, verbose=0)
    assert (tiny_run / "model.keras").read_bytes() == before


def test_bad_data_fails_before_touching_the_run_directory(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("hello\thi\nno tab here\n", encoding="utf-8")
    with pytest.raises(ChatbotError, match=r"bad\.tsv:2: expected 2 tab-separated columns"):
        train(bad, tmp_path / "run", tiny_config(epochs=1), log=lambda _: None, verbose=0)
    assert not (tmp_path / "run").exists()


def test_validation_split_probes_and_data_changes_are_reported(tmp_path):
    # Six pairs, one of them twice; one long prompt; words seen once; a bad line.
    pairs = [*TINY_PAIRS, TINY_PAIRS[0], ("one two three four five six seven", "ok")]
    data = write_tsv(tmp_path / "pairs.tsv", pairs)
    data.write_text(data.read_text(encoding="utf-8") + "no tab here\n", encoding="utf-8")
    config = tiny_config(epochs=2, run_eagerly=True)
    config.data.val_fraction = 0.34
    config.data.max_len = 5
    config.data.min_count = 2
    config.data.on_bad_lines = "skip"
    config.train.monitor = "val_loss"
    config.train.probes = 2
    before = copy.deepcopy(config)
    lines: list[str] = []
    result = train(data, tmp_path / "run", config, log=lines.append, verbose=0,
                   callbacks=[ProbeReplies.of])
    assert config == before  # the caller's config is not changed
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert {"val_loss", "val_masked_accuracy"} <= set(history.columns)
    validation = evaluate_training(result, log=lines.append)["validation"]
    assert validation["prompts"] == 2 and validation["retrieval"] is False  # the model alone
    # The memory knows every pair of the data, the validation pairs too.
    memory = Memory.load(tmp_path / "run" / "memory.json")
    assert {p.prompt for p in [*result.data.train_pairs, *result.data.val_pairs]} \
        == set(memory.prompts) and result.data.val_pairs
    assert sum(" -> " in line for line in lines) == 2 * 2  # two probes, two epochs
    assert any("pairs/s" in line for line in lines)
    report = prepare_data(config, data).report  # the same counts, checked in test_prepare.py
    expected = report.lines()
    assert f"skipped 1 bad lines of {data} (first: line 9: expected 2 tab-separated columns " \
           "(prompt<TAB>reply), found 1)" in lines
    assert f"dropped 1 duplicate pairs of {data} (exact repeats of an earlier prompt and " \
           "reply)" in lines
    assert any(line.startswith("truncated to 5 tokens: ") for line in lines)
    assert any(line.startswith("read as <UNK>: ") and "min_count 2" in line for line in lines)
    assert expected == [line for line in lines if line in expected]
