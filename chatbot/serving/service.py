"""What `chatbot serve` does with a completion request, apart from HTTP: the served Bot with
each request's own settings, the request read and checked off the event loop, and its
replies decoded through the batcher (chatbot.serving.batcher).

Each request's settings are its own. The served Bot is never configured after start-up: a
request gets a shallow copy of it, configured with the request's settings, which shares the
engine, vocabulary, tokenizer and memory (all read-only while decoding: engines keep their
state in what `start`/`step` return) and has its own DecodeConfig and sampler. So concurrent
requests cannot see each other's settings, and a copy costs microseconds.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from asyncio import FIRST_COMPLETED
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from chatbot import rundir
from chatbot.decoding.bot import Bot, Reply
from chatbot.decoding.policy import Candidate
from chatbot.decoding.rerank import reply_logprobs, token_logprobs
from chatbot.serving.batcher import Batcher
from chatbot.serving.completions import DETERMINISTIC, ApiError, Completion, parse_request
from chatbot.serving.guard import Hosts
from chatbot.serving.limits import DEFAULT_LIMITS, Limits
from chatbot.serving.responses import ChoiceText, Said, logprob_content, now
from chatbot.text.words import clip


@dataclass(frozen=True)
class Prepared:
    """A request read and checked, off the event loop (Service.prepare)."""

    completion: Completion
    bot: Bot  # with the request's settings
    turns: list[str]  # the conversation's turns, oldest first
    prompt: list[str]  # the tokens the model reads
    live: bool  # streamed as generated (see ReplyPolicy.streams_live)


class Service:
    """The served Bot, its batcher and limits: what the routes share."""

    def __init__(self, bot: Bot, model: str, limits: Limits = DEFAULT_LIMITS,
                 api_key: str | None = None, hosts: Hosts | None = None):
        self.bot = bot
        # The id clients see: the run's name, never a path of this machine.
        self.model = Path(model).resolve().name or "model"
        self.limits = limits
        self.api_key = api_key
        self.hosts = hosts or Hosts("127.0.0.1")
        self.batcher: Batcher | None = None  # started with the app (lifespan)
        self.in_flight = 0  # completion requests in progress (chatbot.serving.guard counts them)
        self.created = rundir.created(model) or now()

    def bot_for(self, completion: Completion) -> Bot:
        """A Bot with the request's settings that shares everything else with the served one
        (see the module docstring)."""
        bot = copy.copy(self.bot)
        decode = completion.decode
        if decode != bot.decode:  # (most requests keep the run's settings)
            bot.configure(**{f.name: getattr(decode, f.name) for f in dataclasses.fields(decode)})
        return bot

    def prepare(self, body: bytes) -> Prepared:
        """Everything a request needs before its decoding: parsed, checked, its prompt read.
        Runs in a worker thread, so that no request's text holds up the event loop; the work
        is bounded by the limits and by what the model reads (chatbot.text.words.clip)."""
        completion = parse_request(body, self.bot.decode, self.limits)
        bot = self.bot_for(completion)
        turns = self.check_prompt(bot, completion)
        live = (completion.stream and completion.logprobs is None
                and bot.policy().streams_live(bot.clip(turns)))
        return Prepared(completion, bot, turns, bot.prompt_tokens(turns), live)

    def check_prompt(self, bot: Bot, completion: Completion) -> list[str]:
        """The turns the model reads; 400 if they hold more than max_prompt_tokens tokens.
        Counting stops past the limit: a pasted megabyte costs no more than the limit."""
        turns = bot.turns(completion.messages)
        read = turns[-bot.context_turns:]
        limit = self.limits.max_prompt_tokens
        count = 0
        for turn in read:
            count += len(bot.tokenizer.tokenize(clip(turn, limit + 1, bot.longest), limit + 1))
            if count > limit:
                raise ApiError(f"the conversation's last {len(read)} turn(s) hold more than "
                               f"{limit} tokens, the most this server reads "
                               "(--max-prompt-tokens)", param="messages",
                               code="context_length_exceeded")
        return turns

    async def replies(self, completion: Completion, bot: Bot, deadline: float,
                      request: Request | None = None) -> list[Said]:
        """Every choice's reply, as said, through the batcher. TimeoutError past `deadline`;
        ClientGone when `request`'s client disconnects first. Either way the decoding stops:
        not started if it had not, else at its next step once no one else shares its batch.
        `bot` is the request's (bot_for)."""
        loop = asyncio.get_running_loop()
        ticket = self.batcher.submit(bot, [completion.messages] * completion.rows())
        waiting = asyncio.wrap_future(ticket)
        gone = asyncio.ensure_future(_disconnected(request)) if request else None
        try:
            await asyncio.wait([w for w in (waiting, gone) if w], return_when=FIRST_COMPLETED,
                               timeout=max(0.0, deadline - loop.time()))
            if not waiting.done():
                raise ClientGone if gone and gone.done() else asyncio.TimeoutError
            replies = waiting.result()
        finally:
            ticket.abandon()  # (nothing happens to one already decoded)
            for task in (waiting, gone):
                if task:
                    task.cancel()
        if completion.decode.strategy not in DETERMINISTIC:
            return [said(bot, r) for r in replies]  # a row per choice
        best = replies[0]  # n > 1: beam search's n best, or n copies of the greedy reply
        if completion.decode.strategy != "beam" or len(best.candidates) < 2:
            return [said(bot, best)] * completion.n
        return n_best(bot, best, bot.turns(completion.messages), completion.n)


