"""Payments against invoices: bank transfers (对公转账) declared by the licensee and confirmed by the
licensor, card and wallet payments through Stripe PaymentIntents, Stripe webhooks, reconciliation,
and refunds on both paths.

Stripe is only ever called by the outbox worker (``stripe.create_intent``, ``stripe.refund``) or by
the reconcile command, never inside a request. Each call carries a deterministic idempotency key
(``payment-{id}``, ``refund-{id}``), so a retry after a timeout or a 500 finds the first result.
Payment states only move forward (:data:`FORWARD`); money is applied once, when a payment first
reaches a received state, with the contract row locked.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.accounts.rules import Principal
from marketplace.audit.services import apply_transition, record
from marketplace.billing import rules
from marketplace.billing.models import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
    StripeEvent,
)
from marketplace.billing.services import (
    UNPAID,
    credit_of,
    get_invoice,
    is_payee_admin,
    lock_contract,
    lock_row,
    post,
    refresh_status,
    store_attachment,
)
from marketplace.billing.stripe_gateway import StripeGateway, StripeRejected
from marketplace.clock import now_utc, today
from marketplace.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from marketplace.files.services import Upload
from marketplace.licensing import services as licensing
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.licensing.rules import CONTRACT_TRANSITIONS
from marketplace.money import format_yuan
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import enqueue, handler
from marketplace.settings import Settings

log = logging.getLogger(__name__)
PAYMENT_ENTITY = "payment"
REFUND_ENTITY = "refund"

#: How far along each payment state is; a state only ever gives way to a later one.
_RANK = {
    PaymentStatus.PENDING: 0,
    PaymentStatus.REQUIRES_PAYMENT: 1,
    PaymentStatus.FAILED: 2,
    PaymentStatus.PROCESSING: 3,
    PaymentStatus.SUCCEEDED: 4,
    PaymentStatus.CANCELED: 4,
    PaymentStatus.DECLARED: 0,
    PaymentStatus.CONFIRMED: 4,
    PaymentStatus.REJECTED: 4,
}
#: A failed card attempt may be retried on the same intent, so ``failed`` can go back to waiting.
_AGAIN = {(PaymentStatus.FAILED, PaymentStatus.REQUIRES_PAYMENT), (PaymentStatus.FAILED, PaymentStatus.PROCESSING)}
_STRIPE_STATUS = {
    "requires_payment_method": PaymentStatus.REQUIRES_PAYMENT,
    "requires_confirmation": PaymentStatus.REQUIRES_PAYMENT,
    "requires_action": PaymentStatus.REQUIRES_PAYMENT,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.PROCESSING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}
_EVENT_STATUS = {
    "payment_intent.succeeded": PaymentStatus.SUCCEEDED,
    "payment_intent.processing": PaymentStatus.PROCESSING,
    "payment_intent.payment_failed": PaymentStatus.FAILED,
    "payment_intent.canceled": PaymentStatus.CANCELED,
    "payment_intent.requires_action": PaymentStatus.REQUIRES_PAYMENT,
}


def is_forward(current: PaymentStatus, new: PaymentStatus) -> bool:
    return (current, new) in _AGAIN or _RANK[new] > _RANK[current]


# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------


async def get_payment(session: AsyncSession, actor: Principal, payment_id: int) -> Payment:
    payment = await session.get(Payment, payment_id)
    if payment is None or not (
        actor.is_platform_admin
        or actor.organisation_id in (payment.licensor_organisation_id, payment.licensee_organisation_id)
    ):
        raise NotFound("付款记录不存在")
    return payment


async def list_payments(
    session: AsyncSession, actor: Principal, *, invoice_id: int | None = None, status: PaymentStatus | None = None
) -> list[Payment]:
    query = select(Payment).order_by(Payment.id.desc()).limit(500)
    if not actor.is_platform_admin:
        query = query.where(
            (Payment.licensee_organisation_id == actor.organisation_id)
            | (Payment.licensor_organisation_id == actor.organisation_id)
        )
    if invoice_id is not None:
        query = query.where(Payment.invoice_id == invoice_id)
    if status is not None:
        query = query.where(Payment.status == status)
    return list(await session.scalars(query))


def _require_payer(actor: Principal, invoice: Invoice) -> None:
    if actor.organisation_id != invoice.licensee_organisation_id:
        raise Forbidden("只有被许可方可以付款")


def _require_payee(actor: Principal, payment: Payment) -> None:
    """Confirming money received is for the licensor's admins or a platform admin."""
    if not is_payee_admin(actor, payment.licensor_organisation_id):
        raise Forbidden("只有许可方管理员或平台管理员可以确认到账或退款")


