"""Card payments through Stripe (localstripe on loopback): PaymentIntents created by the worker with
stable idempotency keys, signed webhooks applied once and only forward, reconciliation, refunds, and
the faults (Stripe 500 or timeout, a webhook before our own commit, the worker dying mid-batch)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select, update

from marketplace.billing.models import InvoiceStatus, Payment, PaymentStatus, Refund, RefundStatus, StripeEvent
from marketplace.billing.payments import reconcile
from marketplace.billing.stripe_gateway import StripeGateway, sign_webhook_payload
from marketplace.clock import now_utc
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import drain_once
from tests.billing_factories import LUMP_SUM, assert_ledger_consistent, invoices_of, licence
from tests.factories import api_token, bearer, csrf_headers, login
from tests.stripe_harness import DECLINED_CARD, WEBHOOK_SECRET


@pytest.fixture
def stripe_settings(localstripe):
    localstripe.clear_faults()
    yield localstripe.settings
    localstripe.clear_faults()


@pytest.fixture
async def stripe_client(stripe_settings, engine):
    from litestar.testing import AsyncTestClient

    from marketplace.app import create_app

    async with AsyncTestClient(app=create_app(stripe_settings), base_url="http://testserver.local") as client:
        client.follow_redirects = False
        yield client


async def _deliver(client, event_type: str, intent: dict, event_id: str | None = None):
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": intent},
    }
    body = json.dumps(event).encode()
    header = sign_webhook_payload(body, WEBHOOK_SECRET)
    return await client.post(
        "/webhooks/stripe", content=body, headers={"stripe-signature": header, "content-type": "application/json"}
    )


async def _card_payment(db, client, sessionmaker, settings, lic) -> Payment:
    [invoice] = await invoices_of(db, lic.contract.id)
    token = await api_token(db, lic.licensee)
    started = await client.post(f"/api/v1/invoices/{invoice.id}/card-payment", headers=bearer(token))
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "pending" and started.json()["client_secret"] is None
    await drain_once(sessionmaker, settings)
    return await db.get(Payment, started.json()["id"], populate_existing=True)


async def _billed_licence(db, sessionmaker, settings):
    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    return lic


async def test_card_payment_through_stripe_activates_the_licence_once(
    stripe_client, db, sessionmaker, stripe_settings, localstripe
):
    lic = await _billed_licence(db, sessionmaker, stripe_settings)
    payment = await _card_payment(db, stripe_client, sessionmaker, stripe_settings, lic)
    assert payment.status is PaymentStatus.REQUIRES_PAYMENT and payment.stripe_intent_id.startswith("pi_")
    [intent] = localstripe.payment_intents(payment_key=payment.idempotency_key)
    assert (intent["amount"], intent["currency"]) == (5_000_000, "cny")

    # The licensee's payment page loads Stripe.js from the configured URL and carries the client secret.
    await login(stripe_client, lic.licensee)
    page = await stripe_client.get(f"/payments/{payment.id}")
    assert stripe_settings.stripe_js_url in page.text and payment.stripe_client_secret in page.text
    # Reloading "pay" resumes the same attempt instead of creating another intent.
    again = await stripe_client.post(
        f"/invoices/{payment.invoice_id}/card-payment", headers=await csrf_headers(stripe_client)
    )
    assert again.headers["location"] == f"/payments/{payment.id}"

    paid = localstripe.confirm_with_card(payment.stripe_intent_id)
    assert paid["status"] == "succeeded"
    first = await _deliver(stripe_client, "payment_intent.succeeded", paid, "evt_success_1")
    assert first.status_code == 200 and first.json()["outcome"] == "applied"
    duplicate = await _deliver(stripe_client, "payment_intent.succeeded", paid, "evt_success_1")
    assert duplicate.json()["outcome"] == "duplicate"
    late = await _deliver(stripe_client, "payment_intent.processing", {**paid, "status": "processing"})
    assert late.json()["outcome"] == "stale"  # an older state arriving late never moves it back

    payment = await db.get(Payment, payment.id, populate_existing=True)
    assert payment.status is PaymentStatus.SUCCEEDED and payment.applied_fen == 5_000_000
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.PAID
    contract = await db.get(LicenceContract, lic.contract.id, populate_existing=True)
    assert contract.status is ContractStatus.ACTIVE
    assert await db.scalar(select(StripeEvent).where(StripeEvent.event_id == "evt_success_1")) is not None
    await assert_ledger_consistent(db, lic.contract.id)


async def test_webhooks_with_bad_signatures_or_for_unknown_payments_change_nothing(
    stripe_client, db, sessionmaker, stripe_settings
):
    lic = await _billed_licence(db, sessionmaker, stripe_settings)
    intent = {
        "id": "pi_not_ours",
        "object": "payment_intent",
        "amount": 5_000_000,
        "status": "succeeded",
        "amount_received": 5_000_000,
        "metadata": {"payment_id": "1", "payment_key": "someone-else"},
    }
    body = json.dumps(
        {"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded", "data": {"object": intent}}
    ).encode()
    forged = await stripe_client.post(
        "/webhooks/stripe", content=body, headers={"stripe-signature": sign_webhook_payload(body, "whsec_wrong")}
    )
    assert forged.status_code == 400
    assert await db.scalar(select(StripeEvent)) is None
    unknown = await _deliver(stripe_client, "payment_intent.succeeded", intent)
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "not_ours"
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.paid_fen == 0 and invoice.status is InvoiceStatus.OPEN


async def test_stripe_500_then_timeout_still_creates_exactly_one_intent(
    stripe_client, db, sessionmaker, stripe_settings, localstripe
):
    lic = await _billed_licence(db, sessionmaker, stripe_settings)
    localstripe.fail_next(1, status=500)
    payment = await _card_payment(db, stripe_client, sessionmaker, stripe_settings, lic)
    assert payment.status is PaymentStatus.PENDING and payment.stripe_intent_id is None
    message = await db.scalar(select(OutboxMessage).where(OutboxMessage.kind == "stripe.create_intent"))
    assert message.attempts == 1 and "StripeUnavailable" in message.last_error

    # The retry times out after Stripe created the intent (the answer is lost) …
    localstripe.delay_next(1, seconds=stripe_settings.stripe_timeout_seconds + 1)
    await db.execute(update(OutboxMessage).values(available_at=now_utc()))
    await db.commit()
    await drain_once(sessionmaker, stripe_settings)
    payment = await db.get(Payment, payment.id, populate_existing=True)
    assert payment.stripe_intent_id is None
    # … and the next retry, with the same idempotency key, gets that same intent back.
    await db.execute(update(OutboxMessage).values(available_at=now_utc()))
    await db.commit()
    await drain_once(sessionmaker, stripe_settings)
    payment = await db.get(Payment, payment.id, populate_existing=True)
    intents = localstripe.payment_intents(payment_key=payment.idempotency_key)
    assert len(intents) == 1 and payment.stripe_intent_id == intents[0]["id"]
    assert payment.status is PaymentStatus.REQUIRES_PAYMENT


async def test_webhook_before_our_commit_and_reconcile_without_webhook(
    stripe_client, db, sessionmaker, stripe_settings, localstripe
):
    lic = await _billed_licence(db, sessionmaker, stripe_settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    token = await api_token(db, lic.licensee)
    started = await stripe_client.post(f"/api/v1/invoices/{invoice.id}/card-payment", headers=bearer(token))
    payment = await db.get(Payment, started.json()["id"])
    # Stripe has the intent and the customer paid, but the worker's transaction recording it never
    # committed (killed mid-batch): only the metadata links the webhook to our payment.
    async with StripeGateway(stripe_settings) as gateway:
        intent = await gateway.create_payment_intent(
            amount_fen=payment.amount_fen,
            idempotency_key=f"pi-{payment.idempotency_key}",
            metadata={"payment_id": str(payment.id), "payment_key": payment.idempotency_key},
            description="test",
        )
    paid = localstripe.confirm_with_card(intent.id)
    applied = await _deliver(stripe_client, "payment_intent.succeeded", paid)
    assert applied.json()["outcome"] == "applied"
    # The restarted worker then runs the job again: same key, same intent, nothing applied twice.
    await drain_once(sessionmaker, stripe_settings)
    payment = await db.get(Payment, payment.id, populate_existing=True)
    assert payment.stripe_intent_id == intent.id and payment.status is PaymentStatus.SUCCEEDED
    assert len(localstripe.payment_intents(payment_key=payment.idempotency_key)) == 1
    await assert_ledger_consistent(db, lic.contract.id)

    # A second licence: paid at Stripe, the webhook never arrives; reconcile repairs it.
    other = await _billed_licence(db, sessionmaker, stripe_settings)
    payment2 = await _card_payment(db, stripe_client, sessionmaker, stripe_settings, other)
    localstripe.confirm_with_card(payment2.stripe_intent_id)
    counts = await reconcile(sessionmaker, stripe_settings)
    assert counts["repaired"] == 1
    payment2 = await db.get(Payment, payment2.id, populate_existing=True)
    assert payment2.status is PaymentStatus.SUCCEEDED
    assert (await reconcile(sessionmaker, stripe_settings))["repaired"] == 0
    await assert_ledger_consistent(db, other.contract.id)


async def _pay_for_real(db, client, sessionmaker, settings, localstripe):
    lic = await _billed_licence(db, sessionmaker, settings)
    payment = await _card_payment(db, client, sessionmaker, settings, lic)
    paid = localstripe.confirm_with_card(payment.stripe_intent_id)
    assert (await _deliver(client, "payment_intent.succeeded", paid)).json()["outcome"] == "applied"
    return await db.get(Payment, payment.id, populate_existing=True), lic


async def test_declined_card_can_be_retried_and_refunds_go_back_through_stripe(
    stripe_client, db, sessionmaker, stripe_settings, localstripe
):
    lic = await _billed_licence(db, sessionmaker, stripe_settings)
    payment = await _card_payment(db, stripe_client, sessionmaker, stripe_settings, lic)
    declined = localstripe.confirm_with_card(payment.stripe_intent_id, DECLINED_CARD)
    failed = await _deliver(stripe_client, "payment_intent.payment_failed", declined)
    assert failed.json()["outcome"] == "applied"
    payment = await db.get(Payment, payment.id, populate_existing=True)
    assert payment.status is PaymentStatus.FAILED and payment.failure_message
    # Stripe lets the customer try another card on the same intent (localstripe cannot re-confirm a
    # declined intent, so the success arrives as Stripe would send it).
    [intent] = localstripe.payment_intents(payment_key=payment.idempotency_key)
    paid = {**intent, "status": "succeeded", "amount_received": intent["amount"], "last_payment_error": None}
    assert (await _deliver(stripe_client, "payment_intent.succeeded", paid)).json()["outcome"] == "applied"
    payment = await db.get(Payment, payment.id, populate_existing=True)
    assert payment.status is PaymentStatus.SUCCEEDED
    # The refund below needs a real charge at localstripe: pay this intent's twin for real.
    payment = await _pay_for_real(db, stripe_client, sessionmaker, stripe_settings, localstripe)
    lic = payment[1]
    payment = payment[0]

    licensee_token = await api_token(db, lic.licensee)
    refused = await stripe_client.post(
        f"/api/v1/payments/{payment.id}/refunds",
        json={"amount_fen": 100, "reason": "x"},
        headers=bearer(licensee_token),
    )
    assert refused.status_code == 403
    token = await api_token(db, lic.licensor)
    too_much = await stripe_client.post(
        f"/api/v1/payments/{payment.id}/refunds",
        json={"amount_fen": 5_000_001, "reason": "多收"},
        headers=bearer(token),
    )
    assert too_much.status_code == 422
    refund = await stripe_client.post(
        f"/api/v1/payments/{payment.id}/refunds",
        json={"amount_fen": 1_000_000, "reason": "双方协商减免部分许可费"},
        headers=bearer(token),
    )
    assert refund.status_code == 201 and refund.json()["status"] == "pending"
    await drain_once(sessionmaker, stripe_settings)
    refund_row = await db.scalar(select(Refund).execution_options(populate_existing=True))
    assert refund_row.status is RefundStatus.SUCCEEDED and refund_row.stripe_refund_id.startswith("re_")
    payment = await db.get(Payment, payment.id, populate_existing=True)
    assert payment.refunded_fen == 1_000_000
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.paid_fen == 4_000_000 and invoice.status is InvoiceStatus.PARTIALLY_PAID
    totals = await assert_ledger_consistent(db, lic.contract.id)
    assert totals["cash"] == 4_000_000
