"""Billing rules: the payment plan, royalties of reports, entitlements with annual minimums and the
cap, invoice adjustments, invoice states, credit, ledger postings and report reminders. The money
test vectors of shared/domain/test-vectors.json, properties over thousands of random valid fee terms,
and known answers with exact dates."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.billing import rules
from marketplace.billing.rules import Account, InvoiceStatus, PlanItem, ReportReminder
from marketplace.licensing.models import ObligationKind
from marketplace.money import format_yuan, round_fen
from marketplace.offers.rules import (
    MAX_DEFERRAL_MONTHS,
    MAX_DUE_DAYS,
    MAX_INSTALMENTS,
    MAX_INTERVAL_MONTHS,
    MAX_LICENCE_TERM_MONTHS,
    MAX_YEARLY_RATES,
    SHORTEST_MONTH_DAYS,
    Deferral,
    EntryFeeRoyaltyTerms,
    FeeLimits,
    FeeTerms,
    FreeTerms,
    InstalmentTerms,
    LumpSumTerms,
    PayAfterUseTerms,
    RateSchedule,
    ReportingPeriod,
    RoyaltyBase,
    RoyaltyTerms,
    add_months,
    licence_end,
    parse_fee_terms,
)

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "shared/domain/test-vectors.json").read_text())["money"]

AMOUNTS = st.integers(min_value=1, max_value=2_000_000_000)
RATES = st.integers(1, 200).map(lambda n: Decimal(n) / 1000)
DATES = st.dates(date(2024, 1, 1), date(2045, 12, 31))
ROYALTY_KINDS = (ObligationKind.ROYALTY, ObligationKind.TRUE_UP)


# ---------------------------------------------------------------------------------------------
# Generators of valid fee terms (checked against the offer rules' own validation)
# ---------------------------------------------------------------------------------------------


# Strategies are built once (those depending on the term are cached): building a strategy costs far
# more than drawing from it.
CAP_EXCESS = st.one_of(st.integers(0, 10_000_000), st.integers(0, 2_000_000_000))
YEARLY_RATES = st.lists(st.integers(1, 200), min_size=2, max_size=MAX_YEARLY_RATES).filter(lambda xs: min(xs) < max(xs))
EXPIRY_DAYS = st.one_of(st.integers(0, 800), st.integers(0, 366 * 31))


@cache
def _due_days(months_before: int, term: int) -> st.SearchStrategy[int]:
    """Days after month ``months_before`` that the offer rules accept inside a term of ``term`` months."""
    return st.integers(0, min(MAX_DUE_DAYS, SHORTEST_MONTH_DAYS * (term - months_before) - 1))


@st.composite
def royalties(draw, amounts: st.SearchStrategy[int] = AMOUNTS, largest_cap: int = 2_000_000_000) -> RoyaltyTerms:
    """Any valid running royalty: every base, schedule and period, with or without minimum and cap."""
    base = draw(st.sampled_from(RoyaltyBase))
    period = draw(st.sampled_from(ReportingPeriod))
    minimum = draw(st.none() | amounts)
    # The cap is at least the minimum (offer rules); drawn as an excess over it so no strategy is built here.
    cap = None if draw(st.booleans()) else min(largest_cap, (minimum or 1) + draw(CAP_EXCESS))
    common = {"base": base, "reporting_period": period, "annual_minimum_fen": minimum, "cap_fen": cap}
    if base is RoyaltyBase.UNITS:
        return RoyaltyTerms(**common, unit_amount_fen=draw(AMOUNTS))
    schedule = draw(st.sampled_from(RateSchedule))
    if schedule is RateSchedule.FIXED:
        return RoyaltyTerms(**common, rate=draw(RATES))
    values = draw(YEARLY_RATES)
    rates = tuple(Decimal(v) / 1000 for v in sorted(values, reverse=schedule is RateSchedule.FALLING))
    return RoyaltyTerms(**common, rate_schedule=schedule, yearly_rates=rates)


@cache
def instalments(term: int) -> st.SearchStrategy[InstalmentTerms]:
    return _instalments(term)


@st.composite
def _instalments(draw, term: int) -> InstalmentTerms:
    count = draw(st.integers(2, min(MAX_INSTALMENTS, term)))
    total = draw(st.integers(count, 2_000_000_000))
    if draw(st.booleans()):
        offsets = sorted(draw(st.sets(st.integers(0, term - 1), min_size=count, max_size=count)))
        return InstalmentTerms(total_fen=total, count=count, month_offsets=tuple(offsets))
    interval = draw(st.integers(1, min(MAX_INTERVAL_MONTHS, (term - 1) // (count - 1))))
    first_due = draw(_due_days((count - 1) * interval, term))
    return InstalmentTerms(total_fen=total, count=count, interval_months=interval, first_due_days=first_due)


ROYALTIES = royalties()


@cache
def deferrable(term: int) -> st.SearchStrategy[FeeTerms]:
    """Terms a pay-after-use deferral may lead into, valid within ``term`` months."""
    options = [
        st.builds(LumpSumTerms, amount_fen=AMOUNTS, due_days=_due_days(0, term)),
        ROYALTIES,
        st.builds(EntryFeeRoyaltyTerms, entry_fee_fen=AMOUNTS, entry_due_days=_due_days(0, term), royalty=ROYALTIES),
    ]
    if term >= 2:
        options.append(instalments(term))
    return st.one_of(options)


@cache
def deferred_for_months(term: int) -> st.SearchStrategy[PayAfterUseTerms]:
    return _deferred_for_months(term)


@st.composite
def _deferred_for_months(draw, term: int) -> PayAfterUseTerms:
    months = draw(st.integers(1, min(MAX_DEFERRAL_MONTHS, term - 1)))
    return PayAfterUseTerms(deferral=Deferral.MONTHS, deferral_months=months, then=draw(deferrable(term - months)))


@cache
def fee_terms(term: int) -> st.SearchStrategy[FeeTerms]:
    options = [
        st.just(FreeTerms()),
        deferrable(term),
        st.builds(PayAfterUseTerms, deferral=st.just(Deferral.FIRST_REVENUE), then=deferrable(term)),
    ]
    if term >= 2:
        options.append(deferred_for_months(term))
    return st.one_of(options)


@dataclass(frozen=True)
class Licence:
    terms: FeeTerms
    term: int
    start: date
    end: date
    first_revenue_on: date | None = None

    def plan(self) -> list[PlanItem]:
        return rules.payment_plan(
            self.terms, start=self.start, end=self.end, term_months=self.term, first_revenue_on=self.first_revenue_on
        )


TERMS = st.one_of(st.integers(1, 60), st.integers(1, MAX_LICENCE_TERM_MONTHS))
LONGER_TERMS = st.one_of(st.integers(2, 60), st.integers(2, MAX_LICENCE_TERM_MONTHS))


@st.composite
def licences(draw, terms=fee_terms, term_months=TERMS) -> Licence:
    """Valid fee terms, their offer's term, a start date, an end no later than the term (often cut
    short by the patent's expiry), and for first-revenue terms sometimes the first revenue's date."""
    term = draw(term_months)
    fee = draw(terms(term))
    # The generator builds only terms the offer rules accept for this term.
    assert parse_fee_terms(fee.to_json(), term_months=term, limits=FeeLimits()) == fee
    start = draw(DATES)
    expiry = start + timedelta(days=draw(EXPIRY_DAYS))
    end = min(licence_end(start, term), expiry)
    first_revenue_on = None
    if isinstance(fee, PayAfterUseTerms) and fee.deferral is Deferral.FIRST_REVENUE and draw(st.booleans()):
        first_revenue_on = start + timedelta(days=draw(EXPIRY_DAYS) % ((end - start).days + 1))
    return Licence(fee, term, start, end, first_revenue_on)


def fixed_total(terms: FeeTerms) -> int:
    """What the terms fix in money, royalties aside."""
    if isinstance(terms, PayAfterUseTerms):
        return fixed_total(terms.then)
    if isinstance(terms, LumpSumTerms):
        return terms.amount_fen
    if isinstance(terms, InstalmentTerms):
        return terms.total_fen
    if isinstance(terms, EntryFeeRoyaltyTerms):
        return terms.entry_fee_fen
    return 0


def royalty_of(terms: FeeTerms) -> RoyaltyTerms | None:
    if isinstance(terms, PayAfterUseTerms):
        return royalty_of(terms.then)
    if isinstance(terms, EntryFeeRoyaltyTerms):
        return terms.royalty
    return terms if isinstance(terms, RoyaltyTerms) else None


def then_anchor(licence: Licence) -> tuple[date, int] | None:
    """Where the payment terms' months count from (and how many are skipped); None while undated."""
    terms = licence.terms
    if not isinstance(terms, PayAfterUseTerms):
        return licence.start, 0
    if terms.deferral is Deferral.MONTHS:
        return licence.start, terms.deferral_months or 0
    return None if licence.first_revenue_on is None else (licence.first_revenue_on, 0)


