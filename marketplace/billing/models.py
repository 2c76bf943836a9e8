"""Billing: royalty reports (提成报告), invoices (付款通知书), payments by card (Stripe) or bank transfer
(对公转账), refunds, the double-entry ledger, Stripe webhook events, and document-number counters.

Money is integer fen. A contract's money rows are only written while its ``licence_contracts`` row
is locked (``SELECT … FOR UPDATE``), so the derived balances never race.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.db import Base, DateTimeUTC, JsonB, Money, enum_type


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"
    VOID = "void"

    @property
    def label(self) -> str:
        return {
            "open": "待支付",
            "partially_paid": "部分支付",
            "paid": "已支付",
            "overdue": "已逾期",
            "void": "已作废",
        }[self.value]


class LineKind(enum.StrEnum):
    FIXED = "fixed"
    ROYALTY = "royalty"
    TRUE_UP = "true_up"
    CREDIT = "credit"

    @property
    def label(self) -> str:
        return {"fixed": "固定费用", "royalty": "提成", "true_up": "最低使用费补足", "credit": "余额抵扣"}[self.value]


class PaymentMethod(enum.StrEnum):
    CARD = "card"
    BANK_TRANSFER = "bank_transfer"

    @property
    def label(self) -> str:
        return {"card": "在线支付（Stripe）", "bank_transfer": "对公转账"}[self.value]


class PaymentStatus(enum.StrEnum):
    #: Card: recorded here, the PaymentIntent not created yet (the worker creates it).
    PENDING = "pending"
    #: Card: the intent exists and waits for the licensee to pay.
    REQUIRES_PAYMENT = "requires_payment"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    #: Bank transfer: declared by the licensee, waiting for the licensor's confirmation.
    DECLARED = "declared"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"

    @property
    def label(self) -> str:
        return {
            "pending": "正在创建支付",
            "requires_payment": "待付款",
            "processing": "处理中",
            "succeeded": "支付成功",
            "failed": "支付失败",
            "canceled": "已取消",
            "declared": "待确认到账",
            "confirmed": "已确认到账",
            "rejected": "未确认（已驳回）",
        }[self.value]

    @property
    def received(self) -> bool:
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.CONFIRMED)


class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"pending": "退款处理中", "succeeded": "已退款", "failed": "退款失败"}[self.value]


class Account(enum.StrEnum):
    RECEIVABLE = "receivable"
    CASH = "cash"
    LICENSOR_PAYABLE = "licensor_payable"
    LICENSEE_CREDIT = "licensee_credit"

    @property
    def label(self) -> str:
        return {
            "receivable": "应收账款",
            "cash": "收款",
            "licensor_payable": "应付许可方",
            "licensee_credit": "被许可方余额",
        }[self.value]


class RoyaltyReport(Base):
    """One version of the licensee's report for a royalty period. A correction is a new version;
    issued invoices are never edited: the difference goes on the next one."""

    __tablename__ = "royalty_reports"
    __table_args__ = (
        UniqueConstraint("contract_id", "client_report_id", name="uq_royalty_report_client_id"),
        UniqueConstraint("obligation_id", "version", name="uq_royalty_report_version"),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"), index=True)
    obligation_id: Mapped[int] = mapped_column(ForeignKey("payment_obligations.id", ondelete="RESTRICT"))
    client_report_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column()
    is_current: Mapped[bool] = mapped_column(default=True)
    nil_report: Mapped[bool] = mapped_column(default=False)
    #: Fen of sales, profit or added output, or a count of units, as the terms' base says.
    base_amount: Mapped[int] = mapped_column(BigInteger)
    breakdown: Mapped[list[Any]] = mapped_column(JsonB, default=list)
    attachment_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id", ondelete="RESTRICT"))
    contract_year: Mapped[int] = mapped_column()
    rate: Mapped[str | None] = mapped_column(String(20))
    unit_amount_fen: Mapped[int | None] = mapped_column(Money)
    royalty_fen: Mapped[int] = mapped_column(Money)
    formula: Mapped[str] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    submitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class Invoice(Base):
    """A payment request (付款通知书) to the licensee, with a snapshot of both parties and the terms."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("year", "sequence", name="uq_invoice_year_sequence"),
        Index("ix_invoices_contract", "contract_id"),
        Index("ix_invoices_licensee_status", "licensee_organisation_id", "status"),
        Index("ix_invoices_licensor_status", "licensor_organisation_id", "status"),
        Index("ix_invoices_status_due", "status", "due_date"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    year: Mapped[int] = mapped_column()
    sequence: Mapped[int] = mapped_column()
    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    licensee_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    status: Mapped[InvoiceStatus] = mapped_column(enum_type(InvoiceStatus, "invoice_status"))
    issued_on: Mapped[date] = mapped_column()
    due_date: Mapped[date] = mapped_column()
    #: Sum of the lines (credit lines are negative); what the licensee must pay.
    total_fen: Mapped[int] = mapped_column(Money)
    #: Received and applied to this invoice, net of refunds.
    paid_fen: Mapped[int] = mapped_column(Money, default=0)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    void_reason: Mapped[str | None] = mapped_column(Text)

    lines: Mapped[list[InvoiceLine]] = relationship(lazy="selectin", order_by="InvoiceLine.line_no")

    @property
    def outstanding_fen(self) -> int:
        return 0 if self.status is InvoiceStatus.VOID else max(0, self.total_fen - self.paid_fen)


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "line_no", name="uq_invoice_line_no"),
        Index("ix_invoice_lines_contract_key", "contract_id", "item_key"),
    )

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    line_no: Mapped[int] = mapped_column()
    kind: Mapped[LineKind] = mapped_column(enum_type(LineKind, "invoice_line_kind"))
    #: The plan item this line settles (``lump_sum``, ``royalty:1:2``, ``true_up:1`` …); NULL for credit.
    item_key: Mapped[str | None] = mapped_column(String(40))
    obligation_id: Mapped[int | None] = mapped_column(ForeignKey("payment_obligations.id", ondelete="RESTRICT"))
    royalty_report_id: Mapped[int | None] = mapped_column(ForeignKey("royalty_reports.id", ondelete="RESTRICT"))
    description: Mapped[str] = mapped_column(String(300))
    amount_fen: Mapped[int] = mapped_column(Money)


