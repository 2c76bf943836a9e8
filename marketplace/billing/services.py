"""Billing use cases: invoicing a contract's plan items, royalty reports, first-revenue declarations,
the ledger, and reading invoices.

Every money change on a contract runs with the contract row locked (:func:`lock_contract`), so the
ledger balances and the invoiced-per-item sums read inside it are never stale. What a contract owes
is derived, not accumulated: :func:`bill_contract` compares what the plan and the reports entitle the
licensor to with what was already invoiced, and invoices only the difference, so running it twice
(two workers, a retry, a correction) never bills anything twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload, noload

from marketplace.accounts.models import Organisation
from marketplace.accounts.rules import Principal
from marketplace.audit.models import AuditRecord
from marketplace.audit.services import apply_transition, record, system_record_row
from marketplace.billing import rules
from marketplace.billing.models import (
    Account,
    DocumentCounter,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LedgerEntry,
    LineKind,
    RoyaltyReport,
)
from marketplace.clock import now_utc, today
from marketplace.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from marketplace.files.services import Upload, pdf_errors, store_pdf
from marketplace.licensing import services as licensing
from marketplace.licensing.models import ContractStatus, LicenceContract, ObligationKind, PaymentObligation
from marketplace.money import format_yuan
from marketplace.offers import rules as offer_rules
from marketplace.offers.rules import Deferral, PayAfterUseTerms, RoyaltyBase, RoyaltyTerms
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import Email, handler, queue_emails
from marketplace.settings import Settings

INVOICE_ENTITY = "invoice"
REPORT_ENTITY = "royalty_report"
INVOICE_SERIES = "PN"
FIXED_KINDS = frozenset({ObligationKind.LUMP_SUM, ObligationKind.INSTALMENT, ObligationKind.ENTRY_FEE})
#: Money changes read a contract's snapshot and both parties (for the mail), never its offer, patent or
#: plan through the relationships.
MONEY_LOADS = (
    lazyload(LicenceContract.offer),
    lazyload(LicenceContract.patent),
    noload(LicenceContract.obligations),
)
#: Batches of contracts read their licensee (for the mail) but not the licensor either.
BILLING_LOADS = (*MONEY_LOADS, lazyload(LicenceContract.licensor))
#: Invoices that still wait for money.
UNPAID = frozenset({InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE})


# ---------------------------------------------------------------------------------------------
# Locks, numbers, ledger
# ---------------------------------------------------------------------------------------------


async def lock_contract(session: AsyncSession, contract_id: int) -> LicenceContract:
    """The contract, locked for the rest of the transaction (PostgreSQL ``FOR UPDATE``; SQLite
    transactions already write one at a time)."""
    contract = await session.scalar(
        select(LicenceContract)
        .where(LicenceContract.id == contract_id)
        .options(*MONEY_LOADS)
        .with_for_update(of=LicenceContract)
        .execution_options(populate_existing=True)
    )
    if contract is None:
        raise NotFound("许可合同不存在")
    # The identity map holds objects weakly: keep the locked contract for the transaction, so later
    # look-ups of it (session.get) find it instead of querying again.
    session.info.setdefault("locked_contracts", {})[contract.id] = contract
    return contract


async def lock_row(session: AsyncSession, row: Any) -> None:
    """Lock the contract a payment, refund or invoice belongs to, then re-read the row under that lock."""
    await lock_contract(session, row.contract_id)
    await session.refresh(row)


async def next_number(session: AsyncSession, series: str, year: int, *, count: int = 1) -> int:
    """Reserve the next ``count`` numbers of a series in a year and return the last of them. Gapless:
    the counter row stays locked until commit, and a rollback gives the numbers back."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = now_utc()
    statement = (
        dialect.insert(DocumentCounter)
        .values(series=series, year=year, last_value=count, created_at=now, updated_at=now)
        .on_conflict_do_update(
            index_elements=[DocumentCounter.series, DocumentCounter.year],
            set_={"last_value": DocumentCounter.last_value + count, "updated_at": now},
        )
        .returning(DocumentCounter.last_value)
    )
    return int((await session.execute(statement)).scalar_one())


def post(
    session: AsyncSession, contract_id: int, journal: str, legs: Iterable[tuple[Account, int]], on: date, memo: str
) -> None:
    """Write a balanced journal. ``(journal, account)`` is unique, so posting it twice fails."""
    legs = [(account, amount) for account, amount in legs if amount]
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"unbalanced journal {journal}: {legs}")
    merged: dict[Account, int] = defaultdict(int)
    for account, amount in legs:
        merged[Account(account)] += amount
    for account, amount in merged.items():
        session.add(
            LedgerEntry(
                contract_id=contract_id, journal=journal, account=account, amount_fen=amount, occurred_on=on, memo=memo
            )
        )


async def balances(session: AsyncSession, contract_id: int) -> dict[Account, int]:
    await session.flush()
    rows = await session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount_fen))
        .where(LedgerEntry.contract_id == contract_id)
        .group_by(LedgerEntry.account)
    )
    totals = {account: 0 for account in Account}
    for account, amount in rows:
        totals[Account(account)] = int(amount or 0)
    return totals


