"""Arranging filings: licences in force (so their filings are due) and the refresh that opens them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from sqlalchemy import select

from marketplace.clock import now_utc, today
from marketplace.filings import rules
from marketplace.filings import services as filings
from marketplace.filings.models import (
    BatchStatus,
    ContractFiling,
    ExportFormat,
    FilingBatch,
    FilingBatchItem,
    FilingStatus,
    Registry,
)


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


_batch_serial = itertools.count(1)


async def exported(db, settings, contracts: Iterable, registry: Registry = Registry.LICENCE_FILING) -> FilingBatch:
    """Export the contracts' pending records to ``registry`` without the export renderer: a ready batch
    with one item per contract (the values the registry will hold, the record kind) and the filings
    moved to exported, as an export leaves them."""
    await filings.refresh(db, settings)
    ids = [contract.id for contract in contracts]
    facts = await filings.load_facts(db, ids)
    pending = (
        await db.scalars(
            select(ContractFiling)
            .where(ContractFiling.contract_id.in_(ids), ContractFiling.registry == registry)
            .order_by(ContractFiling.id)
        )
    ).all()
    assert {f.contract_id for f in pending} == set(ids)
    assert all(f.status in rules.EXPORTABLE for f in pending), [(f.contract_id, f.status) for f in pending]
    batch = FilingBatch(
        number=f"FE{today().year}{900000 + next(_batch_serial):06d}",
        registry=registry,
        file_format=ExportFormat.CSV,
        status=BatchStatus.READY,
        selection={"arranged_by": "tests"},
        contract_count=len(ids),
        ready_at=now_utc(),
    )
    db.add(batch)
    await db.flush()
    db.add_all(
        FilingBatchItem(
            batch_id=batch.id,
            contract_id=f.contract_id,
            record_kind=f.record_kind,
            values=rules.recorded_values(registry, facts[f.contract_id]),
        )
        for f in pending
    )
    moves = [
        filings.Move(f.id, f.status, FilingStatus.EXPORTED, f"导出批次 {batch.number}", {"batch_id": batch.id})
        for f in pending
    ]
    await filings.move(db, moves, actor=None, action="exported")
    await db.commit()
    return batch


async def recorded_as_filed(
    db, contract_id: int, number: str, registries: tuple[Registry, ...] = tuple(Registry), **recorded: object
) -> None:
    """Arrange what an imported result would leave: filed, numbered, holding the contract's values as
    they are now (``recorded`` overrides some of them, as if the registry had filed other values)."""
    facts = (await filings.load_facts(db, [contract_id]))[contract_id]
    for registry in registries:
        filing = await filing_of(db, contract_id, registry)
        filing.status = FilingStatus.FILED
        filing.number = number
        filing.recorded = rules.recorded_values(registry, facts) | recorded
    await db.commit()
