"""Database plumbing: declarative base, engine and session configuration, shared column types.

Every table inherits from :class:`Base` (advanced-alchemy's big-integer audit base: ``id``,
``created_at``, ``updated_at``), so Alembic sees one metadata.
"""

from __future__ import annotations

import enum
from typing import Any

from advanced_alchemy.base import BigIntAuditBase, orm_registry
from advanced_alchemy.extensions.litestar import (
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from advanced_alchemy.extensions.litestar.plugins.init.config.asyncio import autocommit_handler_maker
from advanced_alchemy.types import DateTimeUTC, JsonB
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import BigInteger, Enum, event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from marketplace.settings import Settings

Base = BigIntAuditBase
metadata = orm_registry.metadata

#: Money columns hold integer fen (分).
Money = BigInteger


def enum_type(enum_cls: type[enum.Enum], name: str) -> Enum:
    """Enums are stored as their string values in a VARCHAR with a CHECK, portable across databases."""
    return Enum(enum_cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=32)


__all__ = ["Base", "DateTimeUTC", "JsonB", "Money", "enum_type", "make_alchemy_config", "make_engine", "metadata"]


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}


def _configure_sqlite(engine: AsyncEngine, explicit_transactions: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # pysqlite's own transaction handling skips BEGIN before SELECT, which breaks savepoints and
    # repeatable reads; SQLAlchemy's documented recipe takes over and emits BEGIN itself.
    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    if not explicit_transactions:
        return

    # IMMEDIATE takes the write lock up front. A deferred transaction that read first and then
    # writes fails at once with "database is locked" when another connection (the outbox worker,
    # the session store) committed in between — busy_timeout cannot help it — whereas waiting for
    # the lock at BEGIN honours busy_timeout. The price: on SQLite, transactions run one at a time
    # (statements outside a transaction still read concurrently under WAL).
    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: Settings, *, explicit_transactions: bool = True) -> AsyncEngine:
    """The application's engine. ``explicit_transactions=False`` (tests' inspection sessions only)
    makes every SQLite statement its own transaction, so reads see the latest commits as they do
    under PostgreSQL's READ COMMITTED."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(settings.database_url, **_engine_kwargs(settings.database_url))
    if settings.is_sqlite:
        _configure_sqlite(engine, explicit_transactions)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def _leave_to_middleware(_message: Any, _scope: Any) -> None:
    """The transaction is ended by :class:`TransactionMiddleware`, not by a before-send hook."""


def make_alchemy_config(settings: Settings, engine: AsyncEngine) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        engine_instance=engine,
        session_config=AsyncSessionConfig(expire_on_commit=False),
        engine_config=EngineConfig(),
        before_send_handler=_leave_to_middleware,
        create_all=False,
        set_default_exception_handler=False,
    )


class TransactionMiddleware(ASGIMiddleware):
    """Commit the request's session on 2xx/3xx, roll back otherwise, before anything else is sent.

    Running innermost (rather than as a before-send hook, which runs outermost) means the session
    middleware writes its store only after this transaction has ended, so on SQLite the two never
    wait on each other's write lock.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, config: SQLAlchemyAsyncConfig) -> None:
        self.finish = autocommit_handler_maker(commit_on_redirect=True, session_scope_key=config.session_scope_key)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_after_transaction(message: Message) -> None:
            await self.finish(message, scope)
            await send(message)

        await next_app(scope, receive, send_after_transaction)
