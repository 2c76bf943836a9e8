"""National-scale synthetic data: 1.35 million patents from 2,700 licensors, all in the catalogue.

Every patent gets a published open-licence offer and a catalogue row, the worst case for search.
Text comes from the demo vocabulary; jieba segments a pool of distinct titles and abstracts once
and rows draw from the pools, so generation takes minutes rather than hours.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from stdnum.cn import uscc as stdnum_uscc

from marketplace.accounts.models import Organisation
from marketplace.catalogue.models import CatalogueEntry
from marketplace.catalogue.rules import index_tokens
from marketplace.db import make_engine
from marketplace.demo.vocabulary import FIELDS, abstract_for, inventors_for, title_for
from marketplace.offers.models import OpenLicenceOffer
from marketplace.patents.models import Patent, PatentType
from marketplace.patents.rules import canonical_application_number, expiry_date
from marketplace.settings import PROJECT_ROOT, load_settings

PROVINCES = ("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65").split()
CHUNK = 10_000
POOL = 6_000
MODES = (
    ("free", 28),
    ("lump_sum", 30),
    ("instalments", 12),
    ("royalty", 12),
    ("entry_fee_royalty", 8),
    ("pay_after_use", 10),
)


def _uscc(serial: int) -> str:
    body = f"12{PROVINCES[serial % len(PROVINCES)]}0000{serial:09d}"[:17]
    return body + stdnum_uscc.calc_check_digit(body)


def _application_number(serial: int, year: int, type_digit: str) -> str:
    digits = f"{year}{type_digit}{serial % 10_000_000:07d}"
    return canonical_application_number(digits)


def _fee_terms(mode: str, rng: random.Random) -> tuple[dict, int]:
    if mode == "free":
        return {"mode": "free"}, 0
    if mode == "lump_sum":
        amount = rng.randrange(1_000_000, 200_000_000, 100_000)
        return {"mode": "lump_sum", "amount_fen": amount, "due_days": 30}, amount
    if mode == "instalments":
        total = rng.randrange(3_000_000, 300_000_000, 300_000)
        return {"mode": "instalments", "total_fen": total, "count": 3, "interval_months": 6, "first_due_days": 30}, (
            total // 3 + (1 if total % 3 else 0)
        )
    royalty = {
        "base": "sales",
        "rate": str(rng.choice(("0.01", "0.02", "0.03", "0.05"))),
        "rate_schedule": "fixed",
        "reporting_period": "quarterly",
    }
    if mode == "royalty":
        return {"mode": "royalty", **royalty}, 0
    if mode == "entry_fee_royalty":
        fee = rng.randrange(500_000, 20_000_000, 100_000)
        return {"mode": "entry_fee_royalty", "entry_fee_fen": fee, "entry_due_days": 30, "royalty": royalty}, fee
    return {
        "mode": "pay_after_use",
        "deferral": "months",
        "deferral_months": 12,
        "then": {"mode": "royalty", **royalty},
    }, 0


def _pools(rng: random.Random) -> list[tuple[int, str, str, str]]:
    """(field index, title, abstract, search tokens) for POOL distinct texts."""
    pool = []
    for _ in range(POOL):
        index = rng.randrange(len(FIELDS))
        field = FIELDS[index]
        title = title_for(rng, field)
        abstract = abstract_for(rng, field, title)
        pool.append((index, title, abstract, index_tokens(title, abstract)))
    return pool


async def _insert(engine: AsyncEngine, table, rows: list[dict]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(table), rows)


def migrate(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "marketplace", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def generated_count(url: str) -> int:
    engine = make_engine(replace(load_settings(), database_url=url))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(CatalogueEntry)) or 0)
    finally:
        await engine.dispose()


def _fulltext_migration():
    """The migration that owns the full-text objects, so they are rebuilt exactly as it made them."""
    path = PROJECT_ROOT / "migrations" / "versions" / "0002_catalogue_fulltext.py"
    spec = importlib.util.spec_from_file_location("catalogue_fulltext_migration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _suspend_fulltext(engine: AsyncEngine) -> None:
    """Index maintenance row by row is the slowest part of a bulk load; build the index once at the end."""
    migration = _fulltext_migration()
    async with engine.begin() as conn:
        for statement in (
            migration.SQLITE_DOWNGRADE if conn.dialect.name == "sqlite" else migration.POSTGRESQL_DOWNGRADE
        ):
            await conn.execute(text(statement))


async def _restore_fulltext(engine: AsyncEngine) -> None:
    migration = _fulltext_migration()
    async with engine.begin() as conn:
        for statement in migration.SQLITE_UPGRADE if conn.dialect.name == "sqlite" else migration.POSTGRESQL_UPGRADE:
            await conn.execute(text(statement))


async def generate(url: str, *, patents: int, licensors: int, seed: int = 7) -> float:
    """Fill an empty, migrated database. Returns the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(seed)
    engine = make_engine(replace(load_settings(), database_url=url))
    await _suspend_fulltext(engine)
    pool = _pools(rng)
    now = datetime.now(UTC)
    orgs = [
        {
            "id": i + 1,
            "name": f"合成高校{i + 1:04d}",
            "kind": "university" if i % 5 else "institute",
            "uscc": _uscc(i + 1),
            "division_code": f"{PROVINCES[i % len(PROVINCES)]}0000",
            "verification_status": "verified",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(licensors)
    ]
    await _insert(engine, Organisation.__table__, orgs)
    modes = [m for m, _ in MODES]
    weights = [w for _, w in MODES]
    for start in range(0, patents, CHUNK):
        patent_rows, offer_rows, entry_rows = [], [], []
        for i in range(start, min(start + CHUNK, patents)):
            pid = i + 1
            org = orgs[i % licensors]
            field_index, title, abstract, tokens = pool[rng.randrange(POOL)]
            field = FIELDS[field_index]
            type_digit = rng.choices("123", weights=(60, 30, 10))[0]
            patent_type = {"1": "invention", "2": "utility_model", "3": "design"}[type_digit]
            filing = date(rng.randrange(2008, 2023), rng.randrange(1, 13), rng.randrange(1, 29))
            grant = filing + timedelta(days=rng.randrange(200, 1400))
            expiry = expiry_date(PatentType(patent_type), filing)
            ipc = rng.choice(field.ipc)
            mode = rng.choices(modes, weights=weights)[0]
            terms, upfront = _fee_terms(mode, rng)
            patent_rows.append(
                {
                    "id": pid,
                    "application_number": _application_number(i, filing.year, type_digit),
                    "patent_type": patent_type,
                    "is_pct": False,
                    "title": title,
                    "abstract": abstract,
                    "owner_organisation_id": org["id"],
                    "filing_date": filing,
                    "grant_date": grant,
                    "expiry_date": expiry,
                    "legal_status": "granted",
                    "annual_fee_paid_until": date(2027, 6, 30),
                    "ipc_main": ipc,
                    "ipc_codes": [ipc],
                    "inventors": inventors_for(rng),
                    "co_owners": [],
                    "co_owner_consent": False,
                    "pledged": False,
                    "pledgee_consent": False,
                    "exclusive_licence": False,
                    "sole_licence": False,
                    "proceedings_suspended": False,
                    "government_funded": rng.random() < 0.6,
                    "implemented": False,
                    "trl": rng.randint(3, 9),
                    "transfer_intents": ["licence"],
                    "application_scenarios": "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            published = now - timedelta(minutes=pid)
            offer_rows.append(
                {
                    "id": pid,
                    "series_id": f"bench-{pid}",
                    "version": 1,
                    "patent_id": pid,
                    "licensor_organisation_id": org["id"],
                    "status": "published",
                    "payment_mode": mode,
                    "pay_after_use": mode == "pay_after_use",
                    "fee_terms": terms,
                    "upfront_cost_fen": upfront,
                    "licence_term_months": 36,
                    "territory": "中国大陆",
                    "other_terms": "",
                    "announcement_number": f"BENCH{pid:08d}",
                    "announcement_date": published.date(),
                    "published_at": published,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            entry_rows.append(
                {
                    "id": pid,
                    "offer_id": pid,
                    "patent_id": pid,
                    "licensor_organisation_id": org["id"],
                    "title": title,
                    "licensor_name": org["name"],
                    "search_tokens": tokens,
                    "patent_type": patent_type,
                    "ipc_section": ipc[0],
                    "ipc_class": ipc[:3],
                    "province_code": org["division_code"][:2],
                    "payment_mode": mode,
                    "pay_after_use": mode == "pay_after_use",
                    "upfront_cost_fen": upfront,
                    "trl": patent_rows[-1]["trl"],
                    "published_at": published,
                    "expiry_date": expiry,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await _insert(engine, Patent.__table__, patent_rows)
        await _insert(engine, OpenLicenceOffer.__table__, offer_rows)
        await _insert(engine, CatalogueEntry.__table__, entry_rows)
        print(f"  {min(start + CHUNK, patents):>9,} / {patents:,} patents", end="\r", flush=True)
    print("\n  building the full-text index …", flush=True)
    await _restore_fulltext(engine)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in ("organisations", "patents", "open_licence_offers", "catalogue_entries"):
                await conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
            await conn.execute(text("ANALYZE"))
        else:
            await conn.execute(text("ANALYZE"))
    await engine.dispose()
    print()
    return time.perf_counter() - started


def data_dir() -> Path:
    folder = PROJECT_ROOT / "bench" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
