"""Outbox of side effects, written in the same transaction as the change that caused them,
and the local mailbox that stands in for SMTP when none is configured."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, DateTimeUTC, JsonB


class OutboxMessage(Base):
    """A side effect waiting for the worker. ``dedupe_key`` makes enqueueing idempotent."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_pending", "processed_at", "available_at"),)

    kind: Mapped[str] = mapped_column(String(50))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    available_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class MailMessage(Base):
    """An email as sent (SMTP) or delivered to the local mailbox (本地邮箱)."""

    __tablename__ = "mail_messages"

    outbox_message_id: Mapped[int] = mapped_column(unique=True)
    to_address: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    transport: Mapped[str] = mapped_column(String(20))
    sent_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