async def credit_of(session: AsyncSession, contract_id: int) -> int:
    """The licensee's unused credit on the contract (over-payments, downward corrections)."""
    return -(await balances(session, contract_id))[Account.LICENSEE_CREDIT]


# ---------------------------------------------------------------------------------------------
# Terms of a contract
# ---------------------------------------------------------------------------------------------


def fee_terms(contract: LicenceContract) -> offer_rules.FeeTerms:
    return offer_rules.terms_from_json(contract.terms_snapshot["terms"]["fee_terms"])


def royalty_terms(contract: LicenceContract) -> RoyaltyTerms | None:
    return offer_rules.royalty_of(fee_terms(contract))


def _offer_version(contract: LicenceContract) -> tuple[int, int]:
    offer = contract.terms_snapshot["offer"]
    return offer["id"], offer["version"]


def _closed_years(obligations: Sequence[PaymentObligation], reported: set[str], on: date, report_days: int) -> set[int]:
    """Contract years whose royalties are settled: every period reported, or the last report overdue."""
    by_year: dict[int, list[PaymentObligation]] = defaultdict(list)
    for item in obligations:
        if item.kind is ObligationKind.ROYALTY and item.contract_year is not None and item.period_end is not None:
            by_year[item.contract_year].append(item)
    closed = set()
    for year, items in by_year.items():
        last_end = max(item.period_end for item in items if item.period_end is not None)
        if all(item.key in reported for item in items) or on > rules.report_due(last_end, report_days):
            closed.add(year)
    return closed


# ---------------------------------------------------------------------------------------------
# Invoicing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftLine:
    kind: LineKind
    item_key: str | None
    description: str
    amount_fen: int
    obligation_id: int | None = None
    royalty_report_id: int | None = None


async def invoiced_by_key(session: AsyncSession, contract_id: int) -> dict[str, int]:
    """What every plan item has been invoiced so far (void invoices included: voiding writes an item off)."""
    return (await _invoiced_for(session, [contract_id]))[contract_id]