def _payable(invoice: Invoice) -> None:
    if invoice.status is InvoiceStatus.VOID:
        raise Conflict("该付款通知书已作废")
    if invoice.outstanding_fen <= 0:
        raise Conflict("该付款通知书已付清")


async def _audit(session, payment: Payment, actor, action: str, from_state, reason=None, details=None) -> None:
    await record(
        session,
        entity_type=PAYMENT_ENTITY,
        entity_id=payment.id,
        action=action,
        actor=actor,
        from_state=from_state.value if from_state else None,
        to_state=payment.status.value,
        reason=reason,
        details={"amount_fen": payment.amount_fen, "invoice_id": payment.invoice_id, **(details or {})},
    )


# ---------------------------------------------------------------------------------------------
# Receiving money
# ---------------------------------------------------------------------------------------------


async def _receive(
    session: AsyncSession, contract: LicenceContract, payment: Payment, actor: Principal | None, settings: Settings
) -> None:
    """Apply a received payment to its invoice (the excess becomes credit), post it, activate the
    contract on its first payment and lift a default once nothing is overdue too long."""
    invoice = await session.get(Invoice, payment.invoice_id, populate_existing=True)
    assert invoice is not None
    applied, excess = rules.apply_payment(invoice.outstanding_fen, payment.amount_fen)
    payment.applied_fen, payment.excess_fen = applied, excess
    payment.received_at = now_utc()
    on = today()
    post(
        session,
        contract.id,
        f"payment:{payment.id}",
        rules.payment_received(applied, excess),
        on,
        f"收到付款 {invoice.number}（{payment.method.label}）",
    )
    invoice.paid_fen += applied
    await refresh_status(session, invoice, actor, action="payment_received")
    if contract.status is ContractStatus.AWAITING_PAYMENT:
        await apply_transition(
            session,
            entity=contract,
            entity_type=licensing.ENTITY,
            to_state=ContractStatus.ACTIVE,
            allowed=CONTRACT_TRANSITIONS,
            actor=actor,
            action="activated_by_payment",
            reason=f"收到首笔付款（{invoice.number}）",
        )
        contract.activated_at = now_utc()
    await clear_default_if_settled(session, contract, actor, settings, on=on)
    body = (
        f"合同 {contract.number}：收到 ¥{format_yuan(payment.amount_fen)}（{payment.method.label}），"
        f"付款通知书 {invoice.number} 状态：{invoice.status.label}。"
        + (f"\n多付的 ¥{format_yuan(excess)} 计入账户余额，将抵扣下一期款项。" if excess else "")
        + f"\n详情：/invoices/{invoice.id}\n"
    )
    for organisation in (contract.licensor, contract.licensee):
        await licensing.email_organisation(
            session,
            organisation,
            subject=f"到账通知：{invoice.number} ¥{format_yuan(payment.amount_fen)}",
            body=body,
            key=f"payment:{payment.id}:received",
        )


async def clear_default_if_settled(
    session: AsyncSession, contract: LicenceContract, actor: Principal | None, settings: Settings, *, on: date
) -> None:
    if contract.in_default_since is None:
        return
    oldest = await oldest_unpaid_due(session, contract.id)
    if rules.in_default(oldest, on, settings.default_after_days):
        return
    since = contract.in_default_since
    contract.in_default_since = None
    await record(
        session,
        entity_type=licensing.ENTITY,
        entity_id=contract.id,
        action="default_cleared",
        actor=actor,
        from_state="in_default",
        to_state=contract.status.value,
        details={"in_default_since": since.isoformat()},
    )


async def oldest_unpaid_due(session: AsyncSession, contract_id: int) -> date | None:
    return await session.scalar(
        select(func.min(Invoice.due_date)).where(
            Invoice.contract_id == contract_id,
            Invoice.status.in_(UNPAID),
        )
    )