def _of(items: list[PlanItem], *kinds: ObligationKind) -> list[PlanItem]:
    return [item for item in items if item.kind in kinds]


# ---------------------------------------------------------------------------------------------
# The test vectors (shared/domain/test-vectors.json, "money")
# ---------------------------------------------------------------------------------------------


def test_vector_royalty_rounded_once_half_up():
    case = VECTORS["royalty_rounding"]
    terms = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal(case["rate"]))
    line = rules.royalty_amount(terms, contract_year=1, base=case["base_fen"])
    assert line.amount_fen == case["royalty_fen"] == 4_320_988
    assert (line.rate, line.unit_amount_fen) == (Decimal("0.035"), None)
    assert line.formula == "销售额 ¥1,234,567.89 × 3.5% = ¥43,209.88"


def test_vector_annual_minimum_true_up():
    case = VECTORS["annual_minimum_true_up"]
    terms = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.05"), annual_minimum_fen=case["minimum_fen"])
    items = rules.payment_plan(terms, start=date(2026, 1, 1), end=date(2026, 12, 31), term_months=12)
    assert [item.key for item in items] == ["royalty:1:1", "royalty:1:2", "royalty:1:3", "royalty:1:4", "true_up:1"]
    reported = dict(zip([item.key for item in items], case["quarterly_royalties_fen"], strict=False))
    owed = rules.royalty_entitlements(terms, items, reported, closed_years={1})
    assert owed["true_up:1"] == case["true_up_fen"] == 1_100_000
    # Before the year is closed there is no true-up yet.
    assert "true_up:1" not in rules.royalty_entitlements(terms, items, reported, closed_years=())


def test_vector_instalments_leftover_to_the_earliest():
    case = VECTORS["instalments"]
    terms = InstalmentTerms(total_fen=case["total_fen"], count=case["count"], interval_months=6, first_due_days=0)
    items = rules.payment_plan(terms, start=date(2026, 1, 15), end=date(2028, 1, 14), term_months=24)
    assert [item.amount_fen for item in items] == case["amounts_fen"] == [3_333_334, 3_333_333, 3_333_333]
    assert [item.key for item in items] == ["instalment:1", "instalment:2", "instalment:3"]
    assert [item.due_date for item in items] == [date(2026, 1, 15), date(2026, 7, 15), date(2027, 1, 15)]


