"""The Stripe gateway (Stripe 支付网关) against localstripe and the fault-injecting proxy in front of it.

Nothing here touches the database. Each test tags what it creates with its own marker, so the tests
need no reset and can count what exists upstream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from marketplace.billing.stripe_gateway import (
    InvalidWebhook,
    StripeGateway,
    StripeRejected,
    StripeUnavailable,
    sign_webhook_payload,
    verify_webhook,
)
from marketplace.settings import load_settings
from tests.stripe_harness import DECLINED_CARD, WEBHOOK_SECRET


@pytest.fixture(autouse=True)
def _no_leftover_faults(localstripe) -> Iterator[None]:
    yield
    localstripe.clear_faults()


@pytest.fixture
async def gateway(localstripe) -> AsyncIterator[StripeGateway]:
    async with StripeGateway(localstripe.settings) as gateway:
        yield gateway


@pytest.fixture
def marker() -> str:
    return uuid.uuid4().hex


async def _intent(gateway: StripeGateway, marker: str, amount_fen: int = 12_345, key: str = "create"):
    return await gateway.create_payment_intent(
        amount_fen=amount_fen,
        idempotency_key=f"{marker}:{key}",
        metadata={"test": marker, "invoice_number": "INV2025000123"},
        description="付款通知书 INV2025000123",
    )


async def test_a_payment_intent_is_created_in_fen_and_cny_with_its_metadata(gateway, localstripe, marker):
    intent = await _intent(gateway, marker, amount_fen=12_345)

    assert intent.id.startswith("pi_") and intent.client_secret.startswith(f"{intent.id}_secret_")
    assert (intent.amount, intent.currency, intent.status) == (12_345, "cny", "requires_payment_method")
    assert intent.metadata == {"test": marker, "invoice_number": "INV2025000123"}
    assert (intent.amount_received, intent.latest_charge_id, intent.succeeded) == (0, None, False)
    [upstream] = localstripe.payment_intents(test=marker)
    assert upstream["description"] == "付款通知书 INV2025000123"
    assert upstream["payment_method_types"] == ["card"]
    assert await gateway.retrieve_payment_intent(intent.id) == intent


async def test_the_same_idempotency_key_gives_back_the_same_intent(gateway, localstripe, marker):
    first = await _intent(gateway, marker)
    again = await _intent(gateway, marker)
    other = await _intent(gateway, marker, key="second-invoice")

    assert again == first and other.id != first.id
    assert len(localstripe.payment_intents(test=marker)) == 2
    outcomes = [r.outcome for r in localstripe.requests if r.idempotency_key == f"{marker}:create"]
    assert outcomes == ["forwarded", "replayed"]

    with pytest.raises(StripeRejected) as reused:
        await _intent(gateway, marker, amount_fen=99)
    assert reused.value.http_status == 400 and "same parameters" in reused.value.message
    assert len(localstripe.payment_intents(test=marker)) == 2


async def test_a_good_card_pays_the_whole_amount(gateway, localstripe, marker):
    intent = await _intent(gateway, marker, amount_fen=50_000)

    assert localstripe.confirm_with_card(intent.id)["status"] == "succeeded"
    paid = await gateway.retrieve_payment_intent(intent.id)
    assert paid.succeeded and paid.amount_received == 50_000
    assert paid.latest_charge_id is not None and paid.latest_charge_id.startswith("ch_")
    assert paid.last_payment_error is None


async def test_a_declined_card_leaves_the_intent_unpaid(gateway, localstripe, marker):
    intent = await _intent(gateway, marker)

    localstripe.confirm_with_card(intent.id, DECLINED_CARD)
    declined = await gateway.retrieve_payment_intent(intent.id)
    assert not declined.succeeded and declined.status == "requires_payment_method"
    assert declined.amount_received == 0
    assert declined.last_payment_error == "Your card was declined."


async def test_a_payment_is_refunded_in_part_then_in_full(gateway, localstripe, marker):
    intent = await _intent(gateway, marker, amount_fen=10_000)
    localstripe.confirm_with_card(intent.id)

    part = await gateway.create_refund(
        intent_id=intent.id, amount_fen=2_500, idempotency_key=f"{marker}:refund-1", metadata={"test": marker}
    )
    assert part.id.startswith("re_") and (part.status, part.amount) == ("succeeded", 2_500)
    assert await gateway.retrieve_refund(part.id) == part
    replayed = await gateway.create_refund(
        intent_id=intent.id, amount_fen=2_500, idempotency_key=f"{marker}:refund-1", metadata={"test": marker}
    )
    assert replayed == part

    rest = await gateway.create_refund(
        intent_id=intent.id, amount_fen=7_500, idempotency_key=f"{marker}:refund-2", metadata={"test": marker}
    )
    assert (rest.status, rest.amount) == ("succeeded", 7_500) and rest.id != part.id

    with pytest.raises(StripeRejected) as nothing_left:
        await gateway.create_refund(
            intent_id=intent.id, amount_fen=1, idempotency_key=f"{marker}:refund-3", metadata={"test": marker}
        )
    assert (nothing_left.value.code, nothing_left.value.http_status) == ("charge_already_refunded", 400)


async def test_refunding_more_than_was_paid_or_an_unpaid_intent_is_rejected(gateway, localstripe, marker):
    paid = await _intent(gateway, marker, amount_fen=1_000)
    localstripe.confirm_with_card(paid.id)
    with pytest.raises(StripeRejected) as too_much:
        await gateway.create_refund(intent_id=paid.id, amount_fen=1_001, idempotency_key=f"{marker}:r1", metadata={})
    assert too_much.value.code == "amount_too_large"

    unpaid = await _intent(gateway, marker, key="unpaid")
    localstripe.confirm_with_card(unpaid.id, DECLINED_CARD)
    with pytest.raises(StripeRejected, match="Cannot refund a failed payment"):
        await gateway.create_refund(intent_id=unpaid.id, amount_fen=100, idempotency_key=f"{marker}:r2", metadata={})

    with pytest.raises(StripeRejected) as missing:
        await gateway.retrieve_payment_intent("pi_doesnotexist")
    assert missing.value.http_status == 404


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, StripeUnavailable),
        (502, StripeUnavailable),
        (503, StripeUnavailable),
        (429, StripeUnavailable),
        (409, StripeUnavailable),
        (400, StripeRejected),
        (401, StripeRejected),
        (402, StripeRejected),
        (403, StripeRejected),
        (404, StripeRejected),
    ],
)
async def test_stripe_answers_map_to_retry_later_or_give_up(gateway, localstripe, marker, status, error):
    localstripe.fail_next(status=status)

    with pytest.raises(error) as failed:
        await _intent(gateway, marker)
    assert failed.value.http_status == status
    assert localstripe.payment_intents(test=marker) == []


async def test_after_a_500_the_retry_with_the_same_key_creates_the_intent_once(gateway, localstripe, marker):
    localstripe.fail_next(status=500)
    with pytest.raises(StripeUnavailable):
        await _intent(gateway, marker)
    # The SDK does not retry on its own: the outbox does, later.
    assert [r.outcome for r in localstripe.requests if r.idempotency_key == f"{marker}:create"] == ["injected_error"]

    intent = await _intent(gateway, marker)
    assert [i["id"] for i in localstripe.payment_intents(test=marker)] == [intent.id]


async def test_a_timeout_after_stripe_acted_is_retried_into_the_same_intent(localstripe, marker):
    impatient = dataclasses.replace(localstripe.settings, stripe_timeout_seconds=0.3)
    localstripe.delay_next(seconds=1.0)
    async with StripeGateway(impatient) as gateway:
        with pytest.raises(StripeUnavailable, match="ReadTimeout"):
            await _intent(gateway, marker)
        [created] = localstripe.payment_intents(test=marker)

        retried = await _intent(gateway, marker)

    assert retried.id == created["id"]
    assert [i["id"] for i in localstripe.payment_intents(test=marker)] == [created["id"]]
    outcomes = [r.outcome for r in localstripe.requests if r.idempotency_key == f"{marker}:create"]
    assert outcomes == ["forwarded", "replayed"]


async def test_an_unreachable_stripe_is_unavailable(localstripe, marker):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    nowhere = dataclasses.replace(localstripe.settings, stripe_api_base=f"http://127.0.0.1:{closed_port}")
    async with StripeGateway(nowhere) as gateway:
        with pytest.raises(StripeUnavailable, match="ConnectError") as failed:
            await _intent(gateway, marker)
    assert failed.value.http_status is None


def test_card_payments_are_off_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    unconfigured = load_settings()
    assert not unconfigured.stripe_enabled
    with pytest.raises(RuntimeError, match="STRIPE_SECRET_KEY"):
        StripeGateway(unconfigured)

    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_x")
    monkeypatch.setenv("STRIPE_PAYMENT_METHOD_TYPES", "card, alipay，wechat_pay")
    configured = load_settings()
    assert configured.stripe_enabled
    assert configured.stripe_payment_method_types == ("card", "alipay", "wechat_pay")
    assert (configured.stripe_api_base, configured.stripe_timeout_seconds) == ("https://api.stripe.com", 10.0)


# -- webhooks ---------------------------------------------------------------------------------------

EVENT = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {}}).encode()


def test_a_webhook_signed_with_our_secret_is_accepted():
    event = verify_webhook(EVENT, sign_webhook_payload(EVENT, WEBHOOK_SECRET), WEBHOOK_SECRET)
    assert (event["id"], event["type"]) == ("evt_1", "payment_intent.succeeded")


@pytest.mark.parametrize(
    ("body", "header"),
    [
        pytest.param(EVENT.replace(b"evt_1", b"evt_2"), sign_webhook_payload(EVENT, WEBHOOK_SECRET), id="tampered"),
        pytest.param(EVENT, sign_webhook_payload(EVENT, "whsec_someone_else"), id="wrong-secret"),
        pytest.param(EVENT, sign_webhook_payload(EVENT, WEBHOOK_SECRET, int(time.time()) - 301), id="stale"),
        pytest.param(EVENT, "", id="no-signature"),
        pytest.param(EVENT, "v1=abc", id="no-timestamp"),
        pytest.param(b'{"hello": 1}', sign_webhook_payload(b'{"hello": 1}', WEBHOOK_SECRET), id="not-an-event"),
        pytest.param(b"\xff\xfe", sign_webhook_payload(b"\xff\xfe", WEBHOOK_SECRET), id="not-utf8"),
    ],
)
def test_a_webhook_that_stripe_did_not_just_sign_is_refused(body, header):
    with pytest.raises(InvalidWebhook):
        verify_webhook(body, header, WEBHOOK_SECRET)


def test_a_webhook_within_five_minutes_is_accepted():
    recent = sign_webhook_payload(EVENT, WEBHOOK_SECRET, int(time.time()) - 290)
    assert verify_webhook(EVENT, recent, WEBHOOK_SECRET)["id"] == "evt_1"


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.received: queue.Queue[tuple[bytes, str]] = queue.Queue()


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.put((body, self.headers.get("Stripe-Signature", "")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_localstripe_delivers_a_signed_succeeded_event_that_verifies(gateway, localstripe, marker):
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    localstripe.register_webhook(f"http://127.0.0.1:{receiver.server_port}/stripe/webhook", WEBHOOK_SECRET)
    try:
        intent = await _intent(gateway, marker, amount_fen=8_800)
        localstripe.confirm_with_card(intent.id)
        deadline = time.monotonic() + 10
        while True:
            wait = max(deadline - time.monotonic(), 0.01)
            body, signature = await asyncio.to_thread(receiver.received.get, timeout=wait)
            event = verify_webhook(body, signature, WEBHOOK_SECRET)
            if event["data"]["object"]["id"] == intent.id and event["type"] == "payment_intent.succeeded":
                break
    finally:
        localstripe.forget_webhooks()
        receiver.shutdown()
        receiver.server_close()

    paid = event["data"]["object"]
    assert (paid["status"], paid["amount_received"], paid["metadata"]["test"]) == ("succeeded", 8_800, marker)
    with pytest.raises(InvalidWebhook):
        verify_webhook(body, signature, "whsec_someone_else")
