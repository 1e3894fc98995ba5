"""Server-sent events of a streamed completion (`"stream": true`).

First the role, then the text, then a chunk with the finish_reason and the reply's
confidence, source and matched_prompt (chatbot.serving.responses.Said), a usage chunk if asked,
and `data: [DONE]`. When nothing can change the reply after it is generated (no beam search,
no MMI, no fallback, no retrieval match for this prompt, no logprobs asked:
ReplyPolicy.streams_live), tokens are sent as the sampler generates them, from a thread of their
own (batcher.stream_rows), and the text is exactly `Bot.reply`'s. Otherwise (the default: the
fallback needs the whole reply's confidence) the reply is chosen first, as `Bot.reply` chooses
it, and then sent token by token, each with its log-probabilities when they were asked for; a
reply said as written (a known reply's case and line breaks, a taught reply, the fallback's
phrasing) is sent whole, in one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from chatbot.decoding.bot import Bot
from chatbot.serving.batcher import stream_rows
from chatbot.serving.completions import ApiError
from chatbot.serving.responses import (
    ChoiceText,
    Said,
    choice_text,
    chunk,
    event,
    new_id,
    now,
    usage,
)
from chatbot.serving.service import Prepared, Service, judge, logprobs

log = logging.getLogger("chatbot.serving.app")


async def stream(service: Service, ready: Prepared, deadline: float) -> AsyncIterator[str]:
    """The server-sent events of a streamed completion (see the module docstring)."""
    completion, bot = ready.completion, ready.bot
    id, created, model = new_id(), now(), service.model
    include = completion.include_usage
    texts = [ChoiceText(bot.tokenizer.detokenize, completion.stop) for _ in range(completion.n)]
    ended: set[int] = set()
    max_len = completion.decode.max_reply_len

    def content(index: int, text: str, logprobs: list[dict] | None = None) -> str:
        delta = {"index": index, "delta": {"content": text}}
        if logprobs is not None:
            delta["logprobs"] = {"content": logprobs, "refusal": None}
        return chunk(id, model, created, [delta], include_usage=include)

    def end(index: int) -> str:
        ended.add(index)
        text = texts[index]
        last = text.finish()
        return (content(index, last) if last else "") + chunk(
            id, model, created, [{"index": index, "delta": {},
                                  "finish_reason": text.finish_reason(max_len),
                                  **(text.said.fields() if text.said is not None else {})}],
            include_usage=include)

    yield chunk(id, model, created, [{"index": i, "delta": {"role": "assistant"}}
                                     for i in range(completion.n)], include_usage=include)
    try:
        if ready.live:
            async for piece in _live(bot, ready, texts, ended, deadline, content, end):
                yield piece
        else:
            async for piece in _decoded(service, ready, texts, deadline, content):
                yield piece
        for index in range(completion.n):
            if index not in ended:
                yield end(index)
    except asyncio.TimeoutError:
        yield event(ApiError(f"no reply within {service.limits.timeout:g} s (--timeout)",
                             status=504).body())
        return
    except Exception:
        log.exception("streaming failed")
        yield event(ApiError("the server failed to finish this reply", status=500).body())
        return
    if include:
        yield chunk(id, model, created, [], usage(
            len(ready.prompt), sum(len(t.tokens) for t in texts)), include_usage=True)
    yield event("[DONE]")


async def _decoded(service: Service, ready: Prepared, texts: list[ChoiceText],
                   deadline: float, content) -> AsyncIterator[str]:
    """The events of replies decoded whole first (beam search, reranking, known replies, or
    logprobs asked), sent token by token once they are ready."""
    completion, bot = ready.completion, ready.bot
    replies = await service.replies(completion, bot, deadline)
    chosen = [choice_text(said, bot.tokenizer.detokenize, completion.stop) for said in replies]
    entries = (await asyncio.to_thread(logprobs, ready, chosen)
               if completion.logprobs is not None else None)
    for index, said in enumerate(replies):
        texts[index].said = said
        if said.text != bot.tokenizer.detokenize(said.tokens):
            # Said as written (a known reply's case and line breaks): whole, in one chunk.
            delta = texts[index].say(said)
            if delta or entries is not None:
                yield content(index, delta, entries[index] if entries is not None else None)
            continue
        pending: list[dict] = []
        for position, token in enumerate(said):
            delta = texts[index].push(token)
            if entries is not None and position < len(entries[index]):
                pending.append(entries[index][position])
            if delta:
                yield content(index, delta, pending if entries is not None else None)
                pending = []
            if texts[index].stopped:
                break
        if pending:  # what the stop sequences held back
            yield content(index, texts[index].finish(), pending)


async def _live(bot: Bot, ready: Prepared, texts: list[ChoiceText], ended: set[int],
                deadline: float, content, end) -> AsyncIterator[str]:
    """The events of a reply streamed as the sampler generates it (ReplyPolicy.streams_live);
    each choice's confidence is judged when it ends (service.judge), for its last chunk."""
    prompt = bot.vocab.encode(ready.prompt)
    # A row per choice (greedy: n equal rows), each streamed to its own choice; with a seed S,
    # row i draws from S + i (completions.Completion.rows)
    rows = ready.completion.n
    generated: list[list[str]] = [[] for _ in range(rows)]  # each row's tokens, whole

    async def judged(row: int) -> str:
        texts[row].said = await asyncio.to_thread(judge, bot, ready.turns, ready.prompt,
                                                  generated[row])
        return end(row)

    if not prompt:  # an empty prompt: an empty reply
        for text in texts:
            text.said = Said((), "", 0.0, "model")
        return
    async with contextlib.aclosing(
            stream_rows(bot.policy().sampler, bot, [prompt] * rows, deadline)) as tokens:
        async for row, token in tokens:
            if row in ended:
                continue
            if token == bot.vocab.eos_id:
                yield await judged(row)
                continue
            for word in bot.vocab.decode([token]):  # none for <TURN>, as Bot
                generated[row].append(word)
                delta = texts[row].push(word)
                if delta:
                    yield content(row, delta)
            if texts[row].stopped:
                yield await judged(row)
            if len(ended) >= rows:
                break  # every row stopped: stop the search
    for row in range(rows):  # the rows max_len ended
        if row not in ended:
            yield await judged(row)

