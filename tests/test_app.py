"""`chatbot serve`: the real server on a free localhost port, talked to with the official
`openai` client and with raw HTTP (httpx), on the tiny trained run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chatbot.decoding.bot import Bot
from chatbot.serving.app import create_app
from chatbot.serving.limits import Limits
from tests.conftest import TINY_PAIRS
from tests.helpers import HOSTILE
from tests.serving import Server, SlowEngine, bot_with

pytestmark = pytest.mark.slow  # the tiny run trains once per session; servers run threads

KEY = "sk-test-key"
LIMITS = Limits(max_body_bytes=4096, max_prompt_tokens=60, max_reply_tokens=50, timeout=20)


@pytest.fixture(scope="module")
def bot(tiny_run) -> Bot:
    return Bot.load(tiny_run)


@pytest.fixture(scope="module")
def server(tiny_run, bot):
    with Server(create_app(bot, str(tiny_run), LIMITS, api_key=KEY)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    with OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0) as openai:
        yield openai


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=20) as session:
        yield session


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sse(response: httpx.Response) -> list:
    """The data of every server-sent event, JSON-decoded ("[DONE]" as it is)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == ""  # every event ends with a blank line
    assert all(e.startswith("data: ") for e in events[:-1])
    return [e[6:] if e == "data: [DONE]" else json.loads(e[6:]) for e in events[:-1]]


# --- the openai client ----------------------------------------------------------------------

@pytest.mark.parametrize("prompt, expected", TINY_PAIRS)
def test_openai_client_gets_the_replies_of_bot_reply(client, bot, tiny_run, prompt, expected):
    completion = client.chat.completions.create(model=str(tiny_run), messages=user(prompt))
    assert completion.choices[0].message.content == bot.reply(prompt).text == expected
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == tiny_run.name  # the run's name, never a path
    assert completion.usage.prompt_tokens == len(bot.prompt_tokens(prompt))
    assert completion.usage.completion_tokens == len(bot.reply(prompt).tokens)
    assert completion.usage.total_tokens == (completion.usage.prompt_tokens
                                             + completion.usage.completion_tokens)


LIVE = {"retrieval": False, "fallback": False}  # nothing to choose after generation


@pytest.mark.parametrize("extra", [{}, LIVE], ids=["chosen", "live"])
def test_openai_client_streams_the_same_reply(client, tiny_run, extra):
    for prompt, expected in TINY_PAIRS:
        chunks = list(client.chat.completions.create(
            model="any", messages=user(prompt), stream=True,
            stream_options={"include_usage": True}, extra_body=extra))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == bot_with(tiny_run, **extra).reply(prompt).text == expected
        assert chunks[-1].usage.completion_tokens == len(Bot.load(tiny_run).reply(prompt).tokens)
        assert len({c.id for c in chunks}) == 1


def test_openai_client_lists_the_served_run(client, tiny_run):
    assert [m.id for m in client.models.list()] == [tiny_run.name]


def test_openai_client_retrieves_the_served_run_and_404_for_another(client, tiny_run):
    import openai

    card = client.models.retrieve(tiny_run.name)
    assert card.id == tiny_run.name and card.owned_by == "chatbot"
    with pytest.raises(openai.NotFoundError, match="no model"):
        client.models.retrieve("gpt-4o")


# --- the openai client, as applications call it -----------------------------------------------
# Fields that chat applications send by default, or always: each must give the same reply as
# a plain request, not a 400.

