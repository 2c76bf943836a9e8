"""The billing sweep and the invoice's life: overdue, default and its clearing, voiding."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from marketplace.audit.models import AuditRecord
from marketplace.billing.models import InvoiceLine, InvoiceStatus
from marketplace.billing.sweep import run as sweep
from marketplace.clock import today
from marketplace.licensing.models import LicenceContract
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import drain_once
from tests.billing_factories import INSTALMENTS, LUMP_SUM, assert_ledger_consistent, invoices_of, licence
from tests.factories import api_token, bearer, csrf_headers, login


async def _transfer(client, db, lic, invoice, amount_fen: int, key: str) -> int:
    token = await api_token(db, lic.licensee)
    declared = await client.post(
        "/api/v1/payments",
        json={
            "invoice_id": invoice.id,
            "amount_fen": amount_fen,
            "payer_name": lic.licensee.organisation.name,
            "remitted_on": today().isoformat(),
            "reference": f"HX-{key}",
            "idempotency_key": key,
        },
        headers=bearer(token),
    )
    assert declared.status_code == 201, declared.text
    confirmed = await client.post(
        f"/api/v1/payments/{declared.json()['id']}/confirm", headers=bearer(await api_token(db, lic.licensor))
    )
    assert confirmed.status_code == 200, confirmed.text
    return declared.json()["id"]


async def _due(db, invoice, day) -> None:
    invoice.due_date = day
    db.add(invoice)
    await db.commit()


async def test_unpaid_invoice_turns_overdue_then_defaults_and_payment_clears_it(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    assert (await sweep(sessionmaker, settings)).overdue == 0
    # Arrange time: the invoice fell due 30 days ago.
    await _due(db, invoice, today() - timedelta(days=30))
    result = await sweep(sessionmaker, settings)
    assert (result.overdue, result.defaults) == (1, 0)
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.OVERDUE
    overdue = await db.scalar(
        select(AuditRecord).where(AuditRecord.entity_type == "invoice", AuditRecord.action == "overdue")
    )
    assert (overdue.from_state, overdue.to_state, overdue.actor_user_id) == ("open", "overdue", None)

    await _due(db, invoice, today() - timedelta(days=settings.default_after_days - 1))
    assert (await sweep(sessionmaker, settings)).defaults == 0
    await _due(db, invoice, today() - timedelta(days=settings.default_after_days + 1))
    assert (await sweep(sessionmaker, settings)).defaults == 1
    assert (await sweep(sessionmaker, settings)).defaults == 0
    contract = await db.get(LicenceContract, lic.contract.id, populate_existing=True)
    assert contract.in_default_since == today()
    notices = list(
        await db.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"email:contract:{contract.id}:default:%"))
        )
    )
    assert {m.payload["to"] for m in notices} >= {lic.licensor.email}
    assert "违约" in notices[0].payload["subject"]
    await login(client, lic.licensor)
    page = await client.get(f"/contracts/{contract.id}/billing")
    assert "违约状态" in page.text

    # A partial payment leaves it overdue and in default; paying the rest clears the default.
    await _transfer(client, db, lic, invoice, 1_000_000, "partial-0001")
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.OVERDUE and invoice.paid_fen == 1_000_000
    assert (await db.get(LicenceContract, contract.id, populate_existing=True)).in_default_since is not None
    await _transfer(client, db, lic, invoice, 4_000_000, "rest-000001")
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.PAID
    assert (await db.get(LicenceContract, contract.id, populate_existing=True)).in_default_since is None
    cleared = await db.scalar(select(AuditRecord).where(AuditRecord.action == "default_cleared"))
    assert cleared.entity_id == contract.id and cleared.from_state == "in_default"
    await assert_ledger_consistent(db, contract.id)


async def test_voiding_writes_the_items_off_and_turns_what_was_paid_into_credit(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=INSTALMENTS)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    await _transfer(client, db, lic, invoice, 1_000_000, "void-part-01")

    licensee_token = await api_token(db, lic.licensee)
    refused = await client.post(
        f"/api/v1/invoices/{invoice.id}/void", json={"reason": "x"}, headers=bearer(licensee_token)
    )
    assert refused.status_code == 403
    await login(client, lic.licensor)
    headers = await csrf_headers(client)
    no_reason = await client.post(f"/invoices/{invoice.id}/void", data={"reason": " "}, headers=headers)
    assert no_reason.status_code == 422 and "请说明作废原因" in no_reason.text
    done = await client.post(f"/invoices/{invoice.id}/void", data={"reason": "首期改为免收"}, headers=headers)
    assert done.status_code in (302, 303)
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.VOID and invoice.outstanding_fen == 0
    totals = await assert_ledger_consistent(db, lic.contract.id)
    assert -totals["licensee_credit"] == 1_000_000
    again = await client.post(f"/invoices/{invoice.id}/void", data={"reason": "再次"}, headers=headers)
    assert again.status_code == 409

    # The next instalment uses the credit; the voided one is never billed again.
    second_due = invoice.due_date + timedelta(days=182)
    await sweep(sessionmaker, settings, on=second_due - timedelta(days=5))
    invoices = await invoices_of(db, lic.contract.id)
    keys = [line.item_key for i in invoices[1:] for line in i.lines]
    assert "instalment:1" not in keys and "instalment:2" in keys
    assert invoices[-1].total_fen == 3_333_333 - 1_000_000
    billed_once = await db.scalar(
        select(func.count()).select_from(InvoiceLine).where(InvoiceLine.item_key == "instalment:1")
    )
    assert billed_once == 1
    await assert_ledger_consistent(db, lic.contract.id)
