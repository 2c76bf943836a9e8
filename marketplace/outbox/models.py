"""Outbox of side effects, written in the same transaction as the change that caused them,
and the local mailbox that stands in for SMTP when none is configured."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, DateTimeUTC, JsonB

#: The worker takes due messages by priority, then in order: what a user's or a contract's change
#: caused goes first, bulk mail (the weekly digest's 400,000 e-mails, licensors' pushes) after it.
PRIORITY_NORMAL = 0
PRIORITY_BULK = 1


class OutboxMessage(Base):
    """A side effect waiting for the worker. ``dedupe_key`` makes enqueueing idempotent."""

    __tablename__ = "outbox_messages"
    # The worker's pick, read in index order: only the pending rows, by (priority, id). Without the
    # condition PostgreSQL sorts every pending row on each pass (68 ms with 400,000 queued, 0.2 ms with it).
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "priority",
            "id",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(50))
    priority: Mapped[int] = mapped_column(SmallInteger, default=PRIORITY_NORMAL, server_default="0")
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
