"""Pure billing rules (计费规则): the payment plan accepted fee terms create, the royalty of a report,
what the licensor is owed per plan item (annual-minimum true-ups, the cap), the adjustments the next
invoice carries, invoice states, credit, ledger postings and report reminders.

No I/O: terms, dates and amounts arrive as arguments. Money is int fen; ``round_fen`` is the only
rounding. The meaning of every fee term is docs/fee-terms.md.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

from marketplace.billing.models import Account, InvoiceStatus
from marketplace.licensing.models import ObligationKind
from marketplace.money import format_yuan, round_fen
from marketplace.offers.rules import (
    Deferral,
    EntryFeeRoyaltyTerms,
    FeeTerms,
    FreeTerms,
    InstalmentTerms,
    LumpSumTerms,
    PayAfterUseTerms,
    RoyaltyBase,
    RoyaltyTerms,
    add_months,
    annual_minimum_true_up,
    format_rate,
    instalment_amounts,
    instalment_due,
    licence_end,
    period_name,
    royalty_periods,
)

#: Key of the single undated line that stands for every royalty period until the first revenue.
UNDATED_ROYALTY_KEY = "royalty"


# ---------------------------------------------------------------------------------------------
# The payment plan (付款计划)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanItem:
    """One payment the accepted terms call for, named by a key that is stable and unique within the
    contract: ``lump_sum``, ``instalment:1``…``instalment:n``, ``entry_fee``,
    ``royalty:{contract_year}:{index_in_year}``, ``true_up:{contract_year}``, and ``royalty`` for the
    one undated line that stands for every royalty period while the licence waits on its first revenue.

    Royalties and true-ups have no amount until the licensee reports. ``months`` is the number of
    months a royalty period or a true-up's contract year covers (a month cut short by the end of the
    licence counts as a month). ``after_first_revenue`` items have no date until the first revenue.
    """

    key: str
    kind: ObligationKind
    description: str
    amount_fen: int | None = None
    due_date: date | None = None
    period_start: date | None = None
    period_end: date | None = None
    contract_year: int | None = None
    months: int | None = None
    after_first_revenue: bool = False


def payment_plan(
    terms: FeeTerms, *, start: date, end: date, term_months: int, first_revenue_on: date | None = None
) -> list[PlanItem]:
    """Every payment a licence running from ``start`` to ``end`` (inclusive) calls for, by due date.

    ``term_months`` is the offer's term; ``end`` may be earlier (the patent expires first), and then
    everything is clipped to it: periods past ``end`` are dropped, the period straddling it is
    shortened, and fixed payments due later fall due on ``end``. Every dated item is due in
    [``start``, ``end``].

    Pay-after-use: with a deferral of months, the ``then`` terms run as if the licence took effect
    when the deferral ends (their contract years count from that day). Until the first revenue,
    ``first_revenue_on`` is None and the items are undated (the royalty periods are one undated line);
    once it is known, the ``then`` terms run from that date over the rest of the licence and the
    items are dated. When the licence ends before the ``then`` terms begin, nothing is owed.
    ``first_revenue_on`` is ignored for other terms.
    """
    if term_months < 1:
        raise ValueError("term_months must be at least 1")
    if end < start:
        raise ValueError("the licence cannot end before it starts")
    end = min(end, licence_end(start, term_months))
    if isinstance(terms, FreeTerms):
        return []
    if not isinstance(terms, PayAfterUseTerms):
        return _dated(terms, anchor=start, skip=0, end=end)
    if terms.deferral is Deferral.MONTHS:
        return _dated(terms.then, anchor=start, skip=terms.deferral_months or 0, end=end)
    if first_revenue_on is None:
        return _awaiting_first_revenue(terms.then, start)
    if first_revenue_on < start:
        raise ValueError("the first revenue cannot precede the licence")
    return _dated(terms.then, anchor=first_revenue_on, skip=0, end=end)


def _dated(terms: FeeTerms, *, anchor: date, skip: int, end: date) -> list[PlanItem]:
    """Items of ``terms`` taking effect ``skip`` months after ``anchor``, clipped to ``end``. Months
    count from ``anchor`` so a month-end anchor keeps its day."""
    if add_months(anchor, skip) > end:
        return []
    items = [replace(item, due_date=min(item.due_date, end)) for item in _fixed(terms, anchor, skip)]
    royalty = _royalty_part(terms)
    if royalty is not None:
        items.extend(_royalty_items(royalty, anchor, skip, end))
    # A stable sort keeps each year's true-up right after its last period (same due date).
    return sorted(items, key=lambda item: item.due_date or date.max)


def _fixed(terms: FeeTerms, anchor: date, skip: int) -> list[PlanItem]:
    """The fixed-amount items (lump sum, instalments, entry fee), due dates not yet clipped."""
    begin = add_months(anchor, skip)
    if isinstance(terms, LumpSumTerms):
        due = begin + timedelta(days=terms.due_days)
        return [PlanItem("lump_sum", ObligationKind.LUMP_SUM, "许可使用费（一次总付）", terms.amount_fen, due)]
    if isinstance(terms, InstalmentTerms):
        return [
            PlanItem(
                f"instalment:{k + 1}",
                ObligationKind.INSTALMENT,
                f"第{k + 1}期许可使用费（共{terms.count}期）",
                amount,
                instalment_due(terms, k, anchor, skip),
            )
            for k, amount in enumerate(instalment_amounts(terms.total_fen, terms.count))
        ]
    if isinstance(terms, EntryFeeRoyaltyTerms):
        due = begin + timedelta(days=terms.entry_due_days)
        return [PlanItem("entry_fee", ObligationKind.ENTRY_FEE, "入门费", terms.entry_fee_fen, due)]
    return []


def _royalty_part(terms: FeeTerms) -> RoyaltyTerms | None:
    if isinstance(terms, RoyaltyTerms):
        return terms
    if isinstance(terms, EntryFeeRoyaltyTerms):
        return terms.royalty
    return None


def _months_to_cover(anchor: date, skip: int, end: date) -> int:
    """Months after the first ``skip`` (counted from ``anchor``) that have begun by ``end``."""
    months = max(0, (end.year - anchor.year) * 12 + end.month - anchor.month - skip)
    while add_months(anchor, skip + months) <= end:
        months += 1
    return months


def _royalty_items(terms: RoyaltyTerms, anchor: date, skip: int, end: date) -> list[PlanItem]:
    items: list[PlanItem] = []
    year_start = anchor
    # Counting the months begun by ``end`` makes the last period and year as long as the licence
    # really runs, so a year cut short by the patent's expiry pro-rates its minimum too.
    for period in royalty_periods(terms.reporting_period, anchor, _months_to_cover(anchor, skip, end), skip):
        period_end = min(period.end, end)
        if period.index_in_year == 1:
            year_start = period.start
        name = period_name(terms.reporting_period, period.index_in_year)
        items.append(
            PlanItem(
                f"royalty:{period.year}:{period.index_in_year}",
                ObligationKind.ROYALTY,
                f"第{period.year}合同年度{name}提成（按报告的{terms.base.label}计算）",
                due_date=period_end,
                period_start=period.start,
                period_end=period_end,
                contract_year=period.year,
                months=period.months,
            )
        )
        if period.last_in_year and terms.annual_minimum_fen:
            items.append(
                PlanItem(
                    f"true_up:{period.year}",
                    ObligationKind.TRUE_UP,
                    _true_up_description(period.year, terms.annual_minimum_fen, period.year_months),
                    due_date=period_end,
                    period_start=year_start,
                    period_end=period_end,
                    contract_year=period.year,
                    months=period.year_months,
                )
            )
    return items


def _true_up_description(year: int, minimum_fen: int, months: int) -> str:
    minimum = prorated_minimum(minimum_fen, months)
    if months < 12:
        return f"第{year}合同年度最低使用费补足（本年度{months}个月，最低额按比例折算为¥{format_yuan(minimum)}）"
    return f"第{year}合同年度最低使用费补足（年度最低¥{format_yuan(minimum)}）"


def _awaiting_first_revenue(terms: FeeTerms, start: date) -> list[PlanItem]:
    """Until the first revenue nothing has a date, and the royalty periods are unknown: one line
    stands for all of them (and for their annual minimums)."""
    items = [replace(item, due_date=None, after_first_revenue=True) for item in _fixed(terms, anchor=start, skip=0)]
    if _royalty_part(terms) is not None:
        items.append(
            PlanItem(
                UNDATED_ROYALTY_KEY,
                ObligationKind.ROYALTY,
                "取得首笔收入后，按报告期报告并支付提成",
                after_first_revenue=True,
            )
        )
    return items


def plan_order(key: str) -> tuple[int, int, int, int, str]:
    """Sort key putting plan keys in the plan's natural order: the lump sum and entry fee, the
    instalments by number, then royalties year by year, each year's true-up after its periods."""
    head, _, rest = key.partition(":")
    parts = rest.split(":")
    if head in ("lump_sum", "entry_fee") and not rest:
        return (0, 0, 0, 0, key)
    if head == "instalment" and rest.isdigit():
        return (1, int(rest), 0, 0, key)
    if head == "royalty" and len(parts) == 2 and all(p.isdigit() for p in parts):
        return (2, int(parts[0]), 0, int(parts[1]), key)
    if head == "true_up" and rest.isdigit():
        return (2, int(rest), 1, 0, key)
    return (3, 0, 0, 0, key)


