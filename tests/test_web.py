"""The chat page of `chatbot serve` at `/`: its files as served (fast, no model), and the page
itself in headless Chromium, driven by Playwright, against the real server on the tiny run.

The browser tests need Debian's Chromium (`apt-get install chromium`, as .ci/run does) and the
`playwright` package (the dev extra); Playwright's own browser download is never used. Without
them the browser tests skip and say what to install; with them, any failure is a failure.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from chatbot.decoding.bot import Bot
from chatbot.serving.app import WEB, create_app
from tests.serving import Server, SlowEngine, bot_with

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser tests skip (see MISSING)
    expect = sync_playwright = None

KEY = "sk-web-key"
FILES = ("index.html", "chat.css", "chat.js")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = ("playwright: .venv/bin/pip install -e '.[dev]'" if sync_playwright is None else
           "Chromium: apt-get install chromium (Debian/Ubuntu; .ci/run installs it)"
           if CHROMIUM is None else None)
# A mark, not a skip in a fixture: it skips before the tiny run is trained for nothing.
needs_browser = pytest.mark.skipif(MISSING is not None,
                                   reason=f"the browser tests need {MISSING}")


# --- the files, as served: no model, no browser ----------------------------------------------

@pytest.fixture
def http() -> TestClient:
    # The page's routes and the key check touch no model: none is loaded.
    return TestClient(create_app(None, "m", api_key=KEY), base_url="http://localhost")


def test_the_page_is_served_at_root_without_the_key(http):
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == (WEB / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in response.text


@pytest.mark.parametrize("name, kind", [("chat.css", "text/css"), ("chat.js", "javascript")])
def test_the_static_files_are_served_without_the_key(http, name, kind):
    response = http.get(f"/web/{name}")
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert response.content == (WEB / name).read_bytes()
    assert http.get("/web/missing.js").status_code == 404


def test_the_api_still_needs_the_key(http):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert http.get("/v1/models", headers=headers).status_code == 401
        response = http.post("/v1/chat/completions", headers=headers,
                             json={"messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("name", FILES)
def test_nothing_is_loaded_from_other_hosts(name):
    text = (WEB / name).read_text(encoding="utf-8")
    assert not re.search(r"https?://|//[\w.-]+\.\w|@import", text, re.IGNORECASE), name
    if name == "index.html":
        links = Links()
        links.feed(text)
        assert links.links == ["data:,", "web/chat.css", "web/chat.js"]  # relative, or inline


def test_the_page_files_are_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package = WEB.parent  # chatbot/serving
    root = package.parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["chatbot.serving"]
    shipped = {p.name for g in globs for p in package.glob(g)}
    assert {p.name for p in WEB.iterdir()} == shipped == set(FILES)


# --- the page, in a browser ------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh tab (its own sessionStorage); fails on a script error or a blocked resource."""
    context = chromium.new_context(viewport={"width": 900, "height": 700})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []

    def dialog(box) -> None:  # an alert() would mean text was run as HTML
        problems.append(f"dialog: {box.message}")
        box.dismiss()  # a dialog left open would freeze the page

    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on("dialog", dialog)
    tab.on("console", lambda m: problems.append(m.text)
           if "Content Security Policy" in m.text else None)
    yield tab
    context.close()
    assert problems == []


@pytest.fixture(scope="module")
def bot(tiny_run) -> Bot:
    return Bot.load(tiny_run)


@pytest.fixture(scope="module")
def server(tiny_run, bot):
    with Server(create_app(bot, str(tiny_run))) as running:
        yield running


@pytest.fixture(scope="module")
def keyed(tiny_run, bot):
    with Server(create_app(bot, str(tiny_run), api_key=KEY)) as running:
        yield running


