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
                                 our own settings (chatbot.decoding.bot.SETTING_NAMES), as `/set`
                                 takes them; JSON true/false for on/off

Absent fields keep the saved settings. Sampling fields come first and our own settings last,
beam and nbest after the rest (as `chatbot chat --beam` overrides a temperature). `n` > 1 gives
n choices: n draws when sampling, beam search's n best (the width grows to n if needed), or n
copies of the one greedy reply. `stop` (a string or up to 4) cuts a reply before the first
stop sequence. OpenAI fields that change nothing here (user, metadata, penalties, ...) are
accepted and ignored; any other unknown field is refused with 400, so a misspelt setting is
never silently dropped.

Everything here is pure Python: `ApiError` carries the HTTP status and the OpenAI-style
`{"error": {"message", "type", "param", "code"}}` body that chatbot.serving.app sends. What the
server writes back is chatbot.serving.responses.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from chatbot.data.dialogue import Message, parse_messages
from chatbot.decoding.bot import make_sampler
from chatbot.decoding.policy import RERANKED
from chatbot.decoding.settings import (
    DETERMINISTIC,
    OPENAI,
    SETTING_NAMES,
    SETTINGS,
    DecodeConfig,
    in_order,
    parse_setting,
)
from chatbot.errors import ChatbotError
from chatbot.serving.limits import Limits

MAX_STOP = 4  # stop sequences a request may give, as OpenAI allows
MAX_TOP_LOGPROBS = 20  # the most alternatives per token `top_logprobs` may ask, as OpenAI's
OPENAI_FIELDS = ("messages", "model", "max_tokens", "max_completion_tokens", "temperature",
                 "top_p", "seed", "stop", "n", "stream", "stream_options", "logprobs",
                 "top_logprobs", "response_format", "tools", "tool_choice", "functions",
                 "function_call", "modalities")
# OpenAI fields a client may send that change nothing in this chatbot's replies.
IGNORED_FIELDS = ("user", "metadata", "store", "service_tier", "presence_penalty",
                  "frequency_penalty", "logit_bias", "parallel_tool_calls", "reasoning_effort",
                  "prompt_cache_key", "safety_identifier", "verbosity", "prediction")
# OpenAI fields asking for what this chatbot cannot do: refused by name rather than ignored.
REFUSED_FIELDS = {"audio": "this chatbot writes text only, no audio",
                  "web_search_options": "this chatbot cannot search the web"}
# Roles whose turns the model does not read: tool results, and the legacy function role.
SKIPPED_ROLES = ("tool", "function")
# Content parts the model cannot read (text parts are joined into one turn).
MEDIA_PARTS = {"image_url": "an image", "input_audio": "audio", "file": "a file"}


