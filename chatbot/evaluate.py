"""How well a model answers: the share of prompts answered with one of their own replies."""

from __future__ import annotations

from collections.abc import Sequence

from chatbot.bot import Bot
from chatbot.data import Pair


def answer_rate(bot: Bot, pairs: Sequence[Pair], batch_size: int = 256) -> dict:
    """Share of distinct prompts whose reply equals (token for token) one of their references.

    References are compared after the model's own tokenization and truncation to max_len, so
    case and spacing differences do not count as errors.
    """
    tok, max_len = bot.tokenizer, bot.config.data.max_len
    references: dict[str, set[tuple[str, ...]]] = {}
    for p in pairs:
        references.setdefault(p.prompt, set()).add(tuple(tok.tokenize(p.reply)[:max_len]))
    prompts = list(references)
    answered, examples = 0, []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start: start + batch_size]
        for prompt, reply in zip(chunk, bot.reply_batch(chunk)):
            hit = tuple(reply.tokens) in references[prompt]
            answered += hit
            if len(examples) < 5 and not hit:
                examples.append({"prompt": prompt, "reply": reply.text})
    return {
        "prompts": len(prompts),
        "answered": answered,
        "answer_rate": answered / len(prompts) if prompts else 0.0,
        "missed_examples": examples,
    }
