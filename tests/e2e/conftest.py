"""Browser journeys: one real server (uvicorn in a subprocess) and one Chromium for the whole session.

The server gets its own database — a fresh SQLite file, or a fresh database on the PostgreSQL
server named by TEST_DATABASE_URL — migrated with ``marketplace db upgrade``, so these tests never
share tables with the integration tests (whose settings tests/conftest.py puts in os.environ; the
subprocess therefore gets an explicit environment). Chromium is Debian's, at /usr/bin/chromium:
Playwright never downloads a browser here, and a missing Chromium fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.helpers import LiveServer

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
STARTUP_SECONDS = 30
MIGRATION_SECONDS = 120
STOP_SECONDS = 10
#: Upper bound for any single browser action or expectation; a journey step never takes this long.
ACTION_TIMEOUT_MS = 10_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    server = getattr(item, "funcargs", {}).get("live_server")
    if report.failed and isinstance(server, LiveServer):
        report.sections.append(("e2e server log (tail)", server.log_tail()))
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _admin_execute(server_url: str, statement: str) -> None:
    admin = create_async_engine(make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def _migrate(env: dict[str, str], log_path: Path) -> int:
    """``marketplace db upgrade`` against the server's database; its exit status (-1 if it hung)."""
    marketplace = Path(sys.executable).parent / "marketplace"
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            str(marketplace), "db", "upgrade", env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        try:
            async with asyncio.timeout(MIGRATION_SECONDS):
                return await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            return -1


async def _port_answers(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


@pytest.fixture(scope="session")
async def live_server() -> AsyncIterator[LiveServer]:
    from marketplace.db import make_engine, make_sessionmaker
    from marketplace.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="marketplace-e2e-"))
    data_dir = work / "data"
    log_path = work / "server.log"
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured.startswith("postgresql"):
        name = f"mp_e2e_{uuid.uuid4().hex[:10]}"
        await _admin_execute(configured, f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
        database_url = make_url(configured).set(database=name).render_as_string(hide_password=False)
    else:
        name = None
        database_url = f"sqlite+aiosqlite:///{work / 'e2e.sqlite3'}"

    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key != "SMTP_HOST"}
    env |= {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "RUN_WORKER_IN_PROCESS": "1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DEBUG": "0",
        "PYTHONUNBUFFERED": "1",
        # The server must run this work tree, whatever the virtualenv's install of it points at.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }
    # The arrange helpers talk to the server's database, not to whatever the environment says.
    settings = dataclasses.replace(
        load_settings(), database_url=database_url, data_dir=data_dir, secret_key=env["SECRET_KEY"]
    )
    engine = make_engine(settings)
    process = None
    try:
        status = await _migrate(env, log_path)
        if status != 0:
            pytest.fail(f"marketplace db upgrade failed (exit {status}):\n{log_path.read_text(errors='replace')}")
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uvicorn", "marketplace.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port),
                env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
        while not await _port_answers(port):
            if process.returncode is not None or asyncio.get_running_loop().time() > deadline:
                exited = process.returncode
                await _stop(process)
                why = f"exited with {exited}" if exited is not None else f"did not answer within {STARTUP_SECONDS}s"
                pytest.fail(f"the e2e server on port {port} {why}:\n{log_path.read_text(errors='replace')}")
            await asyncio.sleep(0.05)
        yield LiveServer(
            base_url=f"http://127.0.0.1:{port}",
            settings=settings,
            sessionmaker=make_sessionmaker(engine),
            log_path=log_path,
        )
    finally:
        if process is not None:
            await _stop(process)
        await engine.dispose()
        if name is not None:
            await _admin_execute(configured, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # A failing test has already been given the log's tail (pytest_runtest_makereport).
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; its absence fails the journeys, it never skips them."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser journeys need Debian's chromium package "
            "(run `make browser` or apt-get install chromium fonts-noto-cjk)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator:
    from playwright.async_api import Error, async_playwright

    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium at {chromium} did not start: {exc}", pytrace=False)
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser, live_server: LiveServer) -> AsyncIterator:
    """A fresh browser profile per test: no cookies or storage carried over."""
    context = await browser.new_context(base_url=live_server.base_url, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    yield context
    await context.close()


def _watch_static_assets(page, problems: list[str]) -> None:
    """Collect script errors and broken stylesheets/scripts: a page that looks right but lost htmx is broken."""

    def on_response(response) -> None:
        if "/static/" in response.url and response.status >= 400:
            problems.append(f"static asset {response.url} answered {response.status}")

    def on_failed(request) -> None:
        # An abort is the browser leaving the page early, not a broken asset.
        if "/static/" in request.url and "ERR_ABORTED" not in (request.failure or ""):
            problems.append(f"static asset {request.url} failed: {request.failure}")

    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)


@pytest.fixture
async def page(context) -> AsyncIterator:
    """A page whose script errors and broken static assets fail the test that caused them."""
    page = await context.new_page()
    problems: list[str] = []
    _watch_static_assets(page, problems)
    yield page
    assert not problems, "\n".join(problems)
