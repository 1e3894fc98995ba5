"""`chatbot pretrain`: a decoder-only model learns plain text as a language model, then
`chatbot train --init-from` fine-tunes it on pairs, keeping its tokenizer and vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatbot.cli import main
from chatbot.config import RunConfig
from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.rundir import CONFIG, METRICS, TOKENIZER, VOCAB
from chatbot.training.pretrain_data import prepare_text, read_text, windows

# Who owns what: the text says it in several ways, the pairs ask about it.
OWNERS = {"rex": "dog", "tom": "cat", "ann": "car", "bob": "book", "kim": "tree"}
SENTENCES = ["{n} has a {t}.", "the {t} of {n} is nice.", "{n} likes the {t}."]


def write_text(path, repeats: int = 30):
    lines = [s.format(n=n, t=t) for _ in range(repeats) for n, t in OWNERS.items()
             for s in SENTENCES]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return path


def test_read_text_keeps_the_non_blank_lines(tmp_path):
    (tmp_path / "a.txt").write_text("\ufeffone line\n\n  two  \r\nthree\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("四\n", encoding="utf-8")
    assert read_text([tmp_path / "a.txt", tmp_path / "b.txt"]) == ["one line", "two", "three",
                                                                   "四"]


@pytest.mark.parametrize("content, message", [
    (None, "cannot be read"),
    (b"fine\nnot \xff utf-8\n", r"bad.txt:2: not UTF-8 \(byte 0xff\)"),
    (b"\n  \n", "holds no text"),
])
def test_unreadable_text_is_refused_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ChatbotError, match=message):
        read_text([path])


def test_long_passages_are_cut_into_windows():
    assert windows(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert windows([], 3) == []


def test_every_text_token_is_scored_and_the_split_is_reported(tmp_path):
    config = RunConfig()
    config.model.arch, config.data.max_len, config.data.val_fraction = "transformer", 4, 0.2
    data = prepare_text(config, [write_text(tmp_path / "t.txt", repeats=2)])
    (tokens,), target = data.train_examples[0]
    assert tokens[0] == data.vocab.sos_id and target[-1] == data.vocab.eos_id
    assert tokens[1:] == target[:-1] and 0 not in target  # every position scored
    assert max(len(t) for (t,), _ in data.train_examples) <= 2 * 4 + 2  # fits max_positions
    assert data.report.train.pairs + data.report.validation.pairs == len(
        data.train_examples) + len(data.val_examples)
    assert len(data.val_examples) > 0 and data.train_pairs == []
    assert "training windows of text" in data.report.lines()[0]


def test_an_encoder_decoder_cannot_be_pretrained(tmp_path):
    config = RunConfig()
    config.model.arch = "seq2seq"
    with pytest.raises(ChatbotError, match="decoder-only.*--arch transformer"):
        prepare_text(config, [write_text(tmp_path / "t.txt", repeats=1)])


@pytest.mark.slow
def test_pretrain_then_fine_tune_keeps_the_tokenizer_and_learns(tmp_path, capsys):
    text = write_text(tmp_path / "text.txt", repeats=12)
    lm = tmp_path / "lm"
    small = ["--embedding-dim", "32", "--hidden-dim", "64", "--num-heads", "2",
             "--max-len", "12", "--tokenizer", "sentencepiece", "--subword-vocab", "300",
             "--seed", "3"]
    # docs: chatbot pretrain --text books.txt articles.txt --out models/lm --tokenizer \
    #       sentencepiece
    assert main(["pretrain", "--text", str(text), "--out", str(lm), "--epochs", "20",
                 "--learning-rate", "3e-3", *small]) == 0
    printed = capsys.readouterr().out
    assert "train --init-from" in printed
    assert " windows/s, " in printed and " pairs/s" not in printed  # text, not pairs
    config = RunConfig.load(lm / CONFIG)
    assert config.model.arch == "transformer" and config.data.text == [str(text)]
    # It learned the text: after "<SOS> rex has a" comes "dog", for every owner.
    bot = Bot.load(lm)
    engine, vocab, tokenizer = bot.engine, bot.vocab, bot.tokenizer
    for name, thing in OWNERS.items():
        ids = [vocab.sos_id, *vocab.encode(tokenizer.tokenize(f"{name} has a"))]
        following = engine.logits(np.array([ids]))[0, -1].argmax()
        assert tokenizer.tokenize(f"{name} has a {thing}")[len(ids) - 1] == vocab.tokens[
            following], name
    assert json.loads((lm / METRICS).read_text())["best_value"] < 0.5

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"what does {n} have?\t{n} has a {t}.\n"
                             for n, t in OWNERS.items()), encoding="utf-8")
    tuned = tmp_path / "tuned"
    # docs: chatbot train --init-from models/lm --data data/chatterbot.tsv --out models/tuned
    assert main(["train", "--init-from", str(lm), "--data", str(pairs), "--out", str(tuned),
                 "--epochs", "30", "--val-fraction", "0", "--noise-copies", "0",
                 "--learning-rate", "3e-3", "--patience", "30", "--max-len", "12"]) == 0
    assert (tuned / TOKENIZER).read_bytes() == (lm / TOKENIZER).read_bytes()
    assert (tuned / VOCAB).read_text() == (lm / VOCAB).read_text()
    assert RunConfig.load(tuned / CONFIG).data.text == []
    bot = Bot.load(tuned)
    bot.configure(retrieval=False)
    for name, thing in OWNERS.items():
        assert bot.reply(f"what does {name} have?").text == f"{name} has a {thing}."


@pytest.mark.slow
def test_an_interrupted_pretraining_resumes_on_its_text(tmp_path, monkeypatch):
    from chatbot.rundir import run_state

    text = write_text(tmp_path / "text.txt", repeats=4)
    lm = tmp_path / "lm"
    small = ["--embedding-dim", "16", "--hidden-dim", "32", "--num-heads", "2",
             "--max-len", "8"]
    import chatbot.training.callbacks as callbacks

    calls = {"n": 0}
    original = callbacks.EpochBackup.on_epoch_end

    def stop_after_two(self, epoch, logs=None):
        original(self, epoch, logs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.EpochBackup, "on_epoch_end", stop_after_two)
    assert main(["pretrain", "--text", str(text), "--out", str(lm), "--epochs", "4",
                 "--run-eagerly", *small]) != 0  # (the resumed run too: it is the run's)
    monkeypatch.setattr(callbacks.EpochBackup, "on_epoch_end", original)
    assert run_state(lm).resumable
    assert main(["pretrain", "--resume", "--out", str(lm)]) == 0
    assert len((lm / "history.csv").read_text().splitlines()) == 1 + 4
