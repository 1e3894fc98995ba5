"""`chatbot report`: the report card of one or more runs, one self-contained HTML page.

The page is read back with html.parser (its sections, tables, pictures and links), on the tiny
runs of tests/conftest.py; the replies it shows are checked against the bot's own. The browser
test opens it in headless Chromium as test_web.py does (Debian's `chromium`; skipped without it).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.report import write_report
from chatbot.report.collect import (
    OUT_OF_DOMAIN,
    Asked,
    Picture,
    RunCard,
    pick,
    recorded_variants,
)
from chatbot.report.render import page
from tests.conftest import TINY_PAIRS
from tests.test_web import CHROMIUM, needs_browser, sync_playwright

SECTIONS = ["settings", "curves", "metrics", "answers", "replies", "attention", "embeddings"]
PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """What a report page holds, by section: tables (rows of (class, cells)), <img> sources,
    the run headings (h3), and every src/href and tag met."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.links: list[str] = []
        self.tags: list[str] = []
        self._section: dict | None = None
        self._cell: list[str] | None = None
        self._h3: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "section":
            self._section = self.sections.setdefault(
                attrs["id"], {"tables": [], "images": [], "runs": [], "text": []})
        elif self._section is None:
            return
        elif tag == "table":
            self._section["tables"].append([])
        elif tag == "tr":
            self._section["tables"][-1].append((attrs.get("class"), []))
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self._section["images"].append(attrs["src"])
        elif tag == "h3":
            self._h3 = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._section["tables"][-1][-1][1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "h3" and self._h3 is not None:
            self._section["runs"].append("".join(self._h3))
            self._h3 = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        for part in (self._cell, self._h3, self._section and self._section["text"]):
            if part is not None:
                part.append(data)

    def rows(self, section: str) -> dict[str, tuple[str | None, list[str]]]:
        """Every table row of a section by its first cell: (its class, the other cells)."""
        return {cells[0]: (cls, cells[1:]) for table in self.sections[section]["tables"]
                for cls, cells in table if cells}

    def text(self, section: str) -> str:
        return "".join(self.sections[section]["text"])


@pytest.fixture(scope="module")
def one(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert write_report([tiny_run], out) == out
    return out, out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def two(tiny_runs, tmp_path_factory) -> tuple[Path, str, list[Path]]:
    runs = [tiny_runs["lstm"], tiny_runs["attention"]]
    out = tmp_path_factory.mktemp("report") / "two.html"
    write_report(runs, out)
    return out, out.read_text(encoding="utf-8"), runs


# --- without a model ---------------------------------------------------------------------------


def test_the_sample_is_spread_over_the_data_and_holds_a_chinese_prompt():
    prompts = [f"prompt {i}" for i in range(20)] + ["你好吗", "last one"]
    assert pick(prompts, 4) == ["prompt 0", "prompt 7", "prompt 14", "你好吗"]
    assert pick(prompts[:20], 4) == ["prompt 0", "prompt 6", "prompt 12", "prompt 19"]
    assert pick(prompts[:3], 4) == prompts[:3]


def card(path: Path, reply: str, setting: str) -> RunCard:
    said = Asked("<b>hi</b>", "known", reply, 0.5, "memory", "<i>hi</i>", 0.9, False)
    return RunCard(path=path, settings={"model.arch": setting, "train.seed": 1},
                   metrics={"stopped": {"why": "<stop> & go"}}, status={"state": "finished"},
                   probes={}, samples=[said], variants={"case": [replace(said, kind="case")]},
                   recorded_variants=[], attention=Picture(None, "not available: <none>"),
                   embedding=Picture(PNG, "<map>"))


def test_every_text_is_escaped(tmp_path):
    text = page([card(tmp_path / "<run>", "<script>alert(1)</script>", "<lstm>"),
                 card(tmp_path / "a&b", "x", "gru")], Picture(None, "no <curves>"))
    parsed = Page(text)
    assert "script" not in parsed.tags and not {"b", "i", "run", "lstm", "stop"} & set(parsed.tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert parsed.sections["replies"]["runs"] == ["<run>", "a&b"]  # escaped, read back whole
    assert parsed.rows("settings")["arch"] == ("differs", ["<lstm>", "gru"])
    assert parsed.rows("settings")["seed"] == (None, ["1", "1"])
    assert parsed.rows("metrics")["stopped"][1] == ["<stop> & go"] * 2
    assert parsed.text("attention").count("not available: <none>") == 2


def test_variants_recorded_by_chatbot_eval_are_shown_per_kind(tmp_path):
    variants = {"seed": 0, "typo": {"prompts": 8, "answered": 6, "answer_rate": 0.75},
                "all": {"prompts": 8, "answered": 6, "answer_rate": 0.75}}
    metrics = {"eval": {"data/test.tsv": {"bleu": 1.0, "variants": variants},
                        "data/other.tsv": {"bleu": 2.0}}}
    recorded = recorded_variants(metrics)
    assert recorded == [("chatbot eval --variants on data/test.tsv", variants)]
    shown = replace(card(tmp_path / "run", "x", "lstm"), recorded_variants=recorded)
    rows = Page(page([shown], Picture(None, ""))).rows("answers")
    assert rows["typo"][1] == ["75.0% (6 of 8)"] and rows["all"][1] == ["75.0% (6 of 8)"]


# --- the report of the tiny runs ---------------------------------------------------------------


@pytest.mark.slow
def test_the_page_is_self_contained_and_has_every_section(one):
    _, text = one
    parsed = Page(text)
    assert list(parsed.sections) == SECTIONS
    assert '<meta charset="utf-8">' in text
    assert "script" not in parsed.tags
    assert parsed.links and all(link.startswith("data:") for link in parsed.links)
    assert not re.search(r"https?://|@import|url\(", text, re.IGNORECASE)
    images = [src for section in parsed.sections.values() for src in section["images"]]
    assert len(parsed.sections["curves"]["images"]) == 1
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    # The lstm has no attention to draw: the section says so.
    assert "has no attention" in parsed.text("attention")
    # The embedding map: a picture, or until chatbot.embeddings exists, a note saying why not.
    assert parsed.sections["embeddings"]["images"] or "not available" in parsed.text("embeddings")


@pytest.mark.slow
def test_the_replies_shown_are_the_bots(one, tiny_run):
    _, text = one
    parsed = Page(text)
    bot = Bot.load(tiny_run)
    rows = parsed.rows("replies")
    for prompt, _ in TINY_PAIRS:  # six pairs: every prompt is in the sample
        reply = bot.reply(prompt)
        shown = rows[f"{prompt}known prompt"][1]
        assert shown[0] == f"{reply.text} ✓"  # the tiny run learned them all
        assert shown[1] == f"{reply.confidence:.2f}"
        assert shown[2].startswith(reply.source)
    unknown = bot.reply(OUT_OF_DOMAIN[0])
    assert unknown.source == "fallback"
    assert rows[f"{OUT_OF_DOMAIN[0]}not in the data"][1] == [
        unknown.text, f"{unknown.confidence:.2f}", "fallback"]
    assert "你好！很高兴认识你。" in text  # the Chinese reply, as UTF-8 text
    # the figures training measured
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    answered = metrics["train"]["answer_rate"]
    assert parsed.rows("answers")[
        "training prompts answered with one of their replies, the bot as it chats"][1] == [
        f"{answered['answer_rate']:.1%} ({answered['answered']} of {answered['prompts']})"]


@pytest.mark.slow
def test_the_typing_variants_are_counted_per_kind(one, tiny_run):
    from chatbot.data.variants import KINDS, prompt_rng, typing_variants
    from chatbot.evaluate import VARIANT_SEED

    parsed = Page(one[1])
    asked: dict[str, int] = {}
    for prompt, _ in TINY_PAIRS:
        for kind in typing_variants(prompt, prompt_rng(prompt, VARIANT_SEED)):
            asked[kind] = asked.get(kind, 0) + 1
    rows = parsed.rows("answers")
    shown = {kind: rows[kind][1][0] for kind in KINDS if kind in rows}
    assert set(shown) == set(asked)
    for kind, count in asked.items():
        right, of = map(int, shown[kind].split(" of "))
        assert of == count and 0 <= right <= count


@pytest.mark.slow
def test_two_runs_side_by_side(two):
    _, text, runs = two
    parsed = Page(text)
    names = [run.name for run in runs]
    configs = [json.loads((run / "config.json").read_text()) for run in runs]
    settings = parsed.rows("settings")
    assert settings["model"] == (None, names)  # the table's head: a column per run
    assert settings["arch"] == ("differs", [c["model"]["arch"] for c in configs])
    assert settings["learning_rate"][1] == [str(c["train"]["learning_rate"]) for c in configs]
    statuses = [json.loads((run / "status.json").read_text()) for run in runs]
    assert parsed.rows("metrics")["training"][1] == [
        f"finished, {s['epochs']} epochs, best {s['best_epoch']}" for s in statuses]
    for section in ("answers", "replies", "attention", "embeddings"):
        assert parsed.sections[section]["runs"] == names
    # What the stop rule measured at the best epoch: the attention run was trained with it.
    history = pd.read_csv(runs[1] / "history.csv")
    best = history[history["epoch"] == statuses[1]["best_epoch"] - 1].iloc[0]
    assert parsed.rows("answers")["stop rule at the best epoch: their typing variants"][1] == [
        "—", f"{best['variant_rate']:.1%}"]
    # The attention run's picture; the lstm says it has none.
    assert len(parsed.sections["attention"]["images"]) == 1
    assert "has no attention" in parsed.text("attention")


def test_a_missing_or_unfinished_run_is_refused_by_name(tmp_path):
    out = tmp_path / "report.html"
    finished = tmp_path / "finished"
    unfinished = tmp_path / "unfinished"
    for run, state in ((finished, "finished"), (unfinished, "training")):
        run.mkdir()
        for name in ("config.json", "vocab.json", "model.keras"):  # checked before they are read
            (run / name).write_text("{}")
        (run / "status.json").write_text(json.dumps({"state": state}))
    with pytest.raises(ChatbotError, match=re.escape(f"{tmp_path / 'nowhere'}: no such model "
                                                     "directory")):
        write_report([finished, tmp_path / "nowhere"], out)
    with pytest.raises(ChatbotError, match=rf"{re.escape(str(unfinished))}: training has not "
                                           "finished"):
        write_report([finished, unfinished], out)
    with pytest.raises(ChatbotError, match="no run directories"):
        write_report([], out)
    assert not out.exists()


# --- the command, make, the browser ------------------------------------------------------------


def chatbot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatbot.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_the_command_writes_the_page_without_tensorflow(tiny_run, tmp_path):
    out = tmp_path / "card.html"
    # docs: chatbot report models/default models/mine -o report.html
    code = ("import sys; from chatbot.cli import main\n"
            f"assert main(['report', {str(tiny_run)!r}, '-o', {str(out)!r}]) == 0\n"
            "assert 'tensorflow' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    assert list(Page(out.read_text(encoding="utf-8")).sections) == SECTIONS
    missing = chatbot("report", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert str(tmp_path / "nowhere") in missing.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_train_writes_the_report_and_prints_its_path(tiny_run, tiny_tsv, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # finished: `make train` has nothing to train
    bin_dir = Path(sys.executable).parent
    command = ["make", "--no-print-directory", "-C", str(ROOT), "train", f"BIN={bin_dir}",
               f"MODEL={run}", f"DATA={tiny_tsv}", "TRAIN_FLAGS=", "-o", f"{bin_dir}/chatbot"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "training finished" in first.stdout and f"wrote {run}/report.html" in first.stdout
    written = (run / "report.html").stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert f"report card: {run}/report.html (up to date)" in again.stdout
    assert (run / "report.html").stat().st_mtime_ns == written


@pytest.mark.slow
@needs_browser
def test_the_page_renders_in_chromium_with_every_picture(two, tmp_path):
    path, _, runs = two
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        tab.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        tab.goto(path.as_uri())
        widths = tab.evaluate("[...document.images].map(i => i.complete && i.naturalWidth)")
        headings = tab.locator("h2").all_inner_texts()
        chinese = tab.get_by_text("你好！很高兴认识你。").first.bounding_box()
        title = tab.title()
        screenshot = tmp_path / "report.png"
        tab.screenshot(path=screenshot)
        browser.close()
    assert problems == []
    assert len(widths) >= 2 and all(w > 0 for w in widths)  # curves and attention at least
    assert headings == ["Settings", "Training curves", "Metrics", "Answer rates and typing "
                        "variants", "Sample replies", "Attention", "Embedding map"]
    assert chinese is not None and chinese["width"] > 0
    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[:2] == (900, 1280) and pixels.std() > 0.05  # not a blank page
    assert title == "Report card: " + ", ".join(run.name for run in runs)
