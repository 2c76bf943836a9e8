"""Open-licence offers (开放许可声明) and their versions."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.accounts.models import Organisation
from marketplace.db import Base, DateTimeUTC, JsonB, Money, enum_type
from marketplace.patents.models import Patent


class OfferStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PUBLISHED = "published"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {
            "draft": "草稿",
            "submitted": "待审核",
            "published": "已公告",
            "rejected": "已驳回",
            "withdrawn": "已撤回",
        }[self.value]


class PaymentMode(enum.StrEnum):
    FREE = "free"
    LUMP_SUM = "lump_sum"
    INSTALMENTS = "instalments"
    ROYALTY = "royalty"
    ENTRY_FEE_ROYALTY = "entry_fee_royalty"
    PAY_AFTER_USE = "pay_after_use"

    @property
    def label(self) -> str:
        return {
            "free": "免费",
            "lump_sum": "一次总算、一次总付",
            "instalments": "一次总算、分期支付",
            "royalty": "提成支付",
            "entry_fee_royalty": "提成支付附加预付入门费",
            "pay_after_use": "先用后付",
        }[self.value]


class OpenLicenceOffer(Base):
    """One version of an open-licence declaration (开放许可声明).

    Versions of the same declaration share ``series_id``. Once submitted a version's terms never
    change; editing a published offer creates the next version, and publishing that version
    withdraws the previous one.
    """

    __tablename__ = "open_licence_offers"
    __table_args__ = (
        UniqueConstraint("series_id", "version", name="uq_offer_series_version"),
        Index("ix_offers_licensor_status", "licensor_organisation_id", "status"),
        Index("ix_offers_patent_status", "patent_id", "status"),
    )

    series_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(default=1)
    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="RESTRICT"))
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    status: Mapped[OfferStatus] = mapped_column(enum_type(OfferStatus, "offer_status"), default=OfferStatus.DRAFT)
    payment_mode: Mapped[PaymentMode] = mapped_column(enum_type(PaymentMode, "payment_mode"))
    pay_after_use: Mapped[bool] = mapped_column(default=False)
    fee_terms: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    upfront_cost_fen: Mapped[int] = mapped_column(Money, default=0)
    licence_term_months: Mapped[int] = mapped_column()
    territory: Mapped[str] = mapped_column(String(100), default="中国大陆")
    field_of_use: Mapped[str | None] = mapped_column(String(300))
    other_terms: Mapped[str] = mapped_column(Text, default="")
    evaluation_report_file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id", ondelete="RESTRICT"))
    announcement_number: Mapped[str | None] = mapped_column(String(64))
    announcement_date: Mapped[date | None] = mapped_column()
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    patent: Mapped[Patent] = relationship(lazy="joined")
    licensor: Mapped[Organisation] = relationship(lazy="joined")
