"""The OpenAI chat-completions protocol, written: the reply text of each choice (cut at a stop
sequence), the response object, its streamed chunks and Server-Sent Events, and the
`logprobs` entries. The request side is chatbot.serving.completions. Pure Python.

Each choice carries, beside OpenAI's fields, what `Bot.reply` tells of its reply (`Said`):

    "confidence": 0.93, "source": "memory", "matched_prompt": "hello"

(source: model, memory, taught or fallback; matched_prompt: the known or taught prompt whose
reply was said, or null), in a non-streamed choice and in a stream's finishing chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chatbot.text.vocab import SPECIALS, TURN


@dataclass(frozen=True)
class Said(Sequence[str]):
    """A finished reply as a choice says it. A sequence of its tokens, so that it goes where a
    reply's tokens go (choice_text); its text is what the bot said, which is not always what the
    tokens detokenize to: a known or taught reply keeps the case and line breaks its data wrote,
    the fallback its own phrasing."""

    tokens: tuple[str, ...]
    text: str
    confidence: float  # 0 to 1 (chatbot.decoding.confidence)
    source: str  # model, memory, taught or fallback
    matched_prompt: str | None = None  # the known or taught prompt whose reply this is

    def __getitem__(self, index):
        return self.tokens[index]

    def __len__(self) -> int:
        return len(self.tokens)

    def fields(self) -> dict:
        """The choice's own fields beside OpenAI's."""
        return {"confidence": round(self.confidence, 4), "source": self.source,
                "matched_prompt": self.matched_prompt}


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
        self.said: Said | None = None  # the finished reply, once it is known

    def push(self, token: str) -> str:
        """The text to send for one more token ("" if none yet)."""
        if self.stopped:
            return ""
        self.tokens.append(token)
        text = self.detokenize(self.tokens)
        cut = self._stop_at(text)
        if cut is not None:
            self.stopped = True
            return self._extend(text[:cut])
        # U+FFFD: a character whose bytes have not all come (sentencepiece byte pieces).
        return self._extend(text[: max(0, len(text) - self.hold)].rstrip("\ufffd"))

    def finish(self) -> str:
        """The text still to send once the reply has ended."""
        return "" if self.stopped else self._extend(self.detokenize(self.tokens))

    def say(self, said: Said) -> str:
        """The text to send for a finished reply said whole, as the bot said it (nothing of it
        sent yet), cut before a stop sequence; every token counts as generated."""
        self.tokens, self.said = list(said.tokens), said
        cut = self._stop_at(said.text)
        self.stopped = cut is not None
        return self._extend(said.text[:cut])

    def _stop_at(self, text: str) -> int | None:
        """Where the first stop sequence in `text` begins, if one does."""
        return min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=None)

    def finish_reason(self, max_len: int) -> str:
        return "length" if not self.stopped and len(self.tokens) >= max_len else "stop"

    def _extend(self, text: str) -> str:
        if len(text) <= len(self.text) or not text.startswith(self.text):
            return ""
        delta, self.text = text[len(self.text):], text
        return delta


def choice_text(tokens: Sequence[str], detokenize: Callable[[Sequence[str]], str],
                stop: Sequence[str] = ()) -> ChoiceText:
    """A whole reply's ChoiceText (a non-streamed choice): its tokens, or the reply as the bot
    said it (`Said`)."""
    text = ChoiceText(detokenize, stop)
    if isinstance(tokens, Said):
        text.said = tokens
        if tokens.text != detokenize(tokens.tokens):
            text.say(tokens)
            return text
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
             prompt_tokens: int, logprobs: Sequence[list[dict]] | None = None) -> dict:
    """A non-streamed `chat.completion`; `logprobs`: each choice's logprob_content."""
    return {
        "id": id, "object": "chat.completion", "created": now(), "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                     "logprobs": None if logprobs is None else {"content": logprobs[i],
                                                                "refusal": None},
                     "finish_reason": c.finish_reason(max_len),
                     **(c.said.fields() if c.said is not None else {})}
                    for i, c in enumerate(choices)],
        "usage": usage(prompt_tokens, sum(len(c.tokens) for c in choices)),
    }


def logprob_content(pieces: Sequence[str], scores: Sequence[tuple[float, list]],
                    detokenize: Callable[[Sequence[str]], str], names: Sequence[str]
                    ) -> list[dict]:
    """OpenAI's `logprobs.content` for a reply: per token, the text it adds to the reply
    (`pieces`, the tokenizer's: the entries' tokens join to the content), its log-probability,
    its UTF-8 bytes and its `top_logprobs` alternatives. `scores` are
    chatbot.decoding.rerank.token_logprobs' (token log-prob, [(id, log-prob)...]) for the tokens;
    `names` the vocabulary's tokens by id."""
    entries = []
    for piece, (logprob, top) in zip(pieces, scores):
        space = " " if piece.startswith(" ") else ""
        alternatives = [_entry(names[t] if names[t] in (*SPECIALS, TURN)  # (<EOS>: the end)
                               else space + detokenize([names[t]]), lp) for t, lp in top]
        entries.append({**_entry(piece, logprob), "top_logprobs": alternatives})
    return entries


def _entry(text: str, logprob: float) -> dict:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


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
