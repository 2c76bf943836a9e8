"""Reusable pieces of browser journeys: the live server handle, arranging data, logging in and out.

Data is arranged through the application's own services (via ``tests.factories``) on the e2e
server's database, never on the integration tests' database. The e2e database is not emptied
between tests, so every arranged organisation and e-mail address is unique (the factories count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import async_sessionmaker

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.settings import Settings
from tests.factories import Account, add_member, make_account

#: PNG files start with these eight bytes.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class LiveServer:
    """The application running under uvicorn for the whole e2e session."""

    base_url: str
    settings: Settings
    sessionmaker: async_sessionmaker
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no server log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def arrange_account(
    server: LiveServer,
    *,
    kind: OrganisationKind = OrganisationKind.UNIVERSITY,
    role: Role = Role.ORG_ADMIN,
    name: str | None = None,
) -> Account:
    """A verified organisation with one user (organisation admin unless ``role`` says otherwise)."""
    async with server.sessionmaker() as session:
        return await make_account(session, kind=kind, role=role, name=name)


async def arrange_member(server: LiveServer, account: Account, role: Role = Role.ORG_MEMBER) -> Account:
    """Another user of ``account``'s organisation."""
    async with server.sessionmaker() as session:
        return await add_member(session, account, role=role)


def header_who(page: Page):
    """The header corner that names the signed-in user, or offers 登录 to anonymous visitors."""
    return page.locator("header .who")


async def submit_login(page: Page, email: str, password: str, next_path: str | None = None) -> None:
    """Open the login form and submit it, whatever the outcome."""
    await page.goto("/login" + (f"?next={quote(next_path)}" if next_path else ""))
    await fill_login_form(page, email, password)


async def fill_login_form(page: Page, email: str, password: str) -> None:
    """Fill and submit the login form already on the page (e.g. after a redirect to /login?next=…)."""
    await page.get_by_label("电子邮箱").fill(email)
    await page.get_by_label("密码").fill(password)
    # Success redirects and failure re-renders (422): either way a new document loads.
    async with page.expect_navigation():
        await page.get_by_role("button", name="登录", exact=True).click()


async def login(page: Page, email: str, password: str, next_path: str) -> None:
    """Log in through the form, landing on ``next_path``, and wait until the header shows 退出.

    The landing page is explicit so a journey starts where it means to, and because a path
    without a route (today "/") is answered before the session is read: its header looks anonymous.
    """
    await submit_login(page, email, password, next_path)
    await expect(page).not_to_have_url(re.compile(r"/login(\?|$)"))
    await expect(header_who(page).get_by_role("button", name="退出")).to_be_visible()


async def login_as(page: Page, account: Account, next_path: str) -> None:
    await login(page, account.email, account.password, next_path)


async def logout(page: Page) -> None:
    """Press 退出 in the header and wait until the header offers 登录 again."""
    await header_who(page).get_by_role("button", name="退出").click()
    await expect(header_who(page).get_by_role("link", name="登录")).to_be_visible()


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    # A blank page is a few hundred bytes; a rendered page with text is far larger.
    assert len(data) > 2000, f"{path} is suspiciously small ({len(data)} bytes)"