class Payment(Base):
    """Money the licensee pays against an invoice: a Stripe PaymentIntent or a declared bank transfer."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("licensee_organisation_id", "idempotency_key", name="uq_payment_idempotency"),
        Index("ix_payments_invoice", "invoice_id"),
        Index("ix_payments_contract", "contract_id"),
        Index("ix_payments_method_status", "method", "status"),
        Index("ix_payments_received_at", "received_at"),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"))
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    licensee_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    method: Mapped[PaymentMethod] = mapped_column(enum_type(PaymentMethod, "payment_method"))
    status: Mapped[PaymentStatus] = mapped_column(enum_type(PaymentStatus, "payment_status"))
    amount_fen: Mapped[int] = mapped_column(Money)
    #: Set once the money is received: the part applied to the invoice and the excess kept as credit.
    applied_fen: Mapped[int] = mapped_column(Money, default=0)
    excess_fen: Mapped[int] = mapped_column(Money, default=0)
    refunded_fen: Mapped[int] = mapped_column(Money, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stripe_intent_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    stripe_client_secret: Mapped[str | None] = mapped_column(String(200))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    payer_name: Mapped[str | None] = mapped_column(String(200))
    payer_account: Mapped[str | None] = mapped_column(String(64))
    remitted_on: Mapped[date | None] = mapped_column()
    reference: Mapped[str | None] = mapped_column(String(100))
    receipt_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id", ondelete="RESTRICT"))
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_payment", "payment_id"),)

    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    status: Mapped[RefundStatus] = mapped_column(enum_type(RefundStatus, "refund_status"))
    amount_fen: Mapped[int] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(100))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    failure_message: Mapped[str | None] = mapped_column(String(300))
    requested_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    completed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class LedgerEntry(Base):
    """One leg of a double-entry journal (debit positive, credit negative). The legs of a journal sum
    to zero, and ``(journal, account)`` is unique, so a journal can never be posted twice."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("journal", "account", name="uq_ledger_journal_account"),
        Index("ix_ledger_contract_account", "contract_id", "account"),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    journal: Mapped[str] = mapped_column(String(80))
    account: Mapped[Account] = mapped_column(enum_type(Account, "ledger_account"))
    amount_fen: Mapped[int] = mapped_column(Money)
    occurred_on: Mapped[date] = mapped_column()
    memo: Mapped[str] = mapped_column(String(200))


class StripeEvent(Base):
    """Each Stripe webhook event, stored once by its id, with what we did with it."""

    __tablename__ = "stripe_events"

    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(100), index=True)
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)


class DocumentCounter(Base):
    """The last number issued in a series and year (invoices: ``PN{year}{000001…}``), gapless."""

    __tablename__ = "document_counters"
    __table_args__ = (UniqueConstraint("series", "year", name="uq_document_counter_series_year"),)

    series: Mapped[str] = mapped_column(String(20))
    year: Mapped[int] = mapped_column()
    last_value: Mapped[int] = mapped_column(default=0)
