"""`chatbot serve`: an OpenAI-compatible HTTP API, on Starlette and uvicorn.

    chatbot serve --model models/default            # http://127.0.0.1:8000/v1
    curl http://127.0.0.1:8000/v1/chat/completions -H "Content-Type: application/json" \\
         -d '{"messages": [{"role": "user", "content": "hello"}]}'

Routes: `POST /v1/chat/completions` (chatbot.completions reads the request), `GET /v1/models`
(the served run directory), `GET /health` (ready: the model is loaded before the server
listens), and `GET /` with `GET /web/...`: a chat page (chatbot/web/, static HTML, CSS and JS
that stream replies from /v1/chat/completions; no build step, nothing from other hosts).
Decoding is NumPy (`Bot.load`), so the server imports no TensorFlow and starts as fast as
`chatbot chat`. It decodes with one BLAS thread (see `serve`).

Each request's settings are its own. The served Bot is never configured after start-up: a
request gets a shallow copy of it, configured with the request's settings, which shares the
engine, vocabulary, tokenizer and memory (all read-only while decoding: engines keep their
state in what `start`/`step` return) and has its own DecodeConfig and sampler. So concurrent
requests cannot see each other's settings, and a copy costs microseconds.

Non-streamed requests go through chatbot.batcher's micro-batching queue: what arrives
together with the same settings is decoded together, off the event loop, by one of two worker
threads (`DECODERS`).

Streamed requests (`"stream": true`) get server-sent events: first the role, then the text,
then a chunk with the finish_reason, a usage chunk if asked, and `data: [DONE]`. When nothing
can change the reply after it is generated (no beam search, no MMI, and no retrieval match for
this prompt), tokens are sent as the sampler generates them, from a thread of their own
(batcher.stream_rows), and the text is exactly `Bot.reply`'s. Otherwise (the default for a run
with a memory of its training pairs, when the prompt resembles a known one) the reply is chosen
first, as `Bot.reply` chooses it, and then sent token by token. A client that disconnects,
streaming or not, and a request past its timeout, stop their decoding at its next step (a
batch runs on while another request in it still waits), or drop their place in the queue.

Errors are OpenAI-style JSON, never a traceback: 400 for a bad request, 401 for a wrong or
missing key (with --api-key, on /v1/ only: /health and the page need none), 404 and 405 for
unknown routes, 413 for a body over the limit, 429 when `max_concurrent` requests are already
in progress (no queue beyond the batcher's: the client retries, as OpenAI clients do), 504 past
the timeout (a stream that has started ends with an error event instead), 500 for a bug
(logged here).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hmac
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from chatbot.batcher import Batcher, stream_rows
from chatbot.bot import Bot, make_sampler
from chatbot.completions import (
    DETERMINISTIC,
    ApiError,
    ChoiceText,
    Completion,
    choice_text,
    chunk,
    event,
    new_id,
    now,
    parse_request,
    response,
    usage,
)
from chatbot.errors import ChatbotError
from chatbot.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger("chatbot.serve")
COMPLETIONS = "/v1/chat/completions"
DECODERS = 2  # threads decoding batches (chatbot.batcher)
WEB = Path(__file__).parent / "web"  # the chat page's files, package data (pyproject.toml)


class Service:
    """The served Bot, its batcher and limits: what the routes share."""

    def __init__(self, bot: Bot, model: str, limits: Limits = DEFAULT_LIMITS,
                 api_key: str | None = None):
        self.bot = bot
        self.model = model  # the id clients see: the run directory as given
        self.limits = limits
        self.api_key = api_key
        self.batcher: Batcher | None = None  # started with the app (lifespan)
        self.in_flight = 0  # completion requests in progress
        config = Path(model) / "config.json"
        self.created = int(config.stat().st_mtime) if config.exists() else now()

    def bot_for(self, completion: Completion, seed: int | None = None) -> Bot:
        """A Bot with the request's settings that shares everything else with the served one
        (see the module docstring)."""
        bot = copy.copy(self.bot)
        decode = dataclasses.replace(completion.decode, seed=seed)
        if decode != bot.decode:  # (most requests keep the run's settings)
            bot.configure(**{f.name: getattr(decode, f.name) for f in dataclasses.fields(decode)})
        return bot

    def check_prompt(self, bot: Bot, completion: Completion) -> list[str]:
        """The turns the model reads; 400 if they hold more than max_prompt_tokens tokens."""
        turns = bot.turns(completion.messages)
        read = turns[-bot.context_turns:]
        count = sum(len(bot.tokenizer.tokenize(t)) for t in read)
        if count > self.limits.max_prompt_tokens:
            raise ApiError(f"the conversation's last {len(read)} turn(s) hold {count} tokens; "
                           f"this server reads at most {self.limits.max_prompt_tokens} "
                           "(--max-prompt-tokens)", param="messages",
                           code="context_length_exceeded")
        return turns

    def streams_live(self, bot: Bot, turns: list[str]) -> bool:
        """Whether the reply is what the sampler generates, token by token, as it comes: no
        beam search, no MMI reranking, and no known prompt for retrieval to add replies of."""
        if bot.decode.strategy == "beam" or bot.decode.mmi > 0:
            return False
        return not bot.matches(turns)  # Bot's own rule for when retrieval adds replies

    async def replies(self, completion: Completion, deadline: float,
                      request: Request | None = None, bot: Bot | None = None
                      ) -> list[list[str]]:
        """Every choice's reply tokens, through the batcher. TimeoutError past `deadline`;
        ClientGone when `request`'s client disconnects first. Either way the decoding stops:
        not started if it had not, else at its next step once no one else shares its batch.
        `bot`, the request's (bot_for), decodes the choices of its own seed."""
        loop = asyncio.get_running_loop()
        tickets = [self.batcher.submit(
            bot if bot and bot.decode.seed == seed else self.bot_for(completion, seed),
            [completion.messages] * rows) for seed, rows in completion.decodings()]
        waiting = asyncio.gather(*map(asyncio.wrap_future, tickets))
        gone = asyncio.ensure_future(_disconnected(request)) if request else None
        try:
            await asyncio.wait([w for w in (waiting, gone) if w], return_when=FIRST_COMPLETED,
                               timeout=max(0.0, deadline - loop.time()))
            if not waiting.done():
                raise ClientGone if gone and gone.done() else asyncio.TimeoutError
            replies = [r for rows in waiting.result() for r in rows]
        finally:
            for ticket in tickets:
                ticket.abandon()  # (nothing happens to one already decoded)
            for task in (waiting, gone):
                if task:
                    task.cancel()
        if completion.decode.strategy not in DETERMINISTIC:
            return [r.tokens for r in replies]  # a row per choice
        best = replies[0]  # n > 1: beam search's n best, or n copies of the greedy reply
        pool = (best.candidates if completion.decode.strategy == "beam" else []) or [best]
        return [pool[i % len(pool)].tokens for i in range(completion.n)]


