"""The public catalogue's search table: one denormalised row per published offer.

Full-text search over ``search_tokens`` (jieba-segmented title, abstract and keywords) uses an
FTS5 table on SQLite (which also indexes the equality facets as tokens) and a GIN index on
``to_tsvector('simple', search_tokens)`` on PostgreSQL; both are created by migration 0002 only
(see marketplace/schema_filter.py for why the schema comparison skips them).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, DateTimeUTC, Money, enum_type
from marketplace.evaluations.tiering import Tier
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType


class CatalogueEntry(Base):
    """A published offer as the catalogue shows and searches it (目录条目)."""

    __tablename__ = "catalogue_entries"
    __table_args__ = (
        Index("ix_catalogue_type_published", "patent_type", "published_at"),
        Index("ix_catalogue_ipc_class", "ipc_class"),
        Index("ix_catalogue_licensor", "licensor_organisation_id"),
        Index("ix_catalogue_province", "province_code"),
        Index("ix_catalogue_mode", "payment_mode"),
        Index("ix_catalogue_upfront", "upfront_cost_fen"),
        # Sorting by newest or by expiry, and the IPC-section facet, without reading the whole table.
        Index("ix_catalogue_published", "published_at"),
        Index("ix_catalogue_expiry", "expiry_date"),
        Index("ix_catalogue_ipc_section", "ipc_section"),
        # Matching picks candidates by the IPC subclass its concordance maps to industries.
        Index("ix_catalogue_ipc_subclass", "ipc_subclass"),
        # A stored recommendation list scores only the rows changed since it was made.
        Index("ix_catalogue_updated", "updated_at"),
    )

    offer_id: Mapped[int] = mapped_column(ForeignKey("open_licence_offers.id", ondelete="CASCADE"), unique=True)
    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="CASCADE"), index=True)
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    licensor_name: Mapped[str] = mapped_column(String(200))
    search_tokens: Mapped[str] = mapped_column(Text)
    patent_type: Mapped[PatentType] = mapped_column(enum_type(PatentType, "patent_type"))
    ipc_section: Mapped[str | None] = mapped_column(String(1))
    ipc_class: Mapped[str | None] = mapped_column(String(3))
    ipc_subclass: Mapped[str | None] = mapped_column(String(4))
    province_code: Mapped[str | None] = mapped_column(String(2))
    payment_mode: Mapped[PaymentMode] = mapped_column(enum_type(PaymentMode, "payment_mode"))
    pay_after_use: Mapped[bool] = mapped_column(default=False)
    upfront_cost_fen: Mapped[int] = mapped_column(Money, default=0)
    trl: Mapped[int | None] = mapped_column()
    #: The patent's tier (分层), copied from ``patent_tiers`` so that matching ranks without a join.
    tier: Mapped[Tier | None] = mapped_column(enum_type(Tier, "patent_tier"))
    published_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    expiry_date: Mapped[date] = mapped_column()
