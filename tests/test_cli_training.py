"""`chatbot train` never ignores a flag without a word: with --resume (and --if-needed on a
started run) a flag must repeat the run's own setting or is refused by name; with --init-from
the flags that shape the vocabulary or the model are refused and the others apply. Exit code 1
and a message, never a traceback. `train()` itself is replaced by a fake that records its
arguments, so these tests need no training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chatbot import rundir
from chatbot.cli import main
from chatbot.config import preset
from chatbot.text.vocab import SPECIALS, Vocabulary
from tests.conftest import TINY_RUN_EPOCHS


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    import chatbot.evaluate
    import chatbot.training.train
    from chatbot.decoding.probes import ProbeReplies
    from chatbot.decoding.quality import AnswerRates

    recorded: list[dict] = []

    def fake_train(data_path, out_dir, callbacks=(), **options):
        # the replies after every epoch, and the answer rates the stop rule reads
        assert list(callbacks) == [ProbeReplies.of, AnswerRates.of]
        recorded.append({"data": data_path, "out": str(out_dir), **options})
        return "trained"

    def fake_evaluation(result):
        assert result == "trained"  # what train returned is what is measured

    monkeypatch.setattr(chatbot.training.train, "train", fake_train)
    monkeypatch.setattr(chatbot.evaluate, "evaluate_training", fake_evaluation)
    return recorded


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "pairs.tsv"
    path.write_text("hello\thi\n", encoding="utf-8")
    return path


def started_run(path: Path, data: Path, finished: bool = False) -> Path:
    """A tiny-preset run directory as train() leaves it after some epochs (or at the end)."""
    rundir.start_run(path)
    config = preset("tiny")
    config.data.path = str(data)
    config.save(path / "config.json")
    Vocabulary(list(SPECIALS)).save(path / "vocab.json")
    if finished:
        rundir.finish_run(path, epochs=5, best_epoch=4)
    return path


def error(capsys, argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatbot: error: ") and "Traceback" not in err
    return err


def test_resume_refuses_flags_that_would_change_the_run_and_names_them(tmp_path, data, capsys,
                                                                       calls):
    run = started_run(tmp_path / "run", data)
    err = error(capsys, ["train", "--resume", str(run), "--hidden-dim", "32",
                         "--learning-rate", "0.1", "--max-len", "40", "--run-eagerly"])
    assert f"{run} is resumed with its own settings, which these flags would change: " in err
    assert "--hidden-dim 32 (the run has 64)" in err
    assert "--learning-rate 0.1 (the run has 0.005)" in err
    assert "--run-eagerly (the run has it off)" in err
    assert "--max-len" not in err  # it repeats the run's setting
    assert "--overwrite" in err and calls == []


def test_resume_refuses_a_preset_that_differs_from_the_run(tmp_path, data, capsys, calls):
    run = started_run(tmp_path / "run", data)
    err = error(capsys, ["train", "--resume", str(run), "--preset", "article"])
    assert "--preset article (model.embedding_dim 64; the run has 32)" in err
    assert "--preset article (train.optimizer 'rmsprop'; the run has 'adam')" in err
    assert calls == []


def test_resume_applies_epochs_strategy_data_and_repeated_settings(tmp_path, data, calls):
    run = started_run(tmp_path / "run", data)
    assert main(["train", "--resume", str(run), "--epochs", "50", "--strategy", "default",
                 "--preset", "tiny", "--hidden-dim", "64", "--data", str(data)]) == 0
    assert calls == [{"data": str(data), "out": str(run), "resume": True, "epochs": 50,
                      "strategy": "default"}]


def test_resume_names_one_run_only(tmp_path, data, capsys, calls):
    run = started_run(tmp_path / "run", data)
    err = error(capsys, ["train", "--resume", str(run), "--out", str(tmp_path / "other")])
    assert f"--out {tmp_path / 'other'} cannot apply too" in err


def test_resume_of_a_finished_run_says_what_to_do_instead(tmp_path, data, capsys, calls):
    run = started_run(tmp_path / "run", data, finished=True)
    err = error(capsys, ["train", "--resume", str(run)])
    assert f"training already finished, there is nothing to resume; to train it further use " \
           f"--init-from {run} --out NEW_DIR" in err


def test_tokenizer_flags_set_the_text_settings(tmp_path, data, calls):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--tokenizer",
                 "sentencepiece", "--subword-vocab", "800", "--subword-model", "bpe"]) == 0
    (call,) = calls
    text = call["config"].text
    assert (text.tokenizer, text.subword_vocab, text.subword_model) == ("sentencepiece", 800,
                                                                        "bpe")


def test_resume_refuses_another_tokenizer_by_name(tmp_path, data, capsys, calls):
    run = started_run(tmp_path / "run", data)
    err = error(capsys, ["train", "--resume", str(run), "--tokenizer", "sentencepiece",
                         "--subword-model", "unigram"])
    assert "--tokenizer sentencepiece (the run has word)" in err
    assert "--subword-model" not in err  # it repeats the run's setting
    assert calls == []


def test_init_from_keeps_the_tokenizer(tmp_path, data, capsys, calls):
    err = error(capsys, ["train", "--data", str(data), "--init-from", "models/old",
                         "--tokenizer", "sentencepiece", "--subword-vocab", "800"])
    assert "--init-from keeps the vocabulary and the model shape of models/old, so " \
           "--tokenizer, --subword-vocab cannot apply" in err
    assert calls == []


@pytest.mark.parametrize("argv, says", [
    (["--overwrite", "--resume", "x"], "argument --resume: not allowed with argument --overwrite"),
    (["--if-needed", "--init-from", "x"], "argument --init-from: not allowed with argument "
                                          "--if-needed"),
    (["--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
    (["--strategy", "tpu"], "argument --strategy: invalid choice: 'tpu'"),
    (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
])
def test_contradictory_or_unknown_flags_are_usage_errors(argv, says, capsys, calls):
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "x.tsv", *argv])
    assert info.value.code == 2 and says in capsys.readouterr().err


def test_init_from_refuses_the_flags_that_shape_vocabulary_or_model(tmp_path, data, capsys,
                                                                    calls):
    err = error(capsys, ["train", "--data", str(data), "--init-from", "models/old",
                         "--arch", "lstm", "--hidden-dim", "32", "--min-count", "2",
                         "--max-len", "20"])
    assert "--init-from keeps the vocabulary and the model shape of models/old, so --arch, " \
           "--hidden-dim, --min-count cannot apply" in err
    assert calls == []


def test_init_from_applies_the_other_flags(tmp_path, data, calls):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "new"), "--init-from",
                 "models/old", "--max-len", "20", "--dropout", "0.2", "--val-fraction", "0.2",
                 "--on-bad-lines", "skip", "--learning-rate", "0.01"]) == 0
    (call,) = calls
    config = call["config"]
    assert call["init_from"] == "models/old" and not call["overwrite"]
    assert (config.data.max_len, config.model.dropout, config.data.val_fraction) == (20, 0.2, 0.2)
    assert (config.data.on_bad_lines, config.train.learning_rate) == ("skip", 0.01)
    assert config.decode.max_reply_len == 20


def test_if_needed_starts_a_run_where_there_is_none(tmp_path, data, calls):
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--if-needed",
                 "--preset", "tiny"]) == 0
    (call,) = calls
    assert call["config"].model.hidden_dim == 64 and not call["overwrite"]
    assert "resume" not in call


def test_if_needed_resumes_an_interrupted_run(tmp_path, data, calls):
    run = started_run(tmp_path / "run", data)
    assert main(["train", "--data", str(data), "--out", str(run), "--if-needed",
                 "--preset", "tiny"]) == 0
    assert calls == [{"data": str(data), "out": str(run), "resume": True, "epochs": None,
                      "strategy": None}]


def test_if_needed_refuses_to_resume_with_other_settings(tmp_path, data, capsys, calls):
    run = started_run(tmp_path / "run", data)
    err = error(capsys, ["train", "--data", str(data), "--out", str(run), "--if-needed",
                         "--dropout", "0.5"])
    assert "is resumed with its own settings, which these flags would change: --dropout 0.5 " \
           "(the run has 0.0)" in err
    assert calls == []


def test_if_needed_starts_over_a_run_killed_before_its_settings_were_written(tmp_path, data,
                                                                            calls):
    rundir.start_run(tmp_path / "run")  # status "training", no config.json yet: nothing lost
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--if-needed"]) == 0
    (call,) = calls
    assert call["overwrite"] and "resume" not in call


def test_if_needed_leaves_a_finished_run_alone(tmp_path, data, capsys, calls):
    run = started_run(tmp_path / "run", data, finished=True)
    assert main(["train", "--data", str(data), "--out", str(run), "--if-needed",
                 "--preset", "tiny", "--strategy", "mirrored"]) == 0
    assert capsys.readouterr().out == (
        f"{run}: training finished (5 epochs, best epoch 4); nothing to do. To train it again "
        "from the start: --overwrite ('make retrain')\n")
    assert calls == []


def test_if_needed_on_a_finished_run_refuses_other_data_or_settings(tmp_path, data, capsys,
                                                                    calls):
    run = started_run(tmp_path / "run", data, finished=True)
    other = tmp_path / "other.tsv"
    shutil.copy(data, other)
    err = error(capsys, ["train", "--data", str(other), "--out", str(run), "--if-needed",
                         "--epochs", "9"])
    assert f"{run} has finished training, which these flags would change: --data {other} " \
           f"(it was trained on {data}); --epochs 9 (the run has 5)" in err
    assert calls == []


@pytest.mark.slow
def test_reply_from_an_unfinished_run_warns_and_says_how_to_finish(tiny_run, tmp_path, capsys):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    rundir.start_run(run)  # as if it had been killed: status "training", no epoch backed up
    assert main(["reply", "--model", str(run), "hello"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "hi there!\n"
    assert captured.err == (
        f"chatbot: warning: {run}: training was interrupted after 0 of {TINY_RUN_EPOCHS} "
        "epochs; this is its "
        f"best model so far. To finish it: 'chatbot train --resume {run}'\n")
    rundir.finish_run(run)
    assert main(["reply", "--model", str(run), "hello"]) == 0
    assert capsys.readouterr().err == ""


def test_fallback_phrasings_are_checked_before_training(tmp_path, data, capsys, calls):
    empty = tmp_path / "fallback.txt"
    empty.write_text("\n\n", encoding="utf-8")
    err = error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "run"),
                         "--fallback", str(empty)])
    assert str(empty) in err and "one phrasing per line" in err
    long = tmp_path / "long.txt"
    long.write_text("I don't know.\n" + "x" * 1001 + "\n", encoding="utf-8")
    err = error(capsys, ["train", "--data", str(data), "--out", str(tmp_path / "run"),
                         "--fallback", str(long)])
    assert f"{long}, line 2" in err
    assert calls == []  # refused before any training


def test_fallback_phrasings_are_saved_in_the_run_and_said(tmp_path, data, monkeypatch):
    import types

    import chatbot.evaluate
    import chatbot.training.train
    from chatbot.decoding.fallback import Fallback

    out = tmp_path / "run"
    monkeypatch.setattr(chatbot.training.train, "train",
                        lambda *args, **kwargs: types.SimpleNamespace(data=object()))
    monkeypatch.setattr(chatbot.evaluate, "evaluate_training", lambda result: None)
    phrasings = tmp_path / "mine.txt"
    phrasings.write_text("No idea, sorry!\n我不知道呀。\n", encoding="utf-8")
    # docs: chatbot train --data my_pairs.tsv --out models/mine --fallback my_fallback.txt
    assert main(["train", "--data", str(data), "--out", str(out), "--fallback",
                 str(phrasings)]) == 0
    said = Fallback.load(out)
    assert said.say("what is the capital of france") == "No idea, sorry!"
    assert said.say("法国的首都是哪里") == "我不知道呀。"
