"""Every contract gets a standing with both registries, which follows the contract: due once it takes
effect, a cancellation once the parties end it early, a change once a party's particulars change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace.accounts.models import Organisation
from marketplace.accounts.services import principal_for
from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.filings import rules
from marketplace.filings.models import FilingStatus, RecordKind, Registry
from marketplace.licensing import services as licensing
from marketplace.licensing.models import ContractStatus
from marketplace.offers.rules import add_months
from tests.billing_factories import LUMP_SUM, ROYALTY, licence
from tests.factories import delivered_mail
from tests.filing_factories import filing_of, refreshed


async def test_a_contract_in_force_is_due_with_both_registries_and_its_deadline(db, settings):
    free = await licence(db, fee_terms={"mode": "free"})
    result = await refreshed(db, settings)

    assert result.opened == 1
    for registry in Registry:
        filing = await filing_of(db, free.contract.id, registry)
        assert filing.status is FilingStatus.DUE
        assert filing.record_kind is RecordKind.NEW
        assert filing.effective_on == today()
    assert (await filing_of(db, free.contract.id)).due_on == add_months(today(), 3)
    assert (await filing_of(db, free.contract.id, Registry.TECH_CONTRACT)).due_on is None
    again = await refreshed(db, settings)
    assert again.opened == 0 and again.became_due == 0


async def test_a_contract_awaiting_its_first_payment_is_not_due_until_it_takes_effect(db, settings):
    paid = await licence(db, fee_terms=LUMP_SUM)
    assert paid.contract.status is ContractStatus.AWAITING_PAYMENT
    await refreshed(db, settings)
    filing = await filing_of(db, paid.contract.id)
    assert filing.status is FilingStatus.NOT_DUE and filing.due_on is None
    assert filing.contract_value_fen == 5_000_000

    paid.contract.status = ContractStatus.ACTIVE
    db.add(paid.contract)
    await db.commit()
    result = await refreshed(db, settings)
    assert result.became_due == 2
    filing = await filing_of(db, paid.contract.id)
    assert filing.status is FilingStatus.DUE and filing.due_on == add_months(filing.effective_on, 3)
    audit = (
        await db.scalars(
            select(AuditRecord).where(AuditRecord.entity_type == "contract_filing", AuditRecord.entity_id == filing.id)
        )
    ).all()
    assert [(a.entity_type, a.from_state, a.to_state, a.via) for a in audit] == [
        ("contract_filing", "not_due", "due", "system")
    ]


async def test_the_contract_value_counts_fixed_payments_and_guaranteed_minimums(db, settings):
    royalty = await licence(db, fee_terms=ROYALTY)
    await refreshed(db, settings)
    term_years = royalty.contract.terms_snapshot["terms"]["licence_term_months"] / 12
    filing = await filing_of(db, royalty.contract.id)
    assert filing.contract_value_fen == int(5_000_000 * term_years)


async def _filed(db, contract_id: int, number: str) -> None:
    for registry in Registry:
        filing = await filing_of(db, contract_id, registry)
        facts = await rules_facts(db, contract_id)
        filing.status = FilingStatus.FILED
        filing.number = number
        filing.recorded = rules.recorded_values(registry, facts)
    await db.commit()


async def rules_facts(db, contract_id: int) -> rules.ContractFacts:
    from marketplace.filings.services import load_facts

    return (await load_facts(db, [contract_id]))[contract_id]


async def test_ending_a_filed_contract_early_makes_a_cancellation_due_and_an_unfiled_one_not_required(db, settings):
    filed = await licence(db, fee_terms={"mode": "free"})
    unfiled = await licence(db, fee_terms={"mode": "free"})
    await refreshed(db, settings)
    await _filed(db, filed.contract.id, "2026990000001")
    for item in (filed, unfiled):
        await licensing.request_termination(
            db,
            actor=principal_for(item.licensee.user),
            contract_id=item.contract.id,
            values={"end_date": today().isoformat(), "reason": "项目调整"},
        )
        await licensing.confirm_termination(db, actor=principal_for(item.licensor.user), contract_id=item.contract.id)
    await db.commit()

    result = await refreshed(db, settings)
    assert result.cancellations == 2 and result.not_required == 2
    cancelled = await filing_of(db, filed.contract.id)
    assert (cancelled.status, cancelled.record_kind, cancelled.number) == (
        FilingStatus.DUE,
        RecordKind.CANCELLATION,
        "2026990000001",
    )
    assert (await filing_of(db, unfiled.contract.id)).status is FilingStatus.NOT_REQUIRED


async def test_a_party_that_moves_needs_a_change_record_naming_what_changed(db, settings):
    item = await licence(db, fee_terms={"mode": "free"})
    await refreshed(db, settings)
    await _filed(db, item.contract.id, "2026990000002")
    assert (await refreshed(db, settings)).changes == 0

    licensee = await db.get(Organisation, item.licensee.organisation.id)
    licensee.address = "江苏省苏州市工业园区新址路 1 号"
    await db.commit()
    result = await refreshed(db, settings)

    assert result.changes == 1
    filing = await filing_of(db, item.contract.id)
    assert (filing.status, filing.record_kind) == (FilingStatus.DUE, RecordKind.CHANGE)
    reason = await db.scalar(
        select(AuditRecord.reason).where(
            AuditRecord.entity_type == "contract_filing", AuditRecord.entity_id == filing.id
        )
    )
    assert "licensee.address" in reason
    # The registration holds no addresses: nothing to change there.
    assert (await filing_of(db, item.contract.id, Registry.TECH_CONTRACT)).status is FilingStatus.FILED


async def test_the_licensor_is_mailed_once_as_the_deadline_approaches_and_once_when_it_passed(
    db, settings, sessionmaker
):
    item = await licence(db, fee_terms={"mode": "free"})
    await refreshed(db, settings)
    due_on = (await filing_of(db, item.contract.id)).due_on

    assert (await refreshed(db, settings, on=due_on - timedelta(days=31))).reminders == 0
    await refreshed(db, settings, on=due_on - timedelta(days=30))
    await refreshed(db, settings, on=due_on - timedelta(days=29))
    await refreshed(db, settings, on=due_on + timedelta(days=1))
    mail = await delivered_mail(db, sessionmaker, settings, to=item.licensor.user.email)
    subjects = sorted(m.subject for m in mail if "备案" in m.subject)
    number = item.contract.number
    assert subjects == [f"许可合同 {number} 已超过备案期限", f"许可合同 {number} 的备案期限临近"]


async def test_a_bulk_move_of_a_filing_not_in_the_expected_state_writes_nothing(db, settings, sessionmaker):
    from marketplace.filings import services as filings

    first = await licence(db, fee_terms={"mode": "free"})
    second = await licence(db, fee_terms={"mode": "free"})
    await refreshed(db, settings)
    due, other = await filing_of(db, first.contract.id), await filing_of(db, second.contract.id)
    other.status = FilingStatus.NOT_REQUIRED
    await db.commit()
    due_id, other_id, contract_id = due.id, other.id, first.contract.id

    arguments = {
        "to_status": FilingStatus.EXPORTED,
        "values": {},
        "actor": None,
        "action": "exported",
        "reason": "导出批次 FE2026000001",
        "details": {"batch_number": "FE2026000001"},
    }
    with pytest.raises(RuntimeError, match="2 to move to exported, but 1 were in"):
        async with sessionmaker() as session, session.begin():
            await filings.move_in_database(session, [due_id, other_id], from_statuses=rules.EXPORTABLE, **arguments)
    assert (await filing_of(db, contract_id)).status is FilingStatus.DUE
    assert (await db.scalars(select(AuditRecord).where(AuditRecord.action == "exported"))).all() == []
    # A transition the table forbids is refused before anything is read.
    with pytest.raises(ValueError, match="not_required"):
        await filings.move_in_database(db, [other_id], from_statuses=[FilingStatus.NOT_REQUIRED], **arguments)
