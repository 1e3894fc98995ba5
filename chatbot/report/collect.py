"""What a report card shows of one run, gathered from its directory and the bot's own replies.

Figures come from the files training wrote (config.json, metrics.json, history.csv, status.json);
replies come from the bot as `chatbot chat` loads it (chatbot.decoding.bot, NumPy, no
TensorFlow), asked prompts picked from the run's own data: a few known prompts spread over it (a
Chinese one among them when the data has one), one typing variant of each kind
(chatbot.data.variants, the seed `chatbot eval --variants` reports with), and a prompt it should
not know, to show the fallback. Nothing here is written by hand but those out-of-domain prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.data.pairs import read_pairs
from chatbot.data.variants import KINDS, prompt_rng, typing_variants
from chatbot.decoding.bot import Bot, Reply
from chatbot.errors import ChatbotError
from chatbot.evaluate import VARIANT_SEED
from chatbot.rundir import (
    CONFIG,
    METRICS,
    STATUS,
    TRAINING,
    check_run_dir,
    read_history,
    read_json,
    run_state,
)
from chatbot.text.words import has_cjk

SAMPLE_PROMPTS = 6  # known prompts asked, spread evenly over the run's data
# Asked to show what the bot says to what it was never taught; the first one the run's data
# does not hold is used.
OUT_OF_DOMAIN = ("What was the closing price of copper in London yesterday?",
                 "Which gearbox oil suits a 1972 tractor?")
ATTENTION_TOKENS = 12  # the longest sampled prompt up to this many tokens shows attention
PROBES = ("answer_rate", "variant_rate", "quality")  # history.csv's measured columns shown


@dataclass(frozen=True)
class Asked:
    """One prompt put to the bot and what it said."""

    prompt: str  # as asked (a context model's turns joined by " | ")
    kind: str  # "known", the kind of a typing variant (chatbot.data.variants), or "unknown"
    reply: str
    confidence: float
    source: str  # model, memory, taught or fallback
    matched: str | None  # the known prompt whose reply was said, if one was
    similarity: float | None
    right: bool | None  # one of the known prompt's replies; None for the unknown prompt
    tokens: tuple[str, ...] = ()  # the reply's tokens


@dataclass(frozen=True)
class Picture:
    png: bytes | None  # None: there is no picture, and `note` says why
    note: str  # the caption, or why there is no picture


@dataclass
class RunCard:
    path: Path
    settings: dict[str, Any]  # config.json as written, flattened: "model.arch" -> "lstm"
    metrics: dict  # metrics.json as training and `chatbot eval` wrote it
    status: dict  # status.json
    probes: dict[str, float]  # history.csv's PROBES at the best epoch
    samples: list[Asked]  # known prompts, one typed variant, the unknown prompt
    variants: dict[str, list[Asked]]  # kind -> the typing variants of the sampled prompts
    recorded_variants: list[tuple[str, dict]]  # (what was measured, metrics.json's variants)
    attention: Picture
    embedding: Picture


def check_finished(path: str | Path) -> Path:
    """The run directory if it holds a finished run; else ChatbotError naming it."""
    path = check_run_dir(path)
    state = run_state(path)
    if state.state == TRAINING:
        doing = "is training right now; wait for it to finish" if state.busy else (
            f"was interrupted; finish it with {state.resume_hint()}")
        raise ChatbotError(f"{path}: training has not finished ({path / STATUS} says "
                           f"'training'): the run {doing}, then write its report")
    return path


def run_card(run_dir: Path, workdir: Path) -> RunCard:
    """Everything the report shows of one finished run; pictures are drawn in `workdir`."""
    bot = Bot.load(run_dir)
    metrics = read_json(run_dir / METRICS) if (run_dir / METRICS).is_file() else {}
    status = read_json(run_dir / STATUS) if (run_dir / STATUS).is_file() else {}
    known = known_prompts(bot)
    picked = pick(list(known), SAMPLE_PROMPTS)
    samples, variants = ask(bot, known, picked)
    return RunCard(
        path=run_dir, settings=flatten(read_json(run_dir / CONFIG)), metrics=metrics,
        status=status, probes=best_probes(run_dir, metrics.get("best_epoch")),
        samples=samples, variants=variants, recorded_variants=recorded_variants(metrics),
        attention=attention(bot, for_attention(bot, samples), workdir / "attention.png"),
        embedding=embedding(run_dir, workdir / "embedding.png"))


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"arch": "lstm"}} -> {"model.arch": "lstm"}."""
    flat = {}
    for name, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def best_probes(run_dir: Path, best_epoch: object) -> dict[str, float]:
    """What the stop rule measured at the best epoch (1-based in metrics.json)."""
    history = read_history(run_dir)
    if history.empty or "epoch" not in history.columns or not isinstance(best_epoch, int):
        return {}
    rows = history[history["epoch"] == best_epoch - 1]
    if rows.empty:
        return {}
    return {name: float(rows.iloc[0][name]) for name in PROBES if name in rows.columns}


def recorded_variants(metrics: dict) -> list[tuple[str, dict]]:
    """The per-kind answer rates of typing variants in metrics.json: `chatbot eval --variants`
    adds them under "eval", by data file."""
    found = [("metrics.json", metrics["variants"])] if isinstance(metrics.get("variants"),
                                                                   dict) else []
    evals = metrics.get("eval") if isinstance(metrics.get("eval"), dict) else {}
    return found + [(f"chatbot eval --variants on {name}", section["variants"])
                    for name, section in evals.items()
                    if isinstance(section, dict) and isinstance(section.get("variants"), dict)]