@pytest.mark.parametrize(
    "then",
    [
        LumpSumTerms(amount_fen=3_000_000, due_days=0),
        InstalmentTerms(total_fen=3_000_000, count=2, month_offsets=(0, 6)),
        EntryFeeRoyaltyTerms(
            entry_fee_fen=500_000, entry_due_days=0, royalty=RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.03"))
        ),
    ],
)
def test_vector_pay_after_use_first_due(then):
    case = VECTORS["pay_after_use"]
    start = date.fromisoformat(case["effective"])
    terms = PayAfterUseTerms(deferral=Deferral.MONTHS, deferral_months=case["deferral_months"], then=then)
    items = rules.payment_plan(terms, start=start, end=licence_end(start, 36), term_months=36)
    assert min(item.due_date for item in items) == date.fromisoformat(case["first_due"]) == date(2027, 1, 15)
    royalty = _of(items, ObligationKind.ROYALTY)
    if royalty:
        assert royalty[0].period_start == date(2027, 1, 15) and royalty[0].key == "royalty:1:1"


# ---------------------------------------------------------------------------------------------
# Properties of the plan
# ---------------------------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None)
@given(licences())
def test_plan_items_are_inside_the_licence_and_fixed_amounts_add_up(licence):
    items = licence.plan()
    keys = [item.key for item in items]
    assert len(set(keys)) == len(keys) and all(len(key) <= 40 for key in keys)
    assert all(item.amount_fen is None or item.amount_fen > 0 for item in items)
    anchor = then_anchor(licence)
    if anchor is None:  # Waiting on the first revenue: nothing has a date yet.
        assert all(item.after_first_revenue and item.due_date is None and item.period_start is None for item in items)
        assert sum(item.amount_fen or 0 for item in items) == fixed_total(licence.terms)
        assert len(_of(items, ObligationKind.ROYALTY)) == (royalty_of(licence.terms) is not None)
        return
    begin = add_months(*anchor)
    if begin > licence.end:  # The licence ends before the payment terms begin: nothing is owed.
        assert items == []
        return
    dues = [item.due_date for item in items]
    assert all(due is not None and licence.start <= begin <= due <= licence.end for due in dues)
    assert dues == sorted(dues)
    assert not any(item.after_first_revenue for item in items)
    fixed = [item for item in items if item.kind not in ROYALTY_KINDS]
    # Fixed payments past the end fall due on it: the totals stay exact even when the patent expires early.
    assert sum(item.amount_fen for item in fixed) == fixed_total(licence.terms)
    assert all(item.period_start is None and item.contract_year is None for item in fixed)
    for item in _of(items, *ROYALTY_KINDS):
        assert item.amount_fen is None
        assert begin <= item.period_start <= item.period_end == item.due_date <= licence.end
        assert 1 <= item.months <= 12


@settings(max_examples=1000, deadline=None)
@given(licences())
def test_royalty_periods_tile_the_licence_by_contract_year(licence):
    items = licence.plan()
    anchor = then_anchor(licence)
    royalty = royalty_of(licence.terms)
    periods = _of(items, ObligationKind.ROYALTY)
    if anchor is None or royalty is None or not periods:
        return
    first, skip = anchor
    # Contiguous and non-overlapping, from the first day the terms run to the last day of the licence.
    assert periods[0].period_start == add_months(first, skip) and periods[-1].period_end == licence.end
    for previous, following in pairwise(periods):
        assert following.period_start == previous.period_end + timedelta(days=1)
    by_year: dict[int, list[PlanItem]] = defaultdict(list)
    for period in periods:
        year = period.contract_year
        # Contract years count from the day the payment terms start; no period straddles two.
        assert add_months(first, skip + 12 * (year - 1)) <= period.period_start
        assert period.period_end < add_months(first, skip + 12 * year)
        assert period.key == f"royalty:{year}:{len(by_year[year]) + 1}"
        by_year[year].append(period)
    assert list(by_year) == list(range(1, len(by_year) + 1))
    year_months = {year: sum(p.months for p in lines) for year, lines in by_year.items()}
    assert all(months == 12 for year, months in year_months.items() if year < len(by_year))
    true_ups = _of(items, ObligationKind.TRUE_UP)
    if not royalty.annual_minimum_fen:
        assert true_ups == []
        return
    assert [t.key for t in true_ups] == [f"true_up:{year}" for year in by_year]
    for true_up in true_ups:
        lines = by_year[true_up.contract_year]
        assert true_up.months == year_months[true_up.contract_year]
        assert (true_up.period_start, true_up.period_end) == (lines[0].period_start, lines[-1].period_end)
        assert true_up.due_date == lines[-1].due_date
        # A year's true-up comes right after its last period.
        assert items[items.index(lines[-1]) + 1] == true_up


@settings(max_examples=800, deadline=None)
@given(licences(terms=deferred_for_months, term_months=LONGER_TERMS))
def test_nothing_is_due_during_a_deferral(licence):
    deferred_until = add_months(licence.start, licence.terms.deferral_months)
    items = licence.plan()
    assert all(item.due_date >= deferred_until for item in items)
    assert all(item.period_start >= deferred_until for item in _of(items, *ROYALTY_KINDS))
    if deferred_until <= licence.end:
        assert items


@settings(max_examples=300, deadline=None)
@given(licences(), st.dates(date(2024, 1, 1), date(2080, 12, 31)))
def test_the_plan_never_runs_past_the_offers_term(licence, later_end):
    """An ``end`` past the offer's term (no patent expiry to cap it) is held to the term."""
    end = max(later_end, licence.start)
    items = rules.payment_plan(licence.terms, start=licence.start, end=end, term_months=licence.term)
    last_day = licence_end(licence.start, licence.term)
    assert all(item.due_date is None or item.due_date <= last_day for item in items)


