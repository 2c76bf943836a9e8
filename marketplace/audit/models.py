"""Audit trail: who changed what, when, from which state to which, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, DateTimeUTC, JsonB


class AuditRecord(Base):
    """One state change or sensitive action (审计记录)."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_entity", "entity_type", "entity_id"),)

    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int] = mapped_column()
    action: Mapped[str] = mapped_column(String(50))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(20), default="web")
    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    details: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
