"""The daily billing sweep: issue the invoices that are due, mark overdue invoices, put contracts in
default, and remind licensees of royalty reports.

Every step is idempotent and safe with several workers at once: contracts are taken in batches with
``FOR UPDATE SKIP LOCKED`` (a contract another worker holds is left to it), and what is invoiced is
always "entitled minus already invoiced" (:func:`marketplace.billing.services.bill_contract`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.accounts.models import Organisation
from marketplace.audit.models import AuditRecord
from marketplace.audit.services import system_record_row
from marketplace.billing import rules
from marketplace.billing.models import Invoice, InvoiceStatus, RoyaltyReport
from marketplace.billing.services import (
    BILLING_LOADS,
    CONTRACT_VIEW_COLUMNS,
    FIXED_KINDS,
    INVOICE_ENTITY,
    UNPAID,
    bill_contracts,
    contract_view,
)
from marketplace.clock import now_utc, today
from marketplace.licensing import services as licensing
from marketplace.licensing.models import LicenceContract, ObligationKind, PaymentObligation
from marketplace.money import format_yuan
from marketplace.outbox.services import Email, periodic_batches, queue_emails
from marketplace.settings import Settings

log = logging.getLogger(__name__)
BATCH = 500
#: Overdue report reminders stop this many days after the report was due.
REMINDER_HORIZON_DAYS = 90


@dataclass
class SweepResult:
    invoices: int = 0
    contracts_billed: int = 0
    overdue: int = 0
    defaults: int = 0
    reminders: int = 0
    details: list[str] = field(default_factory=list)


async def run(sessionmaker: async_sessionmaker, settings: Settings, *, on: date | None = None) -> SweepResult:
    on = on or today()
    result = SweepResult()
    await _issue_due(sessionmaker, settings, on, result)
    async with sessionmaker() as session, session.begin():
        await _mark_overdue(session, on, result)
    async with sessionmaker() as session, session.begin():
        await _defaults(session, settings, on, result)
    async with sessionmaker() as session, session.begin():
        await _report_reminders(session, settings, on, result)
    return result


@periodic_batches("billing.sweep", 3600)
async def _hourly(sessionmaker: async_sessionmaker, settings: Settings) -> None:
    result = await run(sessionmaker, settings)
    if result.invoices or result.overdue or result.defaults or result.reminders:
        log.info("billing sweep: %s", result)


def _due_items(on: date, settings: Settings):
    horizon = on + timedelta(days=settings.invoice_issue_ahead_days)
    closed_before = on - timedelta(days=settings.royalty_report_days)
    return and_(
        PaymentObligation.billed_at.is_(None),
        or_(
            and_(PaymentObligation.kind.in_(FIXED_KINDS), PaymentObligation.due_date <= horizon),
            and_(PaymentObligation.kind == ObligationKind.TRUE_UP, PaymentObligation.due_date < closed_before),
        ),
    )


async def _issue_due(sessionmaker: async_sessionmaker, settings: Settings, on: date, result: SweepResult) -> None:
    """Contracts with an item to bill, found once, then billed a batch per transaction. A contract
    another worker holds is skipped (``SKIP LOCKED``); one it finished meanwhile has nothing left to bill."""
    async with sessionmaker() as session:
        candidates = list(
            await session.scalars(
                select(PaymentObligation.contract_id)
                .where(_due_items(on, settings))
                .distinct()
                .order_by(PaymentObligation.contract_id)
            )
        )
    for start in range(0, len(candidates), BATCH):
        async with sessionmaker() as session, session.begin():
            rows = await session.execute(
                select(*CONTRACT_VIEW_COLUMNS)
                .join(Organisation, Organisation.id == LicenceContract.licensee_organisation_id)
                .where(
                    LicenceContract.id.in_(candidates[start : start + BATCH]),
                    exists().where(PaymentObligation.contract_id == LicenceContract.id, _due_items(on, settings)),
                )
                .order_by(LicenceContract.id)
                .with_for_update(skip_locked=True, of=LicenceContract)
            )
            contracts = [contract_view(row) for row in rows]
            result.contracts_billed += len(contracts)
            result.invoices += len(await bill_contracts(session, contracts, settings, on=on))


async def _mark_overdue(session: AsyncSession, on: date, result: SweepResult) -> None:
    """Unpaid invoices past their due date become overdue (one audit record each), in bulk."""
    rows = (
        await session.execute(
            select(Invoice.id, Invoice.status)
            .where(Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID]), Invoice.due_date < on)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return
    assert all(InvoiceStatus.OVERDUE in rules.INVOICE_TRANSITIONS[status] for _, status in rows)
    stamp = now_utc()
    for chunk in range(0, len(rows), 5000):
        part = rows[chunk : chunk + 5000]
        await session.execute(
            update(Invoice)
            .where(Invoice.id.in_([invoice_id for invoice_id, _ in part]))
            .values(status=InvoiceStatus.OVERDUE, updated_at=stamp)
        )
        await session.execute(
            insert(AuditRecord.__table__),
            [
                system_record_row(
                    INVOICE_ENTITY,
                    invoice_id,
                    "overdue",
                    stamp,
                    from_state=status.value,
                    to_state=InvoiceStatus.OVERDUE.value,
                    details={"on": on.isoformat()},
                )
                for invoice_id, status in part
            ],
        )
    result.overdue += len(rows)


async def _defaults(session: AsyncSession, settings: Settings, on: date, result: SweepResult) -> None:
    """Contracts whose oldest unpaid invoice is overdue ``default_after_days`` or more go into default
    (audited) and their licensors are told, in bulk."""
    threshold = on - timedelta(days=settings.default_after_days)
    owing = (
        select(
            Invoice.contract_id,
            func.min(Invoice.due_date).label("oldest"),
            func.sum(Invoice.total_fen - Invoice.paid_fen).label("outstanding"),
        )
        .where(Invoice.status.in_(UNPAID))
        .group_by(Invoice.contract_id)
        .having(func.min(Invoice.due_date) <= threshold)
        .subquery()
    )
    rows = (
        await session.execute(
            select(LicenceContract, owing.c.oldest, owing.c.outstanding)
            .join(owing, owing.c.contract_id == LicenceContract.id)
            .where(LicenceContract.in_default_since.is_(None))
            .options(*BILLING_LOADS)
            .with_for_update(skip_locked=True, of=LicenceContract)
        )
    ).all()
    rows = [row for row in rows if rules.in_default(row.oldest, on, settings.default_after_days)]
    if not rows:
        return
    stamp = now_utc()
    ids = [row.LicenceContract.id for row in rows]
    await session.execute(
        update(LicenceContract)
        .where(LicenceContract.id.in_(ids))
        .values(in_default_since=on, updated_at=stamp)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        insert(AuditRecord.__table__),
        [
            system_record_row(
                licensing.ENTITY,
                row.LicenceContract.id,
                "in_default",
                stamp,
                from_state=row.LicenceContract.status.value,
                to_state="in_default",
                reason=f"付款逾期超过{settings.default_after_days}日（最早应付日 {row.oldest}）",
                details={"oldest_unpaid_due": row.oldest.isoformat(), "outstanding_fen": int(row.outstanding)},
            )
            for row in rows
        ],
    )
    licensors = {
        organisation.id: organisation
        for organisation in await session.scalars(
            select(Organisation).where(
                Organisation.id.in_({row.LicenceContract.licensor_organisation_id for row in rows})
            )
        )
    }
    recipients = await licensing.party_emails_for(session, list(licensors.values()))
    emails = []
    for row in rows:
        contract = row.LicenceContract
        subject = f"违约提示：合同 {contract.number} 付款逾期超过{settings.default_after_days}日"
        body = (
            f"被许可方 {contract.licensee.name} 自 {row.oldest} 起有款项未付，"
            f"未付合计 ¥{format_yuan(int(row.outstanding))}。合同已标记为违约，付清后自动解除。\n"
            f"详情：/contracts/{contract.id}/billing\n"
        )
        emails.extend(
            Email(to, subject, body, f"contract:{contract.id}:default:{on}:{to}")
            for to in recipients[contract.licensor_organisation_id]
        )
    await queue_emails(session, emails)
    result.defaults += len(rows)


async def _report_reminders(session: AsyncSession, settings: Settings, on: date, result: SweepResult) -> None:
    days = settings.royalty_report_days
    latest_end = on - timedelta(days=days) + timedelta(days=rules.REPORT_REMINDER_LEAD_DAYS)
    earliest_end = on - timedelta(days=days + REMINDER_HORIZON_DAYS)
    rows = (
        await session.execute(
            select(
                PaymentObligation.id,
                PaymentObligation.description,
                PaymentObligation.period_end,
                LicenceContract.id.label("contract_id"),
                LicenceContract.number,
                LicenceContract.licensee_organisation_id,
            )
            .join(LicenceContract, LicenceContract.id == PaymentObligation.contract_id)
            .where(
                PaymentObligation.kind == ObligationKind.ROYALTY,
                PaymentObligation.period_end.between(earliest_end, latest_end),
                or_(LicenceContract.ended_on.is_(None), PaymentObligation.period_start <= LicenceContract.ended_on),
                ~exists().where(RoyaltyReport.obligation_id == PaymentObligation.id),
            )
        )
    ).all()
    due_today = [
        (row, kind) for row in rows if (kind := rules.report_reminder(row.period_end, on, days, reported=False))
    ]
    licensees = list(
        await session.scalars(
            select(Organisation).where(Organisation.id.in_({row.licensee_organisation_id for row, _ in due_today}))
        )
    )
    recipients = await licensing.party_emails_for(session, licensees)
    emails = []
    for row, kind in due_today:
        due = rules.report_due(row.period_end, days)
        subject = {
            "before": f"提成报告提醒：{row.description}应于{due}前报告",
            "due": f"提成报告今日到期：{row.description}",
            "overdue": f"提成报告已逾期：{row.description}（应于{due}前报告）",
        }[kind]
        body = f"请在“提成报告”页面提交该期报告；无销售时请提交零报告。\n/contracts/{row.contract_id}/billing\n"
        emails.extend(
            Email(to, f"{subject}（合同 {row.number}）", body, f"report_reminder:{row.id}:{kind}:{on}:{to}")
            for to in recipients[row.licensee_organisation_id]
        )
    await queue_emails(session, emails)
    result.reminders += len(due_today)  # reminders due today, including any an earlier run already queued