# -- the prompts asked ----------------------------------------------------------------------------


def known_prompts(bot: Bot) -> dict[str, tuple[str, ...]]:
    """Each prompt of the run's data (as its memory holds them) -> its replies; without a
    memory, the training data file config.json names, if it is still there."""
    if bot.memory is not None:
        return dict(zip(bot.memory.prompts, bot.memory.replies))
    path = bot.config.data.path
    if not path or not Path(path).is_file():
        return {}
    known: dict[str, dict[str, None]] = {}
    for pair in read_pairs(path, "skip").pairs:
        known.setdefault(pair.prompt, {})[pair.reply] = None
    return {prompt: tuple(replies) for prompt, replies in known.items()}


def pick(prompts: Sequence[str], count: int) -> list[str]:
    """`count` prompts spread evenly over `prompts`, the first Chinese one among them if none
    of those is and there is one."""
    if len(prompts) <= count:
        return list(prompts)
    picked = [prompts[i * (len(prompts) - 1) // (count - 1)] for i in range(count)]
    chinese = next((p for p in prompts if has_cjk(p)), None)
    if chinese is not None and not any(map(has_cjk, picked)):
        picked[-1] = chinese
    return picked


def ask(bot: Bot, known: dict[str, tuple[str, ...]], picked: list[str]
        ) -> tuple[list[Asked], dict[str, list[Asked]]]:
    """The sample replies (the picked prompts, the first typed variant, an unknown prompt) and
    every kind of typing variant of the picked prompts, asked in one batch."""
    rows: list[tuple[str, str, str]] = [(p, "known", p) for p in picked]  # (asked, kind, of)
    for prompt in picked:
        found = typing_variants(prompt, prompt_rng(prompt, VARIANT_SEED))
        rows += [(found[kind], kind, prompt) for kind in KINDS if kind in found]
    unknown = next((p for p in OUT_OF_DOMAIN if p not in known), None)
    if unknown is not None:
        rows.append((unknown, "unknown", unknown))
    replies = bot.reply_all([_query(bot, asked) for asked, _, _ in rows])
    answers = [_asked(bot, asked, kind, known.get(of), reply)
               for (asked, kind, of), reply in zip(rows, replies)]
    typed = [a for a in answers if a.kind not in ("known", "unknown")]
    samples = [a for a in answers if a.kind == "known"] + typed[:1] + \
        [a for a in answers if a.kind == "unknown"]
    return samples, {kind: [a for a in typed if a.kind == kind] for kind in KINDS
                     if any(a.kind == kind for a in typed)}


def _query(bot: Bot, prompt: str) -> str | list[str]:
    """What the bot is asked: a context model's memory joins the turns by " | "."""
    return prompt.split(" | ") if bot.context_turns > 1 else prompt


def _asked(bot: Bot, prompt: str, kind: str, references: tuple[str, ...] | None,
           reply: Reply) -> Asked:
    match = reply.match
    right = None
    if references is not None:  # as `chatbot eval` scores: the model's tokens, cut to max_len
        tokenize, max_len = bot.tokenizer.tokenize, bot.config.data.max_len
        right = tuple(reply.tokens) in {tuple(tokenize(r)[:max_len]) for r in references}
    return Asked(prompt, kind, reply.text, reply.confidence, reply.source,
                 match.prompt if match else None, match.similarity if match else None, right,
                 tuple(reply.tokens))


# -- pictures -------------------------------------------------------------------------------------


def for_attention(bot: Bot, samples: Sequence[Asked]) -> Asked | None:
    """The known prompt whose attention says most: the longest one of at most ATTENTION_TOKENS
    tokens (the first of those), else the shortest."""
    known = [(len(bot.prompt_tokens(a.prompt)), a) for a in samples if a.kind == "known"]
    if not known:
        return None
    fits = [n for n, _ in known if n <= ATTENTION_TOKENS]
    want = max(fits) if fits else min(n for n, _ in known)
    return next(a for n, a in known if n == want)


def attention(bot: Bot, asked: Asked | None, out: Path) -> Picture:
    """Where the model looked while it gave the `asked` reply (chatbot.plot), or why it cannot
    show it."""
    if asked is None:
        return Picture(None, "not available: the run's data is not at hand to pick a prompt")
    try:
        amap = bot.attention(asked.prompt, asked.tokens)
    except ChatbotError as exc:
        return Picture(None, f"not available: {exc}")
    from chatbot.plot import plot_attention_map

    plot_attention_map(amap, out)
    return Picture(out.read_bytes(), f"{asked.prompt!r} -> {asked.reply!r}")


def curves(run_dirs: Sequence[Path], out: Path) -> Picture:
    """Loss and masked accuracy of every run, in one picture (chatbot.plot)."""
    from chatbot.plot import plot_runs

    try:
        plot_runs(run_dirs, out)
    except ChatbotError as exc:
        return Picture(None, f"not available: {exc}")
    return Picture(out.read_bytes(), "solid: training, dashed: validation, o: the best epoch")


def embedding(run_dir: Path, out: Path) -> Picture:
    """The map of the run's word embeddings (chatbot.embeddings.draw_map), or why it is missing."""
    try:
        from chatbot.embeddings import draw_map
    except ImportError as exc:
        return Picture(None, f"not available: the embedding map cannot be drawn here ({exc})")
    try:
        draw_map(run_dir, out)
    except ChatbotError as exc:
        return Picture(None, f"not available: {exc}")
    return Picture(out.read_bytes(), "the most frequent words, placed by their embeddings")