# ---------------------------------------------------------------------------------------------
# Royalties, entitlements and adjustments
# ---------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(royalties(), st.integers(1, 40), st.integers(0, 10**12))
def test_royalty_of_a_report_is_rounded_once(terms, year, base):
    line = rules.royalty_amount(terms, contract_year=year, base=base)
    assert line.amount_fen >= 0
    if terms.base is RoyaltyBase.UNITS:
        assert (line.amount_fen, line.rate) == (base * terms.unit_amount_fen, None)
    else:
        rate = terms.rate if terms.rate is not None else terms.yearly_rates[min(year, len(terms.yearly_rates)) - 1]
        assert (line.amount_fen, line.rate) == (round_fen(rate * base), rate)
    assert line.formula.endswith(f"= ¥{format_yuan(line.amount_fen)}")


@st.composite
def report_histories(draw):
    """A royalty licence, and a random sequence of report submissions, corrections and year closings."""
    small = st.integers(1, 10_000_000)
    terms = draw(royalties(amounts=small, largest_cap=30_000_000).filter(lambda t: t.annual_minimum_fen or t.cap_fen))
    term = draw(st.integers(1, 72))
    start = draw(DATES)
    end = min(licence_end(start, term), start + timedelta(days=draw(st.integers(0, 366 * 7))))
    items = rules.payment_plan(terms, start=start, end=end, term_months=term)
    keys = [item.key for item in _of(items, ObligationKind.ROYALTY)]
    years = sorted({item.contract_year for item in items})
    report = st.tuples(st.just("report"), st.sampled_from(keys), st.integers(0, 6_000_000))
    close = st.tuples(st.just("close"), st.sampled_from(years), st.just(0))
    events = draw(st.lists(st.one_of(report, report, close), min_size=1, max_size=40))
    return terms, items, events


@settings(max_examples=500, deadline=None)
@given(report_histories())
def test_invoicing_the_adjustments_after_every_report_never_double_counts(history):
    terms, items, events = history
    reported: dict[str, int] = {}
    closed: set[int] = set()
    invoiced: dict[str, int] = defaultdict(int)
    year_of = {item.key: item.contract_year for item in items}
    months_of = {item.contract_year: item.months for item in _of(items, ObligationKind.TRUE_UP)}
    for action, target, amount in events:
        if action == "report":
            reported[target] = amount  # A later report of the same period is a correction.
        else:
            closed.add(target)
        desired = rules.royalty_entitlements(terms, items, reported, closed)
        lines = rules.adjustments(desired, invoiced)
        assert all(delta != 0 for _, delta in lines)
        for key, delta in lines:
            invoiced[key] += delta
        # What has been invoiced, summed over every invoice, is exactly what is owed now.
        assert all(invoiced.get(key, 0) == value for key, value in desired.items())
        assert all(value == 0 for key, value in invoiced.items() if key not in desired)
        assert all(value >= 0 for value in desired.values())
        if terms.cap_fen is not None:
            assert sum(desired.values()) <= terms.cap_fen

        uncapped = rules.royalty_entitlements(replace(terms, cap_fen=None), items, reported, closed)
        assert set(uncapped) == set(desired)
        for year in closed:
            year_royalties = sum(value for key, value in reported.items() if year_of[key] == year)
            true_up = uncapped.get(f"true_up:{year}", 0)
            minimum = rules.prorated_minimum(terms.annual_minimum_fen or 0, months_of.get(year, 12))
            if terms.annual_minimum_fen:
                assert year_royalties + true_up == max(minimum, year_royalties)
            else:
                assert true_up == 0
        # The cap takes the amounts in chronological order and nothing beyond it.
        charged = 0
        for item in items:
            if item.key in uncapped:
                expected = uncapped[item.key]
                if terms.cap_fen is not None:
                    expected = min(expected, terms.cap_fen - charged)
                assert desired[item.key] == expected
                charged += expected


def test_a_correction_after_the_year_closed_moves_money_between_royalty_and_true_up():
    terms = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.05"), annual_minimum_fen=5_000_000)
    items = rules.payment_plan(terms, start=date(2026, 1, 1), end=date(2027, 12, 31), term_months=24)
    reported = {"royalty:1:1": 1_000_000, "royalty:1:2": 1_200_000, "royalty:1:3": 800_000, "royalty:1:4": 900_000}
    first = rules.royalty_entitlements(terms, items, reported, {1})
    invoiced = dict(rules.adjustments(first, {}))
    assert invoiced["true_up:1"] == 1_100_000

    reported["royalty:1:2"] = 1_500_000  # The licensee corrects the second quarter upwards.
    second = rules.royalty_entitlements(terms, items, reported, {1})
    assert rules.adjustments(second, invoiced) == [("royalty:1:2", 300_000), ("true_up:1", -300_000)]

    reported["royalty:1:2"] = 200_000  # …and then downwards, below the first report.
    third = rules.royalty_entitlements(terms, items, reported, {1})
    assert rules.adjustments(third, invoiced) == [("royalty:1:2", -1_000_000), ("true_up:1", 1_000_000)]

    reported = {key: 2_000_000 for key in reported}  # Above the minimum: no top-up at all.
    assert rules.royalty_entitlements(terms, items, reported, {1})["true_up:1"] == 0


