"""The bundled web client in real headless Chromium (Debian's ``chromium``, driven by
Playwright for Python through ``executable_path``; no browser is ever downloaded).

A user logs in from the page served by the WebSocket port and chats with a bot
built on the ``irc`` library over TCP: #general and the bot in "Online", a
message each way, links and text that looks like HTML, ``/msg`` and a DM
conversation, unread counts, reload and log in again with the history shown,
a wrong password and a name online elsewhere shown in words. Screenshots of
the chat view (desktop and phone width) are saved to ``tmp_path`` and copied
to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.ircbot import Bot, event_is
from tests.support import ROOT, ServerProcess, free_port, wait_for_port

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium (/usr/bin/chromium) is not installed"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def web(server_factory):
    ws_port = free_port()
    srv = server_factory(extra_args=["--websocket-port", str(ws_port)])
    wait_for_port(ws_port, srv.proc)
    srv.url = f"http://127.0.0.1:{ws_port}/"
    return srv


def login(page, nick: str, password: str) -> None:
    page.get_by_label("Nickname").fill(nick)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Connect").click()


def save_screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path))
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(path, artifacts / name)


def test_browser_user_chats_with_an_irc_bot_and_finds_the_history_after_reload(
        web, browser, tmp_path):
    bot = Bot(web.port, "helperbot")
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(web.url)
    login(page, "webby", "pw-of-webby")

    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav.get_by_role("button", name="#general")).to_be_visible()
    online = page.get_by_role("list", name="Online")
    expect(online).to_contain_text("helperbot")
    expect(online).to_contain_text("webby")
    expect(page.get_by_role("heading", name="#general")).to_be_visible()
    bot.wait_for(event_is("join", nick="webby", target="#general"))

    # A message from the page reaches the bot ...
    message = page.get_by_role("textbox", name="Message")
    expect(message).to_be_focused()
    message.fill("hello bot")
    message.press("Enter")
    got = bot.wait_for(event_is("pubmsg", nick="webby", target="#general"))
    assert got.arguments == ["hello bot"]
    log = page.get_by_role("log")
    expect(log).to_contain_text("hello bot")

    # ... and the bot's reply, with a link and text that looks like HTML, shows as text.
    bot.conn.privmsg("#general", "hi webby, see https://example.org/docs <b>not bold</b>")
    expect(log).to_contain_text("hi webby, see https://example.org/docs <b>not bold</b>")
    link = log.get_by_role("link", name="https://example.org/docs")
    expect(link).to_have_attribute("href", "https://example.org/docs")
    assert page.locator("#log b").count() == 0
    entry = log.locator("li", has_text="hi webby")
    expect(entry.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    expect(entry.locator(".nick")).to_have_text("helperbot")

    # /msg opens a DM conversation named after the bot; its answer lands there.
    message.fill("/msg helperbot psst")
    message.press("Enter")
    dm = bot.wait_for(event_is("privmsg", nick="webby", target="helperbot"))
    assert dm.arguments == ["psst"]
    bot.conn.privmsg("webby", "dm reply")
    expect(page.get_by_role("heading", name="helperbot")).to_be_visible()
    expect(log).to_contain_text("dm reply")
    expect(nav.get_by_role("button", name="helperbot")).to_be_visible()

    # A room message while the DM is open counts as unread in "Conversations".
    bot.conn.privmsg("#general", "while you were away")
    expect(nav.get_by_role("button", name="#general 1 unread")).to_be_visible()
    nav.get_by_role("button", name="#general 1 unread").click()
    expect(log).to_contain_text("while you were away")
    expect(nav.get_by_role("button", name="#general", exact=True)).to_be_visible()

    # Joins and quits are shown as quiet event lines.
    visitor = Bot(web.port, "visitor")
    expect(log.locator("li.event", has_text="visitor joined")).to_be_visible()
    expect(online).to_contain_text("visitor")
    visitor.quit("see you")
    expect(log.locator("li.event", has_text="visitor quit")).to_be_visible()
    expect(online).not_to_contain_text("visitor")

    # /me and /topic from the message box.
    message.fill("/me waves")
    message.press("Enter")
    action = bot.wait_for(event_is("action", nick="webby", target="#general"))
    assert action.arguments == ["waves"]
    expect(log).to_contain_text("* webby")
    # The op mark shows in "Online"; as an op, /topic sets the topic.
    bot.send("MODE #general +o webby")
    expect(online.locator("li", has_text="webby")).to_have_text("@webby")
    message.fill("/topic Web and terminal users together")
    message.press("Enter")
    topic = bot.wait_for(event_is("topic", nick="webby", target="#general"))
    assert topic.arguments == ["Web and terminal users together"]
    expect(page.locator("#conv-topic")).to_have_text("Web and terminal users together")

    save_screenshot(page, tmp_path, "webclient-chat.png")
    page.set_viewport_size({"width": 390, "height": 760})
    expect(message).to_be_visible()
    expect(online).to_be_visible()
    save_screenshot(page, tmp_path, "webclient-chat-phone.png")
    page.set_viewport_size({"width": 1100, "height": 700})

    # Reload: the old connection quits, the user logs in again and sees the history.
    start = bot.mark()
    page.reload()
    bot.wait_for(event_is("quit", nick="webby"), since=start)
    login(page, "webby", "pw-of-webby")
    expect(page.get_by_role("heading", name="#general")).to_be_visible()
    expect(log).to_contain_text("hello bot")
    expect(log).to_contain_text("while you were away")
    assert errors == []
    bot.quit()


def test_wrong_password_and_a_name_online_elsewhere_are_shown_in_words(web, browser, tmp_path):
    bot = Bot(web.port, "taken")
    page = browser.new_page()
    page.goto(web.url)
    login(page, "owner", "right-password")
    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()
    start = bot.mark()
    page.reload()
    bot.wait_for(event_is("quit", nick="owner"), since=start)

    login(page, "owner", "wrong-password")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("password")
    expect(page.get_by_role("button", name="Connect")).to_be_enabled()
    expect(page.get_by_role("status")).to_have_text("Not connected")
    expect(alert).to_contain_text("Wrong password for owner")  # still there once closed
    page.screenshot(path=str(tmp_path / "login-error.png"))
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "login-error.png", ROOT / "test-artifacts" / "webclient-login-error.png")

    login(page, "taken", "")
    expect(alert).to_contain_text("taken is already online elsewhere")
    expect(alert).not_to_contain_text("password")

    # The bot, and the server, are unaffected; the right password still works.
    login(page, "owner", "right-password")
    expect(page.get_by_role("list", name="Online")).to_contain_text("taken")
    bot.sync()
    bot.quit()


def test_page_reconnects_with_backoff_after_the_server_restarts(server_factory, browser,
                                                                 tmp_path):
    ws_port = free_port()
    args = ["--websocket-port", str(ws_port)]
    srv = server_factory(extra_args=args)
    wait_for_port(ws_port, srv.proc)
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{ws_port}/")
    login(page, "comeback", "pw-comeback")
    status = page.get_by_role("status")
    expect(status).to_have_text("Connected as comeback")

    srv.stop()
    expect(status).to_contain_text("Reconnecting in", timeout=10_000)
    expect(page.get_by_role("navigation", name="Conversations")).to_be_visible()  # no logout

    again = ServerProcess(srv.data_dir, srv.config_path.read_text(), args, port=srv.port).start()
    try:
        wait_for_port(ws_port, again.proc)
        expect(status).to_have_text("Connected as comeback", timeout=20_000)
        bot = Bot(again.port, "afterbot")
        expect(page.get_by_role("list", name="Online")).to_contain_text("afterbot")
        message = page.get_by_role("textbox", name="Message")
        message.fill("back again")
        message.press("Enter")
        got = bot.wait_for(event_is("pubmsg", nick="comeback", target="#general"))
        assert got.arguments == ["back again"]
        bot.quit()
    finally:
        again.stop()


def test_browser_user_and_irssi_chat_in_general_and_by_dm(web, browser, tmp_path):
    if shutil.which("irssi") is None or shutil.which("tmux") is None:
        pytest.skip("irssi and tmux are not installed: apt-get install irssi tmux")
    from tests.realclients import Irssi

    with Irssi(web.port, "irsuser", tmp_path / "irssi") as irs:
        irs.wait_joined("#general")
        page = browser.new_page()
        page.goto(web.url)
        login(page, "webfriend", "pw-webfriend")
        expect(page.get_by_role("list", name="Online")).to_contain_text("irsuser")
        message = page.get_by_role("textbox", name="Message")
        message.fill("hello irssi from the browser")
        message.press("Enter")
        irs.wait_log(r"webfriend.*hello irssi from the browser", channel="#general")
        irs.say("#general", "hello browser from irssi")
        log = page.get_by_role("log")
        expect(log).to_contain_text("hello browser from irssi", timeout=20_000)
        message.fill("/msg irsuser a private word")
        message.press("Enter")
        irs.wait_log(r"a private word", channel="webfriend")
        irs.msg("webfriend", "private answer")
        expect(page.get_by_role("heading", name="irsuser")).to_be_visible()
        expect(log).to_contain_text("private answer", timeout=20_000)
