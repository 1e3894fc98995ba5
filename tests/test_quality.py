"""The stop rule (#27): training ends when the model has learned what it is for, measured by
answer rates after every epoch, never by the clock."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from chatbot.decoding.bot import Bot
from chatbot.decoding.quality import SAMPLE, AnswerRates, Pace
from chatbot.training.train import train
from tests.conftest import TINY_PAIRS, tiny_config

pytestmark = pytest.mark.slow


def quality_config(epochs: int = 120):
    """Until the model alone answers all six pairs. (Not `quality`, the default: of the typing
    variants of six prompts, the bot answers 4, and no epoch changes that.)"""
    config = tiny_config(epochs=epochs)
    config.train.learning_rate = 1e-2
    config.train.monitor, config.train.stop_at, config.train.patience = "answer_rate", 1.0, epochs
    return config


class Searched(AnswerRates):
    """AnswerRates that also measures the model alone by searching every sampled prompt, as
    the chat would reply (Bot.reply_all), after its own measure of each epoch."""

    compared: list[tuple[float, float]] = []  # (the stop rule's rate, the searched one)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.bot.configure(retrieval=False, fallback=False)
        searched = self._rate(self.bot, [(query, query) for query in self.asked])
        self.bot.configure(retrieval=True, fallback=True)
        self.compared.append((logs["answer_rate"], searched))


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny_tsv):
    out = tmp_path_factory.mktemp("quality") / "run"
    lines: list[str] = []
    Searched.compared = []
    result = train(tiny_tsv, out, quality_config(), callbacks=[Searched.of],
                   log=lines.append, verbose=0)
    return out, result, lines


def test_the_model_alone_is_measured_as_its_search_would_reply(stopped_run):
    # The stop rule settles most prompts by one teacher-forced pass over their own replies
    # (AnswerRates._alone); at every epoch it counts what the search itself answers.
    compared = Searched.compared
    assert len(compared) == len(pd.read_csv(stopped_run[0] / "history.csv"))
    assert [rate for rate, _ in compared] == [searched for _, searched in compared]
    # ... through epochs with prompts answered and prompts not, not only 0 or 1.
    assert any(0 < rate < 1 for rate, _ in compared)


def test_training_stops_once_the_model_alone_answers_every_known_prompt(stopped_run):
    out, result, lines = stopped_run
    history = pd.read_csv(out / "history.csv")
    assert {"answer_rate", "variant_rate", "quality"} <= set(history.columns)
    assert (history["quality"] == history[["answer_rate", "variant_rate"]].min(axis=1)).all()
    # It stopped at the first epoch that reached the target, long before the last one, and kept
    # that epoch's model.
    reached = history.index[history["answer_rate"] >= 1.0]
    assert len(history) == reached[0] + 1 < 120
    stopped = json.loads((out / "metrics.json").read_text())["stopped"]
    assert stopped["reason"] == "target" and stopped["epoch"] == len(history)
    assert result.best_epoch == len(history)
    assert f"stopped after epoch {len(history)}: answer_rate 1.000 reached the target 1" in lines
    # What it measured is what it learned: the model alone answers every pair.
    bot = Bot.load(out)
    bot.configure(retrieval=False, fallback=False)
    for prompt, reply in TINY_PAIRS:
        assert bot.reply(prompt).tokens == bot.tokenizer.tokenize(reply), prompt


def test_the_same_run_stops_at_the_same_epoch_with_the_same_figures(stopped_run, tiny_tsv,
                                                                    tmp_path):
    out, _, _ = stopped_run
    again = tmp_path / "again"
    train(tiny_tsv, again, quality_config(), callbacks=[AnswerRates.of], log=lambda _: None,
          verbose=0)
    first, second = (pd.read_csv(run / "history.csv") for run in (out, again))
    pd.testing.assert_frame_equal(first, second)


def test_each_epoch_reports_the_rates_and_the_pace(stopped_run):
    _, _, lines = stopped_run
    rates = [line for line in lines if "the model alone answers" in line]
    assert len(rates) == json.loads((stopped_run[0] / "metrics.json").read_text())[
        "stopped"]["epoch"]
    assert rates[-1].startswith(f"  the model alone answers 100.0% of {len(TINY_PAIRS)} known "
                                "prompts; the bot ")
    # Once the rate rises, each line says how long it may take yet (display only).
    assert any("; target 100%: about " in line and line.endswith(", at this pace")
               for line in rates)


def test_a_run_without_the_measure_monitors_loss_and_says_so(tiny_tsv, tmp_path):
    lines: list[str] = []
    config = quality_config(epochs=2)
    config.train.run_eagerly = True  # (see tiny_config)
    train(tiny_tsv, tmp_path / "run", config, log=lines.append, verbose=0)
    assert "this run measures no answer rates: monitoring loss instead of answer_rate" in lines
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["monitor"] == "loss"


def test_the_sample_is_fixed_by_the_seed_and_bounded(tmp_path):
    from types import SimpleNamespace

    from chatbot.config import RunConfig
    from chatbot.data.pairs import Pair

    pairs = [Pair(f"question number {i}?", f"answer {i}.", i + 1) for i in range(SAMPLE + 50)]
    data = SimpleNamespace(train_pairs=pairs, val_pairs=[], vocab=None, tokenizer=None)
    run = SimpleNamespace(data=data, config=RunConfig(), log=print)
    first, second = AnswerRates.of(run), AnswerRates.of(run)
    assert len(first.asked) == SAMPLE and first.asked == second.asked
    assert first.variants == second.variants and 0 < len(first.variants) <= SAMPLE
    run.config.train.seed += 1
    assert AnswerRates.of(run).asked != first.asked


def test_the_pace_estimates_the_epochs_left_from_the_last_two(monkeypatch):
    clock = iter([0.0, 10.0, 20.0, 30.0, 40.0])
    monkeypatch.setattr("chatbot.decoding.quality.time.perf_counter", lambda: next(clock))
    pace = Pace(target=0.9, epochs=30)
    assert [pace.note(e, q) for e, q in enumerate([0.1, 0.2, 0.4])] == [
        "", "", "; target 90%: about 4 more epoch(s), 40 s, at this pace"]  # +0.15 an epoch
    assert pace.note(3, 0.15) == ""  # no gain over the last two: no estimate
    assert Pace(0.0, 30).note(0, 0.5) == ""  # no target


def test_the_learning_rate_falls_by_its_decay_every_4000_pairs_down_to_a_tenth():
    import keras

    from chatbot.config import TrainConfig
    from chatbot.models.common import Decay, compile_model

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    train = TrainConfig(learning_rate=0.02, lr_decay=0.5, batch_size=200)
    compile_model(model, train, devices=2)  # 4,000 pairs: 10 steps of 2 x 200
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, Decay)
    rates = [float(schedule(step)) for step in (0, 5, 10, 20, 40, 1000)]
    assert rates == pytest.approx([0.02, 0.02 * 0.5 ** 0.5, 0.01, 0.005, 0.002, 0.002])
    restored = Decay(**schedule.get_config())  # saved with the model, and read back
    assert float(restored(15)) == pytest.approx(float(schedule(15)))
    compile_model(model, train)  # no devices given: a constant rate
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)
