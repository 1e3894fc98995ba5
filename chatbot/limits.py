"""What `chatbot serve` accepts: its limits, each a flag. Standard library only, so that the
command line can show the defaults without loading the server."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from chatbot.errors import ChatbotError


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20  # a larger request body gets 413
    max_prompt_tokens: int = 2048  # tokens of the turns the model reads (before it cuts them
    # to max_len): a longer conversation gets 400
    max_reply_tokens: int = 256  # the largest max_tokens a request may ask for
    max_concurrent: int = 64  # requests in progress at once, streams included; more get 429
    timeout: float = 60.0  # seconds a request may take: 504, or an error event in a stream
    max_choices: int = 8  # the largest n

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            whole = field.type in (int, "int")
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or (whole and not isinstance(value, int)) or not math.isfinite(value)
                    or not value > 0):
                kind = "a whole number" if whole else "a number"
                raise ChatbotError(f"{field.name} must be {kind} greater than 0, received "
                                   f"{value!r}")


DEFAULT_LIMITS = Limits()

# `chatbot serve` flags: (flag, Limits field, type, help).
LIMIT_FLAGS = [
    ("--max-body-bytes", "max_body_bytes", int, "larger request bodies get 413"),
    ("--max-prompt-tokens", "max_prompt_tokens", int,
     "conversations whose turns the model reads hold more tokens than this get 400"),
    ("--max-reply-tokens", "max_reply_tokens", int, "the largest max_tokens a request may ask"),
    ("--max-concurrent", "max_concurrent", int,
     "requests in progress at once (streams included); more get 429"),
    ("--timeout", "timeout", float,
     "seconds a request may take; past them 504, or an error event ends a stream"),
    ("--max-choices", "max_choices", int, "the largest n (choices per request)"),
]
