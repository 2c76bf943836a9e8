"""Reusable pieces of browser journeys: the live server handle, arranging data, logging in and out,
and checks a person makes on screen (field errors, in-place HTMX updates, table rows).

Data is arranged through the application's own services (``tests.factories``, and the patents and
offers services) on the e2e server's database, never on the integration tests' database. The e2e
database is not emptied between tests, so every arranged organisation, e-mail address, application
number and announcement number is unique (the factories count; the helpers below draw fresh numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.async_api import Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from marketplace.accounts.models import OrganisationKind, Role, User
from marketplace.accounts.rules import Principal
from marketplace.accounts.services import principal_for
from marketplace.clock import today
from marketplace.offers import services as offer_services
from marketplace.offers.models import OpenLicenceOffer
from marketplace.outbox.models import MailMessage
from marketplace.patents.models import Patent
from marketplace.patents.services import create_patent
from marketplace.settings import Settings
from tests.factories import Account, add_member, make_account, make_uscc

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


# ---------------------------------------------------------------------------------------------
# Patents and open-licence offers (licensor → admin → public journeys)
# ---------------------------------------------------------------------------------------------

#: Weights of the application number's check character (rulebook §2). Computed here rather than with
#: the app's rules, so a wrong check in the app fails the journeys instead of agreeing with them.
_CHECK_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_used_serials: set[int] = set()


def fresh_application_digits(year: int, type_digit: str = "1") -> tuple[str, str]:
    """Twelve digits of an application number no other journey uses, and their check character.

    The e2e database lives for the whole session and an application number belongs to one
    organisation only, so every journey gets serials of its own (random, far above the small
    counters of the integration factories)."""
    serial = secrets.randbelow(9_000_000) + 1_000_000
    while serial in _used_serials:
        serial = secrets.randbelow(9_000_000) + 1_000_000
    _used_serials.add(serial)
    digits = f"{year}{type_digit}{serial:07d}"
    remainder = sum(int(d) * w for d, w in zip(digits, _CHECK_WEIGHTS, strict=True)) % 11
    return digits, "X" if remainder == 10 else str(remainder)


def wrong_check_character(check: str) -> str:
    """Any check character but the right one."""
    return "1" if check == "0" else "0"


async def _principal(session, account: Account) -> Principal:
    user = await session.get(User, account.user.id)
    return principal_for(user)


async def arrange_patent(server: LiveServer, owner: Account, **values: Any) -> Patent:
    """A granted invention patent in force with its annual fee paid, registered through the patents service.

    ``values`` are the registration form's fields (strings as typed) and replace the defaults."""
    digits, check = fresh_application_digits(2019)
    fields: dict[str, Any] = {
        "application_number": f"{digits}.{check}",
        "title": "一种复合相变储能材料及其制备方法",
        "filing_date": "2019-05-20",
        "grant_date": "2021-09-07",
        "legal_status": "有效",
        "annual_fee_paid_until": (today() + timedelta(days=200)).isoformat(),
        "ipc_main": "C09K 5/06",
        "abstract": "本发明公开了一种复合相变储能材料，导热系数高，适用于电池热管理。",
        "trl": "6",
    }
    fields.update(values)
    async with server.sessionmaker() as session:
        patent = await create_patent(session, await _principal(session, owner), fields, server.settings)
        await session.commit()
        return patent


async def arrange_published_offer(
    server: LiveServer,
    licensor: Account,
    patent: Patent,
    fee_terms: dict[str, Any],
    *,
    licence_term_months: int = 36,
    field_of_use: str | None = None,
) -> OpenLicenceOffer:
    """An offer drafted, submitted and approved through the offers services (a platform admin approves)."""
    admin = await arrange_account(server, kind=OrganisationKind.PLATFORM)
    async with server.sessionmaker() as session:
        actor = await _principal(session, licensor)
        draft = await offer_services.create_draft(
            session, actor=actor, settings=server.settings, patent_id=patent.id,
            data=offer_services.OfferInput(
                fee_terms=fee_terms, licence_term_months=licence_term_months, field_of_use=field_of_use
            ),
        )  # fmt: skip
        await offer_services.submit(session, actor=actor, settings=server.settings, offer_id=draft.id)
        offer = await offer_services.approve(
            session, actor=await _principal(session, admin), settings=server.settings, offer_id=draft.id,
            announcement_number=fresh_announcement_number(), announcement_date=today().isoformat(),
        )  # fmt: skip
        await session.commit()
        return offer


