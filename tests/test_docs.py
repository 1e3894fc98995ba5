"""The README and the guides in docs/: every command they show is real, and run by a test.

A command is a line of a fenced code block of README.md or docs/*.md that starts with
`chatbot `, `.venv/bin/chatbot ` or `make ` (after an optional `$ ` and `NAME=VALUE`
assignments; a line that ends in `\\` goes on with the next). For each one:
- a `chatbot` command parses with the real parser (`chatbot.cli.build_parser`): a command or
  flag that no longer exists fails, naming the file and the line;
- a `make` command names targets of the Makefile;
- a `chatbot` command appears, as written (whitespace normalised), in a file under tests/:
  usually as a comment `# docs: COMMAND` beside the call of the test that runs it (a quote may
  go on over several comment lines, each but the last ending in `\\`), or else it is in
  UNTESTED below, with the test that runs its equivalent. `make` targets are not run by tests
  (the benchmarks are measured, `make chat` opens a chat); tests/test_make.py drives the real
  Makefile's `train` and `plot`.
And: every `# docs:` quote in tests/ quotes a command the docs still show (a quote left behind
by a changed command fails); the README stays at most README_LINES lines; every relative link
and image of these pages points to a file that exists, and an anchor to a heading of it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatbot.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LINES = 150
CODE = {"python", "py", "json", "jsonl"}  # blocks of these languages hold no shell commands
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", "<", ">", ">>", "2>", "2>&1"}
QUOTE = re.compile(r"#\s*docs:\s*(.*?)\s*$")

# Commands of the docs that no test quotes, each with the tests that run its equivalent. Keep it
# short: a quote beside the test's own call is better.
UNTESTED = {
    # docs/embeddings.md: how its figures were made, on the default model; the tests run the
    # map and the neighbours on the tiny run.
    "chatbot embeddings --model models/default -o docs/images/embeddings.png": (
        "tests/test_embeddings.py::test_the_command_draws_the_map",),
    "chatbot embeddings --model models/default --neighbours hello --neighbours good "
    "--neighbours thanks --neighbours you --neighbours what --neighbours time --neighbours love "
    "--neighbours 你好 --neighbours 我 --neighbours 是": (
        "tests/test_embeddings.py::test_the_command_prints_neighbours_without_tensorflow",),
}


def words_of(text: str) -> list[str]:
    """A command line's words: assignments before it and a trailing comment dropped, cut at the
    first redirection or pipe, `.venv/bin/chatbot` read as `chatbot`."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:  # an unclosed quote: the parser will say what is wrong
        words = text.split()
    while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    for i, word in enumerate(words):
        if word in SHELL_OPERATORS:
            words = words[:i]
            break
    if words and words[0] == ".venv/bin/chatbot":
        words[0] = "chatbot"
    return words


@dataclass(frozen=True)
class Command:
    page: Path
    line: int  # of its first line in the page
    text: str  # as the page writes it, continuation lines joined
    words: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def key(self) -> str:
        return " ".join(self.words)


def logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(index of the first line, text) of each line with its `\\` continuations joined."""
    out, start, parts = [], None, []
    for index, line in enumerate(lines):
        if start is None:
            start = index
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped.strip())
        out.append((start, " ".join(p for p in parts if p)))
        start, parts = None, []
    if parts:
        out.append((start, " ".join(parts)))
    return out


def fenced_blocks(page: Path) -> list[tuple[str, list[tuple[int, str]]]]:
    """The info string (`sh`, `python`, ...) and the lines, numbered in the page, of each
    fenced code block."""
    blocks, block, fence, info = [], None, None, ""
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        marker = re.match(r"\s*(```+|~~~+)\s*(\S*)", line)
        if block is None and marker:
            block, fence, info = [], marker.group(1), marker.group(2)
        elif block is not None and line.strip().startswith(fence):
            blocks.append((info, block))
            block = None
        elif block is not None:
            block.append((number, line))
    return blocks


def fenced_lines(page: Path) -> set[int]:
    return {n for _, block in fenced_blocks(page) for n, _ in block}


def commands_of(page: Path) -> list[Command]:
    found = []
    for info, block in fenced_blocks(page):
        if info in CODE:
            continue
        for index, text in logical_lines([line for _, line in block]):
            text = text.removeprefix("$ ")
            words = words_of(text)
            if words and words[0] in ("chatbot", "make") and not text.startswith("#"):
                found.append(Command(page, block[index][0], text, tuple(words)))
    return found


COMMANDS = [command for page in PAGES for command in commands_of(page)]
CHATBOT = [c for c in COMMANDS if c.words[0] == "chatbot"]
MAKE = [c for c in COMMANDS if c.words[0] == "make"]


def quotes() -> dict[str, str]:
    """Every `# docs:` quote under tests/ (but this file) -> where it is."""
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        number = 0
        while number < len(lines):
            match = QUOTE.search(lines[number])
            start = number
            if match:
                text = match.group(1)
                while text.endswith("\\") and number + 1 < len(lines):
                    number += 1
                    text = text[:-1].rstrip() + " " + lines[number].strip().lstrip("#").strip()
                found[" ".join(words_of(text))] = f"{path.relative_to(ROOT)}:{start + 1}"
            number += 1
    return found


def normalised(text: str) -> str:
    return " ".join(text.replace(".venv/bin/chatbot", "chatbot").split())


def test_the_pages_show_commands_to_check():
    # The extraction itself: the quickstart and the guides' commands are found.
    keys = {c.key for c in COMMANDS}
    assert {"make chat", "make test"} <= keys
    assert "chatbot train --data my_pairs.tsv --out models/mine" in keys
    assert "chatbot data prepare" in " ".join(keys)
    assert {c.page.name for c in COMMANDS} >= {"README.md", "larger-corpora.md", "serving.md"}


def test_every_command_the_pages_show_parses(capsys):
    parser = build_parser()
    failures = []
    for command in CHATBOT:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args(command.words[1:])
        except SystemExit as exit_:
            if exit_.code:
                message = err.getvalue().strip().splitlines()[-1:]
                failures.append(f"{command.where}: {command.text}\n    {' '.join(message)}")
    assert not failures, "commands the parser refuses:\n" + "\n".join(failures)


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set()
    for line in text.splitlines():
        match = re.match(r"([^\s:=#][^:=#]*?)\s*:(?![=])", line)
        if match and not line.startswith("\t"):
            targets.update(match.group(1).split())
    return targets


def test_every_make_command_names_targets_of_the_makefile():
    targets = makefile_targets()
    assert {"chat", "test", "train"} <= targets
    wrong = []
    for command in MAKE:
        named = [w for w in command.words[1:] if not w.startswith("-") and "=" not in w]
        wrong += [f"{command.where}: make {t}" for t in named if t not in targets]
    assert not wrong, "no such make target:\n" + "\n".join(wrong)


def test_every_chatbot_command_is_run_by_a_test_or_listed():
    quoted = quotes()
    texts = [normalised(p.read_text(encoding="utf-8")) for p in sorted(TESTS.rglob("*.py"))
             if p.name != Path(__file__).name]
    missing = []
    for command in CHATBOT:
        written = normalised(command.key)
        if command.key in quoted or command.key in UNTESTED:
            continue
        if any(written in text for text in texts):
            continue
        missing.append(f"{command.where}: {command.key}")
    assert not missing, (
        "commands no test quotes: add `# docs: COMMAND` beside the call of the test that runs "
        "it (or its equivalent), or list it in UNTESTED with that test:\n" + "\n".join(missing))


def test_every_quote_and_listed_command_is_still_in_the_docs():
    shown = {c.key for c in CHATBOT}
    stale = [f"{where}: {key}" for key, where in quotes().items() if key not in shown]
    stale += [f"UNTESTED: {key}" for key in UNTESTED if key not in shown]
    assert not stale, "quotes of commands the docs no longer show:\n" + "\n".join(stale)


def test_every_listed_command_names_tests_that_exist():
    for key, tests in UNTESTED.items():
        assert tests, key
        for test in tests:
            path, name = test.split("::")
            text = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {name}\(", text, re.MULTILINE), (key, test)


def test_no_command_hides_in_an_indented_block():
    # An indented code block escapes the checks above: commands go in fenced blocks.
    hidden = []
    for page in PAGES:
        fenced = fenced_lines(page)
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            if number not in fenced and re.match(r" {4,}(\.venv/bin/)?(chatbot|make) ", line):
                hidden.append(f"{page.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hidden, "commands outside fenced code blocks:\n" + "\n".join(hidden)


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_LINES, f"README.md: {len(lines)} lines, at most {README_LINES}"


# --- links -------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(page: Path) -> str:
    """The page without its code: fenced blocks and inline code spans."""
    fenced = fenced_lines(page)
    lines = [line for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if n not in fenced and not re.match(r"\s*(```|~~~)", line)]
    return re.sub(r"`[^`\n]*`", "", "\n".join(lines))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces as -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LMN")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = fenced_lines(page)
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match and number not in fenced:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            out.add(base if not count else f"{base}-{count}")
            seen[base] = count + 1
    return out


def test_slugs_are_githubs():
    assert slug('Honest replies: how sure it is, "I don\'t know", and teaching') == (
        "honest-replies-how-sure-it-is-i-dont-know-and-teaching")
    assert slug("What `data prepare` does") == "what-data-prepare-does"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_points_to_what_exists(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)