async def _invoiced_for(session: AsyncSession, contract_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    await session.flush()
    invoiced: dict[int, dict[str, int]] = {contract_id: {} for contract_id in contract_ids}
    rows = await session.execute(
        select(InvoiceLine.contract_id, InvoiceLine.item_key, func.sum(InvoiceLine.amount_fen))
        .where(InvoiceLine.contract_id.in_(contract_ids), InvoiceLine.item_key.is_not(None))
        .group_by(InvoiceLine.contract_id, InvoiceLine.item_key)
    )
    for contract_id, key, amount in rows:
        invoiced[contract_id][key] = int(amount)
    return invoiced


async def _current_reports(session: AsyncSession, contract_id: int) -> dict[str, RoyaltyReport]:
    return (await _reports_for(session, [contract_id]))[contract_id]


async def _reports_for(session: AsyncSession, contract_ids: Sequence[int]) -> dict[int, dict[str, RoyaltyReport]]:
    reports: dict[int, dict[str, RoyaltyReport]] = {contract_id: {} for contract_id in contract_ids}
    rows = await session.execute(
        select(PaymentObligation.key, RoyaltyReport)
        .join(RoyaltyReport, RoyaltyReport.obligation_id == PaymentObligation.id)
        .where(RoyaltyReport.contract_id.in_(contract_ids), RoyaltyReport.is_current.is_(True))
    )
    for key, report in rows:
        reports[report.contract_id][key] = report
    return reports


async def _credits_for(session: AsyncSession, contract_ids: Sequence[int]) -> dict[int, int]:
    await session.flush()
    credits = dict.fromkeys(contract_ids, 0)
    rows = await session.execute(
        select(LedgerEntry.contract_id, func.sum(LedgerEntry.amount_fen))
        .where(LedgerEntry.contract_id.in_(contract_ids), LedgerEntry.account == Account.LICENSEE_CREDIT)
        .group_by(LedgerEntry.contract_id)
    )
    for contract_id, amount in rows:
        credits[contract_id] = -int(amount or 0)
    return credits


def _billable_until(contract: LicenceContract) -> date:
    return contract.ended_on or contract.end_date


@dataclass(frozen=True)
class Party:
    id: int
    contact_email: str | None


@dataclass(frozen=True)
class ContractView:
    """What billing reads of a contract, loaded as one plain row (the sweep bills hundreds of
    thousands; a full ORM contract with its relationships costs far more than billing needs)."""

    id: int
    number: str
    licensor_organisation_id: int
    licensee_organisation_id: int
    start_date: date
    end_date: date
    ended_on: date | None
    terms_snapshot: dict[str, Any]
    licensee: Party


#: The columns of :class:`ContractView` (with the licensee's contact e-mail from ``organisations``).
CONTRACT_VIEW_COLUMNS = (
    LicenceContract.id,
    LicenceContract.number,
    LicenceContract.licensor_organisation_id,
    LicenceContract.licensee_organisation_id,
    LicenceContract.start_date,
    LicenceContract.end_date,
    LicenceContract.ended_on,
    LicenceContract.terms_snapshot,
    Organisation.contact_email,
)


def contract_view(row: Any) -> ContractView:
    return ContractView(*row[:8], licensee=Party(row.licensee_organisation_id, row.contact_email))


@dataclass
class _Bill:
    """What one contract is about to be invoiced."""

    contract: LicenceContract
    drafts: list[DraftLine]
    due_date: date


async def bill_contract(
    session: AsyncSession, contract: LicenceContract, settings: Settings, *, on: date | None = None
) -> Invoice | None:
    """Invoice whatever the contract owes and has not been invoiced yet. The caller holds the lock."""
    [invoice_id] = await bill_contracts(session, [contract], settings, on=on) or [None]
    return None if invoice_id is None else await session.get(Invoice, invoice_id)


async def bill_contracts(
    session: AsyncSession,
    contracts: Sequence[LicenceContract] | Sequence[ContractView],
    settings: Settings,
    *,
    on: date | None = None,
) -> list[int]:
    """Invoice what each contract owes and has not been invoiced yet; the caller holds their locks.
    Returns the new invoices' ids. A few statements serve the whole batch, whatever its size.

    Fixed items are invoiced ``invoice_issue_ahead_days`` before they fall due; royalties once
    reported; a contract year's minimum true-up once the year is closed. Items of a contract that
    ended early are billed only up to its end.
    """
    if not contracts:
        return []
    on = on or today()
    ids = [contract.id for contract in contracts]
    obligations = await _billable_items(session, ids)
    # Contracts on one offer version share their terms: parse each version once per batch.
    parsed: dict[tuple[int, int], RoyaltyTerms | None] = {}
    royalties: dict[int, RoyaltyTerms | None] = {}
    for contract in contracts:
        version = _offer_version(contract)
        if version not in parsed:
            parsed[version] = royalty_terms(contract)
        royalties[contract.id] = parsed[version]
    royalty_ids = [contract_id for contract_id, terms in royalties.items() if terms is not None]
    reports = await _reports_for(session, royalty_ids) if royalty_ids else {}
    invoiced = await _invoiced_for(session, ids)
    bills = []
    billed_now: list[int] = []
    for contract in contracts:
        drafts, billed, due = _drafts(
            contract,
            royalties[contract.id],
            obligations[contract.id],
            reports.get(contract.id, {}),
            invoiced[contract.id],
            settings,
            on,
        )
        billed_now.extend(billed)
        if drafts:
            bills.append(_Bill(contract, drafts, due))
    for start in range(0, len(billed_now), 5000):
        await session.execute(
            update(PaymentObligation)
            .where(PaymentObligation.id.in_(billed_now[start : start + 5000]))
            .values(billed_at=now_utc())
            .execution_options(synchronize_session=False)
        )
    return await _issue(session, bills, on=on) if bills else []


#: The plan items billing reads, as plain rows (a batch holds hundreds of thousands of them).
_ITEM_COLUMNS = (
    PaymentObligation.id,
    PaymentObligation.contract_id,
    PaymentObligation.key,
    PaymentObligation.kind,
    PaymentObligation.description,
    PaymentObligation.amount_fen,
    PaymentObligation.due_date,
    PaymentObligation.period_start,
    PaymentObligation.period_end,
    PaymentObligation.contract_year,
    PaymentObligation.months,
    PaymentObligation.billed_at,
)


async def _billable_items(session: AsyncSession, contract_ids: Sequence[int]) -> dict[int, list[Any]]:
    """Every royalty and true-up item (entitlements need the whole year), and the fixed items not yet
    billed (a billed fixed item is invoiced in full and never changes)."""
    items: dict[int, list[Any]] = {contract_id: [] for contract_id in contract_ids}
    rows = await session.execute(
        select(*_ITEM_COLUMNS).where(
            PaymentObligation.contract_id.in_(contract_ids),
            or_(
                PaymentObligation.kind.in_([ObligationKind.ROYALTY, ObligationKind.TRUE_UP]),
                PaymentObligation.billed_at.is_(None),
            ),
        )
    )
    for row in rows:
        items[row.contract_id].append(row)
    return items


def _drafts(
    contract: LicenceContract,
    royalty: RoyaltyTerms | None,
    obligations: Sequence[Any],
    reports: dict[str, RoyaltyReport],
    invoiced: dict[str, int],
    settings: Settings,
    on: date,
) -> tuple[list[DraftLine], list[int], date]:
    """The lines a contract's next invoice carries, the plan items (ids) billed now, and its due date."""
    until = _billable_until(contract)
    horizon = on + timedelta(days=settings.invoice_issue_ahead_days)
    desired: dict[str, int] = {}
    lines_meta: dict[str, tuple[LineKind, str, int | None, int | None]] = {}
    billed_now: list[int] = []
    fixed_due: list[date] = []
    for item in obligations:
        if item.kind in FIXED_KINDS and item.due_date is not None and item.amount_fen is not None:
            if item.due_date > until and item.billed_at is None:
                billed_now.append(item.id)  # due after the contract ended early: nothing to bill
            elif item.due_date <= horizon:
                desired[item.key] = item.amount_fen
                lines_meta[item.key] = (LineKind.FIXED, item.description, item.id, None)
                if item.billed_at is None:
                    billed_now.append(item.id)
    if royalty is not None:
        closed = _closed_years(obligations, set(reports), on, settings.royalty_report_days)
        owed = rules.royalty_entitlements(
            royalty, obligations, {key: report.royalty_fen for key, report in reports.items()}, closed
        )
        by_key = {item.key: item for item in obligations}
        for key, amount in owed.items():
            item = by_key[key]
            if item.kind is ObligationKind.TRUE_UP:
                lines_meta[key] = (LineKind.TRUE_UP, item.description, item.id, None)
                if item.billed_at is None:
                    billed_now.append(item.id)
            else:
                report = reports[key]
                suffix = f"（第{report.version}版报告）" if report.version > 1 else ""
                lines_meta[key] = (
                    LineKind.ROYALTY,
                    f"{item.description}{suffix}：{report.formula}",
                    item.id,
                    report.id,
                )
            desired[key] = amount
    drafts = []
    for key, delta in rules.adjustments(desired, invoiced):
        kind, description, obligation_id, report_id = lines_meta[key]
        if key in invoiced:
            description = f"{description}（调整：原已开具¥{format_yuan(invoiced[key])}）"
        drafts.append(DraftLine(kind, key, description[:300], delta, obligation_id, report_id))
        if kind is LineKind.FIXED:
            fixed_due.extend(item.due_date for item in obligations if item.key == key and item.due_date)
    # Fixed items are due on their own date; report-based lines get the standard payment period.
    due = max(on + timedelta(days=settings.invoice_due_days), min(min(fixed_due, default=date.min), until))
    return drafts, billed_now, due


async def _issue(session: AsyncSession, bills: Sequence[_Bill], *, on: date) -> list[int]:
    """Issue one payment request (付款通知书) per bill, using up each licensee's credit first, with a
    handful of statements for the batch: gapless numbers, invoices, lines, ledger, audit, emails.
    A non-positive total (a downward correction) becomes a settled credit notice that adds to the credit."""
    credits = await _credits_for(session, [bill.contract.id for bill in bills])
    last = await next_number(session, INVOICE_SERIES, on.year, count=len(bills))
    stamp = now_utc()
    invoices: list[dict[str, Any]] = []
    settled: list[tuple[_Bill, list[DraftLine], int, int]] = []
    for offset, bill in enumerate(bills):
        gross = sum(line.amount_fen for line in bill.drafts)
        settlement = rules.settle(gross, credits[bill.contract.id])
        lines = list(bill.drafts)
        if settlement.credit_used:
            lines.append(DraftLine(LineKind.CREDIT, None, "使用账户余额抵扣", -settlement.credit_used))
        total = gross - settlement.credit_used
        sequence = last - len(bills) + 1 + offset
        contract = bill.contract
        invoices.append(
            {
                "number": f"{INVOICE_SERIES}{on.year}{sequence:06d}",
                "year": on.year,
                "sequence": sequence,
                "contract_id": contract.id,
                "licensor_organisation_id": contract.licensor_organisation_id,
                "licensee_organisation_id": contract.licensee_organisation_id,
                "status": rules.invoice_status(total, 0, bill.due_date, on, False),
                "issued_on": on,
                "due_date": bill.due_date,
                "total_fen": total,
                "paid_fen": 0,
                "snapshot": _invoice_snapshot(contract),
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
        settled.append((bill, lines, gross, settlement.credit_used))
    invoice_ids = list(
        await session.scalars(
            insert(Invoice.__table__).returning(Invoice.__table__.c.id, sort_by_parameter_order=True), invoices
        )
    )
    line_rows: list[dict[str, Any]] = []
    ledger_rows: list[dict[str, Any]] = []
    audit_rows: list[dict[str, Any]] = []
    for invoice_id, row, (bill, lines, gross, credit_used) in zip(invoice_ids, invoices, settled, strict=True):
        contract_id = bill.contract.id
        for n, line in enumerate(lines, start=1):
            line_rows.append(
                {
                    "invoice_id": invoice_id,
                    "contract_id": contract_id,
                    "line_no": n,
                    "kind": line.kind,
                    "item_key": line.item_key,
                    "obligation_id": line.obligation_id,
                    "royalty_report_id": line.royalty_report_id,
                    "description": line.description,
                    "amount_fen": line.amount_fen,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        journal = f"invoice:{invoice_id}"
        number = row["number"]
        if gross > 0:
            journals = [(journal, rules.invoice_issued(gross), f"开具付款通知书 {number}")]
            if credit_used:
                journals.append((f"{journal}:credit", rules.credit_applied(credit_used), f"{number} 使用余额抵扣"))
        else:
            journals = [(journal, rules.credit_created(-gross), f"{number} 调减计入余额")] if gross < 0 else []
        for name, legs, memo in journals:
            ledger_rows.extend(_ledger_rows(contract_id, name, legs, on, memo, stamp))
        audit_rows.append(
            system_record_row(
                INVOICE_ENTITY,
                invoice_id,
                "issued",
                stamp,
                to_state=row["status"].value,
                details={"number": number, "total_fen": row["total_fen"], "contract_id": contract_id},
            )
        )
    await session.execute(insert(InvoiceLine.__table__), line_rows)
    if ledger_rows:
        await session.execute(insert(LedgerEntry.__table__), ledger_rows)
    await session.execute(insert(AuditRecord.__table__), audit_rows)
    await _notify_invoices(session, bills, invoice_ids, invoices, settled)
    return invoice_ids


def _ledger_rows(contract_id: int, journal: str, legs: rules.Postings, on: date, memo: str, stamp) -> list[dict]:
    if sum(amount for _, amount in legs) != 0:
        raise ValueError(f"unbalanced journal {journal}: {legs}")
    return [
        {
            "contract_id": contract_id,
            "journal": journal,
            "account": account,
            "amount_fen": amount,
            "occurred_on": on,
            "memo": memo,
            "created_at": stamp,
            "updated_at": stamp,
        }
        for account, amount in legs
        if amount
    ]


def _invoice_snapshot(contract: LicenceContract) -> dict[str, Any]:
    frozen = contract.terms_snapshot
    return {
        "contract_number": contract.number,
        "patent": {key: frozen["patent"][key] for key in ("title", "patent_number", "type_label")},
        "licensor": frozen["licensor"],
        "licensee": frozen["licensee"],
        "terms": {key: frozen["terms"][key] for key in ("payment_mode_label", "description", "licence_term_months")},
        "licence_period": [contract.start_date.isoformat(), contract.end_date.isoformat()],
    }


async def _notify_invoices(
    session: AsyncSession,
    bills: Sequence[_Bill],
    invoice_ids: Sequence[int],
    invoices: Sequence[dict[str, Any]],
    settled: Sequence[tuple[_Bill, list[DraftLine], int, int]],
) -> None:
    """Mail each licensee its new payment request, in one statement for the batch."""
    recipients = await licensing.party_emails_for(session, [bill.contract.licensee for bill in bills])
    emails = []
    for bill, invoice_id, row, (_, lines, _, _) in zip(bills, invoice_ids, invoices, settled, strict=True):
        number, total = row["number"], row["total_fen"]
        if total <= 0:
            subject = f"调整通知 {number}：¥{format_yuan(-total)} 计入账户余额"
        else:
            subject = f"付款通知书 {number}：应付 ¥{format_yuan(total)}，{row['due_date']} 前支付"
        body = (
            f"合同 {bill.contract.number}（专利《{bill.contract.terms_snapshot['patent']['title']}》）\n"
            + "".join(f"- {line.description}：¥{format_yuan(line.amount_fen)}\n" for line in lines)
            + f"合计：¥{format_yuan(total)}\n付款期限：{row['due_date']}\n"
            f"查看与支付：/invoices/{invoice_id}\n"
        )
        emails.extend(
            Email(to, subject, body, f"invoice:{invoice_id}:{to}")
            for to in recipients[bill.contract.licensee_organisation_id]
        )
    await queue_emails(session, emails)


async def refresh_status(
    session: AsyncSession,
    invoice: Invoice,
    actor: Principal | None,
    *,
    action: str,
    on: date | None = None,
    refund: bool = False,
) -> None:
    """Bring the invoice's status in line with its amounts and due date (audited when it moves)."""
    status = rules.invoice_status(
        invoice.total_fen, invoice.paid_fen, invoice.due_date, on or today(), invoice.status is InvoiceStatus.VOID
    )
    if invoice.status is status:
        return
    await apply_transition(
        session,
        entity=invoice,
        entity_type=INVOICE_ENTITY,
        to_state=status,
        allowed=rules.invoice_transitions(refund=refund),
        actor=actor,
        action=action,
    )


# ---------------------------------------------------------------------------------------------
# Royalty reports (提成报告)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportInput:
    obligation_key: str
    client_report_id: str
    nil_report: bool
    base_amount: int
    breakdown: list[dict[str, Any]]
    note: str | None


def _require_licensee(actor: Principal, contract: LicenceContract) -> None:
    if licensing.side_of(actor, contract) != "licensee":
        raise Forbidden("只有被许可方可以报告提成")


async def royalty_base(session: AsyncSession, actor: Principal, contract_id: int) -> RoyaltyBase | None:
    """What the contract's royalty is reported on (sales, profit, units …), or None without royalties."""
    terms = royalty_terms(await licensing.get_for_party(session, actor, contract_id))
    return terms.base if terms is not None else None


async def royalty_items(session: AsyncSession, contract: LicenceContract) -> list[PaymentObligation]:
    return list(
        await session.scalars(
            select(PaymentObligation)
            .where(
                PaymentObligation.contract_id == contract.id,
                PaymentObligation.kind == ObligationKind.ROYALTY,
                PaymentObligation.period_end.is_not(None),
            )
            .order_by(PaymentObligation.period_start)
        )
    )


async def submit_report(
    session: AsyncSession,
    actor: Principal,
    contract_id: int,
    data: ReportInput,
    settings: Settings,
    *,
    attachment: Upload | None = None,
) -> tuple[RoyaltyReport, bool]:
    """Record a royalty report (or a corrected version) and invoice what it changes.

    Returns ``(report, created)``; a retry with the same ``client_report_id`` returns the first report.
    """
    contract = await licensing.get_for_party(session, actor, contract_id)
    _require_licensee(actor, contract)
    contract = await lock_contract(session, contract.id)
    existing = await session.scalar(
        select(RoyaltyReport).where(
            RoyaltyReport.contract_id == contract.id, RoyaltyReport.client_report_id == data.client_report_id
        )
    )
    if existing is not None:
        return existing, False
    terms = royalty_terms(contract)
    if terms is None:
        raise ValidationFailed([FieldError("period", "该合同不按提成支付，无需报告")])
    item = await session.scalar(
        select(PaymentObligation).where(
            PaymentObligation.contract_id == contract.id,
            PaymentObligation.key == data.obligation_key,
            PaymentObligation.kind == ObligationKind.ROYALTY,
        )
    )
    if item is None or item.period_end is None or item.contract_year is None:
        raise ValidationFailed([FieldError("period", "请选择有效的报告期")])
    on = today()
    if item.period_end > on:
        raise ValidationFailed([FieldError("period", f"该报告期至{item.period_end}结束，结束后方可报告")])
    if item.period_start is not None and item.period_start > _billable_until(contract):
        raise ValidationFailed([FieldError("period", "该报告期在合同终止之后，无需报告")])
    current = await session.scalar(
        select(RoyaltyReport).where(RoyaltyReport.obligation_id == item.id, RoyaltyReport.is_current.is_(True))
    )
    if current is not None and not data.note:
        raise ValidationFailed([FieldError("note", "该期已报告；更正报告请说明更正原因", "required")])
    line = rules.royalty_amount(terms, contract_year=item.contract_year, base=data.base_amount)
    report = RoyaltyReport(
        contract_id=contract.id,
        obligation_id=item.id,
        client_report_id=data.client_report_id,
        version=(current.version + 1) if current else 1,
        is_current=True,
        nil_report=data.nil_report,
        base_amount=data.base_amount,
        breakdown=data.breakdown,
        attachment_file_id=(
            await store_attachment(session, actor, attachment, settings, field="attachment", purpose="royalty_report")
            if attachment is not None
            else None
        ),
        contract_year=item.contract_year,
        rate=str(line.rate) if line.rate is not None else None,
        unit_amount_fen=line.unit_amount_fen,
        royalty_fen=line.amount_fen,
        formula=line.formula[:300],
        note=data.note,
        submitted_by_user_id=actor.user_id,
        submitted_at=now_utc(),
    )
    if current is not None:
        current.is_current = False
    session.add(report)
    await session.flush()
    await record(
        session,
        entity_type=REPORT_ENTITY,
        entity_id=report.id,
        action="corrected" if current else "submitted",
        actor=actor,
        to_state=f"v{report.version}",
        reason=data.note,
        details={"contract_id": contract.id, "period": item.key, "royalty_fen": report.royalty_fen},
    )
    await bill_contract(session, contract, settings, on=on)
    what = "更正" if current else ("零报告" if data.nil_report else "报告")
    await licensing.email_organisation(
        session,
        contract.licensor,
        subject=f"提成{what}：合同 {contract.number} {item.description}",
        body=(
            f"{contract.licensee.name} 提交了{item.description}的提成{what}（第{report.version}版）。\n"
            f"{report.formula}\n合同详情：/contracts/{contract.id}/billing\n"
        ),
        key=f"royalty_report:{report.id}",
    )
    return report, True


async def reports_of(session: AsyncSession, contract_id: int) -> list[RoyaltyReport]:
    return list(
        await session.scalars(
            select(RoyaltyReport)
            .where(RoyaltyReport.contract_id == contract_id)
            .order_by(RoyaltyReport.obligation_id, RoyaltyReport.version)
        )
    )


async def get_report(session: AsyncSession, actor: Principal, report_id: int) -> RoyaltyReport:
    report = await session.get(RoyaltyReport, report_id)
    if report is None:
        raise NotFound("提成报告不存在")
    await licensing.get_for_party(session, actor, report.contract_id)
    return report


# ---------------------------------------------------------------------------------------------
# First revenue (先用后付：取得首笔收入后付款)
# ---------------------------------------------------------------------------------------------


async def declare_first_revenue(
    session: AsyncSession, actor: Principal, contract_id: int, first_revenue_on: date, settings: Settings
) -> LicenceContract:
    """The licensee reports the day of its first revenue: the deferred terms start to run from it."""
    contract = await licensing.get_for_party(session, actor, contract_id)
    _require_licensee(actor, contract)
    if not actor.is_org_admin:
        raise Forbidden("只有企业管理员可以申报首笔收入")
    contract = await lock_contract(session, contract.id)
    terms = fee_terms(contract)
    if not (isinstance(terms, PayAfterUseTerms) and terms.deferral is Deferral.FIRST_REVENUE):
        raise Conflict("该合同不是“取得首笔收入后付款”的先用后付许可")
    if contract.first_revenue_on is not None:
        raise Conflict(f"已于{contract.first_revenue_on}申报首笔收入")
    if contract.status is ContractStatus.ENDED:
        raise Conflict("合同已终止")
    on = today()
    if first_revenue_on < contract.start_date or first_revenue_on > on:
        raise ValidationFailed(
            [FieldError("first_revenue_on", f"首笔收入日期应在{contract.start_date}至今天之间", "out_of_range")]
        )
    undated = list(
        await session.scalars(
            select(PaymentObligation).where(
                PaymentObligation.contract_id == contract.id, PaymentObligation.after_first_revenue.is_(True)
            )
        )
    )
    for item in undated:
        await session.delete(item)
    await session.flush()
    last = await session.scalar(
        select(func.max(PaymentObligation.sequence)).where(PaymentObligation.contract_id == contract.id)
    )
    plan = rules.payment_plan(
        terms,
        start=contract.start_date,
        end=contract.end_date,
        term_months=contract.terms_snapshot["terms"]["licence_term_months"],
        first_revenue_on=first_revenue_on,
    )
    for number, line in enumerate(plan, start=(last or 0) + 1):
        session.add(licensing.obligation_row(contract.id, number, line))
    contract.first_revenue_on = first_revenue_on
    await record(
        session,
        entity_type=licensing.ENTITY,
        entity_id=contract.id,
        action="first_revenue_declared",
        actor=actor,
        details={"first_revenue_on": first_revenue_on.isoformat()},
    )
    await session.flush()
    await bill_contract(session, contract, settings, on=on)
    await licensing.email_organisation(
        session,
        contract.licensor,
        subject=f"首笔收入申报：合同 {contract.number}",
        body=f"{contract.licensee.name} 申报于{first_revenue_on}取得首笔收入，付款计划自该日起算。\n"
        f"合同详情：/contracts/{contract.id}/billing\n",
        key=f"contract:{contract.id}:first_revenue",
    )
    return contract


# ---------------------------------------------------------------------------------------------
# Reading invoices
# ---------------------------------------------------------------------------------------------


async def get_invoice(session: AsyncSession, actor: Principal, invoice_id: int) -> Invoice:
    invoice = await session.get(Invoice, invoice_id)
    if invoice is None or not _may_see(actor, invoice.licensor_organisation_id, invoice.licensee_organisation_id):
        raise NotFound("付款通知书不存在")
    return invoice


def is_payee_admin(actor: Principal, licensor_id: int) -> bool:
    """Confirming money, refunding and voiding are for the licensor's admins and platform admins."""
    return actor.is_platform_admin or (actor.organisation_id == licensor_id and actor.is_org_admin)


def _may_see(actor: Principal, licensor_id: int, licensee_id: int) -> bool:
    return actor.is_platform_admin or actor.organisation_id in (licensor_id, licensee_id)


async def list_invoices(
    session: AsyncSession, actor: Principal, *, contract_id: int | None = None, status: InvoiceStatus | None = None
) -> list[Invoice]:
    query = select(Invoice).order_by(Invoice.issued_on.desc(), Invoice.id.desc()).limit(500)
    if not actor.is_platform_admin:
        query = query.where(
            (Invoice.licensee_organisation_id == actor.organisation_id)
            | (Invoice.licensor_organisation_id == actor.organisation_id)
        )
    if contract_id is not None:
        query = query.where(Invoice.contract_id == contract_id)
    if status is not None:
        query = query.where(Invoice.status == status)
    return list(await session.scalars(query))


# ---------------------------------------------------------------------------------------------
# A contract's billing at a glance
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRow:
    item: PaymentObligation
    invoiced_fen: int
    report: RoyaltyReport | None
    report_due: date | None
    reportable: bool
    missing: bool


@dataclass(frozen=True)
class BillingOverview:
    contract: LicenceContract
    side: str
    rows: list[PlanRow]
    reports: list[RoyaltyReport]
    invoices: list[Invoice]
    balances: dict[Account, int]
    royalty: RoyaltyTerms | None
    awaiting_first_revenue: bool

    @property
    def credit_fen(self) -> int:
        return -self.balances[Account.LICENSEE_CREDIT]

    @property
    def outstanding_fen(self) -> int:
        return self.balances[Account.RECEIVABLE]

    @property
    def missing_reports(self) -> list[PlanRow]:
        return [row for row in self.rows if row.missing]


async def overview(session: AsyncSession, actor: Principal, contract_id: int, settings: Settings) -> BillingOverview:
    contract = await licensing.get_for_party(session, actor, contract_id)
    side = licensing.side_of(actor, contract) or ""
    on = today()
    items = list(
        await session.scalars(
            select(PaymentObligation)
            .where(PaymentObligation.contract_id == contract.id)
            .order_by(PaymentObligation.due_date.is_(None), PaymentObligation.due_date, PaymentObligation.sequence)
        )
    )
    reports = await _current_reports(session, contract.id)
    invoiced = await invoiced_by_key(session, contract.id)
    until = _billable_until(contract)
    rows = []
    for item in items:
        report = reports.get(item.key)
        due = None
        reportable = missing = False
        if item.kind is ObligationKind.ROYALTY and item.period_end is not None:
            due = rules.report_due(item.period_end, settings.royalty_report_days)
            in_term = item.period_start is None or item.period_start <= until
            reportable = in_term and item.period_end <= on
            missing = reportable and report is None and on > due
        rows.append(PlanRow(item, invoiced.get(item.key, 0), report, due, reportable, missing))
    terms = fee_terms(contract)
    return BillingOverview(
        contract=contract,
        side=side,
        rows=rows,
        reports=await reports_of(session, contract.id),
        invoices=await list_invoices(session, actor, contract_id=contract.id),
        balances=await balances(session, contract.id),
        royalty=royalty_terms(contract),
        awaiting_first_revenue=isinstance(terms, PayAfterUseTerms)
        and terms.deferral is Deferral.FIRST_REVENUE
        and contract.first_revenue_on is None,
    )


@handler(licensing.BILL_CONTRACT)
async def _bill_new_contract(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    contract = await lock_contract(session, message.payload["contract_id"])
    await bill_contract(session, contract, settings)


async def void_invoice(session: AsyncSession, actor: Principal, invoice_id: int, reason: str) -> Invoice:
    """Withdraw a payment request (作废): its items are written off, never billed again, and anything
    already paid on it or covered by credit returns to the licensee's credit."""
    invoice = await get_invoice(session, actor, invoice_id)
    if not is_payee_admin(actor, invoice.licensor_organisation_id):
        raise Forbidden("只有许可方管理员或平台管理员可以作废付款通知书")
    reason = reason.strip()
    if not reason:
        raise ValidationFailed([FieldError("reason", "请说明作废原因", "required")])
    contract = await lock_contract(session, invoice.contract_id)
    await session.refresh(invoice)
    if invoice.status is InvoiceStatus.VOID or InvoiceStatus.VOID not in rules.INVOICE_TRANSITIONS[invoice.status]:
        raise Conflict(f"{invoice.status.label}的付款通知书不能作废")
    gross = sum(line.amount_fen for line in invoice.lines if line.kind is not LineKind.CREDIT)
    credit_used = -sum(line.amount_fen for line in invoice.lines if line.kind is LineKind.CREDIT)
    post(
        session,
        contract.id,
        f"invoice:{invoice.id}:void",
        rules.invoice_voided(gross, credit_used, invoice.paid_fen),
        today(),
        f"作废付款通知书 {invoice.number}",
    )
    invoice.void_reason = reason
    await apply_transition(
        session,
        entity=invoice,
        entity_type=INVOICE_ENTITY,
        to_state=InvoiceStatus.VOID,
        allowed=rules.INVOICE_TRANSITIONS,
        actor=actor,
        action="voided",
        reason=reason,
    )
    await licensing.email_organisation(
        session,
        contract.licensee,
        subject=f"付款通知书 {invoice.number} 已作废",
        body=f"作废原因：{reason}\n"
        + (f"已付的 ¥{format_yuan(invoice.paid_fen)} 计入账户余额。\n" if invoice.paid_fen else ""),
        key=f"invoice:{invoice.id}:void",
    )
    return invoice


# ---------------------------------------------------------------------------------------------
# Attachments (a report's evidence, a transfer's bank receipt)
# ---------------------------------------------------------------------------------------------


async def store_attachment(
    session: AsyncSession, actor: Principal, upload: Upload, settings: Settings, *, field: str, purpose: str
) -> int:
    """Store an uploaded PDF for the actor's organisation; its id goes on the report or payment."""
    errors = pdf_errors(upload, field=field, max_bytes=settings.upload_max_bytes)
    if errors:
        raise ValidationFailed(errors)
    return (await store_pdf(session, actor=actor, settings=settings, upload=upload, purpose=purpose)).id


async def attach_to_report(
    session: AsyncSession, actor: Principal, report_id: int, upload: Upload, settings: Settings
) -> RoyaltyReport:
    """Attach the evidence (PDF) to a report version that has none; a different one needs a correction."""
    report = await get_report(session, actor, report_id)
    contract = await licensing.get_for_party(session, actor, report.contract_id)
    _require_licensee(actor, contract)
    if report.attachment_file_id is not None:
        raise Conflict("该报告已有附件；如需更换，请提交更正报告")
    report.attachment_file_id = await store_attachment(
        session, actor, upload, settings, field="attachment", purpose="royalty_report"
    )
    await record(
        session,
        entity_type=REPORT_ENTITY,
        entity_id=report.id,
        action="attachment_added",
        actor=actor,
        details={"file_id": report.attachment_file_id},
    )
    return report