def test_the_cap_stops_royalties_and_true_ups_in_order_and_leaves_the_entry_fee_alone():
    royalty = RoyaltyTerms(
        base=RoyaltyBase.SALES, rate=Decimal("0.05"), annual_minimum_fen=2_000_000, cap_fen=3_500_000
    )
    terms = EntryFeeRoyaltyTerms(entry_fee_fen=9_000_000, entry_due_days=10, royalty=royalty)
    items = rules.payment_plan(terms, start=date(2026, 4, 1), end=date(2028, 3, 31), term_months=24)
    assert items[0].key == "entry_fee" and items[0].amount_fen == 9_000_000
    reported = {"royalty:1:1": 100_000, "royalty:1:2": 200_000, "royalty:1:3": 300_000, "royalty:1:4": 400_000,
                "royalty:2:1": 1_000_000, "royalty:2:2": 900_000}
    owed = rules.royalty_entitlements(royalty, items, reported, closed_years={1})
    assert owed == {
        "royalty:1:1": 100_000, "royalty:1:2": 200_000, "royalty:1:3": 300_000, "royalty:1:4": 400_000,
        "true_up:1": 1_000_000,  # 2,000,000 minimum less 1,000,000 reported
        "royalty:2:1": 1_000_000,  # 3,000,000 charged so far
        "royalty:2:2": 500_000,  # the cap is reached here
    }
    reported["royalty:2:3"] = 700_000
    assert rules.royalty_entitlements(royalty, items, reported, closed_years={1, 2})["royalty:2:3"] == 0
    assert rules.royalty_entitlements(royalty, items, reported, closed_years={1, 2})["true_up:2"] == 0


def test_entitlements_refuse_keys_the_plan_does_not_have():
    terms = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.05"))
    items = rules.payment_plan(terms, start=date(2026, 1, 1), end=date(2026, 12, 31), term_months=12)
    with pytest.raises(ValueError, match="royalty:2:1"):
        rules.royalty_entitlements(terms, items, {"royalty:2:1": 10}, ())
    with pytest.raises(ValueError, match="negative"):
        rules.royalty_entitlements(terms, items, {"royalty:1:1": -1}, ())


def test_adjustments_come_in_plan_order():
    desired = {"true_up:2": 5, "royalty:10:1": 1, "royalty:2:4": 3, "royalty:2:12": 4, "instalment:10": 9,
               "instalment:2": 8, "entry_fee": 7, "royalty:1:1": 0}
    assert rules.adjustments(desired, {"royalty:1:1": 20, "true_up:2": 5}) == [
        ("entry_fee", 7), ("instalment:2", 8), ("instalment:10", 9), ("royalty:1:1", -20),
        ("royalty:2:4", 3), ("royalty:2:12", 4), ("royalty:10:1", 1),
    ]
    # Fixed payments billed elsewhere are left alone.
    assert rules.adjustments({"royalty:1:1": 5}, {"lump_sum": 100, "royalty:1:1": 5}) == []


def test_royalty_rates_switch_at_the_contract_year_boundary():
    rising = RoyaltyTerms(
        base=RoyaltyBase.PROFIT,
        rate_schedule=RateSchedule.RISING,
        yearly_rates=(Decimal("0.02"), Decimal("0.03"), Decimal("0.04")),
    )
    assert [rules.royalty_amount(rising, contract_year=y, base=1_000_000).amount_fen for y in (1, 2, 3, 4, 9)] == [
        20_000, 30_000, 40_000, 40_000, 40_000,
    ]
    assert rules.royalty_amount(rising, contract_year=2, base=1_000_001).formula == "利润 ¥10,000.01 × 3% = ¥300.00"
    falling = replace(rising, base=RoyaltyBase.ADDED_OUTPUT, rate_schedule=RateSchedule.FALLING,
                      yearly_rates=(Decimal("0.05"), Decimal("0.025")))
    assert [rules.royalty_amount(falling, contract_year=y, base=333).amount_fen for y in (1, 2, 3)] == [17, 8, 8]

    # With a six-month deferral from 2026-01-31, contract year 2 begins on 2027-07-31.
    terms = PayAfterUseTerms(deferral=Deferral.MONTHS, deferral_months=6, then=rising)
    items = rules.payment_plan(terms, start=date(2026, 1, 31), end=licence_end(date(2026, 1, 31), 36),
                               term_months=36)
    year_two = next(item for item in items if item.contract_year == 2)
    assert (year_two.key, year_two.period_start) == ("royalty:2:1", date(2027, 7, 31))
    last_of_year_one = items[items.index(year_two) - 1]
    assert (last_of_year_one.key, last_of_year_one.period_end) == ("royalty:1:4", date(2027, 7, 30))
    assert items[-1].key == "royalty:3:2" and items[-1].period_end == date(2029, 1, 30)


def test_per_unit_royalty():
    terms = RoyaltyTerms(base=RoyaltyBase.UNITS, unit_amount_fen=1_200, reporting_period=ReportingPeriod.MONTHLY)
    line = rules.royalty_amount(terms, contract_year=3, base=1_234)
    assert (line.amount_fen, line.rate, line.unit_amount_fen) == (1_480_800, None, 1_200)
    assert line.formula == "数量 1,234 件 × ¥12.00 = ¥14,808.00"
    items = rules.payment_plan(terms, start=date(2026, 1, 1), end=date(2026, 3, 31), term_months=3)
    assert [(i.key, i.period_start, i.period_end, i.months) for i in items] == [
        ("royalty:1:1", date(2026, 1, 1), date(2026, 1, 31), 1),
        ("royalty:1:2", date(2026, 2, 1), date(2026, 2, 28), 1),
        ("royalty:1:3", date(2026, 3, 1), date(2026, 3, 31), 1),
    ]
    assert items[0].description == "第1合同年度第1个月提成（按报告的数量计算）"
    with pytest.raises(ValueError):
        rules.royalty_amount(terms, contract_year=1, base=-1)


# ---------------------------------------------------------------------------------------------
# Plans with exact dates, one per mode
# ---------------------------------------------------------------------------------------------


def test_free_licence_has_no_plan():
    assert rules.payment_plan(FreeTerms(), start=date(2026, 1, 1), end=date(2026, 12, 31), term_months=12) == []


