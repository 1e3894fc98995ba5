"""`chatbot serve`: an OpenAI-compatible HTTP API, on Starlette and uvicorn (chatbot.serving.server
runs it).

    chatbot serve --model models/default            # http://127.0.0.1:8000/v1
    curl http://127.0.0.1:8000/v1/chat/completions -H "Content-Type: application/json" \\
         -d '{"messages": [{"role": "user", "content": "hello"}]}'

Routes: `POST /v1/chat/completions` (chatbot.serving.completions reads the request,
chatbot.serving.service answers it), `GET /v1/models` and `GET /v1/models/{id}` (the served run, by
its name), `GET /health` (ready: the model is loaded before the server listens), and `GET /` with
`GET /web/...`: a chat page (chatbot/serving/web/, static HTML, CSS and JS that stream replies from
/v1/chat/completions; no build step, nothing from other hosts). Decoding is NumPy
(`Bot.load`), so the server imports no TensorFlow and starts as fast as `chatbot chat`.

Every request first passes chatbot.serving.guard (Host, Origin, API key, JSON only, concurrency).
Its body must arrive within --body-timeout seconds (408). It is then read and checked in a worker
thread, never on the event loop, and its prompt is cut to what the model reads before any
other work (chatbot.text.words.clip), so that no request holds up the others, /health included.
Non-streamed requests go through chatbot.serving.batcher's micro-batching queue: what arrives
together with the same settings is decoded together, off the event loop, by one of two worker
threads (`DECODERS`). Streamed ones: chatbot.serving.streaming. A client that disconnects, streaming
or not, and a request past its timeout, stop their decoding at its next step (a batch runs on while
another request in it still waits), or drop their place in the queue.

Errors are OpenAI-style JSON, never a traceback: 400 for a bad request (a value out of its
range included), 401 for a wrong or missing key (with --api-key, on /v1/ only: /health and the
page need none), 403 for a page of another site, 404 and 405 for unknown routes, 408 for a body
too slow to arrive, 413 for a body over the limit, 415 for a body that is not JSON, 421 for a
Host this server does not answer to, 429 when `max_concurrent` requests are already in progress
(no queue beyond the batcher's: the client retries, as OpenAI clients do), 504 past the timeout
(with `x-should-retry: false`; a stream that has started ends with an error event instead),
500 for a bug (logged here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.serving.batcher import Batcher
from chatbot.serving.completions import ApiError
from chatbot.serving.guard import Guard, Hosts, error_response
from chatbot.serving.limits import DEFAULT_LIMITS, Limits
from chatbot.serving.responses import choice_text, new_id, response
from chatbot.serving.service import ClientGone, Service, logprobs
from chatbot.serving.streaming import stream

log = logging.getLogger("chatbot.serving.app")
COMPLETIONS = "/v1/chat/completions"
DECODERS = 2  # threads decoding batches (chatbot.serving.batcher)
WEB = Path(__file__).parent / "web"  # the chat page's files, package data (pyproject.toml)


async def chat_completions(request: Request) -> Response:
    service: Service = request.app.state.service
    limits = service.limits
    try:  # a slow client is held to its own short deadline (and counts as in flight only
        # once its body has arrived: chatbot.serving.guard)
        body = await asyncio.wait_for(_body(request, limits.max_body_bytes),
                                      limits.body_timeout)
    except asyncio.TimeoutError:
        raise ApiError(f"the request body did not arrive within {limits.body_timeout:g} s "
                       "(--body-timeout)", status=408) from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout
    ready = await asyncio.to_thread(service.prepare, body)
    completion, bot = ready.completion, ready.bot
    if completion.stream:
        events = stream(service, ready, deadline)
        return StreamingResponse(events, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    try:
        replies = await service.replies(completion, bot, deadline, request)
    except ClientGone:
        return Response(status_code=499)  # nobody reads it: nginx's "client closed request"
    except asyncio.TimeoutError:
        raise ApiError(f"no reply within {limits.timeout:g} s (--timeout)", status=504) \
            from None
    texts = [choice_text(tokens, bot.tokenizer.detokenize, completion.stop)
             for tokens in replies]
    entries = (await asyncio.to_thread(logprobs, ready, texts)
               if completion.logprobs is not None else None)
    return JSONResponse(response(new_id(), service.model, texts,
                                 completion.decode.max_reply_len, len(ready.prompt), entries))


async def _body(request: Request, limit: int) -> bytes:
    """The request body; 413 past `limit` bytes (read no further than that)."""
    length = request.headers.get("content-length", "")
    too_large = ApiError(f"the request body exceeds {limit} bytes (--max-body-bytes)",
                         status=413, code="request_too_large")
    if length.isdigit() and int(length) > limit:
        raise too_large
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    return b"".join(parts)


def _model_card(service: Service) -> dict:
    return {"id": service.model, "object": "model", "created": service.created,
            "owned_by": "chatbot", "arch": service.bot.config.model.arch}


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [_model_card(request.app.state.service)]})


async def one_model(request: Request) -> Response:
    # (not `model`: create_app's argument of that name would hide it from the routes)
    service: Service = request.app.state.service
    name = request.path_params["model"]
    if name != service.model:
        raise ApiError(f"no model {name[:100]!r}; this server serves {service.model!r}",
                       status=404, param="model", code="model_not_found")
    return JSONResponse(_model_card(service))


async def health(request: Request) -> Response:
    service: Service = request.app.state.service
    batcher = service.batcher
    return JSONResponse({"status": "ok", "model": service.model,
                         "in_flight": service.in_flight,
                         "batches": batcher.batches if batcher else 0,
                         "batched_replies": batcher.rows if batcher else 0})


async def page(request: Request) -> Response:
    return FileResponse(WEB / "index.html")


async def _api_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ChatbotError):
        exc = ApiError(str(exc))
    elif isinstance(exc, HTTPException):
        exc = ApiError(f"{request.method} {request.url.path}: {exc.detail}",
                       status=exc.status_code)
    elif not isinstance(exc, ApiError):
        log.error("request failed", exc_info=exc)
        exc = ApiError("the server failed on this request; it is logged", status=500)
    return error_response(exc)


def create_app(bot: Bot, model: str, limits: Limits = DEFAULT_LIMITS,
               api_key: str | None = None, host: str = "127.0.0.1",
               allowed_hosts: Iterable[str] = ()) -> Starlette:
    """The ASGI app serving `bot` under the id of the run directory `model` (its name)."""
    service = Service(bot, model, limits, api_key, Hosts(host, allowed_hosts))

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
                            Route("/v1/models/{model:path}", one_model, methods=["GET"]),
                            Route("/health", health, methods=["GET"]),
                            # static, so outside /v1/: the Guard asks no key for them
                            Route("/", page, methods=["GET"]),
                            Mount("/web", StaticFiles(directory=WEB), name="web")],
                    exception_handlers={ApiError: _api_error, ChatbotError: _api_error,
                                        HTTPException: _api_error, Exception: _api_error},
                    lifespan=lifespan)
    app.state.service = service
    app.add_middleware(Guard, service=service, completions=COMPLETIONS)
    return app

