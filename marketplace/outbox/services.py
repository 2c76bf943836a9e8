"""Enqueueing side effects and draining them.

``enqueue`` is called inside the business transaction, so a side effect exists exactly when the
change that caused it committed. The worker processes each message in its own transaction and
marks it processed there; handlers must be idempotent (the email handler keys on the message id).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.clock import now_utc
from marketplace.outbox.models import PRIORITY_BULK, PRIORITY_NORMAL, MailMessage, OutboxMessage
from marketplace.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, OutboxMessage, Settings], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {}
MAX_ATTEMPTS = 8
#: Housekeeping the worker runs every so often (e.g. ending licences whose term ran out).
Job = Callable[[AsyncSession], Awaitable[Any]]
_JOBS: dict[str, tuple[float, Job]] = {}
#: Housekeeping that manages its own transactions (batches), e.g. the billing sweep.
BatchJob = Callable[[async_sessionmaker, Settings], Awaitable[Any]]
_BATCH_JOBS: dict[str, tuple[float, BatchJob]] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        _HANDLERS[kind] = func
        return func

    return register


def periodic(name: str, every_seconds: float) -> Callable[[Job], Job]:
    """Register a job the worker runs in its own transaction at start and then every ``every_seconds``."""

    def register(func: Job) -> Job:
        _JOBS[name] = (every_seconds, func)
        return func

    return register


def periodic_batches(name: str, every_seconds: float) -> Callable[[BatchJob], BatchJob]:
    """Like :func:`periodic`, for a job that opens its own transactions (one per batch)."""

    def register(func: BatchJob) -> BatchJob:
        _BATCH_JOBS[name] = (every_seconds, func)
        return func

    return register


def _due(name: str, every: float, last_run: dict[str, float]) -> bool:
    now = time.monotonic()
    if name in last_run and now - last_run[name] < every:
        return False
    last_run[name] = now
    return True


async def run_due_jobs(sessionmaker: async_sessionmaker, settings: Settings, last_run: dict[str, float]) -> None:
    for name, (every, func) in _JOBS.items():
        if not _due(name, every, last_run):
            continue
        try:
            async with sessionmaker() as session, session.begin():
                await func(session)
        except Exception:
            log.exception("periodic job %s failed", name)
    for name, (every, batch_func) in _BATCH_JOBS.items():
        if not _due(name, every, last_run):
            continue
        try:
            await batch_func(sessionmaker, settings)
        except Exception:
            log.exception("periodic job %s failed", name)


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    payload: dict[str, Any],
    dedupe_key: str,
    available_at: datetime | None = None,
) -> None:
    """Add a side effect unless one with the same ``dedupe_key`` is already queued (by anyone, even a
    concurrent transaction: the unique key decides, ``ON CONFLICT DO NOTHING``)."""
    await _insert_new(session, [_row(kind, payload, dedupe_key, available_at or now_utc())])


def _row(
    kind: str, payload: dict[str, Any], dedupe_key: str, at: datetime, priority: int = PRIORITY_NORMAL
) -> dict[str, Any]:
    return {
        "kind": kind,
        "priority": priority,
        "dedupe_key": dedupe_key,
        "payload": payload,
        "available_at": at,
        "attempts": 0,
        "created_at": at,
        "updated_at": at,
    }


async def _insert_new(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose dedupe key is not taken; returns how many went in."""
    if not rows:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = 0
    for start in range(0, len(rows), 2000):
        statement = (
            dialect.insert(OutboxMessage.__table__)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(OutboxMessage.__table__.c.id)
        )
        result = await session.execute(statement, rows[start : start + 2000])
        inserted += len(result.all())
    return inserted


def add_side_effect(session: AsyncSession, *, kind: str, payload: dict[str, Any], key: str) -> None:
    """Queue a side effect whose key is new by construction (e.g. it names a row created in this
    transaction), without the look-up :func:`enqueue` makes; a clash still fails on the unique key."""
    session.add(OutboxMessage(kind=kind, payload=payload, dedupe_key=f"{kind}:{key}", available_at=now_utc()))


def add_email(session: AsyncSession, *, to: str, subject: str, body: str, dedupe_key: str) -> None:
    """:func:`add_side_effect` for an email."""
    add_side_effect(session, kind="email", payload={"to": to, "subject": subject, "body": body}, key=dedupe_key)