def said(bot: Bot, reply: Reply) -> Said:
    """A reply as a choice says it."""
    best = reply.candidates[0] if reply.candidates else Candidate("", [], 0.0, 0.0)
    return _said(bot, best, reply.confidence)


def n_best(bot: Bot, reply: Reply, turns: list[str], n: int) -> list[Said]:
    """Beam search's n best as choices, the reply first; each of the others with the confidence
    the reply would have had, had it been the best (ReplyPolicy.decide)."""
    policy = bot.policy()
    closest = policy.closest(bot.clip(turns))
    found = [said(bot, reply)]
    for c in reply.candidates[1:n]:
        c = policy.as_written(c)
        found.append(_said(bot, c, policy.calibration(policy.evidence(c, reply.read, closest))))
    return [found[i % len(found)] for i in range(n)]


def _said(bot: Bot, candidate: Candidate, confidence: float) -> Said:
    """A candidate as said, within max_tokens: a known, taught or fallback reply is said as
    written when its tokens fit, else as many of its tokens as do."""
    text, tokens = candidate.text, candidate.tokens
    limit = bot.decode.max_reply_len
    if len(tokens) > limit or len(bot.tokenizer.tokenize(text)) > limit:
        tokens = tokens[:limit]
        text = bot.tokenizer.detokenize(tokens)
    match = candidate.match
    return Said(tuple(tokens), text, confidence, candidate.source,
                match.prompt if match is not None else None)


def judge(bot: Bot, turns: list[str], prompt: list[str], tokens: list[str]) -> Said:
    """A reply streamed as it was generated (ReplyPolicy.streams_live: nothing competes with it,
    no fallback), with the confidence `Bot.reply` gives the model's reply. Its log-probability
    is the model's, without the sampler's temperature and rules; in a worker thread."""
    logprob = float(reply_logprobs(bot.engine, [bot.vocab.encode(prompt)],
                                   [bot.vocab.encode(tokens)], bot.vocab.eos_id)[0])
    policy = bot.policy()
    candidate = Candidate(bot.tokenizer.detokenize(tokens), list(tokens), logprob, logprob)
    evidence = policy.evidence(candidate, prompt, policy.closest(bot.clip(turns)))
    return _said(bot, candidate, policy.calibration(evidence))


def logprobs(ready: Prepared, texts: list[ChoiceText]) -> list[list[dict]]:
    """Each choice's `logprobs.content` entries (see responses.logprob_content); in a
    worker thread, like decoding."""
    bot, top = ready.bot, ready.completion.logprobs
    prompt = bot.vocab.encode(ready.prompt)
    scores = token_logprobs(bot.engine, prompt, [bot.vocab.encode(t.tokens) for t in texts], top)
    return [logprob_content(bot.tokenizer.token_texts(text.tokens), rows, bot.tokenizer.detokenize,
                            bot.vocab.tokens) for text, rows in zip(texts, scores)]


class ClientGone(Exception):
    """The client of a non-streamed request disconnected before its reply was ready."""


async def _disconnected(request: Request) -> None:
    """Returns once `request`'s client has disconnected. Its body has been read, so the next
    ASGI message is the disconnect (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass

