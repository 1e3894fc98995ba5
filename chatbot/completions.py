"""The OpenAI chat-completions protocol, read and written: what `chatbot serve` speaks.

A request body becomes a `Completion`: the conversation, checked as chat JSONL is, and the
request's own copy of the decoding settings, built from the run's saved ones:

    request field                DecodeConfig
    temperature 0                the saved strategy (greedy unless the run saved another);
                                 a run that saved a sampling strategy decodes greedily
    temperature T > 0            sampling at T ("random", or the saved sampling strategy)
    top_p P < 1                  nucleus sampling ("top_p", p = P), unless temperature is 0
    max_tokens N                 max_reply_len = N (max_completion_tokens is the same)
    seed S                       seed = S; choice i of n sampled choices uses S + i
    beam, top_k, no_repeat_ngram, min_len, mmi, retrieval, context, ...
                                 our own settings (chatbot.bot.SETTING_NAMES), as `/set` takes
                                 them; JSON true/false for on/off

Absent fields keep the saved settings. Sampling fields come first and our own settings last,
beam and nbest after the rest (as `chatbot chat --beam` overrides a temperature). `n` > 1 gives
n choices: n draws when sampling, beam search's n best (the width grows to n if needed), or n
copies of the one greedy reply. `stop` (a string or up to 4) cuts a reply before the first
stop sequence. OpenAI fields that change nothing here (user, metadata, penalties, ...) are
accepted and ignored; any other unknown field is refused with 400, so a misspelt setting is
never silently dropped.

Everything here is pure Python: `ApiError` carries the HTTP status and the OpenAI-style
`{"error": {"message", "type", "param", "code"}}` body that chatbot.serve sends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.bot import SETTING_NAMES, make_sampler, parse_setting
from chatbot.config import DecodeConfig
from chatbot.dialogue import Message, parse_messages
from chatbot.errors import ChatbotError
from chatbot.limits import Limits

DETERMINISTIC = ("greedy", "beam")  # the strategies whose reply a seed does not change
MAX_STOP = 4  # stop sequences a request may give, as OpenAI allows
OPENAI_FIELDS = ("messages", "model", "max_tokens", "max_completion_tokens", "temperature",
                 "top_p", "seed", "stop", "n", "stream", "stream_options")
# OpenAI fields a client may send that change nothing in this chatbot's replies.
IGNORED_FIELDS = ("user", "metadata", "store", "service_tier", "presence_penalty",
                  "frequency_penalty", "logit_bias", "parallel_tool_calls")


class ApiError(Exception):
    """A request the server refuses: its HTTP status and an OpenAI-style error body."""

    TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
             404: "invalid_request_error", 405: "invalid_request_error", 408: "timeout_error",
             413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
             504: "timeout_error"}

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.TYPES.get(self.status, "error"),
                          "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Completion:
    """A checked request: what to answer, how, and how to send it."""

    messages: tuple[Message, ...]
    decode: DecodeConfig  # the request's own settings, checked by make_sampler
    n: int = 1
    stream: bool = False
    include_usage: bool = False  # streams: a usage chunk before [DONE]
    stop: tuple[str, ...] = ()

    def decodings(self) -> list[tuple[int | None, int]]:
        """(seed, prompt rows) of each decoding the choices come from: a deterministic
        strategy's one row (its n best, or n copies of the greedy reply), n rows drawn from
        one generator when sampling without a seed, and with seed S one decoding per choice,
        seeded S, S + 1, ..., so that choice i is what seed S + i alone gives."""
        seed = self.decode.seed
        if self.decode.strategy in DETERMINISTIC:
            return [(seed, 1)]
        if seed is None:
            return [(None, self.n)]
        return [(seed + i, 1) for i in range(self.n)]


def parse_request(body: bytes, saved: DecodeConfig, limits: Limits) -> Completion:
    """The Completion a request body asks for, from the run's `saved` settings; ApiError 400
    with a message that names the field otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 JSON"
        raise ApiError(f"the request body is not valid JSON ({reason})") from None
    if not isinstance(value, dict):
        raise ApiError("the request body must be a JSON object with a 'messages' list")
    for name in value:
        if name not in (*OPENAI_FIELDS, *IGNORED_FIELDS, *SETTING_NAMES):
            raise ApiError(f"unknown field {name!r}; this server reads the OpenAI fields "
                           f"{', '.join(OPENAI_FIELDS)} and the decoding settings "
                           f"{', '.join(SETTING_NAMES)}", param=name)
    if not isinstance(value.get("model", ""), str):
        raise ApiError("'model' must be a string", param="model")
    stream = _flag(value, "stream")
    options = value.get("stream_options")
    if options is not None and (not stream or not isinstance(options, dict)):
        raise ApiError("'stream_options' must be an object, and is only allowed with "
                       "'stream': true", param="stream_options")
    n = _whole(value, "n", 1, limits.max_choices)
    return Completion(_messages(value.get("messages")), _decode(value, saved, limits, n),
                      n if n is not None else 1, stream,
                      _flag(options or {}, "include_usage", "stream_options"),
                      _stop(value.get("stop")))


