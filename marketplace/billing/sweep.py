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

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.audit.services import record
from marketplace.billing import rules
from marketplace.billing.models import Invoice, InvoiceStatus, RoyaltyReport
from marketplace.billing.payments import oldest_unpaid_due
from marketplace.billing.services import FIXED_KINDS, bill_contract, refresh_status
from marketplace.clock import today
from marketplace.licensing import services as licensing
from marketplace.licensing.models import LicenceContract, ObligationKind, PaymentObligation
from marketplace.money import format_yuan
from marketplace.outbox.services import periodic_batches
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
    after = 0
    while True:
        async with sessionmaker() as session, session.begin():
            contracts = list(
                await session.scalars(
                    select(LicenceContract)
                    .where(
                        LicenceContract.id > after,
                        exists().where(PaymentObligation.contract_id == LicenceContract.id, _due_items(on, settings)),
                    )
                    .order_by(LicenceContract.id)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True, of=LicenceContract)
                )
            )
            if not contracts:
                return
            for contract in contracts:
                invoice = await bill_contract(session, contract, settings, on=on)
                result.contracts_billed += 1
                if invoice is not None:
                    result.invoices += 1
            after = contracts[-1].id


async def _mark_overdue(session: AsyncSession, on: date, result: SweepResult) -> None:
    invoices = await session.scalars(
        select(Invoice)
        .where(Invoice.status.in_([InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID]), Invoice.due_date < on)
        .with_for_update(skip_locked=True, of=Invoice)
    )
    for invoice in invoices:
        await refresh_status(session, invoice, None, action="overdue", on=on)
        result.overdue += 1


async def _defaults(session: AsyncSession, settings: Settings, on: date, result: SweepResult) -> None:
    threshold = on - timedelta(days=settings.default_after_days)
    contracts = await session.scalars(
        select(LicenceContract)
        .where(
            LicenceContract.in_default_since.is_(None),
            exists().where(
                Invoice.contract_id == LicenceContract.id,
                Invoice.status == InvoiceStatus.OVERDUE,
                Invoice.due_date < threshold,
            ),
        )
        .with_for_update(skip_locked=True, of=LicenceContract)
    )
    for contract in contracts:
        oldest = await oldest_unpaid_due(session, contract.id)
        if not rules.in_default(oldest, on, settings.default_after_days):
            continue
        contract.in_default_since = on
        result.defaults += 1
        await record(
            session,
            entity_type=licensing.ENTITY,
            entity_id=contract.id,
            action="in_default",
            actor=None,
            from_state=contract.status.value,
            to_state="in_default",
            reason=f"付款逾期超过{settings.default_after_days}日（最早应付日 {oldest}）",
        )
        outstanding = sum(
            invoice.outstanding_fen
            for invoice in await session.scalars(select(Invoice).where(Invoice.contract_id == contract.id))
        )
        await licensing.email_organisation(
            session,
            contract.licensor,
            subject=f"违约提示：合同 {contract.number} 付款逾期超过{settings.default_after_days}日",
            body=(
                f"被许可方 {contract.licensee.name} 自 {oldest} 起有款项未付，"
                f"未付合计 ¥{format_yuan(outstanding)}。合同已标记为违约，付清后自动解除。\n"
                f"详情：/contracts/{contract.id}/billing\n"
            ),
            key=f"contract:{contract.id}:default:{on}",
        )


async def _report_reminders(session: AsyncSession, settings: Settings, on: date, result: SweepResult) -> None:
    days = settings.royalty_report_days
    latest_end = on - timedelta(days=days) + timedelta(days=rules.REPORT_REMINDER_LEAD_DAYS)
    earliest_end = on - timedelta(days=days + REMINDER_HORIZON_DAYS)
    rows = await session.execute(
        select(PaymentObligation, LicenceContract)
        .join(LicenceContract, LicenceContract.id == PaymentObligation.contract_id)
        .where(
            PaymentObligation.kind == ObligationKind.ROYALTY,
            PaymentObligation.period_end.between(earliest_end, latest_end),
            or_(LicenceContract.ended_on.is_(None), PaymentObligation.period_start <= LicenceContract.ended_on),
            ~exists().where(RoyaltyReport.obligation_id == PaymentObligation.id),
        )
    )
    for item, contract in rows:
        assert item.period_end is not None
        kind = rules.report_reminder(item.period_end, on, days, reported=False)
        if kind is None:
            continue
        due = rules.report_due(item.period_end, days)
        subject = {
            "before": f"提成报告提醒：{item.description}应于{due}前报告",
            "due": f"提成报告今日到期：{item.description}",
            "overdue": f"提成报告已逾期：{item.description}（应于{due}前报告）",
        }[kind]
        await licensing.email_organisation(
            session,
            contract.licensee,
            subject=f"{subject}（合同 {contract.number}）",
            body=f"请在“提成报告”页面提交该期报告；无销售时请提交零报告。\n/contracts/{contract.id}/billing\n",
            key=f"report_reminder:{item.id}:{kind}:{on}",
        )
        result.reminders += 1
