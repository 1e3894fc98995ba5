"""A report card as one self-contained HTML page: styles inline, pictures as data: URIs, no
script, nothing fetched from anywhere. Every text is escaped (html.escape); several runs sit side
by side, a column each."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from typing import Any

from chatbot.report.collect import Asked, Picture, RunCard

# A font stack with Chinese glyphs: the page shows the run's Chinese prompts and replies.
FONTS = ('system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", '
         '"Source Han Sans SC", "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", '
         'sans-serif')
STYLE = f"""
body {{ font-family: {FONTS}; margin: 1.5em auto; max-width: 1400px; padding: 0 1em;
       color: #1d1f21; line-height: 1.4; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }}
h3 {{ font-size: 1em; margin: 0.4em 0; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }}
td + td {{ overflow-wrap: anywhere; }}
th {{ background: #f4f4f4; }}
td.number {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.differs td {{ background: #fff6d6; }}
.runs {{ display: grid; gap: 1.2em; grid-template-columns: repeat(var(--runs), minmax(0, 1fr)); }}
.run {{ overflow-x: auto; }}
.settings {{ columns: calc(9em + var(--runs) * 7em); column-gap: 1.2em; }}
.settings table {{ width: 100%; margin-bottom: 0.8em; font-size: 0.85em;
                   break-inside: avoid; }}
.settings td:first-child {{ white-space: nowrap; }}
.settings td, .settings th {{ padding: 0.1em 0.4em; }}
img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
.note {{ color: #555; font-size: 0.9em; }}
.yes {{ color: #17712f; }} .no {{ color: #b3261e; }}
meter {{ width: 4em; vertical-align: middle; }}
"""


def page(cards: Sequence[RunCard], curves: Picture) -> str:
    """The whole page: the sections in order, the runs side by side in each."""
    names = run_names(cards)
    title = "Report card: " + ", ".join(names)
    body = [f"<h1>{esc(title)}</h1>",
            '<p class="note">' + "; ".join(esc(str(c.path)) for c in cards) + "</p>",
            section("settings", "Settings", settings_table(cards, names)),
            section("curves", "Training curves", picture(curves, "training curves")),
            section("metrics", "Metrics", rows_table(cards, names, METRIC_ROWS)),
            section("answers", "Answer rates and typing variants",
                    rows_table(cards, names, ANSWER_ROWS) + side_by_side(cards, names, variants)),
            section("replies", "Sample replies", side_by_side(cards, names, samples)),
            section("attention", "Attention", side_by_side(
                cards, names, lambda c: picture(c.attention, "attention"))),
            section("embeddings", "Embedding map", side_by_side(
                cards, names, lambda c: picture(c.embedding, "embedding map")))]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n<title>{esc(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def run_names(cards: Sequence[RunCard]) -> list[str]:
    """Each run's folder name, or its path where two runs share a name."""
    names = [c.path.resolve().name for c in cards]
    return [name if names.count(name) == 1 else str(c.path) for name, c in zip(names, cards)]


def section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}">\n<h2>{esc(title)}</h2>\n{content}\n</section>'


def side_by_side(cards: Sequence[RunCard], names: Sequence[str],
                 content: Callable[[RunCard], str]) -> str:
    columns = "".join(f'<div class="run"><h3>{esc(name)}</h3>{content(card)}</div>'
                      for card, name in zip(cards, names))
    return f'<div class="runs" style="--runs: {len(cards)}">{columns}</div>'


def picture(pic: Picture, what: str) -> str:
    if pic.png is None:
        return f'<p class="note">{esc(pic.note)}</p>'
    data = base64.b64encode(pic.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(what)}">'
            f"<figcaption class=\"note\">{esc(pic.note)}</figcaption></figure>")


def header(names: Sequence[str], first: str) -> str:
    return "<tr>" + "".join(f"<th>{esc(n)}</th>" for n in [first, *names]) + "</tr>"


def settings_table(cards: Sequence[RunCard], names: Sequence[str]) -> str:
    """config.json of every run, a table per section and a column per run; rows that differ
    between runs highlighted."""
    keys = list(dict.fromkeys(k for c in cards for k in c.settings))
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key.split(".")[0] if "." in key else "run", []).append(key)
    tables = []
    for group, members in groups.items():
        rows = []
        for key in members:
            values = [c.settings.get(key, "—") for c in cards]
            differs = ' class="differs"' if len(set(map(repr, values))) > 1 else ""
            rows.append(f"<tr{differs}><td>{esc(key.removeprefix(group + '.'))}</td>"
                        + "".join(f"<td>{esc(_setting(v))}</td>" for v in values) + "</tr>")
        tables.append(f"<table><thead>{header(names, group)}</thead>"
                      f"<tbody>{''.join(rows)}</tbody></table>")
    note = ('<p class="note">Highlighted: settings that differ between the runs.</p>'
            if len(cards) > 1 else "")
    return f'{note}<div class="settings" style="--runs: {len(cards)}">{"".join(tables)}</div>'


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "—" if value is None else str(value)


# -- figures of metrics.json ------------------------------------------------------------------


def at(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "—"


def number(digits: int) -> Callable[[Any], str]:
    return lambda value: f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"


def rate(section: Any) -> str:
    """An answer_rate section: "96.4% (1611 of 1671)"."""
    if not isinstance(section, dict) or "answer_rate" not in section:
        return "—"
    return f"{section['answer_rate']:.1%} ({section['answered']} of {section['prompts']})"


def _status(card: RunCard) -> str:
    epochs, best = card.status.get("epochs"), card.metrics.get("best_epoch")
    text = str(card.status.get("state", "finished"))
    return text + (f", {epochs} epochs" if epochs else "") + (f", best {best}" if best else "")


Row = tuple[str, Callable[[RunCard], str]]
METRIC_ROWS: list[Row] = [
    ("training", _status),
    ("stopped", lambda c: str(at(c.metrics, "stopped", "why") or "—")),
    ("training time (s)", lambda c: number(0)(c.metrics.get("train_seconds"))),
    *[(f"training pairs: {label}", lambda c, k=key, f=fmt: f(at(c.metrics, "train", k)))
      for label, key, fmt in (("masked accuracy", "masked_accuracy", percent),
                              ("perplexity", "perplexity", number(3)),
                              ("BLEU", "bleu", number(1)), ("chrF", "chrf", number(1)),
                              ("distinct-2", "distinct_2", number(3)),
                              ("same reply share", "same_reply_share", percent))],
    *[(f"validation, model alone: {label}", lambda c, k=key, f=fmt:
       f(at(c.metrics, "validation", k)))
      for label, key, fmt in (("masked accuracy", "masked_accuracy", percent),
                              ("perplexity", "perplexity", number(1)),
                              ("BLEU", "bleu", number(1)), ("chrF", "chrf", number(1)))],
    ("confidence, held-out replies: AUROC",
     lambda c: number(3)(at(c.metrics, "confidence", "held_out", "auroc"))),
    ("confidence, held-out replies: ECE",
     lambda c: number(3)(at(c.metrics, "confidence", "held_out", "ece"))),
    ("flags", lambda c: "; ".join(at(c.metrics, "train", "flags") or []) or
     ("none" if at(c.metrics, "train") else "—")),
]
ANSWER_ROWS: list[Row] = [
    ("training prompts answered with one of their replies, the bot as it chats",
     lambda c: rate(at(c.metrics, "train", "answer_rate"))),
    ("... the model alone (no memory)",
     lambda c: rate(at(c.metrics, "train_model_alone", "answer_rate"))),
    ("stop rule at the best epoch: sampled known prompts", lambda c: percent(
        c.probes.get("answer_rate"))),
    ("stop rule at the best epoch: their typing variants", lambda c: percent(
        c.probes.get("variant_rate"))),
]


def rows_table(cards: Sequence[RunCard], names: Sequence[str], rows: Sequence[Row]) -> str:
    body = "".join(f"<tr><td>{esc(label)}</td>" + "".join(map(_cell, (show(c) for c in cards)))
                   + "</tr>" for label, show in rows)
    return f"<table>{header(names, 'measured')}{body}</table>"


def _cell(text: str) -> str:
    """A table cell; figures (and the dash of a missing one) aligned right."""
    number = text[:1].isdigit() or text == "—"
    return f'<td class="number">{esc(text)}</td>' if number else f"<td>{esc(text)}</td>"


# -- replies ----------------------------------------------------------------------------------


def variants(card: RunCard) -> str:
    """Per kind of typing variant: the figures `chatbot eval --variants` recorded, and the
    variants of the sampled prompts asked now, with an example each."""
    parts = []
    for where, recorded in card.recorded_variants:
        rows = "".join(f"<tr><td>{esc(kind)}</td><td class=\"number\">{esc(rate(v))}</td></tr>"
                       for kind, v in recorded.items() if isinstance(v, dict))
        parts.append(f'<p class="note">{esc(where)}:</p><table>'
                     f"<tr><th>kind</th><th>answered</th></tr>{rows}</table>")
    rows = []
    for kind, asked in card.variants.items():
        right = sum(bool(a.right) for a in asked)
        shown = next((a for a in asked if not a.right), asked[0])  # a miss says more
        rows.append(f"<tr><td>{esc(kind)}</td><td class=\"number\">{right} of {len(asked)}</td>"
                    f"<td>{esc(shown.prompt)} → {esc(shown.reply)} {mark(shown.right)}</td></tr>")
    asked_prompts = sum(1 for a in card.samples if a.kind == "known")
    data = card.settings.get("data.path") or "FILE"
    parts.append(f'<p class="note">Asked now: every kind of typing variant of the '
                 f"{asked_prompts} sampled known prompts (the seed of chatbot eval --variants); "
                 "a variant counts when the reply is one of its prompt's replies. For every "
                 f"prompt: {esc(f'chatbot eval --model {card.path} --data {data} --variants')} "
                 "(its figures then show here).</p>"
                 if rows else '<p class="note">No known prompt to vary.</p>')
    if rows:
        parts.append("<table><tr><th>kind</th><th>answered</th><th>example</th></tr>"
                     + "".join(rows) + "</table>")
    return "".join(parts)


def mark(right: bool | None) -> str:
    return ('<span class="yes">✓</span>' if right else '<span class="no">✗</span>'
            if right is not None else "")


def samples(card: RunCard) -> str:
    if not card.samples:
        return '<p class="note">No prompts to ask.</p>'
    rows = "".join(_sample_row(a) for a in card.samples)
    return ('<p class="note">✓: one of the prompt\'s replies in the data; ✗: not one of '
            "them.</p><table><tr><th>prompt</th><th>reply</th><th>confidence</th>"
            f"<th>source</th></tr>{rows}</table>")


def _sample_row(a: Asked) -> str:
    kind = {"known": "known prompt", "unknown": "not in the data"}.get(
        a.kind, f"typed variant: {a.kind}")
    matched = "" if a.matched is None else (
        f'<br><span class="note">{esc(repr(a.matched))}, similarity {a.similarity:.2f}</span>')
    return (f'<tr><td>{esc(a.prompt)}<br><span class="note">{esc(kind)}</span></td>'
            f"<td>{esc(a.reply)} {mark(a.right)}</td>"
            f'<td class="number">{a.confidence:.2f} <meter min="0" max="1" '
            f'value="{a.confidence:.3f}"></meter></td><td>{esc(a.source)}{matched}</td></tr>')
