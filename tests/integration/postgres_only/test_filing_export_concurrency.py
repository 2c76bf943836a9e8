"""Two exports rendered at the same moment on PostgreSQL: each takes its contracts FOR UPDATE SKIP
LOCKED, so no contract lands in both batches and together they carry every due contract."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest
from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.accounts.services import principal_for
from marketplace.files.models import StoredFile
from marketplace.filings import exports
from marketplace.filings import services as filings
from marketplace.filings.models import ContractFiling, FilingBatch, FilingBatchItem, FilingStatus, Registry
from marketplace.licensing.models import ContractStatus, LicenceContract
from tests.billing_factories import licence
from tests.factories import make_account
from tests.filing_factories import refreshed

pytestmark = pytest.mark.postgres_only


async def _two_batches(db, sessionmaker, settings, count: int) -> tuple[list[LicenceContract], list[int]]:
    contracts = [(await licence(db, fee_terms={"mode": "free"})).contract for _ in range(count)]
    assert {contract.status for contract in contracts} == {ContractStatus.ACTIVE}
    await refreshed(db, settings)
    admin = principal_for((await make_account(db, kind=OrganisationKind.PLATFORM)).user)
    batch_ids = []
    for _ in range(2):
        async with sessionmaker() as session, session.begin():
            batch = await exports.create_batch(session, admin, registry="licence_filing", file_format="csv")
            batch_ids.append(batch.id)
    return contracts, batch_ids


async def _render_at_once(sessionmaker, settings, batch_ids: list[int]) -> None:
    async def render(batch_id: int) -> None:
        async with sessionmaker() as session, session.begin():
            await exports.render_batch(session, settings, batch_id)

    await asyncio.gather(*(render(batch_id) for batch_id in batch_ids))


async def _assert_disjoint_and_complete(db, settings, contracts, batch_ids) -> list[set[int]]:
    numbers = {contract.id: contract.number for contract in contracts}
    exported: dict[int, set[int]] = {}
    for batch_id in batch_ids:
        batch = await db.get(FilingBatch, batch_id, populate_existing=True)
        items = set(await db.scalars(select(FilingBatchItem.contract_id).where(FilingBatchItem.batch_id == batch_id)))
        assert batch.contract_count == len(items)
        stored = await db.get(StoredFile, batch.file_id)
        body = (settings.upload_dir / stored.sha256).read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(body, newline="")))[1:]
        assert sorted(row[1] for row in rows) == sorted(numbers[contract_id] for contract_id in items)
        exported[batch_id] = items
    first, second = exported.values()
    assert first.isdisjoint(second)
    assert first | second == set(numbers)
    filings_now = (
        await db.execute(
            select(ContractFiling.contract_id, ContractFiling.status, ContractFiling.batch_id).where(
                ContractFiling.registry == Registry.LICENCE_FILING
            )
        )
    ).all()
    assert {status for _, status, _ in filings_now} == {FilingStatus.EXPORTED}
    assert all(contract_id in exported[batch_id] for contract_id, _, batch_id in filings_now)
    return [first, second]


async def test_two_batches_rendered_at_once_share_no_contract_and_miss_none(db, sessionmaker, settings):
    contracts, batch_ids = await _two_batches(db, sessionmaker, settings, 12)
    await _render_at_once(sessionmaker, settings, batch_ids)
    await _assert_disjoint_and_complete(db, settings, contracts, batch_ids)


async def test_renders_interleaving_chunk_by_chunk_skip_each_others_locked_contracts(
    db, sessionmaker, settings, monkeypatch
):
    """Renders queue behind each other on the sync's advisory lock; without it (synced beforehand),
    they run side by side and the row locks alone must keep them apart."""
    contracts, batch_ids = await _two_batches(db, sessionmaker, settings, 20)

    async def already_synced(session):
        return filings.RefreshResult()

    monkeypatch.setattr(filings, "sync", already_synced)
    # Small chunks, and each render waits after its first chunk until the other has taken one too:
    # both hold locks at the same time, so the second must skip the first's rows.
    monkeypatch.setattr(exports, "CHUNK", 3)
    first_chunk = {batch_id: asyncio.Event() for batch_id in batch_ids}
    real_move = filings.move

    async def move_then_wait(session, moves, *, actor, action):
        await real_move(session, moves, actor=actor, action=action)
        if action == "exported" and moves:
            first_chunk[moves[0].values["batch_id"]].set()
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in first_chunk.values())), 20)

    monkeypatch.setattr(filings, "move", move_then_wait)
    await _render_at_once(sessionmaker, settings, batch_ids)
    first, second = await _assert_disjoint_and_complete(db, settings, contracts, batch_ids)
    assert first and second