async def chat_completions(request: Request) -> Response:
    service: Service = request.app.state.service
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.limits.timeout
    try:  # a client that sends its body slowly is held to the timeout too
        body = await asyncio.wait_for(_body(request, service.limits.max_body_bytes),
                                      service.limits.timeout)
    except asyncio.TimeoutError:
        raise ApiError(f"the request body did not arrive within {service.limits.timeout:g} s",
                       status=408) from None
    completion = parse_request(body, service.bot.decode, service.limits)
    bot = service.bot_for(completion, completion.decode.seed)
    turns = service.check_prompt(bot, completion)
    prompt_tokens = len(bot.prompt_tokens(turns))
    if completion.stream:
        events = _stream(service, bot, completion, turns, prompt_tokens, deadline)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    try:
        replies = await service.replies(completion, deadline, request, bot)
    except ClientGone:
        return Response(status_code=499)  # nobody reads it: nginx's "client closed request"
    except asyncio.TimeoutError:
        raise ApiError(f"no reply within {service.limits.timeout:g} s (--timeout)",
                       status=504) from None
    texts = [choice_text(tokens, bot.tokenizer.detokenize, completion.stop)
             for tokens in replies]
    return JSONResponse(response(new_id(), service.model, texts,
                                 completion.decode.max_reply_len, prompt_tokens))


async def _stream(service: Service, bot: Bot, completion: Completion, turns: list[str],
                  prompt_tokens: int, deadline: float) -> AsyncIterator[str]:
    """The server-sent events of a streamed completion (see the module docstring)."""
    id, created, model = new_id(), now(), service.model
    include = completion.include_usage
    texts = [ChoiceText(bot.tokenizer.detokenize, completion.stop) for _ in range(completion.n)]
    ended: set[int] = set()
    max_len = completion.decode.max_reply_len

    def content(index: int, text: str) -> str:
        return chunk(id, model, created, [{"index": index, "delta": {"content": text}}],
                     include_usage=include)

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
        if service.streams_live(bot, turns):
            prompt = bot.vocab.encode(bot.prompt_tokens(turns))
            # n greedy choices: n equal rows, each streamed to its own choice
            plan = [(None, completion.n)] if bot.decode.strategy == "greedy" else \
                completion.decodings()
            first = 0
            for seed, rows in plan if prompt else []:  # an empty prompt: an empty reply
                sampler = make_sampler(dataclasses.replace(bot.decode, seed=seed))
                async with contextlib.aclosing(
                        stream_rows(sampler, bot, [prompt] * rows, deadline)) as tokens:
                    async for row, token in tokens:
                        index = first + row
                        if index in ended:
                            continue
                        if token == bot.vocab.eos_id:
                            yield end(index)
                            continue
                        for word in bot.vocab.decode([token]):  # none for <TURN>, as Bot
                            delta = texts[index].push(word)
                            if delta:
                                yield content(index, delta)
                        if texts[index].stopped:
                            yield end(index)
                        if all(i in ended for i in range(first, first + rows)):
                            break  # every row stopped: stop the search
                first += rows
        else:
            for index, tokens in enumerate(await service.replies(completion, deadline,
                                                                 bot=bot)):
                for token in tokens:
                    delta = texts[index].push(token)
                    if delta:
                        yield content(index, delta)
                    if texts[index].stopped:
                        break
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
            prompt_tokens, sum(len(t.tokens) for t in texts)), include_usage=True)
    yield event("[DONE]")


