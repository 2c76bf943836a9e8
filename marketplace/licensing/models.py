"""Licence contracts (开放许可实施合同), the written notices that created them (书面通知), the payment
obligations they carry, and the per-year contract-number counter."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.accounts.models import Organisation
from marketplace.db import Base, DateTimeUTC, JsonB, Money, enum_type
from marketplace.offers.models import OpenLicenceOffer
from marketplace.patents.models import Patent


class ContractStatus(enum.StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    ACTIVE = "active"
    ENDED = "ended"

    @property
    def label(self) -> str:
        return {"awaiting_payment": "待首付款", "active": "生效中", "ended": "已终止"}[self.value]


class EndReason(enum.StrEnum):
    TERM_EXPIRED = "term_expired"
    PATENT_LAPSED = "patent_lapsed"
    PATENT_INVALIDATED = "patent_invalidated"
    PATENT_EXPIRED = "patent_expired"
    AGREEMENT = "agreement"

    @property
    def label(self) -> str:
        return {
            "term_expired": "许可期限届满",
            "patent_lapsed": "专利权终止（未缴年费）",
            "patent_invalidated": "专利权被宣告无效",
            "patent_expired": "专利权期限届满",
            "agreement": "双方协商一致解除",
        }[self.value]


class ObligationKind(enum.StrEnum):
    LUMP_SUM = "lump_sum"
    INSTALMENT = "instalment"
    ENTRY_FEE = "entry_fee"
    ROYALTY = "royalty"
    TRUE_UP = "true_up"

    @property
    def label(self) -> str:
        return {
            "lump_sum": "一次总付",
            "instalment": "分期付款",
            "entry_fee": "入门费",
            "royalty": "提成",
            "true_up": "最低使用费补足",
        }[self.value]


class LicenceContract(Base):
    """An ordinary open licence (普通实施许可) taken by written notice.

    ``terms_snapshot`` freezes everything the licence was granted on (the offer version's terms,
    the patent's and both parties' particulars), so later edits elsewhere never rewrite it.
    ``live_offer_id`` equals ``offer_id`` while the contract is live and is NULL once it ended: the
    unique constraint on it allows one live contract per licensee and offer on every database.
    """

    __tablename__ = "licence_contracts"
    __table_args__ = (
        UniqueConstraint("licensee_organisation_id", "live_offer_id", name="uq_contract_live_offer"),
        UniqueConstraint("licensee_organisation_id", "idempotency_key", name="uq_contract_idempotency"),
        UniqueConstraint("year", "sequence", name="uq_contract_year_sequence"),
        Index("ix_contracts_licensor_status", "licensor_organisation_id", "status"),
        Index("ix_contracts_licensee_status", "licensee_organisation_id", "status"),
        Index("ix_contracts_patent_status", "patent_id", "status"),
        Index("ix_contracts_status_end", "status", "end_date"),
        Index("ix_contracts_signed_on", "signed_on"),
    )

    number: Mapped[str] = mapped_column(String(20), unique=True)
    year: Mapped[int] = mapped_column()
    sequence: Mapped[int] = mapped_column()
    offer_id: Mapped[int] = mapped_column(ForeignKey("open_licence_offers.id", ondelete="RESTRICT"), index=True)
    live_offer_id: Mapped[int | None] = mapped_column()
    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="RESTRICT"))
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    licensee_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    accepted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[ContractStatus] = mapped_column(enum_type(ContractStatus, "contract_status"))
    payment_mode: Mapped[str] = mapped_column(String(32))
    pay_after_use: Mapped[bool] = mapped_column(default=False)
    terms_snapshot: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    intended_field_of_use: Mapped[str] = mapped_column(String(300))
    signatory_name: Mapped[str] = mapped_column(String(100))
    signatory_title: Mapped[str] = mapped_column(String(100))
    signed_on: Mapped[date] = mapped_column()
    start_date: Mapped[date] = mapped_column()
    end_date: Mapped[date] = mapped_column()
    activated_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    ended_on: Mapped[date | None] = mapped_column()
    end_reason: Mapped[EndReason | None] = mapped_column(enum_type(EndReason, "contract_end_reason"))
    end_note: Mapped[str | None] = mapped_column(Text)
    termination_requested_by_organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    termination_requested_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    termination_end_date: Mapped[date | None] = mapped_column()
    termination_reason: Mapped[str | None] = mapped_column(Text)
    #: Pay-after-use until first revenue: the day the licensee reported its first revenue.
    first_revenue_on: Mapped[date | None] = mapped_column()
    #: Set while a payment is overdue beyond the default threshold (违约); cleared by payment.
    in_default_since: Mapped[date | None] = mapped_column()

    offer: Mapped[OpenLicenceOffer] = relationship(lazy="joined")
    patent: Mapped[Patent] = relationship(lazy="joined")
    licensor: Mapped[Organisation] = relationship(foreign_keys=[licensor_organisation_id], lazy="joined")
    licensee: Mapped[Organisation] = relationship(foreign_keys=[licensee_organisation_id], lazy="joined")
    obligations: Mapped[list[PaymentObligation]] = relationship(
        lazy="selectin", order_by="PaymentObligation.sequence", back_populates="contract"
    )
    #: Set when the contract is created; not loaded with it (the document is large).
    notice: Mapped[WrittenNotice | None] = relationship(lazy="noload", uselist=False)


class WrittenNotice(Base):
    """The licensee's written notice (书面通知) to the patentee: the document exactly as rendered from
    the accepted terms version, its SHA-256, and who sent it from where and when."""

    __tablename__ = "written_notices"

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"), unique=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("open_licence_offers.id", ondelete="RESTRICT"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    notified_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    document_html: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))


class PaymentObligation(Base):
    """One payment the contract's terms call for (payment scheduling itself belongs to billing).

    Fixed amounts carry ``amount_fen``; royalties depend on the licensee's report and leave it NULL.
    ``due_date`` is NULL while the obligation waits on the first revenue (先用后付 until revenue).
    """

    __tablename__ = "payment_obligations"
    __table_args__ = (
        UniqueConstraint("contract_id", "sequence", name="uq_obligation_contract_sequence"),
        UniqueConstraint("contract_id", "key", name="uq_obligation_contract_key"),
        Index("ix_obligations_unbilled_due", "billed_at", "due_date"),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column()
    kind: Mapped[ObligationKind] = mapped_column(enum_type(ObligationKind, "obligation_kind"))
    description: Mapped[str] = mapped_column(String(200))
    amount_fen: Mapped[int | None] = mapped_column(Money)
    due_date: Mapped[date | None] = mapped_column()
    period_start: Mapped[date | None] = mapped_column()
    period_end: Mapped[date | None] = mapped_column()
    after_first_revenue: Mapped[bool] = mapped_column(default=False)
    #: Stable name of the plan item (``lump_sum``, ``instalment:2``, ``royalty:1:3``, ``true_up:1`` …).
    key: Mapped[str] = mapped_column(String(40))
    contract_year: Mapped[int | None] = mapped_column()
    months: Mapped[int | None] = mapped_column()
    #: When the billing sweep invoiced this item (fixed amounts, true-ups); royalties are billed on report.
    billed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    contract: Mapped[LicenceContract] = relationship(back_populates="obligations", lazy="noload")


class ContractNumberCounter(Base):
    """The last contract sequence number issued in a year (numbers run OL{year}{000001…})."""

    __tablename__ = "contract_number_counters"

    year: Mapped[int] = mapped_column(unique=True)
    last_value: Mapped[int] = mapped_column(default=0)

