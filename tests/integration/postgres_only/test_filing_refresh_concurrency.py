"""Refreshes running at once (the worker's hourly run beside an export's and an import's) open each
filing once and audit each move once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from marketplace.audit.models import AuditRecord
from marketplace.filings import services as filings
from marketplace.filings.models import ContractFiling, FilingStatus
from marketplace.licensing.models import ContractStatus, LicenceContract
from tests.billing_factories import LUMP_SUM, licence

pytestmark = pytest.mark.postgres_only


async def _refresh(sessionmaker, settings) -> filings.RefreshResult:
    async with sessionmaker() as session, session.begin():
        return await filings.refresh(session, settings)


async def test_three_refreshes_at_once_open_and_move_each_filing_once(db, sessionmaker, settings):
    contracts = [(await licence(db, fee_terms=LUMP_SUM)).contract for _ in range(6)]
    results = await asyncio.gather(*(_refresh(sessionmaker, settings) for _ in range(3)))
    assert sum(r.opened for r in results) == 6
    assert await db.scalar(select(func.count()).select_from(ContractFiling)) == 12

    for contract in contracts:
        row = await db.get(LicenceContract, contract.id)
        row.status = ContractStatus.ACTIVE
    await db.commit()
    results = await asyncio.gather(*(_refresh(sessionmaker, settings) for _ in range(3)))
    assert sum(r.became_due for r in results) == 12
    statuses = set(await db.scalars(select(ContractFiling.status)))
    assert statuses == {FilingStatus.DUE}
    moves = await db.scalar(
        select(func.count()).select_from(AuditRecord).where(AuditRecord.entity_type == "contract_filing")
    )
    assert moves == 12