async def queue_email(session: AsyncSession, *, to: str, subject: str, body: str, dedupe_key: str) -> None:
    await enqueue(
        session, kind="email", payload={"to": to, "subject": subject, "body": body}, dedupe_key=f"email:{dedupe_key}"
    )


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    dedupe_key: str


async def queue_emails(session: AsyncSession, emails: Sequence[Email], *, bulk: bool = False) -> int:
    """:func:`queue_email` for many at once, in one statement per 2,000; returns how many were new.
    ``bulk``: mail nobody is waiting for (a digest, a push), sent after every other due side effect."""
    at = now_utc()
    priority = PRIORITY_BULK if bulk else PRIORITY_NORMAL
    rows = {
        f"email:{e.dedupe_key}": _row(
            "email", {"to": e.to, "subject": e.subject, "body": e.body}, f"email:{e.dedupe_key}", at, priority
        )
        for e in emails
    }
    return await _insert_new(session, list(rows.values()))


@handler("email")
async def _send_email(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    already = await session.scalar(select(MailMessage.id).where(MailMessage.outbox_message_id == message.id))
    if already is not None:
        return
    payload = message.payload
    transport = "mailbox"
    if settings.smtp_host:
        email = EmailMessage()
        email["From"] = settings.mail_from
        email["To"] = payload["to"]
        email["Subject"] = payload["subject"]
        email.set_content(payload["body"])
        await asyncio.to_thread(_smtp_send, settings, email)
        transport = "smtp"
    session.add(
        MailMessage(
            outbox_message_id=message.id,
            to_address=payload["to"],
            subject=payload["subject"],
            body=payload["body"],
            transport=transport,
            sent_at=now_utc(),
        )
    )


def _smtp_send(settings: Settings, email: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        smtp.send_message(email)


async def drain_once(sessionmaker: async_sessionmaker, settings: Settings, *, limit: int = 50) -> int:
    """Process the messages that are due, by priority and then in order (see ``PRIORITY_BULK``).
    Returns how many were processed successfully."""
    async with sessionmaker() as session:
        ids = list(
            await session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.processed_at.is_(None), OutboxMessage.available_at <= now_utc())
                .order_by(OutboxMessage.priority, OutboxMessage.id)
                .limit(limit)
            )
        )
    done = 0
    for message_id in ids:
        if await _process_one(sessionmaker, settings, message_id):
            done += 1
    return done


async def _process_one(sessionmaker: async_sessionmaker, settings: Settings, message_id: int) -> bool:
    async with sessionmaker() as session:
        try:
            async with session.begin():
                message = await session.scalar(
                    select(OutboxMessage)
                    .where(OutboxMessage.id == message_id, OutboxMessage.processed_at.is_(None))
                    .with_for_update(skip_locked=True)
                )
                if message is None:
                    return False
                func = _HANDLERS.get(message.kind)
                if func is None:
                    raise LookupError(f"no handler for outbox kind {message.kind!r}")
                await func(session, message, settings)
                message.processed_at = now_utc()
                message.attempts += 1
            return True
        except Exception as exc:
            log.exception("outbox message %s failed", message_id)
            await _record_failure(sessionmaker, message_id, exc)
            return False


async def _record_failure(sessionmaker: async_sessionmaker, message_id: int, exc: Exception) -> None:
    async with sessionmaker() as session, session.begin():
        message = await session.get(OutboxMessage, message_id)
        if message is None:
            return
        message.attempts += 1
        message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if message.attempts >= MAX_ATTEMPTS:
            # Parked: stays visible with its error and is never retried automatically.
            message.available_at = now_utc() + timedelta(days=3650)
        else:
            message.available_at = now_utc() + timedelta(seconds=2**message.attempts)


async def run_worker(sessionmaker: async_sessionmaker, settings: Settings, stop: asyncio.Event) -> None:
    """Drain the outbox, and run the periodic jobs when due, until ``stop`` is set."""
    last_run: dict[str, float] = {}
    while not stop.is_set():
        await run_due_jobs(sessionmaker, settings, last_run)
        try:
            processed = await drain_once(sessionmaker, settings)
        except Exception:
            log.exception("outbox drain failed")
            processed = 0
        if processed == 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=settings.worker_poll_seconds)
            except TimeoutError:
                pass
