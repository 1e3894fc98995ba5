"""The decoding configurations the quality benchmark compares, applied to one loaded Bot.

Each starts from the run's saved decoding settings (its config.json) and changes a few:

    model    the model alone: no retrieval, no MMI reranking (the speller still reads a typo
             as the known word one slip away: it looks at the vocabulary, not the pairs)
    model_no_spelling
             the model alone with the speller off too: what the model itself survives
    hybrid   the saved settings with retrieval on: known replies of similar training prompts
             join the model's candidates, the model's scores decide (chatbot/decoding/bot.py)
    beam     the model alone with beam search, its n-best kept (the control for mmi)
    mmi      beam, reranked by MMI (anti-language model, Li et al. 2016)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chatbot.config import DecodeConfig
from chatbot.decoding.bot import Bot

# What the known-prompt answer rates and latencies compare, and the unseen-prompt figures.
KNOWN = ("model", "model_no_spelling", "hybrid")
UNSEEN = ("model", "hybrid", "beam", "mmi")


def configurations(mmi: float, beam: int) -> dict[str, dict[str, Any]]:
    """{name: DecodeConfig changes to the saved settings}."""
    alone = {"retrieval": False, "mmi": 0.0}
    beam_search = {**alone, "strategy": "beam", "beam_width": beam, "nbest": beam}
    return {"model": alone, "model_no_spelling": {**alone, "spelling": False},
            "hybrid": {"retrieval": True}, "beam": beam_search,
            "mmi": {**beam_search, "mmi": mmi}}


def use(bot: Bot, saved: DecodeConfig, changes: dict[str, Any]) -> dict[str, Any]:
    """Sets the bot to the saved settings with `changes`; returns the settings in use."""
    bot.configure(**{**dataclasses.asdict(saved), **changes})
    return dataclasses.asdict(bot.decode)
