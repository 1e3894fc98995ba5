"""What chatbot.serving.guard refuses before any route, from the request's scope alone (no server:
the real one is tested in test_app.py and test_server.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chatbot.serving.guard import Guard, Hosts, host_name
from chatbot.serving.limits import Limits


@pytest.mark.parametrize("header, name", [
    ("localhost:8000", "localhost"), ("127.0.0.1", "127.0.0.1"), ("[::1]:8000", "::1"),
    ("Chat.LAN.", "chat.lan"), ("::1", "::1"),
])
def test_host_name(header, name):
    assert host_name(header) == name


def test_hosts_answer_to_loopback_the_listen_address_and_allowed_names():
    hosts = Hosts("127.0.0.1", ["chat.lan"])
    assert all(hosts.allows(n) for n in ("localhost", "127.0.0.1", "::1", "chat.lan"))
    assert not hosts.allows("evil.example")  # DNS rebinding: a name that resolves here
    assert not hosts.allows("192.168.1.5")
    everywhere = Hosts("0.0.0.0")  # every interface: any address, still no foreign name
    assert everywhere.allows("192.168.1.5") and everywhere.allows("fe80::1")
    assert not everywhere.allows("evil.example")


def guard(api_key: str | None = None) -> Guard:
    service = SimpleNamespace(hosts=Hosts("127.0.0.1"), api_key=api_key, limits=Limits(),
                              in_flight=0)
    return Guard(app=None, service=service, completions="/v1/chat/completions")


def scope(path="/v1/chat/completions", method="POST", **headers):
    given = {"host": "127.0.0.1:8000", "content_type": "application/json", **headers}
    pairs = [(k.replace("_", "-").encode(), v.encode()) for k, v in given.items()
             if v is not None]
    return {"type": "http", "path": path, "method": method, "headers": pairs}


def status(g: Guard, s: dict) -> int | None:
    error = g.refusal(s)
    return None if error is None else error.status


def test_a_json_request_from_this_machine_passes():
    assert status(guard(), scope()) is None
    assert status(guard(), scope(content_type="application/json; charset=utf-8")) is None
    assert status(guard(), scope(origin="http://localhost:8000")) is None  # the chat page


@pytest.mark.parametrize("headers, expected", [
    ({"host": "evil.example"}, 421),
    ({"origin": "http://evil.example"}, 403),
    ({"origin": "null"}, 403),
    ({"content_type": "text/plain"}, 415),
    ({"content_type": "application/x-www-form-urlencoded"}, 415),
    ({"content_type": None}, 415),
])
def test_what_a_foreign_page_can_send_is_refused(headers, expected):
    assert status(guard(), scope(**headers)) == expected


def test_the_host_is_checked_on_every_route_and_the_rest_on_the_api_only():
    assert status(guard(), scope(path="/health", method="GET", host="evil.example")) == 421
    assert status(guard(), scope(path="/", method="GET", origin="http://evil.example")) is None
    assert status(guard("k"), scope(path="/health", method="GET")) is None  # no key needed


def test_duplicate_headers_are_refused():
    two_hosts = scope()
    two_hosts["headers"].append((b"host", b"localhost"))
    assert status(guard(), two_hosts) == 400
    two_keys = scope(authorization="Bearer k")
    two_keys["headers"].append((b"authorization", b"Bearer other"))
    assert status(guard("k"), two_keys) == 400


def test_the_key_is_compared_with_whitespace_stripped_on_both_sides():
    assert status(guard(" k "), scope(authorization="Bearer k ")) is None
    assert status(guard("k"), scope(authorization="bearer   k")) is None
    assert status(guard("k"), scope(authorization="Bearer wrong")) == 401
    assert status(guard("k"), scope()) == 401