async def _advance(
    session: AsyncSession,
    payment: Payment,
    new: PaymentStatus,
    actor: Principal | None,
    settings: Settings,
    *,
    action: str,
    reason: str | None = None,
) -> bool:
    """Move a payment forward (never back) and apply the money when it is first received.
    The caller holds the contract lock. Returns whether anything changed."""
    if not is_forward(payment.status, new):
        return False
    before = payment.status
    payment.status = new
    await _audit(session, payment, actor, action, before, reason)
    if new.received and not before.received:
        contract = await session.get(LicenceContract, payment.contract_id)
        assert contract is not None
        await _receive(session, contract, payment, actor, settings)
    return True


# ---------------------------------------------------------------------------------------------
# Bank transfer (对公转账)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferInput:
    amount_fen: int
    payer_name: str
    payer_account: str | None
    remitted_on: date
    reference: str
    idempotency_key: str


async def declare_transfer(
    session: AsyncSession,
    actor: Principal,
    invoice_id: int,
    data: TransferInput,
    *,
    settings: Settings | None = None,
    receipt: Upload | None = None,
) -> tuple[Payment, bool]:
    """The licensee declares a remittance; the licensor confirms it once the money is in."""
    invoice = await get_invoice(session, actor, invoice_id)
    _require_payer(actor, invoice)
    existing = await _by_key(session, actor.organisation_id, data.idempotency_key)
    if existing is not None:
        return existing, False
    contract = await lock_contract(session, invoice.contract_id)
    _payable(invoice)
    if data.remitted_on < invoice.issued_on - date.resolution * 90:
        raise ValidationFailed(
            [FieldError("remitted_on", "汇款日期早于付款通知书开具日期过多，请核对", "out_of_range")]
        )
    payment = Payment(
        contract_id=contract.id,
        invoice_id=invoice.id,
        licensor_organisation_id=invoice.licensor_organisation_id,
        licensee_organisation_id=invoice.licensee_organisation_id,
        method=PaymentMethod.BANK_TRANSFER,
        status=PaymentStatus.DECLARED,
        amount_fen=data.amount_fen,
        idempotency_key=data.idempotency_key,
        created_by_user_id=actor.user_id,
        payer_name=data.payer_name,
        payer_account=data.payer_account,
        remitted_on=data.remitted_on,
        reference=data.reference,
        receipt_file_id=(
            await store_attachment(session, actor, receipt, settings, field="receipt", purpose="transfer_receipt")
            if receipt is not None and settings is not None
            else None
        ),
    )
    session.add(payment)
    await session.flush()
    await _audit(session, payment, actor, "declared", None)
    await licensing.email_organisation(
        session,
        contract.licensor,
        subject=f"待确认到账：{invoice.number} ¥{format_yuan(data.amount_fen)}（对公转账）",
        body=(
            f"{contract.licensee.name} 申报已通过对公转账支付 ¥{format_yuan(data.amount_fen)}。\n"
            f"付款人：{data.payer_name}；汇款日期：{data.remitted_on}；银行流水号：{data.reference}\n"
            f"请核对到账后确认：/payments/{payment.id}\n"
        ),
        key=f"payment:{payment.id}:declared",
    )
    return payment, True


async def _by_key(session: AsyncSession, organisation_id: int, key: str) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.licensee_organisation_id == organisation_id, Payment.idempotency_key == key)
    )


async def decide_transfer(
    session: AsyncSession, actor: Principal, payment_id: int, *, confirm: bool, reason: str | None, settings: Settings
) -> Payment:
    payment = await get_payment(session, actor, payment_id)
    _require_payee(actor, payment)
    if payment.method is not PaymentMethod.BANK_TRANSFER:
        raise Conflict("只有对公转账需要确认到账")
    await lock_row(session, payment)
    if payment.status is not PaymentStatus.DECLARED:
        raise Conflict(f"该付款已处理（{payment.status.label}）")
    if not confirm and not reason:
        raise ValidationFailed([FieldError("reason", "请说明未确认到账的原因", "required")])
    payment.decided_by_user_id = actor.user_id
    payment.decision_reason = reason
    new = PaymentStatus.CONFIRMED if confirm else PaymentStatus.REJECTED
    await _advance(session, payment, new, actor, settings, action="confirmed" if confirm else "rejected", reason=reason)
    if not confirm:
        contract = await session.get(LicenceContract, payment.contract_id)
        assert contract is not None
        await licensing.email_organisation(
            session,
            contract.licensee,
            subject=f"转账未确认：¥{format_yuan(payment.amount_fen)}（流水号 {payment.reference}）",
            body=f"许可方未能确认该笔对公转账到账。原因：{reason}\n详情：/payments/{payment.id}\n",
            key=f"payment:{payment.id}:rejected",
        )
    return payment


# ---------------------------------------------------------------------------------------------
# Card and wallet payments (Stripe)
# ---------------------------------------------------------------------------------------------


async def start_card_payment(session: AsyncSession, actor: Principal, invoice_id: int, settings: Settings) -> Payment:
    """A card payment of what the invoice still owes. An unfinished one for the same amount is reused,
    so reloading the page never creates a second PaymentIntent."""
    if not settings.stripe_enabled:
        raise Conflict("平台未开通在线支付，请使用对公转账")
    invoice = await get_invoice(session, actor, invoice_id)
    _require_payer(actor, invoice)
    contract = await lock_contract(session, invoice.contract_id)
    _payable(invoice)
    open_attempt = await session.scalar(
        select(Payment).where(
            Payment.invoice_id == invoice.id,
            Payment.method == PaymentMethod.CARD,
            Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.REQUIRES_PAYMENT, PaymentStatus.FAILED]),
            Payment.amount_fen == invoice.outstanding_fen,
        )
    )
    if open_attempt is not None:
        return open_attempt
    payment = Payment(
        contract_id=contract.id,
        invoice_id=invoice.id,
        licensor_organisation_id=invoice.licensor_organisation_id,
        licensee_organisation_id=invoice.licensee_organisation_id,
        method=PaymentMethod.CARD,
        status=PaymentStatus.PENDING,
        amount_fen=invoice.outstanding_fen,
        idempotency_key=f"card-{uuid.uuid4().hex}",
        created_by_user_id=actor.user_id,
    )
    session.add(payment)
    await session.flush()
    await _audit(session, payment, actor, "card_started", None)
    await enqueue(
        session,
        kind="stripe.create_intent",
        payload={"payment_id": payment.id},
        dedupe_key=f"stripe:intent:{payment.id}",
    )
    return payment


def intent_key(payment: Payment) -> str:
    """Stripe's idempotency key for the payment's intent: stored with the payment, so every retry sends
    the same one, and random, so two databases sharing a Stripe account never collide."""
    return f"pi-{payment.idempotency_key}"