TOOLS = [{"type": "function", "function": {
    "name": "weather", "description": "today's weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.mark.parametrize("fields", [
    {"logprobs": False},
    {"response_format": {"type": "text"}},
    {"tool_choice": "none"},
    {"tools": TOOLS, "tool_choice": "auto"},
    {"reasoning_effort": "low"},
    {"modalities": ["text"]},
], ids=["logprobs off", "response_format text", "tool_choice none", "tools auto",
        "reasoning_effort", "modalities text"])
def test_openai_client_fields_of_applications_give_the_plain_reply(client, fields):
    for prompt, expected in TINY_PAIRS[:2]:
        completion = client.chat.completions.create(model="m", messages=user(prompt), **fields)
        message = completion.choices[0].message
        assert message.content == expected
        assert message.tool_calls is None and completion.choices[0].finish_reason == "stop"
        assert completion.choices[0].logprobs is None


def test_openai_client_gets_each_tokens_logprob_and_its_top_alternatives(client):
    for prompt, expected in TINY_PAIRS:
        completion = client.chat.completions.create(model="m", messages=user(prompt),
                                                    logprobs=True, top_logprobs=3)
        content = completion.choices[0].logprobs.content
        assert "".join(entry.token for entry in content) == expected
        for entry in content:
            assert entry.logprob <= 0 and bytes(entry.bytes) == entry.token.encode("utf-8")
            assert len(entry.top_logprobs) == 3
            scores = [alternative.logprob for alternative in entry.top_logprobs]
            assert scores == sorted(scores, reverse=True) and all(x <= 0 for x in scores)
            # Greedy decoding: each token of these replies is the model's most probable one.
            assert entry.top_logprobs[0].token == entry.token
            assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob)


def test_openai_client_streams_logprobs_with_their_deltas(client):
    for prompt, expected in TINY_PAIRS:
        chunks = list(client.chat.completions.create(model="m", messages=user(prompt),
                                                     logprobs=True, stream=True))
        with_text = [c.choices[0] for c in chunks if c.choices and c.choices[0].delta.content]
        assert "".join(c.delta.content for c in with_text) == expected
        for choice in with_text:  # each delta carries the entries of its own tokens
            assert "".join(e.token for e in choice.logprobs.content) == choice.delta.content
            assert all(e.logprob <= 0 and e.top_logprobs == [] for e in choice.logprobs.content)


def test_openai_client_tool_and_function_turns_are_not_read(client, bot):
    said = [*user("what is the weather?"), *user("hello")]
    messages = [said[0],
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 25 degrees"},
                {"role": "function", "name": "weather", "content": "sunny, 25 degrees"},
                said[1]]
    completion = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
    assert completion.choices[0].message.content == bot.reply(said).text
    assert completion.usage.prompt_tokens == len(bot.prompt_tokens(said))


def test_a_conversation_is_answered_at_its_last_user_turn(client, bot):
    messages = [{"role": "system", "content": "be brief"}, *user("hello"),
                {"role": "assistant", "content": "hi there!"}, *user("how are you?")]
    completion = client.chat.completions.create(model="m", messages=messages)
    assert completion.choices[0].message.content == bot.reply(messages).text
    assert completion.usage.prompt_tokens == len(bot.prompt_tokens(messages))


# --- settings ---------------------------------------------------------------------------------

def test_sampling_settings_give_bot_replies_streamed_or_not(http, tiny_run):
    body = {"messages": user("what is your name?"), "temperature": 1.8, "seed": 11, "n": 3,
            "min_len": 3, "max_tokens": 12}
    sampled = http.post("/v1/chat/completions", json=body).json()
    texts = [c["message"]["content"] for c in sampled["choices"]]
    expected = [bot_with(tiny_run, strategy="random", temperature=1.8, seed=11 + i, min_len=3,
                         max_reply_len=12).reply("what is your name?").text for i in range(3)]
    assert texts == expected
    streamed = sse(http.post("/v1/chat/completions", json={**body, "stream": True}))
    joined = ["".join(e["choices"][0]["delta"].get("content", "") for e in streamed[:-1]
                      if e["choices"] and e["choices"][0]["index"] == i) for i in range(3)]
    assert joined == expected


def test_beam_n_best_and_greedy_copies(http, tiny_run):
    beam = http.post("/v1/chat/completions",
                     json={"messages": user("hello"), "beam": 3, "n": 2}).json()
    expected = bot_with(tiny_run, strategy="beam", beam_width=3, nbest=2).reply("hello")
    assert [c["message"]["content"] for c in beam["choices"]] == [
        c.text for c in expected.candidates[:2]]
    greedy = http.post("/v1/chat/completions", json={"messages": user("hello"), "n": 2}).json()
    assert [c["message"]["content"] for c in greedy["choices"]] == ["hi there!"] * 2
    assert greedy["usage"]["completion_tokens"] == 2 * len(["hi", "there", "!"])


