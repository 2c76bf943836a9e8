"""``db.bulk_insert``: COPY on PostgreSQL, executemany elsewhere — the same rows either way, inside the
caller's transaction, and a clear refusal when a column with only a Python-side default is left out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from marketplace.audit.models import AuditRecord
from marketplace.db import bulk_insert
from marketplace.filings.models import ContractFiling

AT = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)


def _audit_row(entity_id: int, **overrides) -> dict:
    return {
        "entity_type": "contract_filing",
        "entity_id": entity_id,
        "action": "exported",
        "from_state": "due",
        "to_state": "exported",
        "reason": "导出批次 FE2026000001",
        "actor_user_id": None,
        "actor_organisation_id": None,
        "via": "system",
        "occurred_at": AT,
        "details": {"batch_number": "FE2026000001", "名称": "清华大学", "nested": {"fen": 12_345_678_901}},
        "created_at": AT,
        "updated_at": AT,
    } | overrides


def _read(record: AuditRecord) -> tuple:
    return (
        record.entity_type,
        record.action,
        record.from_state,
        record.to_state,
        record.reason,
        record.via,
        record.occurred_at,
        record.details,
        record.created_at,
    )


async def test_rows_read_back_exactly_as_an_ordinary_insert_writes_them(sessionmaker):
    async with sessionmaker() as session, session.begin():
        await session.execute(insert(AuditRecord.__table__), [_audit_row(1)])
        await bulk_insert(session, AuditRecord.__table__, [_audit_row(2), _audit_row(3, reason=None, details={})])

    async with sessionmaker() as session:
        records = {r.entity_id: r for r in await session.scalars(select(AuditRecord))}
    assert sorted(records) == [1, 2, 3]
    assert _read(records[2]) == _read(records[1])
    assert records[2].occurred_at == AT
    assert records[2].details["名称"] == "清华大学"
    assert records[2].details["nested"]["fen"] == 12_345_678_901
    assert records[3].reason is None and records[3].details == {}
    assert len({r.id for r in records.values()}) == 3


async def test_rows_are_part_of_the_transaction_and_vanish_with_its_rollback(sessionmaker):
    with pytest.raises(RuntimeError):
        async with sessionmaker() as session, session.begin():
            await bulk_insert(session, AuditRecord.__table__, [_audit_row(n) for n in range(1, 501)])
            raise RuntimeError("the export failed after writing")

    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditRecord)) == 0


async def test_a_column_with_only_a_python_default_must_be_given(sessionmaker):
    row = _audit_row(1)
    del row["created_at"]
    async with sessionmaker() as session, session.begin():
        with pytest.raises(ValueError, match="created_at"):
            await bulk_insert(session, AuditRecord.__table__, [row])
        with pytest.raises(ValueError, match="recorded"):
            await bulk_insert(
                session,
                ContractFiling.__table__,
                [{"contract_id": 1, "registry": "licence_filing", "status": "due", "record_kind": "new"}],
            )


async def test_nothing_to_insert_is_a_no_op(sessionmaker):
    async with sessionmaker() as session, session.begin():
        await bulk_insert(session, AuditRecord.__table__, [])
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditRecord)) == 0
