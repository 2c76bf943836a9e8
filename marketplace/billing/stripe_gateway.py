"""The Stripe gateway (Stripe 支付网关): the only code that talks to Stripe's API or reads its webhooks.

Billing services call it from outbox handlers and pages; it answers with plain frozen dataclasses,
never Stripe objects, and turns every Stripe failure into one of two errors: :class:`StripeUnavailable`
(try again later *with the same idempotency key*) or :class:`StripeRejected` (Stripe refused the
request; retrying will not help). The SDK's own retries are off because the outbox retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe

from marketplace.settings import Settings

CURRENCY = "cny"
#: How old a webhook's signed timestamp may be (seconds), as Stripe's own libraries default to.
WEBHOOK_TOLERANCE_SECONDS = 300

_T = TypeVar("_T")


class StripeGatewayError(Exception):
    """A Stripe call did not produce a result."""

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class StripeUnavailable(StripeGatewayError):
    """Stripe could not be reached or answered 409/429/5xx: retry later with the same idempotency key."""


class StripeRejected(StripeGatewayError):
    """Stripe refused the request (card declined, bad parameters, wrong key …): do not retry it as is."""


class InvalidWebhook(Exception):
    """A webhook request whose signature is missing, wrong or too old, or whose body is not an event."""


@dataclass(frozen=True)
class Intent:
    """What we keep of a Stripe PaymentIntent."""

    id: str
    status: str
    amount: int
    amount_received: int
    currency: str
    client_secret: str
    metadata: dict[str, str]
    latest_charge_id: str | None
    #: Stripe's message for the last failed attempt (e.g. a declined card), if any.
    last_payment_error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class RefundResult:
    """What we keep of a Stripe Refund."""

    id: str
    status: str
    amount: int


class StripeGateway:
    """Async client for the few Stripe calls billing needs. Close it with :meth:`aclose` (or ``async with``)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.stripe_enabled:
            raise RuntimeError("STRIPE_SECRET_KEY is not set: card payments are disabled")
        self._payment_method_types = list(settings.stripe_payment_method_types)
        self._http = stripe.HTTPXClient(timeout=settings.stripe_timeout_seconds)
        self._client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base},
            max_network_retries=0,
            http_client=self._http,
        )

    async def aclose(self) -> None:
        await self._http.close_async()

    async def __aenter__(self) -> StripeGateway:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def create_payment_intent(
        self, *, amount_fen: int, idempotency_key: str, metadata: Mapping[str, str], description: str
    ) -> Intent:
        if amount_fen <= 0:
            raise ValueError("a PaymentIntent needs a positive amount")
        intent = await _call(
            self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount_fen,
                    "currency": CURRENCY,
                    "payment_method_types": self._payment_method_types,
                    "metadata": dict(metadata),
                    "description": description,
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        return _intent(intent)

    async def retrieve_payment_intent(self, intent_id: str) -> Intent:
        return _intent(await _call(self._client.v1.payment_intents.retrieve_async(intent_id)))

    async def create_refund(
        self, *, intent_id: str, amount_fen: int, idempotency_key: str, metadata: Mapping[str, str]
    ) -> RefundResult:
        if amount_fen <= 0:
            raise ValueError("a refund needs a positive amount")
        refund = await _call(
            self._client.v1.refunds.create_async(
                params={"payment_intent": intent_id, "amount": amount_fen, "metadata": dict(metadata)},
                options={"idempotency_key": idempotency_key},
            )
        )
        return _refund(refund)

    async def retrieve_refund(self, refund_id: str) -> RefundResult:
        return _refund(await _call(self._client.v1.refunds.retrieve_async(refund_id)))


def verify_webhook(payload: bytes, signature_header: str | None, secret: str) -> dict[str, Any]:
    """The event in a webhook request, once its ``Stripe-Signature`` proves Stripe sent it recently."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidWebhook(str(exc).split("\n", 1)[0]) from exc
    if not isinstance(event, dict) or event.get("object") != "event" or not event.get("id") or not event.get("type"):
        raise InvalidWebhook("the body is not a Stripe event")
    return event


def sign_webhook_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``, signed the way Stripe signs webhooks."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{signed_at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={signed_at},v1={digest}"


async def _call(request: Awaitable[_T]) -> _T:
    try:
        return await request
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _translate(exc: stripe.StripeError) -> StripeGatewayError:
    status = exc.http_status
    code = exc.code
    if isinstance(exc, stripe.APIConnectionError) or status is None:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
        return StripeUnavailable(f"Stripe could not be reached ({cause})", code=code, http_status=status)
    message = exc.user_message or f"Stripe answered {status}"
    # 409: the same idempotency key is still being processed; an APIError below 400 is a garbled answer.
    if status in (409, 429) or status >= 500 or (isinstance(exc, stripe.APIError) and status < 400):
        return StripeUnavailable(message, code=code, http_status=status)
    return StripeRejected(message, code=code, http_status=status)


def _id_of(value: Any) -> str | None:
    """An id from a field Stripe sends either as an id or, when expanded, as the object."""
    if value is None or isinstance(value, str):
        return value
    return value["id"]


def _intent(obj: stripe.PaymentIntent) -> Intent:
    data = obj.to_dict()
    error = data.get("last_payment_error")
    return Intent(
        id=data["id"],
        status=data["status"],
        amount=data["amount"],
        amount_received=data.get("amount_received") or 0,
        currency=data["currency"],
        client_secret=data.get("client_secret") or "",
        metadata={str(key): str(value) for key, value in (data.get("metadata") or {}).items()},
        latest_charge_id=_id_of(data.get("latest_charge")),
        last_payment_error=error.get("message") if error else None,
    )


def _refund(obj: stripe.Refund) -> RefundResult:
    return RefundResult(id=obj.id, status=obj.status or "", amount=obj.amount)