# ---------------------------------------------------------------------------------------------
# The royalty of a report (提成计算)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoyaltyLine:
    """A reported period's royalty and how it was worked out (the formula is shown to both parties)."""

    amount_fen: int
    rate: Decimal | None
    unit_amount_fen: int | None
    formula: str


def royalty_amount(terms: RoyaltyTerms, *, contract_year: int, base: int) -> RoyaltyLine:
    """The royalty on ``base`` (fen of sales, profit or added output, or a count of units) in contract
    year ``contract_year``: rate × base rounded once, half-up, or units × the amount per unit."""
    if contract_year < 1:
        raise ValueError("contract years count from 1")
    if base < 0:
        raise ValueError("a royalty base cannot be negative")
    if terms.base is RoyaltyBase.UNITS:
        unit = terms.unit_amount_fen or 0
        amount = base * unit
        return RoyaltyLine(amount, None, unit, f"数量 {base:,} 件 × ¥{format_yuan(unit)} = ¥{format_yuan(amount)}")
    rate = terms.rate_for_year(contract_year)
    amount = round_fen(rate * base)
    formula = f"{terms.base.label} ¥{format_yuan(base)} × {format_rate(rate)} = ¥{format_yuan(amount)}"
    return RoyaltyLine(amount, rate, None, formula)