def _messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise ApiError("missing required field 'messages': a list of {\"role\", \"content\"} "
                       "objects", param="messages")
    if isinstance(raw, list):  # OpenAI's content parts and developer role, as plain turns
        raw = [_plain(m) if isinstance(m, dict) else m for m in raw]
    messages = parse_messages(raw)
    if isinstance(messages, str):
        raise ApiError(f"bad 'messages': {messages}", param="messages")
    said = [m for m in messages if m.role != "system"]
    if not said or said[-1].role != "user":
        raise ApiError("the last message (system messages aside) must be the user's: it is "
                       "the one answered", param="messages")
    return messages


def _plain(message: dict) -> dict:
    content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        content = " ".join(p["text"] for p in content)
    role = "system" if message.get("role") == "developer" else message.get("role")
    return {"role": role, "content": content}


def _decode(value: dict, saved: DecodeConfig, limits: Limits, n: int | None) -> DecodeConfig:
    """The request's DecodeConfig: `/set` changes applied in order to a copy of `saved`."""
    changes: list[tuple[int, str, str, str]] = []  # (order, setting, text, request field)
    temperature = _number(value, "temperature", 0, 2)
    top_p = _number(value, "top_p", 0, 1, low_open=True)
    tokens = _whole(value, "max_tokens", 1, limits.max_reply_tokens)
    tokens = _whole(value, "max_completion_tokens", 1, limits.max_reply_tokens) or tokens
    if tokens is not None:
        changes.append((0, "max_len", str(tokens), "max_tokens"))
    if temperature:
        changes.append((1, "temperature", repr(temperature), "temperature"))
    if top_p is not None and top_p < 1 and temperature != 0:
        changes.append((1, "top_p", repr(top_p), "top_p"))
    seed = _whole(value, "seed", 0, None)
    if seed is not None:
        changes.append((1, "seed", str(seed), "seed"))
    for name in SETTING_NAMES:
        if name in value and name not in OPENAI_FIELDS:
            changes.append(({"max_len": 0, "beam": 2, "nbest": 2}.get(name, 1), name,
                            _setting_text(name, value[name]), name))
    decode = dataclasses.replace(saved)
    if temperature == 0 and decode.strategy not in DETERMINISTIC:
        decode.strategy = "greedy"
    for _, name, text, field in sorted(changes, key=lambda c: c[0]):
        try:
            decode = dataclasses.replace(decode, **parse_setting(name, text, decode))
        except ChatbotError as exc:
            raise ApiError(str(exc), param=field) from None
    if decode.max_reply_len > limits.max_reply_tokens:
        if "max_len" in value:
            raise ApiError(f"max_len must be at most {limits.max_reply_tokens} (this server's "
                           "--max-reply-tokens)", param="max_len")
        decode.max_reply_len = limits.max_reply_tokens
    if "min_len" not in value:  # the saved minimum gives way to a shorter max_tokens
        decode.min_len = min(decode.min_len, decode.max_reply_len)
    if decode.strategy == "beam" and n and n > 1:  # n choices: the n best
        decode.nbest = max(decode.nbest, n)
        decode.beam_width = max(decode.beam_width, n)
    try:
        make_sampler(decode)
    except ChatbotError as exc:  # the param: the first field of the request it names
        param = next((name for name in value if name != "messages" and name in str(exc)), None)
        raise ApiError(str(exc), param=param) from None
    return decode