def fresh_announcement_number() -> str:
    """An announcement number (公告号) no other offer carries."""
    return f"KFXK{today():%Y}{secrets.randbelow(10**8):08d}"


def labelled(text: str) -> re.Pattern[str]:
    """The label ``text`` exactly, with or without the required-field star (``专利`` but not ``专利权评价报告``)."""
    return re.compile(rf"^\s*{re.escape(text)}\s*\*?\s*$")


async def expect_field_error(control: Locator, message: str) -> None:
    """The field is marked invalid and its error (the text tied to it by aria-describedby) says ``message``."""
    await expect(control).to_have_attribute("aria-invalid", "true")
    await expect(control).to_have_accessible_description(message)


async def mark_document(page: Page) -> None:
    """Tag the loaded document, so a later check can tell an HTMX swap from a full page load."""
    await page.evaluate("window.__journeyMark = true")


async def expect_same_document(page: Page) -> None:
    """The document tagged by :func:`mark_document` is still the one shown: nothing reloaded the page."""
    assert await page.evaluate("window.__journeyMark === true"), "the page was reloaded instead of updated in place"


def table_rows(scope: Page | Locator, *texts: str) -> Locator:
    """Body rows of the tables in ``scope`` that contain every one of ``texts``."""
    rows = scope.get_by_role("row")
    for text in texts:
        rows = rows.filter(has_text=text)
    return rows


@contextlib.asynccontextmanager
async def another_person(page: Page, server: LiveServer) -> AsyncIterator[Page]:
    """A second person at their own computer: a fresh browser profile set up like the ``page`` fixture's,
    whose script errors and broken static assets fail the journey just the same."""
    # Imported here: conftest imports this module while it loads, so a top-level import would be circular.
    from tests.e2e.conftest import ACTION_TIMEOUT_MS, _watch_static_assets

    browser = page.context.browser
    assert browser is not None
    context = await browser.new_context(base_url=server.base_url, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    problems: list[str] = []
    try:
        other = await context.new_page()
        _watch_static_assets(other, problems)
        yield other
        assert not problems, "\n".join(problems)
    finally:
        await context.close()


def described_as(scope: Page | Locator, term: str) -> Locator:
    """The value (``<dd>``) a description list gives for the term ``term`` (``<dt>``), e.g. 专利号 → ZL…."""
    dt = scope.get_by_role("term").filter(has_text=re.compile(rf"^\s*{re.escape(term)}\s*$"))
    return dt.locator("xpath=following-sibling::dd[1]")


async def mailed_link(server: LiveServer, to: str, path: str, *, seconds: float = 8.0) -> str:
    """The path of the newest ``path…`` link (e.g. "/invitations/") mailed to ``to``, once the server's
    in-process outbox worker has delivered it to the local mailbox."""
    pattern = re.compile(re.escape(path) + r"[A-Za-z0-9_-]+")
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        async with server.sessionmaker() as session:
            bodies = (
                await session.scalars(
                    select(MailMessage.body).where(MailMessage.to_address == to).order_by(MailMessage.id.desc())
                )
            ).all()
        for body in bodies:
            match = pattern.search(body)
            if match:
                return match.group(0)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {path} link mailed to {to} within {seconds}s")
        await asyncio.sleep(0.2)


async def fill_sign_up(page: Page, *, name: str, email: str, password: str = "Founder-pass-2026") -> None:
    """Fill the enterprise registration form (/signup) with valid values, all but the division code
    (the journey types it, to see the lookup) and without submitting it."""
    await page.get_by_label(labelled("企业名称")).fill(name)
    await page.get_by_label(labelled("统一社会信用代码")).fill(make_uscc("91", 700_000_000 + secrets.randbelow(10**8)))
    await page.get_by_label(labelled("企业规模")).select_option(label="小型")
    await page.get_by_label(labelled("所属行业门类")).select_option(label="C 制造业")
    await page.get_by_label(labelled("企业地址")).fill("北京市海淀区中关村大街1号")
    await page.get_by_label(labelled("联系人")).fill("张经理")
    await page.get_by_label(labelled("联系邮箱")).fill(f"contact-{email}")
    await page.get_by_label(labelled("联系电话")).fill("010-62345678")
    await page.get_by_label(labelled("姓名")).fill("张三")
    await page.get_by_label(labelled("登录邮箱")).fill(email)
    await page.get_by_label(labelled("密码")).fill(password)
    await page.get_by_label(labelled("确认密码")).fill(password)
