"""Billing under concurrency on PostgreSQL: two sweeps at once, the same webhook delivered in
parallel, and both parties confirming one transfer at the same moment."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import func, select

from marketplace.billing.models import Invoice, InvoiceLine, InvoiceStatus, Payment, PaymentMethod, PaymentStatus
from marketplace.billing.stripe_gateway import sign_webhook_payload
from marketplace.billing.sweep import run as sweep
from marketplace.clock import today
from marketplace.licensing.models import PaymentObligation
from tests.billing_factories import INSTALMENTS, LUMP_SUM, assert_ledger_consistent, invoices_of, licence
from tests.factories import api_token, bearer
from tests.integration.postgres_only.test_licensing_concurrency import serving
from tests.stripe_harness import WEBHOOK_SECRET

pytestmark = pytest.mark.postgres_only


async def test_two_sweeps_at_once_issue_each_invoice_exactly_once(db, sessionmaker, settings):
    contracts = [(await licence(db, fee_terms=INSTALMENTS if n % 2 else LUMP_SUM)).contract for n in range(12)]
    results = await asyncio.gather(sweep(sessionmaker, settings), sweep(sessionmaker, settings))
    assert sum(r.invoices for r in results) == 12
    assert (await sweep(sessionmaker, settings)).invoices == 0
    lines = await db.execute(
        select(InvoiceLine.contract_id, InvoiceLine.item_key, func.count()).group_by(
            InvoiceLine.contract_id, InvoiceLine.item_key
        )
    )
    assert all(count == 1 for _, _, count in lines)
    numbers = sorted(await db.scalars(select(Invoice.sequence)))
    assert numbers == list(range(1, 13))
    unbilled = await db.scalar(
        select(func.count())
        .select_from(PaymentObligation)
        .where(PaymentObligation.billed_at.is_(None), PaymentObligation.due_date <= today())
    )
    assert unbilled == 0
    for contract in contracts:
        await assert_ledger_consistent(db, contract.id)


async def test_the_same_webhook_delivered_in_parallel_is_applied_once(db, sessionmaker, settings, localstripe):
    from marketplace.app import create_app
    from marketplace.outbox.services import drain_once

    stripe_settings = localstripe.settings
    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, stripe_settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    payment = Payment(
        contract_id=lic.contract.id,
        invoice_id=invoice.id,
        licensor_organisation_id=invoice.licensor_organisation_id,
        licensee_organisation_id=invoice.licensee_organisation_id,
        method=PaymentMethod.CARD,
        status=PaymentStatus.REQUIRES_PAYMENT,
        amount_fen=invoice.total_fen,
        idempotency_key="card-parallel-webhooks",
        stripe_intent_id="pi_parallel_1",
    )
    db.add(payment)
    await db.commit()
    intent = {
        "id": "pi_parallel_1",
        "object": "payment_intent",
        "amount": invoice.total_fen,
        "amount_received": invoice.total_fen,
        "status": "succeeded",
        "metadata": {},
    }

    def signed(event_id: str) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "type": "payment_intent.succeeded",
                "created": int(time.time()),
                "data": {"object": intent},
            }
        ).encode()
        return body, {"stripe-signature": sign_webhook_payload(body, WEBHOOK_SECRET)}

    deliveries = [signed("evt_same")] * 4 + [signed(f"evt_other_{n}") for n in range(4)]
    async with serving(create_app(stripe_settings)) as client:
        answers = await asyncio.gather(*(client.post("/webhooks/stripe", content=b, headers=h) for b, h in deliveries))
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert all(a.status_code == 200 for a in answers)
    assert outcomes.count("applied") == 1 and outcomes.count("duplicate") == 3 and outcomes.count("stale") == 4
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.PAID and invoice.paid_fen == invoice.total_fen
    await assert_ledger_consistent(db, lic.contract.id)


async def test_a_transfer_confirmed_twice_at_once_counts_once(db, sessionmaker, settings, app):
    from marketplace.outbox.services import drain_once

    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    async with serving(app) as client:
        declared = await client.post(
            "/api/v1/payments",
            json={
                "invoice_id": invoice.id,
                "amount_fen": invoice.total_fen,
                "payer_name": "付款单位",
                "remitted_on": today().isoformat(),
                "reference": "HX-RACE",
                "idempotency_key": "race-confirm-1",
            },
            headers=bearer(await api_token(db, lic.licensee)),
        )
        headers = bearer(await api_token(db, lic.licensor))
        url = f"/api/v1/payments/{declared.json()['id']}/confirm"
        answers = await asyncio.gather(*(client.post(url, headers=headers) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.paid_fen == invoice.total_fen
    await assert_ledger_consistent(db, lic.contract.id)
