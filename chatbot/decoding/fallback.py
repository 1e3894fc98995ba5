"""What the bot says when it does not know: a few phrasings, in the prompt's language.

    fallback = Fallback.load("models/default")    # the run's fallback.txt, or the defaults
    fallback.say("qwzxv blorfing")                 # "I don't know that one yet. ..."
    fallback.say("你是谁的朋友？")                   # "这个我还不知道。..."

A run's phrasings are its fallback.txt, one per line (written by `chatbot train --fallback
FILE`, or edited by hand): lines with Chinese characters are for Chinese prompts, the others
for the rest. Without the file, or without phrasings for a language, the defaults below apply.
The same prompt always gets the same phrasing (a CRC of its text picks it), different prompts
different ones.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from chatbot.errors import ChatbotError
from chatbot.rundir import FALLBACK
from chatbot.text.words import is_cjk

LANGUAGES = ("en", "zh")
DEFAULTS = {
    "en": (
        "I don't know that one yet.",
        "I'm not sure what to say to that.",
        "That is outside what I know, sorry.",
        "I don't have a good answer for that.",
    ),
    "zh": (
        "这个我还不知道。",
        "我不太确定该怎么回答。",
        "这超出了我知道的范围，抱歉。",
        "这个问题我还答不好。",
    ),
}
MAX_PHRASING = 1000  # characters


def language(text: str) -> str:
    """ "zh" when the text has more Chinese characters than other letters, else "en"."""
    cjk = sum(map(is_cjk, text))
    letters = sum(ch.isalpha() for ch in text) - cjk
    return "zh" if cjk and cjk >= letters else "en"


@dataclass(frozen=True)
class Fallback:
    phrasings: dict[str, tuple[str, ...]]

    def say(self, prompt: str) -> str:
        options = self.phrasings[language(prompt)]
        return options[zlib.crc32(" ".join(prompt.lower().split()).encode("utf-8", "surrogatepass"))
                       % len(options)]

    @classmethod
    def of(cls, lines: Iterable[str], where: str = "fallback phrasings") -> Fallback:
        """Phrasings from lines of text (blank lines skipped); the defaults where a language
        has none."""
        found: dict[str, list[str]] = {lang: [] for lang in LANGUAGES}
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            if len(text) > MAX_PHRASING:
                raise ChatbotError(f"{where}, line {number}: a phrasing of {len(text)} "
                                   f"characters; keep each under {MAX_PHRASING}")
            found[language(text)].append(text)
        return cls({lang: tuple(found[lang]) or DEFAULTS[lang] for lang in LANGUAGES})

    @classmethod
    def load(cls, run_dir: str | Path) -> Fallback:
        path = Path(run_dir) / FALLBACK
        if not path.exists():
            return DEFAULT
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ChatbotError(f"{path}: not readable as UTF-8 text ({exc}); write one "
                               "phrasing per line, or delete it for the defaults") from None
        return cls.of(text.splitlines(), str(path))


DEFAULT = Fallback(dict(DEFAULTS))