def test_lump_sum_from_a_month_end_start():
    items = rules.payment_plan(
        LumpSumTerms(amount_fen=5_000_000, due_days=30), start=date(2026, 1, 31), end=date(2027, 1, 30), term_months=12
    )
    assert items == [
        PlanItem("lump_sum", ObligationKind.LUMP_SUM, "许可使用费（一次总付）", 5_000_000, date(2026, 3, 2))
    ]


def test_quarters_from_a_leap_day():
    terms = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.03"), annual_minimum_fen=1_000_000)
    start = date(2028, 2, 29)
    items = rules.payment_plan(terms, start=start, end=licence_end(start, 12), term_months=12)
    assert [(i.key, i.period_start, i.period_end, i.months) for i in items] == [
        ("royalty:1:1", date(2028, 2, 29), date(2028, 5, 28), 3),
        ("royalty:1:2", date(2028, 5, 29), date(2028, 8, 28), 3),
        ("royalty:1:3", date(2028, 8, 29), date(2028, 11, 28), 3),
        ("royalty:1:4", date(2028, 11, 29), date(2029, 2, 27), 3),
        ("true_up:1", date(2028, 2, 29), date(2029, 2, 27), 12),
    ]
    assert items[-1].description == "第1合同年度最低使用费补足（年度最低¥10,000.00）"


def test_patent_expiry_cuts_the_plan_short():
    start, expiry = date(2026, 3, 1), date(2027, 1, 14)
    royalty = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.05"), annual_minimum_fen=1_200_000)
    terms = EntryFeeRoyaltyTerms(entry_fee_fen=300_000, entry_due_days=365, royalty=royalty)
    items = rules.payment_plan(terms, start=start, end=expiry, term_months=36)
    assert [(i.key, i.due_date, i.period_start, i.period_end, i.months) for i in items] == [
        ("royalty:1:1", date(2026, 5, 31), date(2026, 3, 1), date(2026, 5, 31), 3),
        ("royalty:1:2", date(2026, 8, 31), date(2026, 6, 1), date(2026, 8, 31), 3),
        ("royalty:1:3", date(2026, 11, 30), date(2026, 9, 1), date(2026, 11, 30), 3),
        # December and the first half of January: two months begun, the period ends with the patent.
        ("entry_fee", expiry, None, None, None),  # due 2027-03-01, after the patent expires
        ("royalty:1:4", expiry, date(2026, 12, 1), expiry, 2),
        ("true_up:1", expiry, date(2026, 3, 1), expiry, 11),
    ]
    reported = {"royalty:1:1": 100_000, "royalty:1:2": 100_000, "royalty:1:3": 100_000, "royalty:1:4": 100_000}
    # The minimum of an 11-month year is 11/12 of 1,200,000.
    assert rules.royalty_entitlements(royalty, items, reported, {1})["true_up:1"] == 700_000


def test_instalments_past_the_patents_expiry_fall_due_when_it_expires():
    terms = InstalmentTerms(total_fen=900, count=3, month_offsets=(0, 12, 24))
    items = rules.payment_plan(terms, start=date(2026, 5, 10), end=date(2027, 8, 1), term_months=36)
    assert [(i.amount_fen, i.due_date) for i in items] == [
        (300, date(2026, 5, 10)), (300, date(2027, 5, 10)), (300, date(2027, 8, 1)),
    ]


def test_a_licence_that_ends_during_the_deferral_owes_nothing():
    terms = PayAfterUseTerms(deferral=Deferral.MONTHS, deferral_months=12,
                             then=LumpSumTerms(amount_fen=1_000, due_days=0))
    assert rules.payment_plan(terms, start=date(2026, 1, 15), end=date(2027, 1, 14), term_months=36) == []
    assert len(rules.payment_plan(terms, start=date(2026, 1, 15), end=date(2027, 1, 15), term_months=36)) == 1


def test_first_revenue_plan_is_undated_until_the_revenue_then_runs_from_it():
    royalty = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.04"), annual_minimum_fen=1_200_000)
    then = EntryFeeRoyaltyTerms(entry_fee_fen=200_000, entry_due_days=30, royalty=royalty)
    terms = PayAfterUseTerms(deferral=Deferral.FIRST_REVENUE, then=then)
    start, end = date(2026, 1, 1), date(2027, 12, 31)
    waiting = rules.payment_plan(terms, start=start, end=end, term_months=24)
    assert waiting == [
        PlanItem("entry_fee", ObligationKind.ENTRY_FEE, "入门费", 200_000, after_first_revenue=True),
        PlanItem("royalty", ObligationKind.ROYALTY, "取得首笔收入后，按报告期报告并支付提成", after_first_revenue=True),
    ]

    dated = rules.payment_plan(terms, start=start, end=end, term_months=24, first_revenue_on=date(2026, 5, 20))
    assert [(i.key, i.due_date, i.period_start, i.months) for i in dated] == [
        ("entry_fee", date(2026, 6, 19), None, None),
        ("royalty:1:1", date(2026, 8, 19), date(2026, 5, 20), 3),
        ("royalty:1:2", date(2026, 11, 19), date(2026, 8, 20), 3),
        ("royalty:1:3", date(2027, 2, 19), date(2026, 11, 20), 3),
        ("royalty:1:4", date(2027, 5, 19), date(2027, 2, 20), 3),
        ("true_up:1", date(2027, 5, 19), date(2026, 5, 20), 12),
        ("royalty:2:1", date(2027, 8, 19), date(2027, 5, 20), 3),
        ("royalty:2:2", date(2027, 11, 19), date(2027, 8, 20), 3),
        ("royalty:2:3", end, date(2027, 11, 20), 2),
        ("true_up:2", end, date(2027, 5, 20), 8),
    ]
    assert not any(item.after_first_revenue for item in dated)
    assert dated[-1].description == "第2合同年度最低使用费补足（本年度8个月，最低额按比例折算为¥8,000.00）"
    with pytest.raises(ValueError):
        rules.payment_plan(terms, start=start, end=end, term_months=24, first_revenue_on=date(2025, 12, 31))