class ClientGone(Exception):
    """The client of a non-streamed request disconnected before its reply was ready."""


async def _disconnected(request: Request) -> None:
    """Returns once `request`'s client has disconnected. Its body has been read, so the next
    ASGI message is the disconnect (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _body(request: Request, limit: int) -> bytes:
    """The request body; 413 past `limit` bytes (read no further than that)."""
    length = request.headers.get("content-length", "")
    too_large = ApiError(f"the request body exceeds {limit} bytes (--max-body-bytes)",
                         status=413, code="request_too_large")
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def models(request: Request) -> Response:
    service: Service = request.app.state.service
    return JSONResponse({"object": "list", "data": [{
        "id": service.model, "object": "model", "created": service.created,
        "owned_by": "chatbot", "arch": service.bot.config.model.arch}]})


async def health(request: Request) -> Response:
    service: Service = request.app.state.service
    batcher = service.batcher
    return JSONResponse({"status": "ok", "model": service.model,
                         "in_flight": service.in_flight,
                         "batches": batcher.batches if batcher else 0,
                         "batched_replies": batcher.rows if batcher else 0})


async def page(request: Request) -> Response:
    return FileResponse(WEB / "index.html")


class Guard:
    """ASGI middleware before the routes: the API key and the concurrency limit."""

    def __init__(self, app, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        service = self.service
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        if service.api_key is not None and not self._authorized(scope):
            return await _error_response(ApiError(
                "a wrong or missing API key: send 'Authorization: Bearer KEY' with the key "
                "the server was started with (--api-key)", status=401,
                code="invalid_api_key"))(scope, receive, send)
        if scope["path"] != COMPLETIONS or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        if service.in_flight >= service.limits.max_concurrent:
            return await _error_response(ApiError(
                f"{service.limits.max_concurrent} requests are in progress, the most this "
                "server takes (--max-concurrent); retry shortly", status=429,
                code="rate_limit_exceeded"))(scope, receive, send)
        service.in_flight += 1  # the event loop's thread only: no lock needed
        try:
            await self.app(scope, receive, send)  # returns once a stream has ended too
        finally:
            service.in_flight -= 1

    def _authorized(self, scope) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"")  # raw bytes
        scheme, _, key = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            key.strip(), self.service.api_key.encode("utf-8"))


def _error_response(error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ChatbotError):
        exc = ApiError(str(exc))
    elif isinstance(exc, HTTPException):
        exc = ApiError(f"{request.method} {request.url.path}: {exc.detail}",
                       status=exc.status_code)
    elif not isinstance(exc, ApiError):
        exc = ApiError("the server failed on this request; it is logged", status=500)
    return _error_response(exc)


def create_app(bot: Bot, model: str, limits: Limits = DEFAULT_LIMITS,
               api_key: str | None = None) -> Starlette:
    """The ASGI app serving `bot` under the model id `model`."""
    service = Service(bot, model, limits, api_key)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        # Two decoding threads: while one is in Python, the other's matrix products run on
        # the other core (about a third more replies/s at concurrency 16 on 2 cores).
        service.batcher = Batcher(workers=DECODERS)
        try:
            yield
        finally:
            service.batcher.close()

    app = Starlette(routes=[Route(COMPLETIONS, chat_completions, methods=["POST"]),
                            Route("/v1/models", models, methods=["GET"]),
                            Route("/health", health, methods=["GET"]),
                            # static, so outside /v1/: the Guard asks no key for them
                            Route("/", page, methods=["GET"]),
                            Mount("/web", StaticFiles(directory=WEB), name="web")],
                    exception_handlers={ApiError: _api_error, ChatbotError: _api_error,
                                        HTTPException: _api_error, Exception: _api_error},
                    lifespan=lifespan)
    app.state.service = service
    app.add_middleware(Guard, service=service)
    return app


def serve(bot: Bot, model: str, host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Serves `bot` until Ctrl-C. The socket is bound here, so that a port in use is a
    message, and port 0 picks a free one (the line printed names it)."""
    import socket

    import uvicorn
    from threadpoolctl import threadpool_limits

    # Replies are batched, not split across cores: a BLAS thread pool on these small matrices
    # only fights the event loop and other processes for the cores (on a busy 2-core machine,
    # replies took several times as long with it).
    threadpool_limits(1, user_api="blas")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every response waits 40 ms for a delayed ACK (Nagle's algorithm).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or exc
        raise ChatbotError(f"cannot listen on {host} port {port} ({reason}); choose another "
                           "with --port (0: any free port)") from None
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(bot, model, limits, api_key),
                                           log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=3))
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"serving {model} at {where}/v1 (POST /v1/chat/completions, GET /v1/models, "
          f"GET /health), a chat page at {where}/; Ctrl-C stops", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then raises the Ctrl-C it caught again
        pass
    print("stopped", flush=True)