@handler("stripe.create_intent")
async def _create_intent(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    payment = await session.get(Payment, message.payload["payment_id"])
    if payment is None or payment.stripe_intent_id is not None:
        return
    invoice = await session.get(Invoice, payment.invoice_id)
    assert invoice is not None
    await lock_row(session, payment)
    if payment.stripe_intent_id is not None or payment.status is not PaymentStatus.PENDING:
        return
    try:
        async with StripeGateway(settings) as gateway:
            intent = await gateway.create_payment_intent(
                amount_fen=payment.amount_fen,
                idempotency_key=intent_key(payment),
                metadata={
                    "payment_id": str(payment.id),
                    "payment_key": payment.idempotency_key,
                    "invoice": invoice.number,
                    "contract_id": str(payment.contract_id),
                },
                description=f"专利开放许可使用费 {invoice.number}",
            )
    except StripeRejected as exc:
        payment.failure_message = str(exc)[:300]
        await _advance(session, payment, PaymentStatus.FAILED, None, settings, action="stripe_rejected")
        return
    # StripeUnavailable propagates: the outbox retries later with the same idempotency key.
    payment.stripe_intent_id = intent.id
    payment.stripe_client_secret = intent.client_secret
    await _apply_intent(session, payment, intent.status, intent.amount_received, settings, action="intent_created")


async def _apply_intent(
    session: AsyncSession,
    payment: Payment,
    stripe_status: str,
    amount_received: int,
    settings: Settings,
    *,
    action: str,
) -> bool:
    new = _STRIPE_STATUS.get(stripe_status)
    if new is None:
        return False
    if new is PaymentStatus.SUCCEEDED and amount_received != payment.amount_fen:
        log.error("payment %s: Stripe received %s fen, expected %s", payment.id, amount_received, payment.amount_fen)
        payment.failure_message = f"到账金额 {amount_received} 分与应付 {payment.amount_fen} 分不一致，请人工核对"
        return False
    return await _advance(session, payment, new, None, settings, action=action)


# ---------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------


async def handle_event(session: AsyncSession, event: dict[str, Any], settings: Settings) -> str:
    """Apply one verified Stripe event, at most once. Returns what was done with it."""
    event_id = str(event.get("id") or "")
    event_type = str(event.get("type") or "")
    obj = (event.get("data") or {}).get("object") or {}
    if not event_id:
        return "ignored"
    stored = StripeEvent(
        event_id=event_id,
        event_type=event_type,
        object_id=obj.get("id"),
        outcome="received",
        received_at=now_utc(),
        payload=event,
    )
    try:
        async with session.begin_nested():
            session.add(stored)
            await session.flush()
    except IntegrityError:
        return "duplicate"
    if event_type in _EVENT_STATUS:
        stored.outcome = await _intent_event(session, obj, _EVENT_STATUS[event_type], settings)
    elif event_type in ("charge.refunded", "refund.updated", "refund.created", "charge.refund.updated"):
        stored.outcome = await _refund_event(session, event_type, obj, settings)
    else:
        stored.outcome = "ignored"
    return stored.outcome


async def _intent_event(session: AsyncSession, intent: dict[str, Any], new: PaymentStatus, settings: Settings) -> str:
    payment = await _payment_for_intent(session, intent)
    if payment is None:
        return "not_ours"
    await lock_row(session, payment)
    if payment.stripe_intent_id is None:
        # The webhook beat our own transaction that records the intent: the metadata names the payment.
        payment.stripe_intent_id = intent["id"]
    if new is PaymentStatus.FAILED:
        error = intent.get("last_payment_error") or {}
        payment.failure_message = (error.get("message") or "支付失败")[:300]
    if new is PaymentStatus.SUCCEEDED:
        changed = await _apply_intent(
            session, payment, "succeeded", int(intent.get("amount_received") or 0), settings, action="webhook"
        )
    else:
        changed = await _advance(session, payment, new, None, settings, action="webhook")
    return "applied" if changed else "stale"


async def _payment_for_intent(session: AsyncSession, intent: dict[str, Any]) -> Payment | None:
    intent_id = intent.get("id")
    if not intent_id:
        return None
    payment = await session.scalar(select(Payment).where(Payment.stripe_intent_id == intent_id))
    if payment is not None:
        return payment
    metadata = intent.get("metadata") or {}
    raw_id = metadata.get("payment_id")
    if not raw_id or not str(raw_id).isdigit():
        return None
    payment = await session.get(Payment, int(raw_id))
    if payment is None or payment.method is not PaymentMethod.CARD or payment.stripe_intent_id not in (None, intent_id):
        return None
    if metadata.get("payment_key") != payment.idempotency_key:
        return None  # another database's payment that happens to share the id
    if int(intent.get("amount") or 0) != payment.amount_fen:
        return None
    return payment


async def _refund_event(session: AsyncSession, event_type: str, obj: dict[str, Any], settings: Settings) -> str:
    refund_objects = [obj] if obj.get("object") == "refund" else list(((obj.get("refunds") or {}).get("data")) or [])
    outcome = "not_ours"
    for data in refund_objects:
        refund = await session.scalar(select(Refund).where(Refund.stripe_refund_id == data.get("id")))
        if refund is None:
            continue
        await lock_row(session, refund)
        outcome = "applied" if await _settle_refund(session, refund, data.get("status"), None) else "stale"
    return outcome


# ---------------------------------------------------------------------------------------------
# Reconciliation (a webhook that never came)
# ---------------------------------------------------------------------------------------------


async def reconcile(sessionmaker: async_sessionmaker, settings: Settings) -> dict[str, int]:
    """Re-read every unfinished Stripe payment and refund from Stripe and repair our state."""
    async with StripeGateway(settings) as gateway:
        return await _reconcile(sessionmaker, settings, gateway)


async def _reconcile(sessionmaker: async_sessionmaker, settings: Settings, gateway: StripeGateway) -> dict[str, int]:
    counts = {"checked": 0, "repaired": 0, "requeued": 0}
    async with sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(Payment.id).where(
                    Payment.method == PaymentMethod.CARD,
                    Payment.status.in_(
                        [
                            PaymentStatus.PENDING,
                            PaymentStatus.REQUIRES_PAYMENT,
                            PaymentStatus.PROCESSING,
                            PaymentStatus.FAILED,
                        ]
                    ),
                )
            )
        )
    for payment_id in ids:
        async with sessionmaker() as session, session.begin():
            payment = await session.get(Payment, payment_id)
            assert payment is not None
            counts["checked"] += 1
            if payment.stripe_intent_id is None:
                await enqueue(
                    session,
                    kind="stripe.create_intent",
                    payload={"payment_id": payment.id},
                    dedupe_key=f"stripe:intent:{payment.id}:reconcile:{now_utc():%Y%m%d%H}",
                )
                counts["requeued"] += 1
                continue
            intent = await gateway.retrieve_payment_intent(payment.stripe_intent_id)
            await lock_row(session, payment)
            if await _apply_intent(
                session, payment, intent.status, intent.amount_received, settings, action="reconciled"
            ):
                counts["repaired"] += 1
    async with sessionmaker() as session:
        refund_ids = list(
            await session.scalars(
                select(Refund.id).where(Refund.status == RefundStatus.PENDING, Refund.stripe_refund_id.is_not(None))
            )
        )
    for refund_id in refund_ids:
        async with sessionmaker() as session, session.begin():
            refund = await session.get(Refund, refund_id)
            assert refund is not None and refund.stripe_refund_id is not None
            result = await gateway.retrieve_refund(refund.stripe_refund_id)
            await lock_row(session, refund)
            if await _settle_refund(session, refund, result.status, None):
                counts["repaired"] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Refunds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundInput:
    amount_fen: int
    reason: str
    reference: str | None