def test_first_revenue_lump_sum_waits_then_falls_due_after_the_revenue():
    terms = PayAfterUseTerms(deferral=Deferral.FIRST_REVENUE, then=LumpSumTerms(amount_fen=900_000, due_days=30))
    start, end = date(2026, 1, 1), date(2028, 12, 31)
    (waiting,) = rules.payment_plan(terms, start=start, end=end, term_months=36)
    assert (waiting.amount_fen, waiting.due_date, waiting.after_first_revenue) == (900_000, None, True)
    (dated,) = rules.payment_plan(terms, start=start, end=end, term_months=36, first_revenue_on=date(2028, 12, 20))
    assert (dated.key, dated.due_date, dated.after_first_revenue) == ("lump_sum", end, False)


def test_plan_refuses_impossible_dates():
    with pytest.raises(ValueError):
        rules.payment_plan(FreeTerms(), start=date(2026, 1, 2), end=date(2026, 1, 1), term_months=12)
    with pytest.raises(ValueError):
        rules.payment_plan(FreeTerms(), start=date(2026, 1, 1), end=date(2026, 1, 1), term_months=0)


# ---------------------------------------------------------------------------------------------
# Invoices, credit and payments
# ---------------------------------------------------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(
    st.integers(1, 10**9), st.integers(0, 2 * 10**9), DATES, st.integers(-100, 100), st.booleans()
)
def test_invoice_status_follows_the_amounts(total, paid, due, shift, voided):
    today = due + timedelta(days=shift)
    status = rules.invoice_status(total, paid, due, today, voided)
    assert (status is InvoiceStatus.VOID) is voided
    if voided:
        return
    assert (status is InvoiceStatus.PAID) is (paid >= total)
    # A partial payment past the due date leaves the invoice overdue.
    assert (status is InvoiceStatus.OVERDUE) is (paid < total and today > due)
    assert (status is InvoiceStatus.PARTIALLY_PAID) is (0 < paid < total and today <= due)
    assert (status is InvoiceStatus.OPEN) is (paid == 0 and today <= due)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(1, 1_000_000),
    st.lists(st.tuples(st.sampled_from(["pay", "refund", "wait", "void"]), st.integers(1, 1_000_000)), max_size=30),
)
def test_invoice_moves_only_along_its_transitions(total, events):
    due, today, paid, voided = date(2026, 6, 30), date(2026, 6, 1), 0, False
    status = rules.invoice_status(total, paid, due, today)
    for event, amount in events:
        if event == "pay" and status is not InvoiceStatus.PAID and not voided:
            applied, _ = rules.apply_payment(total - paid, amount)
            paid += applied
        elif event == "refund" and paid:
            paid -= min(amount, paid)
        elif event == "wait":
            today += timedelta(days=amount % 20)
        elif event == "void" and not voided and status is not InvoiceStatus.PAID:
            voided = True
        else:
            continue
        new = rules.invoice_status(total, paid, due, today, voided)
        if new is not status:
            assert new in rules.invoice_transitions(refund=event == "refund")[status], (status, event, new)
        status = new
    assert paid <= total


def test_invoice_transition_tables():
    assert InvoiceStatus.VOID in rules.INVOICE_TRANSITIONS[InvoiceStatus.PARTIALLY_PAID]
    assert InvoiceStatus.VOID not in rules.INVOICE_TRANSITIONS[InvoiceStatus.PAID]
    assert rules.INVOICE_TRANSITIONS[InvoiceStatus.PAID] == frozenset()
    assert rules.invoice_transitions(refund=True)[InvoiceStatus.PAID] == {
        InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE,
    }
    assert rules.invoice_transitions() is rules.INVOICE_TRANSITIONS
    assert InvoiceStatus.PARTIALLY_PAID.label == "部分支付" and InvoiceStatus.VOID.label == "已作废"


@settings(max_examples=500, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(0, 10**9))
def test_settlement_conserves_money(lines_total, credit):
    s = rules.settle(lines_total, credit)
    assert min(s.invoice_total, s.credit_used, s.credit_left) >= 0
    assert s.invoice_total + s.credit_used == max(lines_total, 0)
    assert s.credit_left == credit - s.credit_used + max(-lines_total, 0)
    assert s.credit_used == (min(credit, lines_total) if lines_total > 0 else 0)


def test_settlement_examples():
    assert rules.settle(-300_000, 50_000) == rules.Settlement(invoice_total=0, credit_used=0, credit_left=350_000)
    assert rules.settle(1_000_000, 350_000) == rules.Settlement(650_000, 350_000, 0)
    assert rules.settle(100_000, 350_000) == rules.Settlement(0, 100_000, 250_000)
    with pytest.raises(ValueError):
        rules.settle(1, -1)


@settings(max_examples=500, deadline=None)
@given(st.integers(-10**6, 10**9), st.integers(1, 10**9))
def test_payments_split_into_applied_and_excess(outstanding, amount):
    applied, excess = rules.apply_payment(outstanding, amount)
    assert applied + excess == amount and 0 <= applied <= max(outstanding, 0) and excess >= 0
    assert excess == 0 or applied == max(outstanding, 0)


def test_overdue_days_and_default():
    due = date(2026, 3, 31)
    assert [rules.days_overdue(due, due + timedelta(days=d)) for d in (-5, 0, 1, 30)] == [0, 0, 1, 30]
    assert not rules.in_default(None, date(2030, 1, 1), 30)
    assert not rules.in_default(due, date(2026, 4, 29), 30)
    assert rules.in_default(due, date(2026, 4, 30), 30)


