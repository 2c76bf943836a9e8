"""Arranging data for tests: organisations, users, tokens, logged-in clients."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from sqlalchemy import select

from marketplace.accounts.models import EnterpriseSize, Organisation, OrganisationKind, Role, User, VerificationStatus
from marketplace.accounts.rules import USCC_ALPHABET
from marketplace.accounts.services import (
    create_api_token,
    create_organisation,
    create_user,
    ensure_platform_organisation,
    principal_for,
)

PASSWORD = "correct-horse-42"
_counter = itertools.count(1)


def make_uscc(prefix: str = "12", serial: int | None = None) -> str:
    """A USCC with a correct check character (GB 32100-2015)."""
    serial = next(_counter) if serial is None else serial
    body = f"{prefix}110000{serial:09d}"[:17]
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + USCC_ALPHABET[(31 - total % 31) % 31]


@dataclass
class Account:
    organisation: Organisation
    user: User
    email: str
    password: str = PASSWORD


async def make_account(
    session,
    *,
    kind: OrganisationKind = OrganisationKind.UNIVERSITY,
    role: Role = Role.ORG_ADMIN,
    name: str | None = None,
    division_code: str = "110108",
    verification_status: VerificationStatus = VerificationStatus.VERIFIED,
) -> Account:
    n = next(_counter)
    if kind is OrganisationKind.PLATFORM:
        organisation = await ensure_platform_organisation(session)
        role = Role.PLATFORM_ADMIN
    else:
        organisation = await create_organisation(
            session,
            name=name or f"测试{kind.label}{n}",
            kind=kind,
            uscc=make_uscc("12" if kind is not OrganisationKind.ENTERPRISE else "91"),
            division_code=division_code,
            address="北京市海淀区测试路1号",
            contact_name="测试联系人",
            contact_email=f"contact{n}@example.cn",
            contact_phone="010-62345678",
            enterprise_size=EnterpriseSize.SMALL if kind is OrganisationKind.ENTERPRISE else None,
            industry_code="C" if kind is OrganisationKind.ENTERPRISE else None,
            verification_status=verification_status,
        )
    email = f"user{n}@example.cn"
    user = await create_user(
        session, organisation=organisation, email=email, display_name=f"用户{n}", password=PASSWORD, role=role
    )
    await session.commit()
    return Account(organisation=organisation, user=user, email=email)


async def add_member(session, account: Account, role: Role = Role.ORG_MEMBER) -> Account:
    n = next(_counter)
    email = f"member{n}@example.cn"
    user = await create_user(
        session, organisation=account.organisation, email=email, display_name=f"成员{n}", password=PASSWORD, role=role
    )
    await session.commit()
    return Account(organisation=account.organisation, user=user, email=email)


async def api_token(session, account: Account) -> str:
    raw, _ = await create_api_token(session, actor=principal_for(account.user), name=f"测试令牌{next(_counter)}")
    await session.commit()
    return raw


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def csrf_headers(client) -> dict[str, str]:
    """The CSRF header a page's form would carry (the cookie is set by any GET)."""
    if "csrftoken" not in client.cookies:
        await client.get("/login")
    return {"x-csrftoken": client.cookies["csrftoken"]}


async def login(client, account: Account) -> None:
    headers = await csrf_headers(client)
    response = await client.post(
        "/login", data={"email": account.email, "password": account.password, "next": "/"}, headers=headers
    )
    assert response.status_code in (302, 303), response.text


def sign_up_form(**overrides: str) -> dict[str, str]:
    """The enterprise registration form (POST /signup) filled in correctly; ``overrides`` replace fields."""
    n = next(_counter)
    form = {
        "name": f"测试智造科技有限公司{n}",
        "uscc": make_uscc("91"),
        "division_code": "110108",
        "enterprise_size": "small",
        "industry_code": "C",
        "address": "北京市海淀区中关村大街1号",
        "contact_name": "张经理",
        "contact_email": f"contact{n}@qiye.example.cn",
        "contact_phone": "010-62345678",
        "admin.display_name": "张三",
        "admin.email": f"founder{n}@qiye.example.cn",
        "admin.password": "Founder-pass-2026",
        "admin.password_confirm": "Founder-pass-2026",
    }
    return form | overrides


def sign_up_json(**overrides) -> dict:
    """The same registration as the JSON API takes it (``admin`` nested, no password confirmation)."""
    form = sign_up_form()
    body = {key: value for key, value in form.items() if not key.startswith("admin.")}
    body["admin"] = {"display_name": form["admin.display_name"], "email": form["admin.email"],
                     "password": form["admin.password"]}  # fmt: skip
    return body | overrides


async def delivered_mail(db, sessionmaker, settings, to: str | None = None) -> list:
    """Run the outbox worker once and return the local mailbox (oldest first), optionally for one recipient."""
    from marketplace.outbox.models import MailMessage
    from marketplace.outbox.services import drain_once

    while await drain_once(sessionmaker, settings):
        pass
    query = select(MailMessage).order_by(MailMessage.id)
    if to is not None:
        query = query.where(MailMessage.to_address == to)
    return list((await db.scalars(query)).all())


def link_in(body: str, path: str) -> str:
    """The token of the first link to ``path`` (e.g. "/confirm-email/") in an email body."""
    match = re.search(re.escape(path) + r"([A-Za-z0-9_-]+)", body)
    assert match, f"no {path} link in: {body}"
    return match.group(1)