# ---------------------------------------------------------------------------------------------
# Entitlements and adjustments (应收金额与差额调整)
# ---------------------------------------------------------------------------------------------


def prorated_minimum(minimum_fen: int, months: int) -> int:
    """The annual minimum of a contract year of ``months`` months (a last, shorter year pro-rates)."""
    if months >= 12:
        return minimum_fen
    return round_fen(Decimal(minimum_fen) * months / 12)


def _chronological(item: PlanItem) -> tuple[date, int, str]:
    return (item.due_date or date.max, 1 if item.kind is ObligationKind.TRUE_UP else 0, item.key)


def royalty_entitlements(
    terms: RoyaltyTerms, items: Sequence[PlanItem], reported: Mapping[str, int], closed_years: Collection[int]
) -> dict[str, int]:
    """What the licensor is owed, per plan item, on the royalty reports so far.

    ``reported`` maps royalty item keys to their current royalty in fen (the latest version of each
    report). The result has an amount for every reported royalty key and for the ``true_up:{year}``
    of every year in ``closed_years`` (a year whose reports are in): the minimum, pro-rated for a
    shorter year, less the year's reported royalties, never below zero; unreported periods of a
    closed year count as zero. Then ``cap_fen`` limits royalties and true-ups together, taken in
    chronological order (a year's true-up right after its last period). The entry fee and other fixed
    payments are outside the cap and not part of the result.

    The amounts are recomputed from scratch on every call, so a corrected report also corrects the
    true-up and the cap; :func:`adjustments` turns the change into invoice lines.
    """
    by_key = {item.key: item for item in items}
    unknown = [key for key in reported if key not in by_key or by_key[key].kind is not ObligationKind.ROYALTY]
    if unknown:
        raise ValueError(f"reported keys are not royalty items of the plan: {unknown}")
    if any(amount < 0 for amount in reported.values()):
        raise ValueError("a reported royalty cannot be negative")
    year_royalties: dict[int | None, int] = defaultdict(int)
    for key, amount in reported.items():
        year_royalties[by_key[key].contract_year] += amount
    owed: dict[str, int] = {}
    charged = 0
    for item in sorted(items, key=_chronological):
        if item.kind is ObligationKind.ROYALTY and item.key in reported:
            amount = reported[item.key]
        elif item.kind is ObligationKind.TRUE_UP and item.contract_year in closed_years:
            minimum = prorated_minimum(terms.annual_minimum_fen or 0, item.months or 12)
            amount = annual_minimum_true_up(minimum, [year_royalties[item.contract_year]])
        else:
            continue
        if terms.cap_fen is not None:
            amount = min(amount, terms.cap_fen - charged)
        charged += amount
        owed[item.key] = amount
    return owed