def test_max_tokens_and_stop_end_a_reply(http):
    cut = http.post("/v1/chat/completions", json={"messages": user("how are you?"),
                                                   "max_tokens": 2}).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 2
    assert cut["choices"][0]["message"]["content"] == "i am"
    stopped = http.post("/v1/chat/completions", json={"messages": user("how are you?"),
                                                       "stop": ["fine"]}).json()
    assert stopped["choices"][0]["message"]["content"] == "i am "
    assert stopped["choices"][0]["finish_reason"] == "stop"
    for extra in ({}, LIVE):
        events = sse(http.post("/v1/chat/completions", json={
            "messages": user("how are you?"), "stop": "fine", "stream": True, **extra}))
        assert "".join(e["choices"][0]["delta"].get("content", "")
                       for e in events[:-1]) == "i am "


def test_one_requests_settings_never_reach_another(http, bot, tiny_run):
    before = bot.decode

    def ask(i: int) -> tuple[str, str, int]:
        prompt, _ = TINY_PAIRS[i % len(TINY_PAIRS)]
        hot = {"temperature": 2.0, "min_len": 6, "max_tokens": 8, "retrieval": False}
        body = {"messages": user(prompt), **(hot if i % 2 else {})}
        reply = http.post("/v1/chat/completions", json=body).json()
        return prompt, reply["choices"][0]["message"]["content"], i % 2

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ask, range(48)))
    replies = dict(TINY_PAIRS)
    assert all(text == replies[prompt] for prompt, text, hot in results if not hot)
    assert bot.decode == before  # the served bot was never configured


# --- what each choice tells of its reply: confidence, source, matched prompt -----------------

def told(reply) -> dict:
    """What a choice tells of `reply` (a Bot.reply) beside OpenAI's fields."""
    return {"confidence": round(reply.confidence, 4), "source": reply.source,
            "matched_prompt": reply.match.prompt if reply.match else None}


def fields(choice: dict) -> dict:
    return {name: choice[name] for name in ("confidence", "source", "matched_prompt")}


def finishing(events: list) -> dict:
    """The choice of a stream's chunk that carries the finish_reason."""
    return next(e["choices"][0] for e in events[:-1]
                if e["choices"] and e["choices"][0]["finish_reason"])


