"""The `chatbot` command as users run it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_tsv

COMMANDS = [[], ["data"], ["data", "import-chatterbot"], ["data", "check"], ["train"],
            ["chat"], ["reply"], ["plot"], ["eval"], ["attention"], ["serve"], ["export"],
            ["pretrain"]]


def run(*args: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "chatbot")
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("usage: chatbot")


def test_help_does_not_import_tensorflow():
    code = ("import sys; from chatbot.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_reply_imports_neither_tensorflow_nor_the_terminal_ui(tiny_run):
    """A one-shot reply loads what decoding needs, not the REPL's prompt_toolkit (it took
    about 0.4 s of a 0.9 s `chatbot reply`)."""
    code = ("import sys; from chatbot.cli import main\n"
            f"assert main(['reply', '--model', {str(tiny_run)!r}, 'hello']) == 0\n"
            "assert 'tensorflow' not in sys.modules and 'prompt_toolkit' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "hi there!"


def test_missing_model_says_to_train(tmp_path):
    result = run("reply", "--model", "models/default", "hi", cwd=tmp_path)
    assert result.returncode == 1
    assert "make train" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_check_reports_figures_and_bad_lines(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes("hello\thi\n你好\t你好！\nbroken line\n\nhello\thi\nok\t\n".encode())
    # docs: chatbot data check my_pairs.tsv
    result = run("data", "check", str(path))
    out = result.stdout.decode()
    assert result.returncode == 1  # bad lines found
    assert "pairs           2 (2 distinct prompts)" in out
    assert "bad lines       2" in out
    assert "duplicates      1" in out
    assert f"{path}:3: expected 2 tab-separated columns" in out
    assert f"{path}:6: the reply (second column) is empty" in out


BAD_DATA = {  # a command on a user's file: the file, its bytes, what the error must say
    "train-bad-line": (["train", "--data", "{file}"], "mine.tsv",
                       b"hello\thi\nbad \xff line\tx\n", "{file}:2: not valid UTF-8"),
    "train-no-file": (["train", "--data", "{file}"], "mine.tsv", None, "{file}: no such file"),
    "pretrain-bad-line": (["pretrain", "--text", "{file}"], "books.txt", b"a dog.\n\xff\n",
                          "{file}:2: not UTF-8"),
}


@pytest.mark.parametrize("name", BAD_DATA)
def test_a_bad_data_file_is_named_with_its_line_before_tensorflow_loads(tmp_path, name):
    """The user's file is read as training will read it before TensorFlow loads, which takes
    seconds and prints its own start-up chatter: the error comes at once, and alone."""
    args, file, content, expected = BAD_DATA[name]
    path, run_dir = tmp_path / file, tmp_path / "run"
    if content is not None:
        path.write_bytes(content)
    argv = [arg.format(file=path) for arg in args] + ["--out", str(run_dir)]
    code = ("import sys; from chatbot.cli import main\n"
            f"print(main({argv!r}), 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    err = result.stderr.decode()
    assert result.stdout.decode().split() == ["1", "False"], err  # exit 1, no TensorFlow
    assert expected.format(file=path) in err and "Traceback" not in err
    assert not run_dir.exists()


@pytest.mark.slow
def test_import_chatterbot_writes_tsv_and_reports_what_it_dropped(tmp_path):
    out = tmp_path / "corpus.tsv"
    # docs: chatbot data import-chatterbot --lang english chinese -o data/chatterbot.tsv
    result = run("data", "import-chatterbot", "--lang", "english", "-o", str(out))
    assert result.returncode == 0, result.stderr
    rows = out.read_text(encoding="utf-8").splitlines()
    assert len(rows) > 1000 and all(row.count("\t") == 1 for row in rows)
    english = importlib.resources.files("chatterbot_corpus") / "data" / "english"
    files = len([file for file in english.iterdir() if file.name.endswith(".yml")])
    report = result.stdout.decode().splitlines()
    read = re.fullmatch(rf"read (\d+) pairs from {files} files", report[0])
    duplicates = re.fullmatch(r"dropped (\d+) duplicate pairs \(the first of each is kept\)",
                              report[1])
    assert read and duplicates, report
    assert int(read[1]) - int(duplicates[1]) == len(rows)
    assert report[2:4] == [
        "skipped 1 conversation:",
        f"  {english / 'trivia.yml'}: conversation 14: "
        "a string ('In a game of bingo, which number is r...'), not a list of turns",
    ]
    assert report[4].startswith("joined ") and report[4].endswith(" multi-line turns into one line")
    assert report[-1] == f"wrote {len(rows)} pairs (english) to {out}"
    bad = run("data", "import-chatterbot", "--lang", "klingon", "-o", str(out))
    assert bad.returncode == 1 and "klingon" in bad.stderr.decode()


@pytest.mark.slow
def test_reply_one_prompt(tiny_run):
    # docs: chatbot reply --model models/mine "hello"
    result = run("reply", "--model", str(tiny_run), "你好")
    assert result.returncode == 0
    assert result.stdout.decode() == "你好！很高兴认识你。\n"


@pytest.mark.slow
def test_reply_from_stdin_writes_one_line_per_input_line(tiny_run):
    stdin = "hello\n\nwhat is your name?\n   \nzebra zebra\n再见\r\n".encode() + b"\xff\xfe\n"
    result = run("reply", "--model", str(tiny_run), stdin=stdin)
    lines = result.stdout.decode().split("\n")
    assert lines[-1] == ""  # output ends with a newline
    lines = lines[:-1]
    assert len(lines) == 7
    assert lines[0] == "hi there!"
    assert lines[1] == "" and lines[3] == ""  # empty input, empty reply: still aligned
    assert lines[2] == "my name is bot."
    assert lines[4] != ""  # unknown words still get an answer, not a crash
    assert lines[5] == "再见，明天见。"
    assert lines[6] == ""
    assert "stdin:7: not valid UTF-8" in result.stderr.decode()
    assert result.returncode == 1


def jsonl(result: subprocess.CompletedProcess) -> list[dict]:
    out = result.stdout.decode("utf-8")
    assert out.endswith("\n")
    return [json.loads(line) for line in out[:-1].split("\n")]


def expected_record(bot, prompt: str) -> dict:
    reply = bot.reply(prompt)
    match = reply.match
    return {"prompt": prompt, "reply": reply.text, "confidence": round(reply.confidence, 4),
            "source": reply.source, "matched_prompt": match and match.prompt,
            "similarity": match and round(match.similarity, 4)}


@pytest.mark.slow
def test_reply_jsonl_writes_one_object_per_input_line(tiny_run):
    from chatbot.decoding.bot import Bot

    bot = Bot.load(tiny_run)
    stdin = b"hello\n\nzebra quokka axolotl\n\xff\xfe\n" + "你好\n".encode()
    # docs: chatbot reply --model models/default --format jsonl < prompts.txt
    result = run("reply", "--model", str(tiny_run), "--format", "jsonl", stdin=stdin)
    records = jsonl(result)
    assert len(records) == 5
    assert records[0] == expected_record(bot, "hello")
    assert records[0]["matched_prompt"] == "hello" and records[0]["similarity"] == 1.0
    assert records[1] == {"prompt": "", "reply": "", "confidence": 0.0, "source": "model",
                          "matched_prompt": None, "similarity": None}
    assert records[2] == expected_record(bot, "zebra quokka axolotl")
    assert records[2]["source"] == "fallback"  # no known word: the bot says it does not know
    assert records[3]["reply"] == "" and records[3]["error"] == "not valid UTF-8"
    assert records[4] == expected_record(bot, "你好")
    assert "stdin:4: not valid UTF-8" in result.stderr.decode()
    assert result.returncode == 1


@pytest.mark.slow
def test_reply_jsonl_for_one_prompt_and_for_conversations(tiny_run):
    from chatbot.decoding.bot import Bot

    bot = Bot.load(tiny_run)
    # docs: chatbot reply --model models/default --format jsonl "whats ur name"
    one = run("reply", "--model", str(tiny_run), "--format", "jsonl", "what", "is", "your",
              "name")
    assert one.returncode == 0
    assert jsonl(one) == [expected_record(bot, "what is your name")]
    conversations = [{"messages": [{"role": "user", "content": "hello"}]}, "{oops",
                     {"messages": [{"role": "user", "content": "hello"},
                                   {"role": "assistant", "content": "hi there!"}]}]
    stdin = "".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in conversations)
    result = run("reply", "--model", str(tiny_run), "--format", "jsonl", "--conversation",
                 stdin=stdin.encode())
    records = jsonl(result)
    assert records[0] == expected_record(bot, "hello")
    assert records[1]["prompt"] == "{oops" and records[1]["reply"] == ""
    assert records[1]["error"].startswith("bad JSON")
    assert records[2]["reply"] == "" and "must be the user's" in records[2]["error"]
    assert result.returncode == 1


@pytest.mark.slow
def test_reply_text_format_is_the_default(tiny_run):
    stdin = b"hello\nzebra quokka axolotl\n"
    text = run("reply", "--model", str(tiny_run), "--format", "text", stdin=stdin)
    assert text.stdout == run("reply", "--model", str(tiny_run), stdin=stdin).stdout
    assert text.stdout.decode().split("\n")[0] == "hi there!"


@pytest.mark.slow
def test_plot_writes_a_png(tiny_run, tmp_path):
    out = tmp_path / "curves.png"
    # docs: chatbot plot models/default models/mine -o curves.png
    result = run("plot", str(tiny_run), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_train_command_end_to_end(tmp_path, capsys):
    from chatbot.cli import main

    data = write_tsv(tmp_path / "pairs.tsv")
    # docs: chatbot train --data my_pairs.tsv --out models/mine
    # docs: chatbot train --data my_pairs.tsv --out models/try --preset tiny --epochs 2
    result = run("train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--epochs", "2", "--val-fraction", "0")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "best epoch" in result.stdout.decode()
    # Run here, as the command runs it (a process of its own would load TensorFlow again).
    again = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset",
                  "tiny"])
    assert again == 1 and "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_decode_flags_reach_the_sampler(tiny_run):
    # docs: chatbot reply --model models/default --beam 3 --nbest 2 "hello"
    result = run("reply", "--model", str(tiny_run), "--beam", "3", "--nbest", "2", "hello")
    assert result.returncode == 0
    assert result.stdout.decode() == "hi there!\n"
    ranked = result.stderr.decode().splitlines()
    assert len(ranked) == 2 and ranked[0].startswith("1. hi there!  (log-prob ")
    bad = run("reply", "--model", str(tiny_run), "--top-p", "2", "hello")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr.decode()


@pytest.mark.slow
def test_attention_command_draws_chinese_labels_with_a_cjk_font(tiny_runs, tmp_path):
    from chatbot.plot import cjk_font

    if cjk_font() is None:
        pytest.skip("no CJK font installed, so Chinese tick labels cannot be checked; "
                    "install one (Debian/Ubuntu: apt install fonts-wqy-microhei, as .ci/run does)")
    out = tmp_path / "attn.png"
    result = run("attention", "--model", str(tiny_runs["attention"]), "你好", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"reply: 你好！很高兴认识你。\nwrote {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # matplotlib warns "Glyph ... missing from font(s)" for each character it draws as a box.
    assert b"Glyph" not in result.stderr and b"no CJK font" not in result.stderr


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Glyph .* missing from font")  # the boxes it warns about
def test_attention_command_without_a_cjk_font_says_how_to_get_one(tiny_runs, tmp_path,
                                                                   monkeypatch, capsys):
    from chatbot import plot
    from chatbot.cli import main

    monkeypatch.setattr(plot, "cjk_font", lambda: None)
    model = str(tiny_runs["attention"])
    assert main(["attention", "--model", model, "你好", "-o", str(tmp_path / "zh.png")]) == 0
    assert capsys.readouterr().err == (
        "note: no CJK font installed, so Chinese labels show as boxes; install one "
        "(e.g. Debian/Ubuntu: apt install fonts-wqy-microhei)\n")
    assert main(["attention", "--model", model, "hello", "-o", str(tmp_path / "en.png")]) == 0
    assert capsys.readouterr().err == ""  # nothing to draw as boxes, nothing to say


@pytest.mark.slow
def test_attention_command_refuses_a_model_without_attention(tiny_runs, tmp_path):
    result = run("attention", "--model", str(tiny_runs["lstm"]), "你好", "-o",
                 str(tmp_path / "attn.png"))
    assert result.returncode == 1 and "has no attention" in result.stderr.decode()
    assert b"Traceback" not in result.stderr and not (tmp_path / "attn.png").exists()


@pytest.mark.slow
def test_rerank_flags_reach_the_bot(tiny_run):
    from chatbot.cli import build_parser
    from chatbot.cli.common import load_bot

    # docs: chatbot reply --model models/default --beam 5 --nbest 5 --mmi 0.5 "what do you think \
    #       about movies?"
    bot = load_bot(build_parser().parse_args(
        ["reply", "--model", str(tiny_run), "--retrieval", "off", "--mmi", "0.5", "hi"]))
    assert (bot.decode.retrieval, bot.decode.mmi) == (False, 0.5)
    bad = run("reply", "--model", str(tiny_run), "--retrieval", "maybe", "hello")
    assert bad.returncode == 1 and b"retrieval expects on or off" in bad.stderr


@pytest.mark.slow
def test_fallback_flags_reach_the_bot(tiny_run):
    from chatbot.cli import build_parser
    from chatbot.cli.common import load_bot

    bot = load_bot(build_parser().parse_args(
        ["reply", "--model", str(tiny_run), "--fallback", "off", "--min-confidence", "0.7",
         "--ambiguity", "0.1", "hi"]))
    assert (bot.decode.fallback, bot.decode.min_confidence, bot.decode.ambiguity) == (
        False, 0.7, 0.1)
    said = run("reply", "--model", str(tiny_run), "--fallback", "off", "--format", "jsonl",
               "zebra quokka axolotl")
    assert json.loads(said.stdout)["source"] == "model"  # the fallback would have said it
    bad = run("reply", "--model", str(tiny_run), "--min-confidence", "2", "hello")
    assert bad.returncode == 1 and b"min_confidence must be a number from 0 to 1" in bad.stderr


@pytest.mark.slow
def test_min_len_may_exceed_the_saved_max_len_when_max_len_comes_too(tiny_run, capsys):
    from chatbot.cli import main

    # --min-len is checked against max_len, so --max-len must be applied first.
    assert main(["reply", "--model", str(tiny_run), "--min-len", "45", "--max-len", "50",
                 "--no-repeat-ngram", "1", "hello"]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.slow
def test_eval_with_variants_reports_every_kind_and_keeps_training_metrics(tiny_run, tiny_tsv,
                                                                           tmp_path):
    import json
    import shutil

    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = json.loads((run_dir / "metrics.json").read_text())
    # docs: chatbot eval --model models/mine --data my_pairs.tsv --variants
    # docs: chatbot eval --model models/default --data data/chatterbot.tsv --variants
    result = run("eval", "--model", str(run_dir), "--data", str(tiny_tsv), "--variants")
    assert result.returncode == 0, result.stderr
    table = result.stdout.decode()
    assert "variants" in table and "punct_dropped" in table and "case" in table
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["train"] == before["train"]  # what training wrote is kept
    assert after["eval"][str(tiny_tsv)]["variants"]["case"]["answer_rate"] == 1.0


@pytest.mark.slow
def test_eval_refuses_to_replace_a_damaged_metrics_json(tiny_run, tiny_tsv, tmp_path):
    import shutil

    run_dir = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    (run_dir / "metrics.json").write_text("{half", encoding="utf-8")
    result = run("eval", "--model", str(run_dir), "--data", str(tiny_tsv))
    assert result.returncode == 1 and b"metrics.json: not valid JSON" in result.stderr
    assert (run_dir / "metrics.json").read_text(encoding="utf-8") == "{half"


@pytest.mark.slow
def test_eval_prints_a_table_and_writes_metrics(tiny_run, tiny_tsv, tmp_path):
    out = tmp_path / "m.json"
    result = run("eval", "--model", str(tiny_run), "--data", str(tiny_tsv), "-o", str(out))
    assert result.returncode == 0, result.stderr
    table = result.stdout.decode()
    for name in ("masked_accuracy", "perplexity", "bleu", "chrf", "distinct_1", "distinct_2",
                 "same_reply_share", "unk_rate", "answer_rate"):
        assert name in table
    import json

    metrics = json.loads(out.read_text())
    assert metrics["answer_rate"]["answer_rate"] == 1.0  # the tiny run's own training file
    assert metrics["masked_accuracy"] == 1.0 and metrics["flags"] == []


@pytest.mark.slow
def test_calibrate_fits_the_confidence_of_a_run_again(tiny_run, tmp_path, capsys):
    import shutil

    from chatbot.cli import main
    from chatbot.decoding.bot import Bot

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "calibration.json").unlink()  # as a run trained before calibration existed
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["confidence"]["held_out_novel"] = {"auroc": 0.39}  # what older code reported
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert not Bot.load(run_dir).calibration.calibrated
    # docs: chatbot calibrate --model models/default
    assert main(["calibrate", "--model", str(run_dir)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert Bot.load(run_dir).calibration.calibrated
    confidence = json.loads((run_dir / "metrics.json").read_text())["confidence"]
    fitted = confidence["fitted_on"]
    assert fitted["replies"] > 0
    assert "held_out_novel" not in confidence  # the new fit's figures only, none left over
    assert set(confidence) == {"fitted_on", "held_out", "held_out_validation", "validation"}
    assert last == (f"fitted on {fitted['replies']} held-out replies ({fitted['right']} right); "
                    f"wrote {run_dir / 'calibration.json'}")


def test_glyphs_no_font_has_become_one_note_and_other_warnings_pass(capsys):
    import warnings

    from chatbot.cli.common import cjk_note

    with pytest.warns(UserWarning) as passed:
        with cjk_note():
            for glyph in ("20320 (\\N{CJK UNIFIED IDEOGRAPH-4F60})",
                          "22909 (\\N{CJK UNIFIED IDEOGRAPH-597D})"):
                warnings.warn(f"Glyph {glyph} missing from font(s) DejaVu Sans.", UserWarning,
                              stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in passed] == ["something else"]
    assert capsys.readouterr().err == (
        "note: no CJK font installed, so Chinese labels show as boxes; install one "
        "(e.g. Debian/Ubuntu: apt install fonts-wqy-microhei)\n")
    with cjk_note():
        pass
    assert capsys.readouterr().err == ""  # nothing drawn as boxes, nothing to say
