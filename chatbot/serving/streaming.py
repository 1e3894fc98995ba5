"""Server-sent events of a streamed completion (`"stream": true`).

First the role, then the text, then a chunk with the finish_reason, a usage chunk if asked,
and `data: [DONE]`. When nothing can change the reply after it is generated (no beam search,
no MMI, no retrieval match for this prompt, no logprobs asked: ReplyPolicy.streams_live), tokens
are sent as the sampler generates them, from a thread of their own (batcher.stream_rows), and
the text is exactly `Bot.reply`'s. Otherwise (the default for a run with a memory of its
training pairs, when the prompt resembles a known one) the reply is chosen first, as
`Bot.reply` chooses it, and then sent token by token, each with its log-probabilities when
they were asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from chatbot.decoding.bot import Bot
from chatbot.serving.batcher import stream_rows
from chatbot.serving.completions import ApiError, Completion
from chatbot.serving.responses import ChoiceText, choice_text, chunk, event, new_id, now, usage
from chatbot.serving.service import Prepared, Service, logprobs

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
        last = texts[index].finish()
        return (content(index, last) if last else "") + chunk(
            id, model, created, [{"index": index, "delta": {},
                                  "finish_reason": texts[index].finish_reason(max_len)}],
            include_usage=include)

    yield chunk(id, model, created, [{"index": i, "delta": {"role": "assistant"}}
                                     for i in range(completion.n)], include_usage=include)
    try:
        if ready.live:
            async for piece in _live(bot, completion, ready.prompt, texts, ended, deadline,
                                     content, end):
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
    chosen = [choice_text(tokens, bot.tokenizer.detokenize, completion.stop) for tokens in replies]
    entries = (await asyncio.to_thread(logprobs, ready, chosen)
               if completion.logprobs is not None else None)
    for index, tokens in enumerate(replies):
        pending: list[dict] = []
        for position, token in enumerate(tokens):
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


async def _live(bot: Bot, completion: Completion, prompt_tokens: list[str],
                texts: list[ChoiceText], ended: set[int], deadline: float, content, end
                ) -> AsyncIterator[str]:
    """The events of a reply streamed as the sampler generates it (ReplyPolicy.streams_live)."""
    prompt = bot.vocab.encode(prompt_tokens)
    # A row per choice (greedy: n equal rows), each streamed to its own choice; with a seed S,
    # row i draws from S + i (completions.Completion.rows)
    rows = completion.n
    if not prompt:  # an empty prompt: an empty reply
        return
    async with contextlib.aclosing(
            stream_rows(bot.policy().sampler, bot, [prompt] * rows, deadline)) as tokens:
        async for row, token in tokens:
            if row in ended:
                continue
            if token == bot.vocab.eos_id:
                yield end(row)
                continue
            for word in bot.vocab.decode([token]):  # none for <TURN>, as Bot
                delta = texts[row].push(word)
                if delta:
                    yield content(row, delta)
            if texts[row].stopped:
                yield end(row)
            if len(ended) >= rows:
                break  # every row stopped: stop the search

