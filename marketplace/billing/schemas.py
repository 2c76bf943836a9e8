"""Request and response shapes of the billing API (``/api/v1/invoices``, ``/api/v1/royalty-reports``,
``/api/v1/payments``). Amounts are integer fen."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from marketplace.billing.models import Invoice, InvoiceLine, Payment, Refund, RoyaltyReport


class InvoiceLineOut(msgspec.Struct):
    line_no: int
    kind: str
    item_key: str | None
    description: str
    amount_fen: int
    royalty_report_id: int | None

    @classmethod
    def of(cls, line: InvoiceLine) -> InvoiceLineOut:
        return cls(
            line.line_no, line.kind.value, line.item_key, line.description, line.amount_fen, line.royalty_report_id
        )


class InvoiceOut(msgspec.Struct):
    id: int
    number: str
    contract_id: int
    contract_number: str
    status: str
    status_label: str
    issued_on: date
    due_date: date
    total_fen: int
    paid_fen: int
    outstanding_fen: int
    lines: list[InvoiceLineOut]
    licensor: str
    licensee: str

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceOut:
        snap = invoice.snapshot
        return cls(
            id=invoice.id,
            number=invoice.number,
            contract_id=invoice.contract_id,
            contract_number=snap.get("contract_number", ""),
            status=invoice.status.value,
            status_label=invoice.status.label,
            issued_on=invoice.issued_on,
            due_date=invoice.due_date,
            total_fen=invoice.total_fen,
            paid_fen=invoice.paid_fen,
            outstanding_fen=invoice.outstanding_fen,
            lines=[InvoiceLineOut.of(line) for line in invoice.lines],
            licensor=snap.get("licensor", {}).get("name", ""),
            licensee=snap.get("licensee", {}).get("name", ""),
        )


class RefundOut(msgspec.Struct):
    id: int
    payment_id: int
    status: str
    amount_fen: int
    reason: str
    reference: str | None
    failure_message: str | None

    @classmethod
    def of(cls, refund: Refund) -> RefundOut:
        return cls(
            refund.id,
            refund.payment_id,
            refund.status.value,
            refund.amount_fen,
            refund.reason,
            refund.reference,
            refund.failure_message,
        )


class PaymentOut(msgspec.Struct):
    id: int
    invoice_id: int
    contract_id: int
    method: str
    status: str
    status_label: str
    amount_fen: int
    applied_fen: int
    excess_fen: int
    refunded_fen: int
    payer_name: str | None
    remitted_on: date | None
    reference: str | None
    stripe_payment_intent: str | None
    #: Only for the paying licensee while the card payment waits: hand it to Stripe.js.
    client_secret: str | None
    failure_message: str | None
    received_at: datetime | None

    @classmethod
    def of(cls, payment: Payment, *, for_payer: bool = False) -> PaymentOut:
        waiting = payment.status.value in ("requires_payment", "failed")
        return cls(
            id=payment.id,
            invoice_id=payment.invoice_id,
            contract_id=payment.contract_id,
            method=payment.method.value,
            status=payment.status.value,
            status_label=payment.status.label,
            amount_fen=payment.amount_fen,
            applied_fen=payment.applied_fen,
            excess_fen=payment.excess_fen,
            refunded_fen=payment.refunded_fen,
            payer_name=payment.payer_name,
            remitted_on=payment.remitted_on,
            reference=payment.reference,
            stripe_payment_intent=payment.stripe_intent_id,
            client_secret=payment.stripe_client_secret if for_payer and waiting else None,
            failure_message=payment.failure_message,
            received_at=payment.received_at,
        )


class RoyaltyReportOut(msgspec.Struct):
    id: int
    contract_id: int
    period: str
    client_report_id: str
    version: int
    current: bool
    nil_report: bool
    base_amount: int
    breakdown: list[Any]
    contract_year: int
    rate: str | None
    unit_amount_fen: int | None
    royalty_fen: int
    formula: str
    note: str | None
    submitted_at: datetime

    @classmethod
    def of(cls, report: RoyaltyReport, period: str) -> RoyaltyReportOut:
        return cls(
            id=report.id,
            contract_id=report.contract_id,
            period=period,
            client_report_id=report.client_report_id,
            version=report.version,
            current=report.is_current,
            nil_report=report.nil_report,
            base_amount=report.base_amount,
            breakdown=report.breakdown,
            contract_year=report.contract_year,
            rate=report.rate,
            unit_amount_fen=report.unit_amount_fen,
            royalty_fen=report.royalty_fen,
            formula=report.formula,
            note=report.note,
            submitted_at=report.submitted_at,
        )


class ReportBody(msgspec.Struct, kw_only=True):
    """A royalty report. ``period`` is the plan item key (``royalty:1:2``: contract year 1, period 2);
    ``base_amount`` is fen of sales/profit/added output, or a count of units. ``client_report_id``
    (8–64 letters, digits, ``-``, ``_``) makes retries safe: the same id returns the first report."""

    contract_id: int
    period: str = ""
    base_amount: int | None = None
    nil_report: bool = False
    breakdown: list[dict[str, Any]] | None = None
    note: str | None = None
    client_report_id: str = ""


class TransferBody(msgspec.Struct, kw_only=True):
    """A bank-transfer declaration (对公转账) against an invoice."""

    invoice_id: int
    amount_fen: int | None = None
    payer_name: str = ""
    payer_account: str | None = None
    remitted_on: str = ""
    reference: str = ""
    idempotency_key: str = ""


class DecisionBody(msgspec.Struct, kw_only=True):
    reason: str | None = None


class RefundBody(msgspec.Struct, kw_only=True):
    amount_fen: int | None = None
    reason: str = ""
    reference: str | None = None


class FirstRevenueBody(msgspec.Struct, kw_only=True):
    first_revenue_on: str = ""