def adjustments(desired: Mapping[str, int], invoiced: Mapping[str, int]) -> list[tuple[str, int]]:
    """The lines the next invoice must carry: for every key of ``desired``, what is owed less what was
    already invoiced (on invoices that are not void), when that is not zero, in plan order.

    A correction that lowers a royalty gives a negative line; issued invoices are never edited.
    Keys absent from ``desired`` (fixed payments billed elsewhere) are left alone.
    """
    lines = [(key, amount - invoiced.get(key, 0)) for key, amount in desired.items()]
    return sorted(((key, delta) for key, delta in lines if delta), key=lambda line: plan_order(line[0]))


# ---------------------------------------------------------------------------------------------
# Invoices (付款通知书), credit and payments
# ---------------------------------------------------------------------------------------------

#: Moves of an invoice as payments arrive and time passes, or when it is voided. A partial payment
#: past the due date leaves it overdue. A paid invoice is settled and cannot be voided (refund it
#: first); voiding a partly paid one turns what was paid into the licensee's credit.
INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.OPEN: frozenset(
        {InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.PAID, InvoiceStatus.OVERDUE, InvoiceStatus.VOID}
    ),
    InvoiceStatus.PARTIALLY_PAID: frozenset({InvoiceStatus.PAID, InvoiceStatus.OVERDUE, InvoiceStatus.VOID}),
    InvoiceStatus.OVERDUE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}
#: Moves a refund of money received on the invoice causes: it owes again what was given back.
REFUND_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.PAID: frozenset({InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE}),
    InvoiceStatus.PARTIALLY_PAID: frozenset({InvoiceStatus.OPEN}),
    InvoiceStatus.OPEN: frozenset(),
    InvoiceStatus.OVERDUE: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}


def invoice_transitions(*, refund: bool = False) -> dict[InvoiceStatus, frozenset[InvoiceStatus]]:
    """The transition table for ``audit.services.apply_transition``: refunds have their own."""
    return REFUND_TRANSITIONS if refund else INVOICE_TRANSITIONS


def invoice_status(total_fen: int, paid_fen: int, due_date: date, today: date, voided: bool = False) -> InvoiceStatus:
    """The state an invoice's amounts and due date put it in."""
    if voided:
        return InvoiceStatus.VOID
    if paid_fen >= total_fen:
        return InvoiceStatus.PAID
    if today > due_date:
        return InvoiceStatus.OVERDUE
    if paid_fen > 0:
        return InvoiceStatus.PARTIALLY_PAID
    return InvoiceStatus.OPEN


@dataclass(frozen=True)
class Settlement:
    """How the next invoice's lines meet the licensee's credit. ``invoice_total`` is what the licensee
    must pay after a credit line of ``credit_used``; it is 0 when no invoice is issued (the lines net
    to zero or less, and the surplus joins the credit) and when the credit covers the whole invoice."""

    invoice_total: int
    credit_used: int
    credit_left: int


def settle(lines_total: int, credit_fen: int) -> Settlement:
    """Meet ``lines_total`` (the sum of the next invoice's lines) with the available credit."""
    if credit_fen < 0:
        raise ValueError("credit cannot be negative")
    if lines_total <= 0:
        return Settlement(invoice_total=0, credit_used=0, credit_left=credit_fen - lines_total)
    used = min(credit_fen, lines_total)
    return Settlement(invoice_total=lines_total - used, credit_used=used, credit_left=credit_fen - used)


def apply_payment(outstanding_fen: int, amount_fen: int) -> tuple[int, int]:
    """Split a payment into the part applied to the invoice and the excess that becomes credit."""
    if amount_fen <= 0:
        raise ValueError("a payment must be positive")
    applied = min(max(outstanding_fen, 0), amount_fen)
    return applied, amount_fen - applied


def days_overdue(due_date: date, today: date) -> int:
    return max(0, (today - due_date).days)


def in_default(oldest_unpaid_due: date | None, today: date, default_days: int) -> bool:
    """A licensee is in default (违约) once its oldest unpaid payment is ``default_days`` days overdue."""
    return oldest_unpaid_due is not None and days_overdue(oldest_unpaid_due, today) >= default_days


# ---------------------------------------------------------------------------------------------
# Ledger postings (记账): debit positive, credit negative; every journal sums to zero and touches
# each account at most once. The platform collects for the licensor: an invoice is owed by the
# licensee (receivable) and owed on to the licensor (licensor_payable); money the licensee paid
# beyond what it owes is held for it (licensee_credit).
# ---------------------------------------------------------------------------------------------

