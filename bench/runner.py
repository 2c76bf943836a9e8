"""Run every benchmark and write docs/benchmarks.md, or only some (``python -m bench accept``), which
refreshes just their sections.

National-scale catalogue data is generated once per database (SQLite file and PostgreSQL cluster
under bench/data/) and reused while its size matches; upload benchmarks use fresh databases.
Sizes can be lowered for a quick look: BENCH_PATENTS, BENCH_LICENSORS (and see bench/accept.py,
bench/billing.py, bench/matching.py). ``sweep`` and ``webhooks`` (issue 4) share the "Billing (issue 4)"
section; ``exports`` is issue 5's, ``matching`` and ``digest`` (the weekly digest over the matching
benchmark's enterprises, on a copy of its database) issue 6's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench import accept, billing, digest, filings, matching, search, upload
from bench.generate import data_dir, generate, generated_count, migrate
from bench.pgserver import postgres_server
from bench.report import replace_sections, write

PATENTS = int(os.environ.get("BENCH_PATENTS", "1350000"))
LICENSORS = int(os.environ.get("BENCH_LICENSORS", "2700"))
BENCHMARKS = ("search", "upload", "accept", "sweep", "webhooks", "exports", "matching", "digest")


async def _fresh_pg_database(server_url: str, name: str) -> str:
    base = make_url(server_url)
    admin = create_async_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
    await admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


async def _pg_database_exists(server_url: str, name: str) -> bool:
    admin = create_async_engine(make_url(server_url).set(database="postgres"))
    async with admin.connect() as conn:
        found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    await admin.dispose()
    return bool(found)


async def _search_data_sqlite() -> str:
    path = data_dir() / f"search-{PATENTS}.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    if path.exists() and await generated_count(url) == PATENTS:
        return url
    for leftover in data_dir().glob(f"search-{PATENTS}.sqlite3*"):
        leftover.unlink()
    migrate(url)
    print(f"generating {PATENTS:,} patents on SQLite …")
    seconds = await generate(url, patents=PATENTS, licensors=LICENSORS)
    print(f"generated in {seconds:.0f} s")
    return url


async def _search_data_pg(server_url: str) -> str:
    name = f"bench_search_{PATENTS}"
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    if await _pg_database_exists(server_url, name) and await generated_count(url) == PATENTS:
        return url
    url = await _fresh_pg_database(server_url, name)
    migrate(url)
    print(f"generating {PATENTS:,} patents on PostgreSQL …")
    seconds = await generate(url, patents=PATENTS, licensors=LICENSORS)
    print(f"generated in {seconds:.0f} s")
    return url


async def _main(selected: set[str]) -> None:
    sections = []
    if "search" in selected:
        sqlite_url = await _search_data_sqlite()
        sections.append(await search.run("SQLite", sqlite_url, PATENTS))
    if "upload" in selected:
        upload_path = data_dir() / "upload.sqlite3"
        for leftover in data_dir().glob("upload.sqlite3*"):
            leftover.unlink()
        upload_url = f"sqlite+aiosqlite:///{upload_path}"
        migrate(upload_url)
        sections.append(await upload.run("SQLite", upload_url))
    with postgres_server() as server_url:
        if "search" in selected:
            pg_url = await _search_data_pg(server_url)
            sections.append(await search.run("PostgreSQL 15", pg_url, PATENTS))
        if "upload" in selected:
            upload_pg = await _fresh_pg_database(server_url, "bench_upload")
            migrate(upload_pg)
            sections.append(await upload.run("PostgreSQL 15", upload_pg))
        if "accept" in selected:
            sections.append(await accept.run(server_url))
        billing_parts = {}
        if "sweep" in selected:
            billing_parts["sweep"] = await billing.run_sweep(server_url)
        if "webhooks" in selected:
            billing_parts["webhooks"] = await billing.run_webhooks(server_url)
        if billing_parts:
            sections.append(billing.section(billing_parts))
        if "exports" in selected:
            sections.append(await filings.run(server_url))
        if "matching" in selected:
            sections.append(await matching.run(server_url))
        if "digest" in selected:
            sections.append(await digest.run(server_url))
    if selected == set(BENCHMARKS):
        write(sections)
    else:
        replace_sections(sections)
    print("\n\n".join(sections))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Figures go to docs/benchmarks.md.")
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)}; default all, rewriting the whole document",
    )
    names = parser.parse_args().benchmarks
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(_main(set(names) or set(BENCHMARKS)))
