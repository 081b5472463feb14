"""A real Chromium drives the web shell served by uvicorn on loopback.

The server runs as a task on the test's own event loop (the async database engine stays on one
loop), bound to a socket on 127.0.0.1 port 0; it is stopped before the test returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import ConsoleMessage, Error, Page, async_playwright, expect

from tests.journal.conftest import CallScript, publish
from tests.media.engine.phone import tone_pcm
from zvonar.accounts.models import Role
from zvonar.api.deps import SESSION_COOKIE
from zvonar.app import create_app, create_container
from zvonar.calls.events import CallRecorded, Disposition
from zvonar.container import Container
from zvonar.media.wav import encode_wav
from zvonar.settings import Settings
from zvonar.store.base import Base

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium not installed at /usr/bin/chromium (apt-get install chromium)",
    ),
]
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL = "olena@bells.example"
PASSWORD = "ring ring ring 42"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The test process owns SIGINT/SIGTERM; the server is stopped through should_exit.
        yield


@dataclass
class LiveApp:
    url: str
    container: Container


@pytest.fixture
async def live_app(tmp_path: Path) -> AsyncIterator[LiveApp]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'web.sqlite3'}",
        secret_key="browser-test-secret-key",
    )
    container = create_container(settings)
    async with container.db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    account = await container.accounts.create_account("Quiet Bells Ltd", "bells", language="en")
    await container.accounts.create_user(
        account.id, email=EMAIL, name="Olena Koval", role=Role.supervisor, password=PASSWORD
    )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(container), log_level="warning", ws="none", timeout_graceful_shutdown=2
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    pytest.fail("uvicorn stopped during startup")
                await asyncio.sleep(0.02)
        yield LiveApp(url=f"http://127.0.0.1:{port}", container=container)
    finally:
        server.should_exit = True
        await task
        sock.close()
        await container.db.dispose()


@contextlib.asynccontextmanager
async def english_page(problems: list[str], *, levels: set[str]) -> AsyncIterator[Page]:
    """A page of a fresh headless Chromium (en-US) that notes console messages of ``levels``
    and page errors in ``problems``."""

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type in levels:
            problems.append(f"console {msg.type}: {msg.text}")

    def on_page_error(exc: Error) -> None:
        problems.append(f"page error: {exc}")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(locale="en-US")
            page = await context.new_page()
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            yield page
        finally:
            await browser.close()


async def test_sign_in_switch_language_sign_out(live_app: LiveApp, tmp_path: Path) -> None:
    url = live_app.url
    problems: list[str] = []
    async with english_page(problems, levels={"error", "warning"}) as page:
        context = page.context

        await page.goto(f"{url}/login")
        await expect(page).to_have_title("Sign in — Zvonar")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        assert await page.evaluate("typeof window.htmx") == "object"

        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill("not my password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
        await page.screenshot(path=tmp_path / "login-failed.png")
        # Chromium logs the intended 401 of the failed sign-in; nothing else may appear.
        assert all("401" in p for p in problems), problems
        problems.clear()

        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{url}/")
        await expect(page.locator("#user-name")).to_have_text("Olena Koval")
        await expect(page.locator("#user-role")).to_have_text("Supervisor")
        await expect(page.locator("#account-name")).to_have_text("Quiet Bells Ltd")
        await page.screenshot(path=tmp_path / "home-en.png")

        # An htmx request carries the session's CSRF token from hx-headers; the server
        # answers with HX-Redirect and htmx navigates.
        await page.evaluate("htmx.ajax('POST', '/settings/language', {values: {language: 'ru'}})")
        await expect(page.locator("h1")).to_have_text("Здравствуйте, Olena Koval!")
        await expect(page.locator("html")).to_have_attribute("lang", "ru")

        await page.get_by_role("button", name="Українська").click()
        await expect(page.locator("h1")).to_have_text("Вітаємо, Olena Koval!")
        await expect(page.locator("html")).to_have_attribute("lang", "uk")
        await expect(page.locator("#user-role")).to_have_text("Супервайзер")
        await expect(page).to_have_title("Головна — Zvonar")
        await page.screenshot(path=tmp_path / "home-uk.png", full_page=True)

        await page.get_by_role("button", name="Вийти").click()
        await page.wait_for_url(f"{url}/login")
        await expect(page.locator("h1")).to_have_text("Sign in to Zvonar")
        assert SESSION_COOKIE not in {c.get("name") for c in await context.cookies()}
        await page.goto(f"{url}/")
        await page.wait_for_url(f"{url}/login")
    assert problems == []


async def test_the_call_journal_page_lists_calls_and_plays_a_recording(live_app: LiveApp) -> None:
    """The supervisor opens Calls from the top bar, filters to missed calls and back, and
    the browser plays an answered call's recording through the API with the session cookie
    (the page's CSP lets media come from its own origin)."""
    c = live_app.container
    account = await c.accounts.account_by_slug("bells")
    answered = CallScript(account.id, call_id="c-answered", caller="+74951110001")
    missed = CallScript(account.id, call_id="c-missed", start=answered.at(600))
    path = c.journal.recording_path_for(account.id, "c-answered", answered.start)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_wav(tone_pcm(440.0, 1.5)))
    await publish(
        c.bus,
        answered.started(),
        answered.answered("a", 4),
        answered.ended(10, Disposition.answered),
        CallRecorded(account_id=account.id, call_id="c-answered", path=str(path), duration=1.5),
        missed.started(),
        missed.ended(20, Disposition.missed),
    )
    await c.journal.flush()
    problems: list[str] = []
    async with english_page(problems, levels={"error"}) as page:
        await page.goto(f"{live_app.url}/login")
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"{live_app.url}/")
        await page.get_by_role("link", name="Calls").click()
        await page.wait_for_url(f"{live_app.url}/calls")
        await expect(page).to_have_title("Calls — Zvonar")
        await expect(page.locator("tbody tr")).to_have_count(2)
        await expect(page.locator("#calls-total")).to_contain_text("2 calls")

        await page.get_by_label("Outcome").select_option("missed")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("tbody tr")).to_have_count(1)
        await expect(page.locator("tbody tr .badge")).to_have_text("missed")
        await page.get_by_label("Outcome").select_option("")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("tbody tr")).to_have_count(2)

        audio = page.locator("audio")
        await expect(audio).to_have_count(1)
        duration = await audio.evaluate(
            """a => new Promise((ok, fail) => {
                a.addEventListener('loadedmetadata', () => ok(a.duration), {once: true});
                a.addEventListener('error', () => fail(String(a.error && a.error.code)),
                                   {once: true});
                a.preload = 'metadata';
                a.load();
            })"""
        )
        assert abs(duration - 1.5) < 0.05, duration

        # The answered call's own page: its facts, the scheme path, the same player.
        await page.locator("tbody tr", has=page.locator("audio")).get_by_role("link").click()
        await expect(page).to_have_title("Call — Zvonar")
        await expect(page.locator("#call-facts")).to_contain_text("answered")
        await expect(page.locator("#call-path li")).to_have_count(2)
        await expect(page.locator("audio")).to_have_count(1)
        await page.get_by_role("link", name="← All calls").click()
        await expect(page.locator("tbody tr")).to_have_count(2)
    assert problems == []