@pytest.mark.parametrize("prompt", ["hello", "what is your name", "zebra quokka axolotl"])
def test_a_choice_tells_its_confidence_source_and_matched_prompt(http, bot, prompt):
    reply = bot.reply(prompt)
    choice = http.post("/v1/chat/completions", json={"messages": user(prompt)}).json()[
        "choices"][0]
    assert choice["message"]["content"] == reply.text
    assert fields(choice) == told(reply)
    streamed = sse(http.post("/v1/chat/completions",
                             json={"messages": user(prompt), "stream": True}))
    assert fields(finishing(streamed)) == told(reply)
    assert all(set(e["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"}
               for e in streamed[:-1] if e["choices"] and not e["choices"][0]["finish_reason"])


def test_the_fallback_is_said_as_phrased_and_tells_where_it_came_from(http, bot):
    reply = bot.reply("zebra quokka axolotl")
    assert reply.source == "fallback" and reply.text[0].isupper()  # "I don't know ..."
    choice = http.post("/v1/chat/completions",
                       json={"messages": user("zebra quokka axolotl")}).json()["choices"][0]
    assert choice["message"]["content"] == reply.text
    assert (choice["source"], choice["matched_prompt"]) == ("fallback", None)
    off = http.post("/v1/chat/completions", json={"messages": user("zebra quokka axolotl"),
                                                  "fallback": False}).json()["choices"][0]
    assert off["source"] == "model" and off["message"]["content"] == reply.candidates[1].text


def test_a_live_stream_tells_the_confidence_in_its_last_chunk(http, tiny_run):
    for prompt in ("hello", "zebra quokka axolotl"):
        reply = bot_with(tiny_run, retrieval=False, fallback=False).reply(prompt)
        events = sse(http.post("/v1/chat/completions", json={
            "messages": user(prompt), "stream": True, **LIVE}))
        choice = finishing(events)
        assert choice["source"] == "model" and choice["matched_prompt"] is None
        assert choice["confidence"] == pytest.approx(reply.confidence, abs=0.01)


def test_each_of_beam_searchs_n_best_tells_its_own(http, tiny_run):
    bot = bot_with(tiny_run, strategy="beam", beam_width=3, nbest=3)
    reply = bot.reply("hello")
    choices = http.post("/v1/chat/completions",
                        json={"messages": user("hello"), "beam": 3, "n": 3}).json()["choices"]
    assert fields(choices[0]) == told(reply)
    assert [c["source"] for c in choices] == [c.source for c in reply.candidates[:3]]
    assert all(0 <= c["confidence"] <= 1 for c in choices)
    assert choices[1]["confidence"] < choices[0]["confidence"]  # not the known reply


@pytest.fixture(scope="module")
def cased(tiny_run):
    """A server whose memory says "hello" is answered "Hi there!\nI am fine." (tokens the
    model can write, with a capital and a line break that its tokens lose)."""
    from chatbot.data.memory import Memory

    bot = Bot.load(tiny_run)
    replies = [["Hi there!\nI am fine."] if p == "hello" else list(r)
               for p, r in zip(bot.memory.prompts, bot.memory.replies)]
    bot.memory = Memory(bot.memory.prompts, replies)
    with Server(create_app(bot, "cased")) as running, httpx.Client(
            base_url=running.url, timeout=20) as session:
        yield bot, session


def test_a_known_reply_is_sent_as_the_data_wrote_it(cased):
    bot, http = cased
    reply = bot.reply("hello")
    assert reply.text == "Hi there!\nI am fine." and reply.source == "memory"
    assert reply.text != bot.tokenizer.detokenize(reply.tokens)
    body = {"messages": user("hello")}
    completion = http.post("/v1/chat/completions", json=body).json()
    choice = completion["choices"][0]
    assert choice["message"]["content"] == reply.text
    assert (choice["source"], choice["matched_prompt"]) == ("memory", "hello")
    assert completion["usage"]["completion_tokens"] == len(reply.tokens)
    events = sse(http.post("/v1/chat/completions", json={**body, "stream": True}))
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]
                   if e["choices"]) == reply.text
    assert finishing(events)["source"] == "memory"
    stopped = http.post("/v1/chat/completions", json={**body, "stop": "\n"}).json()
    assert stopped["choices"][0]["message"]["content"] == "Hi there!"
    assert stopped["choices"][0]["finish_reason"] == "stop"
    streamed = sse(http.post("/v1/chat/completions",
                             json={**body, "stream": True, "logprobs": True}))
    entries = [t for e in streamed[:-1] if e["choices"] and e["choices"][0].get("logprobs")
               for t in e["choices"][0]["logprobs"]["content"]]
    assert len(entries) == len(reply.tokens)


def test_max_tokens_still_cuts_a_reply_said_as_written(cased):
    bot, http = cased
    choice = http.post("/v1/chat/completions", json={"messages": user("hello"),
                                                      "max_tokens": 3}).json()["choices"][0]
    assert choice["message"]["content"] == "hi there!"  # its first 3 tokens, not all of it
    assert choice["finish_reason"] == "length"


# --- server-sent events -----------------------------------------------------------------------

@pytest.mark.parametrize("extra", [{}, LIVE], ids=["chosen", "live"])
def test_sse_framing(http, extra):
    events = sse(http.post("/v1/chat/completions", json={
        "messages": user("你好"), "stream": True, "stream_options": {"include_usage": True},
        **extra}))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    content = chunks[1:-2]
    assert len(content) > 1 and all(
        set(c["choices"][0]["delta"]) == {"content"} and c["choices"][0]["finish_reason"] is None
        for c in content)  # one chunk per token
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == "你好！很高兴认识你。"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:-1])
    plain = sse(http.post("/v1/chat/completions", json={
        "messages": user("你好"), "stream": True, **extra}))
    assert plain[-1] == "[DONE]" and plain[-2]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in plain[-2]


