"""Database plumbing: declarative base, engine and session configuration, shared column types.

Every table inherits from :class:`Base` (advanced-alchemy's big-integer audit base: ``id``,
``created_at``, ``updated_at``), so Alembic sees one metadata.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
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
from sqlalchemy import BigInteger, Enum, any_, bindparam, event, insert
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from marketplace.settings import Settings

Base = BigIntAuditBase
metadata = orm_registry.metadata

#: Money columns hold integer fen (分).
Money = BigInteger


def enum_type(enum_cls: type[enum.Enum], name: str) -> Enum:
    """Enums are stored as their string values in a VARCHAR with a CHECK, portable across databases."""
    return Enum(enum_cls, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=32)


__all__ = [
    "Base",
    "DateTimeUTC",
    "JsonB",
    "Money",
    "bulk_insert",
    "enum_type",
    "ids_in",
    "make_alchemy_config",
    "make_engine",
    "metadata",
]


_json_encoder = msgspec.json.Encoder()


def _json_text(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def _engine_kwargs(url: str) -> dict[str, Any]:
    # msgspec reads and writes JSON columns several times faster than the standard library, with the
    # same dicts, lists, strings and numbers (and UTF-8 text instead of \u escapes); exports, imports
    # and reconciliation handle one snapshot or record per contract.
    common = {"json_deserializer": msgspec.json.decode, "json_serializer": _json_text}
    if url.startswith("sqlite"):
        return common | {"connect_args": {"timeout": 30}}
    return common | {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True}


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


_UNSET = object()


def ids_in(dialect_name: str, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids``: on PostgreSQL one array parameter (``= ANY``), so the statement is compiled
    once and sent with one value instead of a thousand."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(BigInteger)))
    return column.in_(list(ids))


async def bulk_insert(session: Any, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows (dicts with the same keys) in the session's transaction.

    On PostgreSQL the rows go through ``COPY`` (several times faster than a prepared insert per row,
    for exports and refreshes that write hundreds of thousands of rows); each value passes through
    the column type's bind processing first, exactly as an ``INSERT`` would. Elsewhere it is an
    ordinary executemany. Columns left out get their server default, so callers give every column
    that has only a Python-side default (``created_at``, JSON ``{}`` …).
    """
    if not rows:
        return
    names = list(rows[0])
    columns = [table.c[name] for name in names]
    missing = [
        column.name
        for column in table.columns
        if column.name not in rows[0] and column.default is not None and not column.primary_key
    ]
    if missing:
        raise ValueError(f"bulk_insert into {table.name}: give {', '.join(missing)} (Python-side defaults)")
    connection = await session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql" or dialect.driver != "asyncpg":
        await session.execute(insert(table), list(rows))
        return
    processors = [column.type._cached_bind_processor(dialect) for column in columns]
    # Rows of a batch share many values (the same timestamp, state, actor): each column remembers
    # the last value it processed.
    last: list[tuple[Any, Any]] = [(_UNSET, None)] * len(names)

    def processed(index: int, value: Any) -> Any:
        process = processors[index]
        if process is None:
            return value
        before, result = last[index]
        if value is not before:
            result = process(value)
            last[index] = (value, result)
        return result

    records = [tuple(processed(index, row[name]) for index, name in enumerate(names)) for row in rows]
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy opens the database transaction with its first statement; the COPY must be in it.
        await connection.exec_driver_sql("SELECT 1")
    await driver.copy_records_to_table(table.name, records=records, columns=names)
