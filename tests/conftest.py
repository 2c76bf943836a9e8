"""Test configuration shared by every suite.

The database is SQLite (a temporary file) unless TEST_DATABASE_URL points at PostgreSQL, in which
case a fresh database is created on that server for the run. Either way the schema is built by
``alembic upgrade head``, so every test also exercises the migrations.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

_TMP = Path(tempfile.mkdtemp(prefix="marketplace-tests-"))


def _database_url() -> str:
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        return configured
    return f"sqlite+aiosqlite:///{_TMP / 'test.sqlite3'}"


def _prepare_postgres(url: str) -> str:
    """Create a uniquely named database on the given server and return its URL."""
    base = make_url(url)
    name = f"mp_test_{uuid.uuid4().hex[:10]}"

    async def _create() -> None:
        admin = create_async_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
        await admin.dispose()

    asyncio.run(_create())
    return base.set(database=name).render_as_string(hide_password=False)


_URL = _database_url()
if _URL.startswith("postgresql"):
    _URL = _prepare_postgres(_URL)

# Settings are read from the environment, so set it before anything imports the application.
os.environ["DATABASE_URL"] = _URL
os.environ["DATA_DIR"] = str(_TMP / "data")
os.environ["SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["RUN_WORKER_IN_PROCESS"] = "0"
os.environ.pop("SMTP_HOST", None)
for _name in [name for name in os.environ if name.startswith("STRIPE_")]:
    os.environ.pop(_name)  # card payments are off unless a test uses the `localstripe` fixture's settings


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {make_url(_URL).get_backend_name()} ({make_url(_URL).render_as_string(hide_password=True)})"


@pytest.fixture(scope="session", autouse=True)
def migrated_database() -> Iterator[str]:
    from alembic import command

    from marketplace.cli import _alembic_config

    config = _alembic_config()
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")
    yield _URL
    if _URL.startswith("postgresql"):

        async def _drop() -> None:
            url = make_url(_URL)
            admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            await admin.dispose()

        asyncio.run(_drop())


@pytest.fixture(scope="session")
def settings(migrated_database: str):
    from marketplace.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def localstripe(settings) -> Iterator:
    """localstripe behind the fault-injecting proxy of ``tests/stripe_harness.py``, started on first use.

    ``localstripe.settings`` are the test settings pointed at it: Stripe enabled, test keys, webhook secret.
    """
    from tests.stripe_harness import LocalStripe

    with LocalStripe(settings) as harness:
        yield harness


@pytest.fixture(scope="session")
async def engine(settings):
    from marketplace.db import make_engine

    engine = make_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine):
    from marketplace.db import make_sessionmaker

    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
async def inspection_engine(settings):
    from marketplace.db import make_engine

    engine = make_engine(settings, explicit_transactions=False)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(inspection_engine, engine) -> AsyncIterator:
    """A session for arranging data (commit explicitly) and checking what requests did.

    On SQLite it runs without a long-lived transaction, so a read after an HTTP request sees that
    request's commit (PostgreSQL's READ COMMITTED gives the same).
    """
    from marketplace.db import make_sessionmaker

    async with make_sessionmaker(inspection_engine)() as session:
        yield session


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "engine" not in request.fixturenames and "client" not in request.fixturenames:
        return
    from marketplace.models import metadata

    engine = request.getfixturevalue("engine")
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
async def app(settings, engine):
    from marketplace.app import create_app

    return create_app(settings)


@pytest.fixture
async def client(app) -> AsyncIterator:
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        test_client.follow_redirects = False
        yield test_client