Postings = tuple[tuple[Account, int], ...]


def _journal(*legs: tuple[Account, int]) -> Postings:
    merged: dict[Account, int] = defaultdict(int)
    for account, amount in legs:
        merged[account] += amount
    return tuple((account, amount) for account, amount in merged.items() if amount)


def _not_negative(*amounts: int) -> None:
    if any(amount < 0 for amount in amounts):
        raise ValueError("posting amounts cannot be negative")


def invoice_issued(total: int) -> Postings:
    """An invoice's lines (before any credit line): the licensee owes them, the licensor is owed them."""
    _not_negative(total)
    return _journal((Account.RECEIVABLE, total), (Account.LICENSOR_PAYABLE, -total))


def payment_received(applied: int, excess: int) -> Postings:
    """Money in: ``applied`` settles the invoice, ``excess`` is held as the licensee's credit."""
    _not_negative(applied, excess)
    return _journal(
        (Account.CASH, applied + excess), (Account.RECEIVABLE, -applied), (Account.LICENSEE_CREDIT, -excess)
    )


def credit_applied(amount: int) -> Postings:
    """The licensee's credit pays part of an invoice (the invoice's credit line)."""
    _not_negative(amount)
    return _journal((Account.LICENSEE_CREDIT, amount), (Account.RECEIVABLE, -amount))


def credit_created(amount: int) -> Postings:
    """A downward correction with nothing to invoice: the licensor is owed less, the licensee holds credit."""
    _not_negative(amount)
    return _journal((Account.LICENSOR_PAYABLE, amount), (Account.LICENSEE_CREDIT, -amount))


def invoice_voided(lines_total: int, credit_used: int, paid: int) -> Postings:
    """Reverse an invoice of ``lines_total`` whose credit line used ``credit_used`` and on which
    ``paid`` was received: the licensor is no longer owed it, and both the credit used and the money
    paid return to the licensee's credit."""
    _not_negative(lines_total, credit_used, paid)
    if credit_used + paid > lines_total:
        raise ValueError("an invoice cannot be paid beyond its lines")
    return _journal(
        (Account.LICENSOR_PAYABLE, lines_total),
        (Account.RECEIVABLE, -(lines_total - credit_used - paid)),
        (Account.LICENSEE_CREDIT, -(credit_used + paid)),
    )


def refund(amount: int, from_credit: int) -> Postings:
    """Money back to the licensee: taken from its credit first (up to ``from_credit``, the credit
    available), the rest reopens the receivable of the invoice it had paid."""
    _not_negative(amount, from_credit)
    taken = min(amount, from_credit)
    return _journal((Account.LICENSEE_CREDIT, taken), (Account.RECEIVABLE, amount - taken), (Account.CASH, -amount))


def balance(entries: Iterable[tuple[Account, int]]) -> dict[Account, int]:
    """Each account's balance (debit positive) over the entries; every account appears."""
    totals = dict.fromkeys(Account, 0)
    for account, amount in entries:
        totals[account] += amount
    return totals


# ---------------------------------------------------------------------------------------------
# Report deadlines and reminders (提成报告期限与提醒)
# ---------------------------------------------------------------------------------------------

REPORT_REMINDER_LEAD_DAYS = 7
OVERDUE_REMINDER_EVERY_DAYS = 15


class ReportReminder(enum.StrEnum):
    """Kinds of report reminder; stable strings, because sent reminders are deduplicated by
    (report item, kind, date)."""

    BEFORE = "before"
    DUE = "due"
    OVERDUE = "overdue"

    @property
    def label(self) -> str:
        return {"before": "即将到期", "due": "今日到期", "overdue": "已逾期"}[self.value]


def report_due(period_end: date, report_days: int) -> date:
    """Last day to report a royalty period: ``report_days`` days after it ends."""
    return period_end + timedelta(days=report_days)


def report_reminder(period_end: date, today: date, report_days: int, reported: bool) -> ReportReminder | None:
    """The reminder to send today about an unreported period, if any: 7 days before the deadline, on
    the deadline, the day after it and then every 15 days."""
    if reported:
        return None
    due = report_due(period_end, report_days)
    if today == due - timedelta(days=REPORT_REMINDER_LEAD_DAYS):
        return ReportReminder.BEFORE
    if today == due:
        return ReportReminder.DUE
    late = (today - due).days
    if late >= 1 and (late - 1) % OVERDUE_REMINDER_EVERY_DAYS == 0:
        return ReportReminder.OVERDUE
    return None
