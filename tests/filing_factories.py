"""Arranging filings: licences in force (so their filings are due) and the refresh that opens them."""

from __future__ import annotations

from sqlalchemy import select

from marketplace.filings import services as filings
from marketplace.filings.models import ContractFiling, Registry


async def refreshed(db, settings, **kwargs) -> filings.RefreshResult:
    result = await filings.refresh(db, settings, **kwargs)
    await db.commit()
    return result


async def filing_of(db, contract_id: int, registry: Registry = Registry.LICENCE_FILING) -> ContractFiling:
    return await db.scalar(
        select(ContractFiling)
        .where(ContractFiling.contract_id == contract_id, ContractFiling.registry == registry)
        .execution_options(populate_existing=True)
    )