async def request_refund(
    session: AsyncSession, actor: Principal, payment_id: int, data: RefundInput, settings: Settings
) -> Refund:
    """Give money back: by Stripe (the worker calls Stripe) or, for a bank transfer, recorded as
    remitted back by the licensor with the bank reference."""
    payment = await get_payment(session, actor, payment_id)
    _require_payee(actor, payment)
    await lock_row(session, payment)
    if not payment.status.received:
        raise Conflict("只有已到账的付款可以退款")
    refundable = await refundable_fen(session, payment)
    errors = []
    if data.amount_fen <= 0 or data.amount_fen > refundable:
        errors.append(
            FieldError("amount", f"退款金额应大于0且不超过可退金额¥{format_yuan(refundable)}", "out_of_range")
        )
    if not data.reason:
        errors.append(FieldError("reason", "请说明退款原因", "required"))
    if payment.method is PaymentMethod.BANK_TRANSFER and not data.reference:
        errors.append(FieldError("reference", "请填写退回汇款的银行流水号", "required"))
    if errors:
        raise ValidationFailed(errors)
    refund = Refund(
        payment_id=payment.id,
        contract_id=payment.contract_id,
        status=RefundStatus.PENDING,
        amount_fen=data.amount_fen,
        reason=data.reason,
        reference=data.reference,
        requested_by_user_id=actor.user_id,
    )
    session.add(refund)
    await session.flush()
    await record(
        session,
        entity_type=REFUND_ENTITY,
        entity_id=refund.id,
        action="requested",
        actor=actor,
        to_state=refund.status.value,
        reason=data.reason,
        details={"payment_id": payment.id, "amount_fen": data.amount_fen},
    )
    if payment.method is PaymentMethod.BANK_TRANSFER:
        await _settle_refund(session, refund, "succeeded", actor)
    else:
        await enqueue(
            session, kind="stripe.refund", payload={"refund_id": refund.id}, dedupe_key=f"stripe:refund:{refund.id}"
        )
    return refund