def _setting_text(name: str, value: Any) -> str:
    """A JSON value of one of our settings as `/set NAME VALUE` reads it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None and name == "seed":
        return "none"
    if isinstance(value, str) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return str(value)
    raise ApiError(f"{name} must be a number, a word or true/false, received "
                   f"{json.dumps(value)[:40]}", param=name)


def _number(value: dict, name: str, low: float, high: float,
            low_open: bool = False) -> float | None:
    x = value.get(name)
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not (
            (low < x if low_open else low <= x) and x <= high):
        raise ApiError(f"'{name}' must be a number from {low}{' (excluded)' if low_open else ''}"
                       f" to {high}, received {json.dumps(x)[:40]}", param=name)
    return float(x)


def _whole(value: dict, name: str, low: int, high: int | None) -> int | None:
    x = value.get(name)
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, int) or x < low or (high is not None
                                                                    and x > high):
        most = f" to {high}" if high is not None else " or more"
        raise ApiError(f"'{name}' must be a whole number from {low}{most}, received "
                       f"{json.dumps(x)[:40]}", param=name)
    return x


def _flag(value: dict, name: str, param: str | None = None) -> bool:
    x = value.get(name, False)
    if x is None:
        return False
    if not isinstance(x, bool):
        raise ApiError(f"'{name}' must be true or false", param=param or name)
    return x


def _stop(raw: Any) -> tuple[str, ...]:
    stops = [raw] if isinstance(raw, str) else raw if raw is not None else []
    if not isinstance(stops, list) or len(stops) > MAX_STOP or not all(
            isinstance(s, str) and s for s in stops):
        raise ApiError(f"'stop' must be a non-empty string or a list of at most {MAX_STOP}",
                       param="stop")
    return tuple(stops)


# --- replies as they are sent -----------------------------------------------------------------

class ChoiceText:
    """One choice's text as its tokens arrive: the deltas to send, cut before a stop sequence.

    The text of the tokens so far is detokenized whole each time and only what extends the
    text already sent goes out, so the deltas join to the reply's text (both tokenizers write
    a token's text after the text of the tokens before it). With stop sequences, the last
    `len(longest stop) - 1` characters wait until they cannot begin one.
    """

    def __init__(self, detokenize: Callable[[Sequence[str]], str], stop: Sequence[str] = ()):
        self.detokenize = detokenize
        self.stop = tuple(stop)
        self.hold = max(map(len, self.stop), default=1) - 1
        self.tokens: list[str] = []  # the tokens generated, up to the stop sequence
        self.text = ""  # what was sent
        self.stopped = False  # a stop sequence ended it

    def push(self, token: str) -> str:
        """The text to send for one more token ("" if none yet)."""
        if self.stopped:
            return ""
        self.tokens.append(token)
        text = self.detokenize(self.tokens)
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=None)
        if cut is not None:
            self.stopped = True
            return self._extend(text[:cut])
        # U+FFFD: a character whose bytes have not all come (sentencepiece byte pieces).
        return self._extend(text[: max(0, len(text) - self.hold)].rstrip("\ufffd"))

    def finish(self) -> str:
        """The text still to send once the reply has ended."""
        return "" if self.stopped else self._extend(self.detokenize(self.tokens))

    def finish_reason(self, max_len: int) -> str:
        return "length" if not self.stopped and len(self.tokens) >= max_len else "stop"

    def _extend(self, text: str) -> str:
        if len(text) <= len(self.text) or not text.startswith(self.text):
            return ""
        delta, self.text = text[len(self.text):], text
        return delta


def choice_text(tokens: Sequence[str], detokenize: Callable[[Sequence[str]], str],
                stop: Sequence[str] = ()) -> ChoiceText:
    """A whole reply's ChoiceText (a non-streamed choice)."""
    text = ChoiceText(detokenize, stop)
    if not text.stop:  # nothing to cut: the whole text at once, not one prefix per token
        text.tokens = list(tokens)
        text.finish()
        return text
    for token in tokens:
        text.push(token)
        if text.stopped:
            break
    text.finish()
    return text


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def response(id: str, model: str, choices: Sequence[ChoiceText], max_len: int,
             prompt_tokens: int) -> dict:
    """A non-streamed `chat.completion`."""
    return {
        "id": id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                     "logprobs": None, "finish_reason": c.finish_reason(max_len)}
                    for i, c in enumerate(choices)],
        "usage": usage(prompt_tokens, sum(len(c.tokens) for c in choices)),
    }


def chunk(id: str, model: str, created: int, choices: list[dict],
          usage_: dict | None = None, include_usage: bool = False) -> str:
    """One server-sent event of a `chat.completion.chunk`; `choices` holds
    {"index", "delta", "finish_reason"} entries. With include_usage every chunk has a "usage"
    key, null until the last, as OpenAI sends them."""
    body = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"logprobs": None, "finish_reason": None, **c} for c in choices]}
    if include_usage:
        body["usage"] = usage_
    return event(body)


def event(body: dict | str) -> str:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False,
                                                         separators=(",", ":"))
    return f"data: {data}\n\n"
