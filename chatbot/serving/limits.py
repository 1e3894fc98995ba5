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
    max_beam: int = 16  # the widest beam a request may ask for (each row of it is decoded)
    max_nbest: int = 16  # the most candidates a request may ask beam search to return
    max_work: int = 2500  # the most rows x steps a request's decoding may take (see
    # chatbot.serving.completions.Completion.work): about 1 s of CPU here at its most
    body_timeout: float = 10.0  # seconds a request's headers, and then its body, may take
    # to arrive: 408 for a body, a closed connection for headers (slow clients)
    keep_alive: float = 5.0  # seconds an idle connection stays open between requests
    grace: float = 10.0  # seconds requests in progress may take to finish once the server is
    # asked to stop (SIGTERM, Ctrl-C); the rest are cut off

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
    ("--max-beam", "max_beam", int, "the widest beam a request may ask for"),
    ("--max-nbest", "max_nbest", int, "the most candidates a request may ask for (nbest)"),
    ("--max-work", "max_work", int,
     "the most decoding work a request may ask for, in rows x steps (the rows: beam width or "
     "n, plus those reranked and those of logprobs)"),
    ("--body-timeout", "body_timeout", float,
     "seconds a request's headers, then its body, may take to arrive (slow clients get 408, "
     "or a closed connection)"),
    ("--keep-alive", "keep_alive", float, "seconds an idle connection stays open"),
    ("--grace", "grace", float,
     "seconds requests in progress may take to finish when the server is stopped"),
]
