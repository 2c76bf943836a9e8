"""Invoices for fixed fees and payment by bank transfer (对公转账), through the pages and the API."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from marketplace.audit.models import AuditRecord
from marketplace.billing.models import InvoiceStatus, Payment, PaymentStatus
from marketplace.clock import today
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.outbox.services import drain_once
from tests.billing_factories import INSTALMENTS, LUMP_SUM, assert_ledger_consistent, invoices_of, licence
from tests.factories import api_token, bearer, csrf_headers, login


async def _contract(db, contract_id: int) -> LicenceContract:
    return await db.get(LicenceContract, contract_id, populate_existing=True)


async def test_lump_sum_is_invoiced_paid_by_transfer_and_confirmed_which_activates_the_licence(
    client, db, sessionmaker, settings
):
    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.total_fen == 5_000_000 and invoice.status is InvoiceStatus.OPEN
    assert invoice.due_date == today() + timedelta(days=30)
    assert invoice.number == f"PN{today().year}000001"

    await login(client, lic.licensee)
    page = await client.get(f"/invoices/{invoice.id}")
    assert page.status_code == 200 and "50,000.00" in page.text and "申报转账" in page.text
    headers = await csrf_headers(client)
    bad = await client.post(
        f"/invoices/{invoice.id}/transfers",
        data={"amount": "abc", "payer_name": "", "remitted_on": "", "reference": "", "idempotency_key": "k" * 12},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "请填写付款单位名称" in bad.text and "请填写银行流水号或回单编号" in bad.text
    assert await db.scalar(select(Payment)) is None

    form = {
        "amount": "20,000.00",
        "payer_name": lic.licensee.organisation.name,
        "payer_account": "6222020200112233",
        "remitted_on": today().isoformat(),
        "reference": "HX20261123001",
        "idempotency_key": "transfer-0001",
    }
    declared = await client.post(f"/invoices/{invoice.id}/transfers", data=form, headers=headers)
    assert declared.status_code in (302, 303), declared.text
    again = await client.post(f"/invoices/{invoice.id}/transfers", data=form, headers=headers)
    assert again.status_code in (302, 303)
    [payment] = list(await db.scalars(select(Payment)))
    assert payment.status is PaymentStatus.DECLARED and payment.amount_fen == 2_000_000
    # The licensee cannot confirm its own transfer.
    assert (await client.post(f"/payments/{payment.id}/confirm", headers=headers)).status_code == 403

    await login(client, lic.licensor)
    headers = await csrf_headers(client)
    page = await client.get(f"/payments/{payment.id}")
    assert "确认已到账" in page.text and "HX20261123001" in page.text
    confirmed = await client.post(f"/payments/{payment.id}/confirm", headers=headers)
    assert confirmed.status_code in (302, 303)
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.paid_fen == 2_000_000 and invoice.status is InvoiceStatus.PARTIALLY_PAID
    contract = await _contract(db, lic.contract.id)
    assert contract.status is ContractStatus.ACTIVE and contract.activated_at is not None
    activated = await db.scalar(
        select(AuditRecord).where(
            AuditRecord.entity_type == "licence_contract", AuditRecord.action == "activated_by_payment"
        )
    )
    assert activated.from_state == "awaiting_payment" and activated.to_state == "active"
    assert activated.actor_user_id == lic.licensor.user.id
    # Confirming twice changes nothing.
    assert (await client.post(f"/payments/{payment.id}/confirm", headers=headers)).status_code == 409
    await assert_ledger_consistent(db, lic.contract.id)


async def test_overpayment_becomes_credit_used_on_the_next_instalment(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=INSTALMENTS, months_ago=6)
    await drain_once(sessionmaker, settings)
    invoices = await invoices_of(db, lic.contract.id)
    # Instalment 1 fell due 6 months ago (+30 days) and instalment 2 falls due in 30 days: both invoiced.
    assert [i.total_fen for i in invoices] == [3_333_334 + 3_333_333]
    invoice = invoices[0]
    token = await api_token(db, lic.licensee)
    body = {
        "invoice_id": invoice.id,
        "amount_fen": invoice.total_fen + 100_000,
        "payer_name": lic.licensee.organisation.name,
        "remitted_on": today().isoformat(),
        "reference": "HX-OVER-1",
        "idempotency_key": "over-payment-1",
    }
    declared = await client.post("/api/v1/payments", json=body, headers=bearer(token))
    assert declared.status_code == 201, declared.text
    replay = await client.post("/api/v1/payments", json=body, headers=bearer(token))
    assert replay.status_code == 200 and replay.json()["id"] == declared.json()["id"]
    licensor_token = await api_token(db, lic.licensor)
    confirmed = await client.post(f"/api/v1/payments/{declared.json()['id']}/confirm", headers=bearer(licensor_token))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["excess_fen"] == 100_000
    totals = await assert_ledger_consistent(db, lic.contract.id)
    assert -totals["licensee_credit"] == 100_000

    # Instalment 3 is invoiced when it comes within 30 days of falling due; the credit is used first.
    from marketplace.billing.sweep import run

    due3 = (await invoices_of(db, lic.contract.id))[0].due_date + timedelta(days=180)
    await run(sessionmaker, settings, on=due3 - timedelta(days=10))
    latest = (await invoices_of(db, lic.contract.id))[-1]
    assert [line.amount_fen for line in latest.lines] == [3_333_333, -100_000]
    assert latest.total_fen == 3_233_333
    totals = await assert_ledger_consistent(db, lic.contract.id)
    assert totals["licensee_credit"] == 0


async def test_api_validation_errors_are_problem_details_and_write_nothing(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    token = await api_token(db, lic.licensee)
    response = await client.post(
        "/api/v1/payments",
        json={"invoice_id": invoice.id, "amount_fen": -5, "remitted_on": "2099-01-01", "idempotency_key": "x"},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"amount_fen", "payer_name", "remitted_on", "reference", "idempotency_key"} <= fields
    assert await db.scalar(select(Payment)) is None


async def test_only_the_parties_and_admins_see_invoices_and_payments(client, db, sessionmaker, settings):
    from marketplace.accounts.models import OrganisationKind, Role
    from tests.factories import make_account

    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    stranger = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    other_university = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    for account, expected in (
        (stranger, 404),
        (other_university, 404),
        (lic.licensee, 200),
        (lic.licensor, 200),
        (admin, 200),
    ):
        token = await api_token(db, account)
        got = await client.get(f"/api/v1/invoices/{invoice.id}", headers=bearer(token))
        assert got.status_code == expected, (account.organisation.name, got.status_code)
        listed = await client.get("/api/v1/invoices", headers=bearer(token))
        assert [i["id"] for i in listed.json()] == ([invoice.id] if expected == 200 else [])
    anonymous = await client.get(f"/api/v1/invoices/{invoice.id}")
    assert anonymous.status_code == 401
    page = await client.get(f"/invoices/{invoice.id}")
    assert page.status_code in (302, 303) and "/login" in page.headers["location"]
