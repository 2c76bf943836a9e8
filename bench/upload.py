"""Bulk inventory upload (盘点入库) of a 100,000-row CSV with full validation: rows per second,
through the service and through the JSON API."""

from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import replace
from datetime import date, timedelta

from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind, Role, VerificationStatus
from marketplace.accounts.services import create_api_token, create_organisation, create_user, principal_for
from marketplace.app import create_app
from marketplace.db import make_engine, make_sessionmaker
from marketplace.demo.vocabulary import FIELDS, abstract_for, inventors_for, title_for
from marketplace.patents.models import Patent, UploadMode
from marketplace.patents.rules import COLUMNS, canonical_application_number
from marketplace.patents.services import import_inventory, template_headers
from marketplace.settings import load_settings

ROWS = 100_000


def inventory_csv(rows: int, *, year: int, seed: int = 11) -> bytes:
    """A realistic inventory table with every column filled, all rows valid."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(template_headers())
    keys = [column.key for column in COLUMNS]
    for i in range(rows):
        field = rng.choice(FIELDS)
        title = title_for(rng, field)
        type_digit = rng.choice("1112")
        filing = date(year - rng.randrange(4, 12), rng.randrange(1, 13), rng.randrange(1, 29))
        ipc = rng.choice(field.ipc)
        values = {
            "application_number": canonical_application_number(f"{year}{type_digit}{i:07d}"),
            "title": title,
            "patent_type": "发明" if type_digit == "1" else "实用新型",
            "filing_date": filing.isoformat(),
            "grant_date": (filing + timedelta(days=rng.randrange(200, 900))).isoformat(),
            "legal_status": "有效",
            "annual_fee_paid_until": "2027-06-30",
            "expiry_override": "",
            "ipc_main": ipc,
            "ipc_codes": "；".join(rng.sample(field.ipc, 2)),
            "abstract": abstract_for(rng, field, title),
            "inventors": "；".join(inventors_for(rng)),
            "co_owners": "",
            "co_owner_consent": "否",
            "pledged": "否",
            "pledgee_consent": "否",
            "exclusive_or_sole_licence": "否",
            "proceedings_suspended": "否",
            "government_funded": rng.choice("是否"),
            "implemented": "否",
            "trl": str(rng.randint(3, 9)),
            "transfer_intents": "许可；转让",
            "application_scenarios": rng.choice(field.scenarios),
            "claims_count": str(rng.randint(3, 20)),
        }
        writer.writerow([values[key] for key in keys])
    return out.getvalue().encode("utf-8")


async def _licensor(sessionmaker, name: str):
    async with sessionmaker() as session:
        organisation = await create_organisation(
            session,
            name=name,
            kind=OrganisationKind.UNIVERSITY,
            uscc="12100000400000624D",
            division_code="110108",
            verification_status=VerificationStatus.VERIFIED,
        )
        user = await create_user(
            session,
            organisation=organisation,
            email="bench@example.cn",
            display_name="基准测试",
            password="bench-password-1",
            role=Role.ORG_ADMIN,
        )
        raw, _ = await create_api_token(session, actor=principal_for(user), name="bench")
        await session.commit()
        return principal_for(user), raw


async def run(label: str, url: str) -> str:
    """``url`` must point at an empty, migrated database."""
    settings = replace(load_settings(), database_url=url, run_worker_in_process=False, upload_max_bytes=200 * 2**20)
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    actor, token = await _licensor(sessionmaker, "基准测试大学")
    service_csv = inventory_csv(ROWS, year=2019)
    api_csv = inventory_csv(ROWS, year=2020, seed=12)

    start = time.perf_counter()
    async with sessionmaker() as session:
        upload = await import_inventory(
            session, actor, filename="inventory.csv", content=service_csv, mode=UploadMode.VALID_ROWS, settings=settings
        )
        await session.commit()
    service_seconds = time.perf_counter() - start
    assert upload.rejected_count == 0, upload.report

    app = create_app(settings)
    async with AsyncTestClient(app=app, timeout=600) as client:
        start = time.perf_counter()
        response = await client.post(
            "/api/v1/inventory-uploads",
            files={"file": ("inventory.csv", api_csv, "text/csv")},
            data={"mode": "valid_rows"},
            headers={"Authorization": f"Bearer {token}"},
        )
        api_seconds = time.perf_counter() - start
    response.raise_for_status()
    async with sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(Patent))
    await engine.dispose()
    assert stored == 2 * ROWS, stored

    def rate(seconds: float) -> str:
        return f"{ROWS / seconds:,.0f}"

    verdict = "meets" if ROWS / service_seconds >= 5000 else "misses"
    return "\n".join(
        [
            f"### Bulk inventory upload — {label}",
            "",
            f"A {ROWS:,}-row CSV ({len(service_csv) / 2**20:.1f} MiB, every column filled, every row valid) "
            "into an empty inventory, full validation, one transaction.",
            "",
            "| path | seconds | rows/s |",
            "|---|---|---|",
            f"| service (`import_inventory`) | {service_seconds:.1f} | {rate(service_seconds)} |",
            f"| `POST /api/v1/inventory-uploads` (multipart, in-process) | {api_seconds:.1f} | {rate(api_seconds)} |",
            "",
            f"Target ≥ 5,000 rows/s: **{verdict}**.",
        ]
    )