def _safe(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate, which JSON may escape but no UTF-8 body
    can hold, is shown as its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class ApiError(Exception):
    """A request the server refuses: its HTTP status and an OpenAI-style error body."""

    TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
             404: "invalid_request_error", 405: "invalid_request_error", 408: "timeout_error",
             413: "invalid_request_error", 415: "invalid_request_error",
             421: "invalid_request_error", 429: "rate_limit_error", 500: "server_error",
             503: "server_error", 504: "timeout_error"}

    def __init__(self, message: str, status: int = 400, param: str | None = None,
                 code: str | None = None):
        super().__init__(_safe(message))
        self.status = status
        self.param = None if param is None else _safe(param)
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
    logprobs: int | None = None  # None: not asked; k: each token's log-probability and the
    # k most probable tokens at its position (top_logprobs)

    def rows(self) -> int:
        """The prompt rows the choices are decoded from, as one batch: a deterministic
        strategy's one row (its n best, or n copies of the greedy reply), else n rows. With a
        seed S, row i draws from a generator seeded S + i (chatbot.decoding.samplers.RowGenerators),
        so that choice i is what seed S + i alone gives."""
        return 1 if self.decode.strategy in DETERMINISTIC else self.n

    def work(self) -> int:
        """The most decoding steps this request may take, counted in rows x steps: what its
        CPU time grows with (Limits.max_work). Each pass through the engine costs up to
        max_tokens steps of its rows: the search's (a beam's hypotheses, or the n sampled
        choices); the reranking's, which scores the generated candidates and, with greedy and
        beam search, up to retrieval_k known replies (twice with MMI: after the prompt and
        after an empty one); and the logprobs', one row per choice."""
        d = self.decode
        beam = d.strategy == "beam"
        search = self.rows() * (d.beam_width if beam else 1)
        candidates = d.nbest if beam else self.rows()
        known = d.retrieval_k if d.retrieval and d.strategy in RERANKED else 0
        rerank = (candidates + known) * (2 if d.mmi else 1) if d.mmi or known else 0
        logprobs = self.n if self.logprobs is not None else 0
        return d.max_reply_len * (search + rerank + logprobs)


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
        if name in REFUSED_FIELDS and value[name] is not None:
            raise ApiError(f"'{name}': {REFUSED_FIELDS[name]}", param=name)
        if name not in (*OPENAI_FIELDS, *IGNORED_FIELDS, *SETTING_NAMES, *REFUSED_FIELDS):
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
    _check_capabilities(value)
    n = _whole(value, "n", 1, limits.max_choices)
    completion = Completion(_messages(value.get("messages")), _decode(value, saved, limits, n),
                            n if n is not None else 1, stream,
                            _flag(options or {}, "include_usage", "stream_options"),
                            _stop(value.get("stop")), _logprobs(value))
    work = completion.work()
    if work > limits.max_work:
        raise ApiError(f"this request may take up to {work:,} decoding steps (rows decoded "
                       "at once x max_tokens; beam width, n, nbest, mmi, retrieval_k and "
                       f"logprobs each add rows), more than this server's --max-work "
                       f"{limits.max_work:,}; ask for fewer tokens, choices or hypotheses",
                       param="max_tokens" if "max_tokens" in value else None)
    return completion


def _check_capabilities(value: dict) -> None:
    """Accepts what asks for what this chatbot does anyway (text replies, no tool call), and
    refuses by name what it cannot do: JSON output, a tool call that must happen, audio."""
    fmt = value.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise ApiError(f"response_format {json.dumps(kind)[:40]} is not supported: this "
                       "chatbot writes plain text and cannot promise JSON; send "
                       '{"type": "text"} or leave it out', param="response_format")
    for field, choice in (("tools", "tool_choice"), ("functions", "function_call")):
        tools = value.get(field)
        if tools is not None and not isinstance(tools, list):
            raise ApiError(f"'{field}' must be a list", param=field)
        wanted = value.get(choice)
        if wanted not in (None, "none", "auto"):
            raise ApiError(f"{choice} {json.dumps(wanted)[:60]} asks for a tool call, which "
                           f"this chatbot cannot make; send \"none\" or \"auto\" (it never "
                           "calls a tool)", param=choice)
    modalities = value.get("modalities")
    if modalities is not None and (not isinstance(modalities, list)
                                   or any(m != "text" for m in modalities)):
        raise ApiError(f"modalities {json.dumps(modalities)[:60]}: this chatbot writes text "
                       'only; send ["text"] or leave it out', param="modalities")