# Every text the newest reply shows, in order: the page updates it as tokens arrive.
RECORD_REPLIES = """() => {
    window.shown = [];
    const log = document.getElementById("log");
    new MutationObserver(() => {
        const replies = log.querySelectorAll(".turn.assistant .text");
        const text = replies.length ? replies[replies.length - 1].textContent : "";
        if (text && text !== window.shown[window.shown.length - 1]) window.shown.push(text);
    }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


def open_page(page, url: str) -> None:
    page.goto(f"{url}/")
    page.evaluate(RECORD_REPLIES)


def say(page, text: str) -> str:
    """Types `text` in the message box, presses Enter and returns the reply once it is whole."""
    replies = page.locator(".turn.assistant .text")
    count = replies.count()
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")
    expect(replies).to_have_count(count + 1)
    expect(page.locator("#log")).not_to_have_attribute("aria-busy", "true")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    return replies.nth(count).text_content()


def sent(request) -> dict:
    return request.post_data_json


def user(text: str) -> dict:
    return {"role": "user", "content": text}


@pytest.mark.slow
@needs_browser
def test_a_conversation_in_english_and_chinese(page, server, bot, tiny_run, tmp_path):
    open_page(page, server.url)
    expect(page.locator("#model")).to_have_text(tiny_run.name)  # from GET /v1/models
    assert page.evaluate("document.activeElement.id") == "message"
    with page.expect_request("**/v1/chat/completions") as first:
        english = say(page, "hello")
    assert english == bot.reply("hello").text == "hi there!"
    assert sent(first.value) == {"messages": [user("hello")], "stream": True}
    conversation = [user("hello"), {"role": "assistant", "content": english}, user("你好")]
    with page.expect_request("**/v1/chat/completions") as second:
        chinese = say(page, "你好")
    assert sent(second.value)["messages"] == conversation  # the earlier turns go along
    assert chinese == bot.reply(conversation).text == "你好！很高兴认识你。"
    shown = page.evaluate("window.shown")
    assert shown[-1] == chinese and all(chinese.startswith(s) or english.startswith(s)
                                        for s in shown)
    expect(page.locator(".turn .text")).to_have_text(["hello", english, "你好", chinese])
    expect(page.get_by_role("alert")).to_be_hidden()

    screenshot = tmp_path / "chat.png"
    page.screenshot(path=screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[:2] == (700, 900) and pixels.std() > 0.05  # not a blank page

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator(".turn")).to_have_count(0)
    with page.expect_request("**/v1/chat/completions") as fresh:
        assert say(page, "你好") == chinese
    assert sent(fresh.value)["messages"] == [user("你好")]  # nothing of the old conversation


@pytest.mark.slow
@needs_browser
def test_tokens_appear_as_they_stream(page, tiny_run):
    # Nothing to choose after generation, no fallback to judge it first: live tokens.
    bot = bot_with(tiny_run, retrieval=False, fallback=False)
    bot.engine = SlowEngine(bot.engine, 0.05)
    with Server(create_app(bot, "slow")) as slow:
        open_page(page, slow.url)
        reply = say(page, "hello")
    tokens = Bot.load(tiny_run).reply("hello").tokens
    assert page.evaluate("window.shown") == [
        bot.tokenizer.detokenize(tokens[:i]) for i in range(1, len(tokens) + 1)]
    assert reply == "hi there!"


@pytest.mark.slow
@needs_browser
def test_a_reply_shows_where_it_came_from_and_how_sure_the_bot_is(page, server, bot):
    open_page(page, server.url)
    prompts = ("hello", "zebra quokka axolotl")  # a known prompt, and words the bot lacks
    for prompt in prompts:
        say(page, prompt)
    replies = [bot.reply(p) for p in prompts]
    assert [r.source for r in replies] == ["model", "fallback"]
    expect(page.locator(".turn.assistant .said")).to_have_text(
        [f"{r.source} · {r.confidence:.2f}" for r in replies])
    expect(page.locator(".turn.assistant .text")).to_have_text([r.text for r in replies])


@pytest.mark.slow
@needs_browser
def test_settings_are_sent_and_the_servers_refusal_is_shown(page, server, tiny_run):
    open_page(page, server.url)
    page.get_by_text("Settings").click()
    page.get_by_label("Top-p").fill("0")
    box = page.get_by_label("Message")
    box.fill("hello")
    box.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("400: 'top_p' must be a number from 0 (excluded) to 1")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(box).to_have_value("hello")  # back in the box, to send again
    expect(page.locator(".turn")).to_have_count(0)

    page.get_by_label("Top-p").fill("")
    page.get_by_label("Beam").fill("3")
    with page.expect_request("**/v1/chat/completions") as request:
        reply = say(page, "hello")
    assert sent(request.value) == {"messages": [user("hello")], "stream": True, "beam": 3}
    assert reply == bot_with(tiny_run, strategy="beam", beam_width=3).reply("hello").text
    expect(alert).to_be_hidden()


@pytest.mark.slow
@needs_browser
def test_a_stopped_server_is_a_visible_error(page, bot):
    with Server(create_app(bot, "going")) as going:
        open_page(page, going.url)
        expect(page.locator("#model")).to_have_text("going")
    box = page.get_by_label("Message")
    box.fill("hello")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Cannot reach the server")
    expect(alert).to_contain_text("Is chatbot serve still running?")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(box).to_have_value("hello")
    expect(page.locator(".turn")).to_have_count(0)


@pytest.mark.slow
@needs_browser
def test_the_api_key_is_asked_for_and_kept_in_this_tab_only(page, keyed, tiny_run):
    open_page(page, keyed.url)  # the page itself needs no key
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("needs its API key")
    key = page.get_by_label("API key")
    expect(key).to_be_focused()
    key.fill("wrong")
    key.press("Enter")
    expect(alert).to_contain_text("The server refused this API key")
    key.fill(KEY)
    key.press("Enter")
    expect(page.locator("#model")).to_have_text(tiny_run.name)
    expect(alert).to_be_hidden()
    with page.expect_request("**/v1/chat/completions") as request:
        assert say(page, "hello") == "hi there!"
    assert request.value.headers["authorization"] == f"Bearer {KEY}"
    assert page.evaluate("sessionStorage.getItem('chatbot.apiKey')") == KEY
    assert page.evaluate("localStorage.length") == 0
    page.reload()  # the same tab keeps it
    expect(page.get_by_label("API key")).to_have_value(KEY)
    expect(page.locator("#model")).to_have_text(tiny_run.name)


@pytest.mark.slow
@needs_browser
def test_enter_sends_shift_enter_breaks_and_an_ime_keeps_its_enter(page, server):
    open_page(page, server.url)
    box = page.get_by_label("Message")
    box.press_sequentially("hello")
    box.press("Shift+Enter")
    expect(box).to_have_value("hello\n")
    # Enter while an input method composes (picking a Chinese candidate) is the IME's.
    box.fill("ni")
    box.evaluate("""box => box.dispatchEvent(new KeyboardEvent("keydown", {
        key: "Enter", code: "Enter", isComposing: true, bubbles: true, cancelable: true}))""")
    expect(page.locator(".turn")).to_have_count(0)
    expect(box).to_have_value("ni")
    say(page, "<b>hello</b><img src=x>")
    expect(page.locator(".turn.user .text")).to_have_text(["<b>hello</b><img src=x>"])
    assert page.locator("#log b, #log img").count() == 0  # shown as text, never as HTML


@pytest.mark.slow
@needs_browser
def test_the_keyboard_reaches_every_control_with_a_visible_focus(page, server):
    open_page(page, server.url)
    unlabelled = page.evaluate("""[...document.querySelectorAll("input, textarea, select")]
        .filter(e => !e.labels.length).map(e => e.id)""")
    assert unlabelled == []
    order = []
    for step in range(4):
        if step:
            page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement"
                                   ".textContent.trim()"))
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", order[-1]
    assert order == ["message", "send", "new", "Settings"]
    page.keyboard.press("Enter")  # opens the settings
    for expected in ("temperature", "top-p", "beam"):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == expected
