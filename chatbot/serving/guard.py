"""What every request to `chatbot serve` passes before its route: ASGI middleware.

- **Host** (every route): only the names this server answers to, so that a web page whose
  domain was made to resolve to 127.0.0.1 (DNS rebinding) reaches nothing: the loopback names,
  the `--host` address, `--allowed-host` names, and any IP address when the server listens on
  every interface (an attacker's page cannot make a browser send a bare IP as its Host).
  Anything else gets 421. Two Host headers get 400.
- **Origin** (the API): a browser's request from a page of another site gets 403. The chat page
  at / is the same origin as the API, so it passes.
- **The API key** (the API, with --api-key): `Authorization: Bearer KEY`, compared in constant
  time, whitespace stripped on both sides; two Authorization headers get 400.
- **JSON only** (POST): any other Content-Type gets 415. A cross-site page can send a "simple"
  request (a form, text/plain, no type) without asking the browser first, but not JSON.
- **Concurrency** (completions): a request counts against --max-concurrent once its body has
  fully arrived, not while a slow client is still sending it; past the limit it gets 429.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from chatbot.serving.completions import ApiError

LOOPBACK = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")  # listening on every interface
JSON_TYPES = ("application/json",)


def host_name(value: str) -> str:
    """A Host header's name, without port or brackets, lower case: "[::1]:8000" -> "::1"."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Hosts:
    """The Host names a server answers to (see the module docstring)."""

    def __init__(self, listen: str, allowed: Iterable[str] = ()):
        self.names = {*LOOPBACK, host_name(listen), *(host_name(a) for a in allowed)}
        self.any_ip = listen in WILDCARDS

    def allows(self, name: str) -> bool:
        return name in self.names or (self.any_ip and _is_ip(name))


class Guard:
    """ASGI middleware before the routes (see the module docstring). `service` holds the
    limits, the key, the hosts and the in-flight count."""

    def __init__(self, app, service, completions: str):
        self.app = app
        self.service = service
        self.completions = completions  # the route whose requests count as in flight

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        error = self.refusal(scope)
        if error is not None:
            return await error_response(error)(scope, receive, send)
        if scope["path"] != self.completions or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        service, counted = self.service, False

        async def counting_receive():
            nonlocal counted
            message = await receive()
            if (not counted and message["type"] == "http.request"
                    and not message.get("more_body", False)):
                if service.in_flight >= service.limits.max_concurrent:
                    raise ApiError(
                        f"{service.limits.max_concurrent} requests are in progress, the most "
                        "this server takes (--max-concurrent); retry shortly", status=429,
                        code="rate_limit_exceeded")
                service.in_flight += 1  # the event loop's thread only: no lock needed
                counted = True
            return message

        try:
            await self.app(scope, counting_receive, send)  # returns once a stream has ended
        finally:
            if counted:
                service.in_flight -= 1

    def refusal(self, scope) -> ApiError | None:
        """Why this request is refused before its route, or None."""
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, []).append(value)
        service = self.service
        hosts = headers.get(b"host", [])
        if len(hosts) > 1:
            return ApiError("a request must have one Host header", status=400)
        if hosts and not service.hosts.allows(host_name(hosts[0].decode("latin-1"))):
            return ApiError(
                f"this server does not answer to the host {hosts[0].decode('latin-1')[:100]!r}; "
                "start it with --allowed-host NAME to add a name", status=421,
                code="misdirected_request")
        if not scope["path"].startswith("/v1/"):
            return None
        origins = headers.get(b"origin", [])
        if origins and not self._same_site(origins[0].decode("latin-1")):
            return ApiError("requests from pages of other sites are refused (Origin "
                            f"{origins[0].decode('latin-1')[:100]!r})", status=403,
                            code="cross_origin_request")
        if service.api_key is not None:
            keys = headers.get(b"authorization", [])
            if len(keys) > 1:
                return ApiError("a request must have one Authorization header", status=400)
            if not keys or not self._authorized(keys[0]):
                return ApiError(
                    "a wrong or missing API key: send 'Authorization: Bearer KEY' with the key "
                    "the server was started with (--api-key or $CHATBOT_API_KEY)", status=401,
                    code="invalid_api_key")
        if scope["method"] == "POST":
            kinds = headers.get(b"content-type", [b""])
            kind = kinds[0].decode("latin-1").split(";", 1)[0].strip().lower()
            if len(kinds) > 1 or kind not in JSON_TYPES:
                return ApiError(f"the request body must be JSON: send 'Content-Type: "
                                f"application/json' (received {kind or 'none'!r})", status=415,
                                code="unsupported_media_type")
        return None

    def _same_site(self, origin: str) -> bool:
        name = urlsplit(origin).hostname if "://" in origin else None
        return name is not None and self.service.hosts.allows(name.rstrip("."))

    def _authorized(self, given: bytes) -> bool:
        scheme, _, key = given.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            key.strip(), self.service.api_key.strip().encode("utf-8"))


def error_response(error: ApiError):
    """The JSON response of an ApiError, with the headers its status calls for."""
    from starlette.responses import JSONResponse

    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if error.status == 504:  # a retried request would time out again, and cost a decode
        headers["x-should-retry"] = "false"
    return JSONResponse(error.body(), status_code=error.status, headers=headers or None)