# --- errors -----------------------------------------------------------------------------------

LONG = " ".join(["word"] * 70)  # over max_prompt_tokens, under max_body_bytes


@pytest.mark.parametrize("body, status, param", [
    (b"{oops", 400, None),
    (b"{}", 400, "messages"),
    (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}).encode(), 400, "messages"),
    (json.dumps({"messages": user("hi"), "temperature": 5}).encode(), 400, "temperature"),
    (json.dumps({"messages": user("hi"), "max_tokens": 51}).encode(), 400, "max_tokens"),
    (json.dumps({"messages": user("hi"), "n": 9}).encode(), 400, "n"),
    (json.dumps({"messages": user("hi"), "beam": "wide"}).encode(), 400, "beam"),
    (json.dumps({"messages": user(LONG)}).encode(), 400, "messages"),
    (json.dumps({"messages": user("x" * 5000)}).encode(), 413, None),
])
def test_bad_requests_get_openai_style_errors(http, body, status, param):
    response = http.post("/v1/chat/completions", content=body,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_messages_get_a_reply_or_an_error_never_a_failure(http, name):
    for stream in (False, True):
        response = http.post("/v1/chat/completions",
                             json={"messages": user(HOSTILE[name]), "stream": stream})
        assert response.status_code in (200, 400, 413), response.text
        if response.status_code != 200:
            assert response.json()["error"]["message"]
        elif stream:
            assert sse(response)[-1] == "[DONE]"
        else:
            assert response.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_an_oversized_body_without_a_length_is_413(http):
    chunks = (b"x" * 1024 for _ in range(8))  # chunked: no Content-Length
    response = http.post("/v1/chat/completions", content=chunks,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_the_api_key_is_required(server, http):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        response = httpx.post(f"{server.url}/v1/chat/completions", headers=headers,
                              json={"messages": user("hello")})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"  # no key needed


def test_unknown_routes_and_methods(http):
    assert http.get("/v1/nothing").status_code == 404
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405 and response.json()["error"]["message"]


def test_the_openai_client_raises_on_errors(client):
    import openai

    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="m", messages=user("hi"), temperature=3)


@pytest.fixture
def slow_server(tiny_run):
    """Starts servers of the tiny run with an engine 20 ms slower per step, and `limits`."""
    running = []

    def start(**limits) -> tuple[Server, SlowEngine]:
        bot = Bot.load(tiny_run)
        bot.engine = SlowEngine(bot.engine, 0.02)
        running.append(Server(create_app(bot, "slow", Limits(**limits))).__enter__())
        return running[-1], bot.engine

    yield start
    for server in running:
        server.__exit__()


LONG_REPLY = {"messages": user("hello"), "min_len": 40, "max_tokens": 40, **LIVE}


def test_a_request_past_the_timeout_gets_504_or_an_error_event(slow_server):
    server, engine = slow_server(timeout=0.4)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.post("/v1/chat/completions", json=LONG_REPLY)  # 40 steps, 0.8 s
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout_error"
        stopped_at = engine.steps
        time.sleep(0.3)
        assert engine.steps <= stopped_at + 1 < 30  # its decoding stopped too
        events = sse(http.post("/v1/chat/completions", json={**LONG_REPLY, "stream": True}))
        assert events[0]["choices"][0]["delta"] == {"role": "assistant"}
        assert events[-1]["error"]["type"] == "timeout_error"  # and no [DONE]


def test_a_504_tells_clients_not_to_retry(slow_server):
    from openai import InternalServerError, OpenAI

    server, _ = slow_server(timeout=0.4)
    response = httpx.post(f"{server.url}/v1/chat/completions", json=LONG_REPLY, timeout=10)
    assert response.status_code == 504 and response.headers["x-should-retry"] == "false"
    sent = []  # the requests the openai client sends, retries included
    with httpx.Client(event_hooks={"request": [sent.append]}, timeout=10) as session, OpenAI(
            base_url=f"{server.url}/v1", api_key="none", max_retries=2,
            http_client=session) as openai:
        with pytest.raises(InternalServerError, match="no reply within"):
            openai.chat.completions.create(model="m", messages=user("hello"), max_tokens=40,
                                           extra_body={"min_len": 40, "retrieval": False})
    assert len(sent) == 1


def test_requests_over_the_concurrency_limit_get_429(slow_server):
    server, _ = slow_server(max_concurrent=1)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        with http.stream("POST", "/v1/chat/completions",
                         json={**LONG_REPLY, "stream": True}) as holding:
            lines = holding.iter_lines()
            next(lines)  # the one request allowed is in progress
            busy = http.post("/v1/chat/completions", json=LONG_REPLY)
            assert busy.status_code == 429, (busy.text, list(lines))
            assert busy.json()["error"]["type"] == "rate_limit_error"
        assert http.get("/health").json()["status"] == "ok"


def test_a_client_that_disconnects_stops_its_decoding(slow_server):
    server, engine = slow_server()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        with http.stream("POST", "/v1/chat/completions",
                         json={**LONG_REPLY, "stream": True}) as response:
            lines = response.iter_lines()
            while "content" not in next(lines):  # the first token has come
                pass
        time.sleep(0.2)
        stopped_at = engine.steps
        time.sleep(0.3)
        assert engine.steps == stopped_at < 20  # of the 40 it would have taken
        assert http.get("/health").json()["in_flight"] == 0


def test_a_client_that_leaves_a_non_streamed_request_stops_its_decoding(slow_server):
    server, engine = slow_server()
    with httpx.Client(base_url=server.url, timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
            http.post("/v1/chat/completions", json=LONG_REPLY)  # 40 steps, 0.8 s
    time.sleep(0.2)
    stopped_at = engine.steps
    time.sleep(0.3)
    assert engine.steps == stopped_at < 30  # of the 40 it would have taken
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/health").json()["in_flight"] == 0


# --- load -------------------------------------------------------------------------------------

def test_concurrent_clients_each_get_their_own_reply(server, http):
    clients, requests = 8, 20
    replies = dict(TINY_PAIRS)

    def client_run(c: int) -> list[tuple[str, str, int]]:
        out = []
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"},
                          timeout=30) as session:
            for r in range(requests):
                prompt = TINY_PAIRS[(c + r) % len(TINY_PAIRS)][0]
                response = session.post("/v1/chat/completions", json={"messages": user(prompt)})
                text = response.json()["choices"][0]["message"]["content"] \
                    if response.status_code == 200 else response.text
                out.append((prompt, text, response.status_code))
        return out

    before = http.get("/health").json()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client_run, range(clients)) for r in rs]
    assert len(results) == clients * requests
    assert [r for r in results if r[2] != 200] == []
    assert all(text == replies[prompt] for prompt, text, _ in results)
    after = http.get("/health").json()
    assert after["batched_replies"] - before["batched_replies"] == clients * requests
    assert after["in_flight"] == 0


# --- the command ------------------------------------------------------------------------------

def test_chatbot_serve_starts_without_tensorflow_on_localhost(tiny_run):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot.cli", "serve", "--model", str(tiny_run), "--port", "0",
         "--api-key", "k", "--beam", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith(f"serving {tiny_run} at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split("/v1")[0]
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
        reply = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k"},
                           json={"messages": user("hello")}).json()
        assert reply["choices"][0]["message"]["content"] == "hi there!"
        maps = Path(f"/proc/{process.pid}/maps")
        if maps.exists():
            assert "tensorflow" not in maps.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read()


def test_a_port_in_use_is_a_message(tiny_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "chatbot.cli", "serve", "--model", str(tiny_run),
             "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr
    assert "Traceback" not in result.stderr
