"""Matching and push (匹配推送): interest profiles, the funnel's first stages, the in-app inbox and
licensors' pushes."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, DateTimeUTC, JsonB, Money, enum_type
from marketplace.patents.models import PatentType


class InterestProfile(Base):
    """An enterprise's interest profile (企业兴趣画像): filled from sign-up, edited by the enterprise,
    and learning the IPC subclasses and keywords of the patents it views and evaluates."""

    __tablename__ = "interest_profiles"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    #: GB/T 4754 codes: sections (C), divisions (C38) or groups (C384).
    industries: Mapped[list[str]] = mapped_column(JsonB, default=list)
    keywords: Mapped[list[str]] = mapped_column(JsonB, default=list)
    #: IPC classes (H01) or subclasses (H01M).
    ipc_codes: Mapped[list[str]] = mapped_column(JsonB, default=list)
    #: Two-digit GB/T 2260 province codes.
    province_codes: Mapped[list[str]] = mapped_column(JsonB, default=list)
    max_upfront_fen: Mapped[int | None] = mapped_column(Money)
    prefers_pay_after_use: Mapped[bool] = mapped_column(default=False)
    #: Counts of the subclasses and keywords of viewed (1) and evaluated (3) patents.
    learned_ipc: Mapped[dict[str, int]] = mapped_column(JsonB, default=dict)
    learned_keywords: Mapped[dict[str, int]] = mapped_column(JsonB, default=dict)
    digest_enabled: Mapped[bool] = mapped_column(default=True)
    #: Offers published up to this instant have been in a digest (or predate the subscription).
    digest_through: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    push_enabled: Mapped[bool] = mapped_column(default=True)
    edited_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    edited_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class FunnelStage(enum.StrEnum):
    """Conversion funnel stages (转化漏斗). ``shown`` and ``viewed`` are recorded as events; the later
    stages are read from evaluations, contracts and filings."""

    SHOWN = "shown"
    VIEWED = "viewed"
    EVALUATED = "evaluated"
    ACCEPTED = "accepted"
    FILED = "filed"

    @property
    def label(self) -> str:
        return {"shown": "推荐展示", "viewed": "查看", "evaluated": "评价", "accepted": "取得许可", "filed": "备案"}[
            self.value
        ]


class Channel(enum.StrEnum):
    PAGE = "page"
    API = "api"
    DIGEST = "digest"
    PUSH = "push"
    CATALOGUE = "catalogue"

    @property
    def label(self) -> str:
        return {"page": "推荐页", "api": "API", "digest": "每周推荐", "push": "许可方推送", "catalogue": "目录"}[
            self.value
        ]


class MatchEvent(Base):
    """The first time an enterprise was shown, or viewed, a patent: one row per enterprise, patent
    and stage (later showings keep the first channel)."""

    __tablename__ = "match_events"
    __table_args__ = (
        UniqueConstraint("organisation_id", "patent_id", "stage", name="uq_match_events_org_patent_stage"),
        Index("ix_match_events_patent_stage", "patent_id", "stage"),
    )

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="CASCADE"))
    stage: Mapped[FunnelStage] = mapped_column(enum_type(FunnelStage, "funnel_stage"))
    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "match_channel"))


class InboxKind(enum.StrEnum):
    DIGEST = "digest"
    PUSH = "push"

    @property
    def label(self) -> str:
        return {"digest": "每周推荐", "push": "许可方推送"}[self.value]


class InboxMessage(Base):
    """A message in an enterprise's in-app inbox (站内信), shared by its users."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_org_created", "organisation_id", "created_at"),)

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    kind: Mapped[InboxKind] = mapped_column(enum_type(InboxKind, "inbox_kind"))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    #: ``[{"offer_id", "patent_id", "title", "why", "points"}]``
    items: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, default=list)
    #: Makes delivery idempotent (``digest:<org>:<week>``, ``push:<push>:<org>``).
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    read_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class OfferPush(Base):
    """A licensor's push of one published offer to the enterprises it matches (定向推送)."""

    __tablename__ = "offer_pushes"
    __table_args__ = (Index("ix_offer_pushes_licensor_created", "licensor_organisation_id", "created_at"),)

    offer_id: Mapped[int] = mapped_column(ForeignKey("open_licence_offers.id", ondelete="CASCADE"), index=True)
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    pushed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    #: Filled by the worker once the recipients are chosen and their messages queued.
    recipients_count: Mapped[int | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class InventoryEntry(Base):
    """A stock patent (库存专利) open to a licence or an assignment but not offered in the catalogue:
    granted, in force, not exploited by its holder, held by a university or institute. Matching ranks
    these beside the published offers; ``matching.inventory.sync`` keeps the table in step.

    Full-text search over ``search_tokens`` works as in the catalogue (``inventory_fts`` FTS5 table on
    SQLite, GIN expression index on PostgreSQL), created by migration 0010 only."""

    __tablename__ = "inventory_entries"
    __table_args__ = (
        Index("ix_inventory_ipc_subclass", "ipc_subclass"),
        Index("ix_inventory_ipc_class", "ipc_class"),
        Index("ix_inventory_licensor", "licensor_organisation_id"),
    )

    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="CASCADE"), unique=True)
    licensor_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    licensor_name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    search_tokens: Mapped[str] = mapped_column(Text)
    patent_type: Mapped[PatentType] = mapped_column(enum_type(PatentType, "patent_type"))
    ipc_class: Mapped[str | None] = mapped_column(String(3))
    ipc_subclass: Mapped[str | None] = mapped_column(String(4))
    province_code: Mapped[str | None] = mapped_column(String(2))
    transfer_intents: Mapped[list[str]] = mapped_column(JsonB, default=list)
    expiry_date: Mapped[date] = mapped_column()


class InventoryInterest(Base):
    """An enterprise's stated interest in licensing a stock patent (许可意向): the licensor is told."""

    __tablename__ = "inventory_interests"
    __table_args__ = (
        UniqueConstraint("organisation_id", "patent_id", name="uq_inventory_interests_org_patent"),
        Index("ix_inventory_interests_patent", "patent_id"),
    )

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")


class RecommendationList(Base):
    """An enterprise's best published offers, kept between visits (see ``matching.list_rules``):
    a visit scores only the catalogue rows changed since ``fresh_through``."""

    __tablename__ = "recommendation_lists"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    #: ``list_rules.fingerprint`` of the profile (and ranking) the list was made for.
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: ``[[catalogue row id, patent id, points, published µs]]``, best first.
    entries: Mapped[list[list[int]]] = mapped_column(JsonB, default=list)
    #: The key (points, published µs, id) every unlisted, unchanged row ranks below; null when the
    #: list holds every candidate.
    boundary: Mapped[list[int] | None] = mapped_column(JsonB)
    #: Catalogue rows changed after this instant were not seen by the list.
    fresh_through: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    #: The patents the enterprise held a live licence for (left out of the list then).
    excluded_patent_ids: Mapped[list[int]] = mapped_column(JsonB, default=list)
    #: The enterprise's last visit (page or API); lists visited in the last 30 days are kept up to
    #: date daily by the worker, so a visit scores at most a day's changes.
    visited_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
