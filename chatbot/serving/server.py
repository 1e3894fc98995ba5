"""`chatbot serve` on uvicorn: the socket, the connection limits, and a graceful stop.

Connections cannot be held open for free: uvicorn's HTTP protocol here has a deadline for
each request's headers and a cap on their size.

uvicorn closes a connection that stays idle between requests (`timeout_keep_alive`), but not
one that connects and then sends its headers a byte at a time, or never: such a connection
(slowloris) is kept as long as it stays open. Here every request's headers must arrive within
`header_timeout` seconds of its first byte (of the connection, for the first request) and
hold at most MAX_HEADER_BYTES, else the connection is closed (with 400 for headers too large);
the body has its own deadline in the app (chatbot.serving.app, 408).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chatbot.decoding.bot import Bot
from chatbot.errors import ChatbotError
from chatbot.serving.limits import DEFAULT_LIMITS, Limits

MAX_HEADER_BYTES = 64 * 1024  # the request line and headers of one request


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a deadline and a size cap on each request's headers."""

    header_timeout = 10.0  # seconds (set per server: see `protocol`)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._waiting = True  # for the headers of a request
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._waiting:
            # Counted before this packet, which may hold the start of a body too. (This
            # catches headers that trickle in; those that come in one packet, up to 256 KiB,
            # are counted as the parser reads them: _count.)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._deadline.cancel()
                self.send_400_response("Request headers too large.")
                return
            self._header_bytes += len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed = 0  # bytes of this request's line and headers the parser has read
        if not self._waiting:  # the next request on a kept-alive connection
            self._waiting, self._header_bytes = True, 0
            self._deadline.cancel()
            self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > MAX_HEADER_BYTES:
            # Raised in a parser callback, it stops the parser before the request reaches the
            # app; uvicorn answers it as any request it cannot parse: 400, connection closed.
            raise httptools.HttpParserError("Request headers too large.")

    def on_headers_complete(self) -> None:
        self._waiting = False
        self._deadline.cancel()
        super().on_headers_complete()

    def _too_slow(self) -> None:
        if self._waiting and not self.transport.is_closing():
            self.transport.close()


def protocol(header_timeout: float) -> type[GuardedProtocol]:
    """The protocol class for uvicorn.Config(http=...), with this server's header deadline."""
    return type("GuardedProtocol", (GuardedProtocol,), {"header_timeout": header_timeout})


class Stopped(Exception):
    """SIGTERM: stop as Ctrl-C does."""


def _listen(host: str, port: int):
    """A TCP socket bound to (host, port) and listening; ChatbotError if it cannot be."""
    import socket

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
    # Listening now, before the serving line names the port: a client that connects as soon as
    # it reads the line waits in the backlog until uvicorn accepts, instead of being refused.
    sock.listen(2048)  # uvicorn's backlog
    return sock


def serve(bot: Bot, model: str, host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None, limits: Limits = DEFAULT_LIMITS,
          allowed_hosts: Iterable[str] = ()) -> None:
    """Serves `bot` until Ctrl-C or SIGTERM, then lets requests in progress finish within
    `limits.grace` seconds. The socket is bound here, so that a port in use is a message, and
    port 0 picks a free one (the line printed names it)."""
    import signal

    import uvicorn
    from threadpoolctl import threadpool_limits

    from chatbot.serving.app import create_app

    # Replies are batched, not split across cores: a BLAS thread pool on these small matrices
    # only fights the event loop and other processes for the cores (on a busy 2-core machine,
    # replies took several times as long with it).
    threadpool_limits(1, user_api="blas")
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    app = create_app(bot, model, limits, api_key, host, allowed_hosts)
    # uvicorn's limits, set deliberately (docs/serving.md lists them): idle connections close
    # after keep_alive seconds, headers must arrive within body_timeout (connections.py),
    # and at most 4 * max_concurrent connections are open at once (more get 503).
    server = uvicorn.Server(uvicorn.Config(
        app, log_level="warning", access_log=False, http=protocol(limits.body_timeout),
        timeout_keep_alive=limits.keep_alive, timeout_graceful_shutdown=limits.grace,
        limit_concurrency=4 * limits.max_concurrent))
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    key = ("an API key is required (Authorization: Bearer KEY)" if api_key is not None else
           "no API key: anyone who can reach this port may use it")
    print(f"serving {model} at {where}/v1 as the model {app.state.service.model!r} (POST "
          f"/v1/chat/completions, GET /v1/models, GET /health), a chat page at {where}/; {key}; "
          "Ctrl-C stops", flush=True)

    def stop(*_) -> None:
        raise Stopped

    # uvicorn catches SIGTERM to shut down gracefully, then raises it again for the handler
    # that was there before: this one, which ends the run like Ctrl-C (exit status 0).
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, Stopped):  # after uvicorn's graceful shutdown
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("stopped", flush=True)