# ---------------------------------------------------------------------------------------------
# Ledger postings
# ---------------------------------------------------------------------------------------------


def _check_journal(journal) -> None:
    accounts = [account for account, _ in journal]
    assert sum(amount for _, amount in journal) == 0
    assert len(set(accounts)) == len(accounts)  # one leg per account: (journal, account) is unique
    assert all(amount != 0 for _, amount in journal)


@dataclass
class _Invoice:
    lines: int
    credit_used: int
    total: int
    paid: int = 0
    void: bool = False


OPERATIONS = st.tuples(
    st.sampled_from(["issue", "issue", "pay", "pay", "refund", "void"]),
    st.integers(0, 1000),
    st.integers(-2_000_000, 5_000_000),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(OPERATIONS, max_size=40))
def test_ledger_postings_balance_and_track_what_is_owed(operations):
    """Invoices, payments, credit, refunds and voids in random order: every journal balances, and the
    accounts always say what the licensee owes, what it holds as credit and what cash came in."""
    entries: list = []
    invoices: list[_Invoice] = []
    credit = cash = owed_to_licensor = 0

    def post(*journals) -> None:
        for journal in journals:
            _check_journal(journal)
            entries.extend(journal)

    for operation, pick, amount in operations:
        live = [invoice for invoice in invoices if not invoice.void]
        if operation == "issue":
            settlement = rules.settle(amount, credit)
            if amount <= 0:
                post(rules.credit_created(-amount))
                owed_to_licensor += amount
            else:
                post(rules.invoice_issued(amount), rules.credit_applied(settlement.credit_used))
                invoices.append(_Invoice(amount, settlement.credit_used, settlement.invoice_total))
                owed_to_licensor += amount
            credit = settlement.credit_left
        elif operation == "pay" and live and amount > 0:
            invoice = live[pick % len(live)]
            applied, excess = rules.apply_payment(invoice.total - invoice.paid, amount)
            post(rules.payment_received(applied, excess))
            invoice.paid += applied
            credit += excess
            cash += amount
        elif operation == "refund" and live and amount > 0:
            invoice = live[pick % len(live)]
            amount = min(amount, credit + invoice.paid)
            if not amount:
                continue
            post(rules.refund(amount, credit))
            taken = min(amount, credit)
            credit -= taken
            invoice.paid -= amount - taken
            cash -= amount
        elif operation == "void" and live:
            invoice = live[pick % len(live)]
            if invoice.paid >= invoice.total:
                continue  # A paid invoice cannot be voided.
            post(rules.invoice_voided(invoice.lines, invoice.credit_used, invoice.paid))
            credit += invoice.credit_used + invoice.paid
            owed_to_licensor -= invoice.lines
            invoice.void = True

        books = rules.balance(entries)
        assert sum(books.values()) == 0
        assert books[Account.RECEIVABLE] == sum(i.total - i.paid for i in invoices if not i.void)
        assert books[Account.LICENSEE_CREDIT] == -credit and credit >= 0
        assert books[Account.CASH] == cash
        assert books[Account.LICENSOR_PAYABLE] == -owed_to_licensor


def test_ledger_examples():
    assert rules.invoice_issued(1_000) == ((Account.RECEIVABLE, 1_000), (Account.LICENSOR_PAYABLE, -1_000))
    assert rules.payment_received(1_000, 0) == ((Account.CASH, 1_000), (Account.RECEIVABLE, -1_000))
    assert rules.payment_received(1_000, 50) == (
        (Account.CASH, 1_050), (Account.RECEIVABLE, -1_000), (Account.LICENSEE_CREDIT, -50),
    )
    assert rules.credit_applied(0) == ()
    # A refund of 80 with 50 of credit: the credit goes first, 30 reopens the invoice.
    assert rules.refund(80, 50) == ((Account.LICENSEE_CREDIT, 50), (Account.RECEIVABLE, 30), (Account.CASH, -80))
    assert rules.balance([]) == dict.fromkeys(Account, 0)
    with pytest.raises(ValueError):
        rules.invoice_issued(-1)
    with pytest.raises(ValueError):
        rules.invoice_voided(100, 60, 50)


# ---------------------------------------------------------------------------------------------
# Report deadlines and reminders
# ---------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(DATES, st.integers(0, 90))
def test_report_reminders_fall_on_fixed_days(period_end, report_days):
    due = rules.report_due(period_end, report_days)
    assert due == period_end + timedelta(days=report_days)
    sent = {}
    for offset in range(-30, 120):
        today = due + timedelta(days=offset)
        assert rules.report_reminder(period_end, today, report_days, reported=True) is None
        kind = rules.report_reminder(period_end, today, report_days, reported=False)
        if kind is not None:
            sent[offset] = kind
    assert sent == {
        -7: ReportReminder.BEFORE,
        0: ReportReminder.DUE,
        **{offset: ReportReminder.OVERDUE for offset in (1, 16, 31, 46, 61, 76, 91, 106)},
    }


def test_reminder_kinds_are_stable_strings():
    assert [kind.value for kind in ReportReminder] == ["before", "due", "overdue"]
    assert rules.report_reminder(date(2026, 3, 31), date(2026, 4, 23), 30, reported=False) == "before"
    assert rules.report_reminder(date(2026, 3, 31), date(2026, 4, 30), 30, reported=False) == "due"
    assert rules.report_reminder(date(2026, 3, 31), date(2026, 5, 1), 30, reported=False) == "overdue"
    assert rules.report_reminder(date(2026, 3, 31), date(2026, 5, 2), 30, reported=False) is None