async def refundable_fen(session: AsyncSession, payment: Payment) -> int:
    """What may still be given back: the payment less what was refunded or is being refunded."""
    pending = await session.scalar(
        select(func.coalesce(func.sum(Refund.amount_fen), 0)).where(
            Refund.payment_id == payment.id, Refund.status == RefundStatus.PENDING
        )
    )
    return payment.amount_fen - payment.refunded_fen - int(pending or 0)


@handler("stripe.refund")
async def _stripe_refund(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    refund = await session.get(Refund, message.payload["refund_id"])
    if refund is None or refund.stripe_refund_id is not None:
        return
    payment = await session.get(Payment, refund.payment_id)
    assert payment is not None and payment.stripe_intent_id is not None
    await lock_row(session, refund)
    if refund.stripe_refund_id is not None or refund.status is not RefundStatus.PENDING:
        return
    try:
        async with StripeGateway(settings) as gateway:
            result = await gateway.create_refund(
                intent_id=payment.stripe_intent_id,
                amount_fen=refund.amount_fen,
                idempotency_key=f"re-{payment.idempotency_key}-{refund.id}",
                metadata={"refund_id": str(refund.id), "payment_id": str(payment.id)},
            )
    except StripeRejected as exc:
        refund.failure_message = str(exc)[:300]
        await _settle_refund(session, refund, "failed", None)
        return
    refund.stripe_refund_id = result.id
    await _settle_refund(session, refund, result.status, None)


async def _settle_refund(session: AsyncSession, refund: Refund, stripe_status: str | None, actor) -> bool:
    """Finish a refund once: money back comes out of the licensee's credit first, then reopens the invoice."""
    if refund.status is not RefundStatus.PENDING:
        return False
    if stripe_status in ("failed", "canceled"):
        refund.status = RefundStatus.FAILED
    elif stripe_status == "succeeded":
        refund.status = RefundStatus.SUCCEEDED
    else:
        return False
    refund.completed_at = now_utc()
    await record(
        session,
        entity_type=REFUND_ENTITY,
        entity_id=refund.id,
        action="completed",
        actor=actor,
        from_state=RefundStatus.PENDING.value,
        to_state=refund.status.value,
        details={"amount_fen": refund.amount_fen},
    )
    if refund.status is not RefundStatus.SUCCEEDED:
        return True
    payment = await session.get(Payment, refund.payment_id)
    assert payment is not None
    payment.refunded_fen += refund.amount_fen
    from_credit = min(refund.amount_fen, await credit_of(session, refund.contract_id))
    from_invoice = refund.amount_fen - from_credit
    post(
        session,
        refund.contract_id,
        f"refund:{refund.id}",
        rules.refund(refund.amount_fen, from_credit),
        today(),
        f"退款（付款 #{payment.id}）",
    )
    if from_invoice:
        invoice = await session.get(Invoice, payment.invoice_id)
        assert invoice is not None
        invoice.paid_fen -= from_invoice
        await refresh_status(session, invoice, actor, action="refunded", refund=True)
    contract = await session.get(LicenceContract, refund.contract_id)
    assert contract is not None
    await licensing.email_organisation(
        session,
        contract.licensee,
        subject=f"退款完成：¥{format_yuan(refund.amount_fen)}（合同 {contract.number}）",
        body=f"退款原因：{refund.reason}\n" + (f"银行流水号：{refund.reference}\n" if refund.reference else ""),
        key=f"refund:{refund.id}:done",
    )
    return True


async def attach_receipt(
    session: AsyncSession, actor: Principal, payment_id: int, upload: Upload, settings: Settings
) -> Payment:
    """The licensee adds the bank receipt (回单, PDF) to a transfer it declared, while it awaits confirmation."""
    payment = await get_payment(session, actor, payment_id)
    if actor.organisation_id != payment.licensee_organisation_id or payment.method is not PaymentMethod.BANK_TRANSFER:
        raise Forbidden("只有申报该笔转账的被许可方可以上传回单")
    if payment.status is not PaymentStatus.DECLARED or payment.receipt_file_id is not None:
        raise Conflict("该笔转账已处理或已有回单")
    payment.receipt_file_id = await store_attachment(
        session, actor, upload, settings, field="receipt", purpose="transfer_receipt"
    )
    await _audit(session, payment, actor, "receipt_added", payment.status, details={"file_id": payment.receipt_file_id})
    return payment
