"""Who may use which billing route: anonymous, the licensee's admin and member, the licensor's admin
and member, a foreign enterprise, a foreign university and a platform admin. Parties see their own
contracts' money only; others get "not found"; refused actions change nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.billing.models import Invoice, Payment, PaymentStatus, RoyaltyReport
from marketplace.clock import today
from marketplace.outbox.services import drain_once
from tests.billing_factories import LUMP_SUM, ROYALTY, Licence, invoices_of, licence
from tests.factories import Account, add_member, api_token, bearer, csrf_headers, login, make_account

ROLES = (
    "anonymous",
    "licensee_admin",
    "licensee_member",
    "licensor_admin",
    "licensor_member",
    "foreign_enterprise",
    "foreign_university",
    "platform_admin",
)
PARTIES = {"licensee_admin", "licensee_member", "licensor_admin", "licensor_member", "platform_admin"}


@dataclass
class World:
    lump: Licence
    royalty: Licence
    accounts: dict[str, Account]
    invoice: Invoice
    payment_id: int


async def _world(db, sessionmaker, settings, client) -> World:
    lump = await licence(db, fee_terms=LUMP_SUM)
    royalty = await licence(db, fee_terms=ROYALTY, months_ago=4, licensee=lump.licensee)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lump.contract.id)
    accounts = {
        "licensee_admin": lump.licensee,
        "licensee_member": await add_member(db, lump.licensee),
        "licensor_admin": lump.licensor,
        "licensor_member": await add_member(db, lump.licensor),
        "foreign_enterprise": await make_account(db, kind=OrganisationKind.ENTERPRISE),
        "foreign_university": await make_account(db, kind=OrganisationKind.UNIVERSITY),
        "platform_admin": await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN),
    }
    declared = await client.post(
        "/api/v1/payments",
        json={"invoice_id": invoice.id, "amount_fen": 1_000, "payer_name": "付款单位",
              "remitted_on": today().isoformat(), "reference": "HX-ACCESS", "idempotency_key": "access-transfer-1"},
        headers=bearer(await api_token(db, lump.licensee)),
    )  # fmt: skip
    assert declared.status_code == 201
    return World(lump, royalty, accounts, invoice, declared.json()["id"])


async def _as(client, world: World, role: str) -> None:
    client.cookies.clear()
    if role != "anonymous":
        await login(client, world.accounts[role])


@pytest.mark.parametrize("page", ["contract_billing", "invoice", "payment", "invoices"])
async def test_pages_show_money_to_the_parties_only(client, db, sessionmaker, settings, page):
    world = await _world(db, sessionmaker, settings, client)
    url = {
        "contract_billing": f"/contracts/{world.lump.contract.id}/billing",
        "invoice": f"/invoices/{world.invoice.id}",
        "payment": f"/payments/{world.payment_id}",
        "invoices": "/invoices",
    }[page]
    for role in ROLES:
        await _as(client, world, role)
        response = await client.get(url)
        if role == "anonymous":
            assert response.status_code in (302, 303) and "/login" in response.headers["location"], role
        elif role in PARTIES or page == "invoices":
            assert response.status_code == 200, role
            shows = world.invoice.number in response.text
            assert shows is (role in PARTIES), role
        else:
            assert response.status_code == 404, role
            assert world.lump.licensee.organisation.name not in response.text


async def test_only_the_licensee_declares_and_reports_and_only_payee_admins_confirm(client, db, sessionmaker, settings):
    world = await _world(db, sessionmaker, settings, client)
    transfer = {"amount": "10.00", "payer_name": "付款单位", "remitted_on": today().isoformat(), "reference": "HX-2"}
    report = {"period": "royalty:1:1", "base_amount": "1000.00"}
    expected_declare = {"licensee_admin": 303, "licensee_member": 303, "licensor_admin": 403, "licensor_member": 403,
                        "foreign_enterprise": 404, "foreign_university": 404, "platform_admin": 403}  # fmt: skip
    for n, role in enumerate(ROLES[1:]):
        await _as(client, world, role)
        headers = await csrf_headers(client)
        declared = await client.post(
            f"/invoices/{world.invoice.id}/transfers",
            data={**transfer, "idempotency_key": f"access-{n:04d}"},
            headers=headers,
        )
        assert declared.status_code in ((302, 303) if expected_declare[role] == 303 else (expected_declare[role],)), (
            role
        )
        reported = await client.post(
            f"/contracts/{world.royalty.contract.id}/royalty-reports",
            data={**report, "client_report_id": f"access-report-{n:04d}", "note": "更正" if n else ""},
            headers=headers,
        )
        assert reported.status_code in ((302, 303) if role.startswith("licensee") else (403, 404)), role
    assert await db.scalar(select(func.count()).select_from(Payment)) == 3  # the API one and two from the licensee
    assert await db.scalar(select(func.count()).select_from(RoyaltyReport)) == 2

    # Confirming: refused for everyone but the licensor's admin and platform admins; nothing changes.
    for role in ("licensee_admin", "licensee_member", "licensor_member", "foreign_enterprise", "foreign_university"):
        await _as(client, world, role)
        response = await client.post(f"/payments/{world.payment_id}/confirm", headers=await csrf_headers(client))
        assert response.status_code in (403, 404), role
    assert (await db.get(Payment, world.payment_id, populate_existing=True)).status is PaymentStatus.DECLARED
    await _as(client, world, "licensor_admin")
    confirmed = await client.post(f"/payments/{world.payment_id}/confirm", headers=await csrf_headers(client))
    assert confirmed.status_code in (302, 303)
    assert (await db.get(Payment, world.payment_id, populate_existing=True)).status is PaymentStatus.CONFIRMED


async def test_api_roles_on_reports_and_payments(client, db, sessionmaker, settings):
    world = await _world(db, sessionmaker, settings, client)
    for role in ("foreign_enterprise", "foreign_university"):
        token = await api_token(db, world.accounts[role])
        assert (await client.get(f"/api/v1/payments/{world.payment_id}", headers=bearer(token))).status_code == 404
        assert (await client.get("/api/v1/payments", headers=bearer(token))).json() == []
        reports = await client.get(
            f"/api/v1/royalty-reports?contract_id={world.royalty.contract.id}", headers=bearer(token)
        )
        assert reports.status_code == 404
        refund = await client.post(
            f"/api/v1/payments/{world.payment_id}/refunds", json={"amount_fen": 1, "reason": "x"}, headers=bearer(token)
        )
        assert refund.status_code == 404
    anonymous = await client.get("/api/v1/payments")
    assert anonymous.status_code == 401
    licensor = bearer(await api_token(db, world.lump.licensor))
    payment = await client.get(f"/api/v1/payments/{world.payment_id}", headers=licensor)
    assert payment.status_code == 200 and payment.json()["client_secret"] is None