def _logprobs(value: dict) -> int | None:
    asked = _flag(value, "logprobs")
    top = _whole(value, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not asked:
        raise ApiError("'top_logprobs' needs 'logprobs': true", param="top_logprobs")
    return (top or 0) if asked else None


def _messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise ApiError("missing required field 'messages': a list of {\"role\", \"content\"} "
                       "objects", param="messages")
    if isinstance(raw, list):  # OpenAI's content parts and developer role, as plain turns
        raw = [_plain(m, i) if isinstance(m, dict) else m for i, m in enumerate(raw, start=1)]
        raw = [m for m in raw if m is not None]
    messages = parse_messages(raw)
    if isinstance(messages, str):
        raise ApiError(f"bad 'messages': {messages}", param="messages")
    said = [m for m in messages if m.role != "system"]
    if not said or said[-1].role != "user":
        raise ApiError("the last message (system messages aside) must be the user's: it is "
                       "the one answered", param="messages")
    return messages


def _plain(message: dict, number: int) -> dict | None:
    """An OpenAI message as a turn the model reads; None for one it does not read (a tool's
    result, an assistant's tool call with no text)."""
    role = message.get("role")
    content = message.get("content")
    if role in SKIPPED_ROLES or (role == "assistant" and content is None):
        return None
    if isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in MEDIA_PARTS:
                raise ApiError(f"message {number} holds {MEDIA_PARTS[kind]} ({kind}); this "
                               "chatbot reads text only", param="messages")
        if all(isinstance(p, dict) and p.get("type") in ("text", "refusal")
               and isinstance(p.get(p["type"]), str) for p in content):
            content = " ".join(p[p["type"]] for p in content)
    role = "system" if role == "developer" else role
    return {"role": role, "content": content}


def _decode(value: dict, saved: DecodeConfig, limits: Limits, n: int | None) -> DecodeConfig:
    """The request's DecodeConfig: `/set` changes applied in order to a copy of `saved`."""
    changes: list[tuple[str, str, str]] = []  # (setting, text, request field)
    temperature = _number(value, "temperature", 0, 2)
    top_p = _number(value, "top_p", 0, 1, low_open=True)
    tokens = _whole(value, "max_tokens", 1, limits.max_reply_tokens)
    tokens = _whole(value, "max_completion_tokens", 1, limits.max_reply_tokens) or tokens
    if tokens is not None:
        changes.append((OPENAI["max_tokens"], str(tokens), "max_tokens"))
    if temperature:
        changes.append((OPENAI["temperature"], repr(temperature), "temperature"))
    if top_p is not None and top_p < 1 and temperature != 0:
        changes.append((OPENAI["top_p"], repr(top_p), "top_p"))
    seed = _whole(value, "seed", 0, SETTINGS[OPENAI["seed"]].high)
    if seed is not None:
        changes.append((OPENAI["seed"], str(seed), "seed"))
    for name in SETTING_NAMES:
        if name in value and name not in OPENAI_FIELDS:
            changes.append((name, _setting_text(name, value[name]), name))
    decode = dataclasses.replace(saved)
    if temperature == 0 and decode.strategy not in DETERMINISTIC:
        decode.strategy = "greedy"
    order = in_order(dict.fromkeys(name for name, _, _ in changes))
    for name, text, field in sorted(changes, key=lambda c: order.index(c[0])):
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
    _check_limits(decode, limits, value)
    try:
        make_sampler(decode)
    except ChatbotError as exc:  # the param: the first field of the request it names
        param = next((name for name in value if name != "messages" and name in str(exc)), None)
        raise ApiError(str(exc), param=param) from None
    return decode


def _check_limits(decode: DecodeConfig, limits: Limits, value: dict) -> None:
    """400 for a beam or an n-best wider than this server decodes (--max-beam, --max-nbest):
    each hypothesis of a beam is a row decoded at every step."""
    if decode.strategy != "beam":
        return
    for name, field, limit, flag in (("nbest", "nbest", limits.max_nbest, "--max-nbest"),
                                     ("beam", "beam_width", limits.max_beam, "--max-beam")):
        if getattr(decode, field) > limit:
            param = name if name in value else "n" if "n" in value else name
            raise ApiError(f"{name} must be at most {limit} (this server's {flag}), received "
                           f"{getattr(decode, field)}", param=param)


def _setting_text(name: str, value: Any) -> str:
    """A JSON value of one of our settings as `/set NAME VALUE` reads it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None and SETTINGS[name].optional:
        return "none"
    if isinstance(value, str) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return str(value)
    raise ApiError(f"{name} must be {SETTINGS[name].expected()}, received "
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
