"""Licence rules: the licence period and the payment obligations accepted terms create, checked as
properties over random valid fee terms, start dates and patent expiries, plus a few known answers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.licensing import rules
from marketplace.licensing.models import ObligationKind
from marketplace.offers.rules import (
    MAX_DEFERRAL_MONTHS,
    MAX_DUE_DAYS,
    MAX_INSTALMENTS,
    MAX_INTERVAL_MONTHS,
    MAX_LICENCE_TERM_MONTHS,
    SHORTEST_MONTH_DAYS,
    Deferral,
    EntryFeeRoyaltyTerms,
    FeeLimits,
    FeeTerms,
    FreeTerms,
    InstalmentTerms,
    LumpSumTerms,
    PayAfterUseTerms,
    ReportingPeriod,
    RoyaltyBase,
    RoyaltyTerms,
    add_months,
    licence_end,
    parse_fee_terms,
)

AMOUNTS = st.integers(min_value=1, max_value=2_000_000_000)


def _due_days(months_before: int, term: int) -> st.SearchStrategy[int]:
    """Days after month ``months_before`` that the offer rules accept inside a term of ``term`` months."""
    return st.integers(0, min(MAX_DUE_DAYS, SHORTEST_MONTH_DAYS * (term - months_before) - 1))


@st.composite
def royalties(draw) -> RoyaltyTerms:
    base = draw(st.sampled_from(RoyaltyBase))
    period = draw(st.sampled_from(ReportingPeriod))
    if base is RoyaltyBase.UNITS:
        return RoyaltyTerms(base=base, reporting_period=period, unit_amount_fen=draw(AMOUNTS))
    return RoyaltyTerms(base=base, reporting_period=period, rate=Decimal(draw(st.integers(1, 200))) / 1000)


@st.composite
def instalments(draw, term: int) -> InstalmentTerms:
    count = draw(st.integers(2, min(MAX_INSTALMENTS, term)))
    total = draw(st.integers(count, 2_000_000_000))
    if draw(st.booleans()):
        offsets = sorted(draw(st.sets(st.integers(0, term - 1), min_size=count, max_size=count)))
        return InstalmentTerms(total_fen=total, count=count, month_offsets=tuple(offsets))
    interval = draw(st.integers(1, min(MAX_INTERVAL_MONTHS, (term - 1) // (count - 1))))
    first_due = draw(_due_days((count - 1) * interval, term))
    return InstalmentTerms(total_fen=total, count=count, interval_months=interval, first_due_days=first_due)


def deferrable(term: int) -> st.SearchStrategy[FeeTerms]:
    """Terms a pay-after-use deferral may lead into, valid within ``term`` months."""
    options = [
        st.builds(LumpSumTerms, amount_fen=AMOUNTS, due_days=_due_days(0, term)),
        royalties(),
        st.builds(EntryFeeRoyaltyTerms, entry_fee_fen=AMOUNTS, entry_due_days=_due_days(0, term), royalty=royalties()),
    ]
    if term >= 2:
        options.append(instalments(term))
    return st.one_of(options)


@st.composite
def fee_terms(draw, term: int) -> FeeTerms:
    options = [st.just(FreeTerms()), deferrable(term)]
    options.append(st.builds(PayAfterUseTerms, deferral=st.just(Deferral.FIRST_REVENUE), then=deferrable(term)))
    if term >= 2:
        months = draw(st.integers(1, min(MAX_DEFERRAL_MONTHS, term - 1)))
        options.append(
            st.builds(
                PayAfterUseTerms, deferral=st.just(Deferral.MONTHS), deferral_months=st.just(months),
                then=deferrable(term - months),
            )
        )
    return draw(st.one_of(options))


@st.composite
def licences(draw) -> tuple[FeeTerms, int, date, date]:
    """Valid fee terms with their offer's term, a start date, and the patent's expiry (on or after the start)."""
    term = draw(st.one_of(st.integers(1, 60), st.integers(1, MAX_LICENCE_TERM_MONTHS)))
    terms = draw(fee_terms(term))
    start = draw(st.dates(date(2024, 1, 1), date(2045, 12, 31)))
    expiry = start + timedelta(days=draw(st.one_of(st.integers(0, 800), st.integers(0, 366 * 31))))
    return terms, term, start, expiry


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


def _royalty_lines(lines: list[rules.Obligation]) -> list[rules.Obligation]:
    return [line for line in lines if line.kind is ObligationKind.ROYALTY]


@settings(max_examples=300, deadline=None)
@given(licences())
def test_obligations_stay_inside_the_licence_and_fixed_amounts_add_up(licence):
    terms, term, start, expiry = licence
    # The generator builds only terms the offer rules accept for this term.
    assert parse_fee_terms(terms.to_json(), term_months=term, limits=FeeLimits()) == terms

    end = rules.contract_end(start, term, expiry)
    assert start <= end <= expiry
    assert end <= licence_end(start, term)
    assert end in (expiry, licence_end(start, term))
    cut_short = end < licence_end(start, term)

    lines = rules.obligations(terms, start=start, end=end, term_months=term)
    first_revenue = isinstance(terms, PayAfterUseTerms) and terms.deferral is Deferral.FIRST_REVENUE
    for line in lines:
        assert line.after_first_revenue is first_revenue
        if first_revenue:
            assert (line.due_date, line.period_start, line.period_end) == (None, None, None)
            continue
        assert line.due_date is not None and start <= line.due_date <= end
        if line.kind is ObligationKind.ROYALTY:
            assert line.amount_fen is None
            assert start <= line.period_start <= line.period_end <= end
            assert line.due_date == line.period_end
        else:
            assert line.amount_fen is not None and line.amount_fen > 0
            assert line.period_start is None and line.period_end is None

    fixed = sum(line.amount_fen for line in lines if line.kind is not ObligationKind.ROYALTY)
    if not cut_short:
        assert fixed == fixed_total(terms)

    periods = [(line.period_start, line.period_end) for line in _royalty_lines(lines) if line.period_start]
    for (_, previous_end), (next_start, _) in pairwise(periods):
        assert next_start == previous_end + timedelta(days=1)
    deferred = isinstance(terms, PayAfterUseTerms) and terms.deferral is Deferral.MONTHS
    royalties_from = add_months(start, terms.deferral_months or 0) if deferred else start
    if periods and not cut_short:
        # Royalties are owed on everything sold from the first day after any deferral to the last.
        assert periods[0][0] == royalties_from and periods[-1][1] == end
    if periods and cut_short:
        assert periods[-1][1] == end


@settings(max_examples=300, deadline=None)
@given(
    st.dates(date(2024, 1, 1), date(2060, 12, 31)),
    st.integers(1, MAX_LICENCE_TERM_MONTHS),
    st.integers(-400, 400),
)
def test_contract_end_is_the_earlier_of_term_and_patent_expiry(start, term, expiry_shift):
    expiry = licence_end(start, term) + timedelta(days=expiry_shift)
    end = rules.contract_end(start, term, expiry)
    assert end == min(licence_end(start, term), expiry)


def test_known_answer_patent_expiring_in_ten_months_caps_a_three_year_licence():
    start, expiry = date(2026, 3, 1), date(2027, 1, 14)
    assert rules.contract_end(start, 36, expiry) == expiry
    assert rules.contract_end(start, 36, date(2040, 1, 1)) == date(2029, 2, 28)
    lines = rules.obligations(
        RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.05")), start=start, end=expiry, term_months=36
    )
    assert [(line.period_start, line.period_end) for line in lines] == [
        (date(2026, 3, 1), date(2026, 5, 31)),
        (date(2026, 6, 1), date(2026, 8, 31)),
        (date(2026, 9, 1), date(2026, 11, 30)),
        (date(2026, 12, 1), date(2027, 1, 14)),
    ]


def test_known_answer_instalments_after_a_deferral():
    terms = PayAfterUseTerms(
        deferral=Deferral.MONTHS,
        deferral_months=12,
        then=InstalmentTerms(total_fen=100_000_01, count=3, interval_months=6, first_due_days=10),
    )
    lines = rules.obligations(terms, start=date(2026, 3, 1), end=date(2029, 2, 28), term_months=36)
    assert [(line.amount_fen, line.due_date) for line in lines] == [
        (3_333_334, date(2027, 3, 11)),
        (3_333_334, date(2027, 9, 11)),
        (3_333_333, date(2028, 3, 11)),
    ]


def test_contract_numbers_are_prefix_year_and_six_digits():
    assert rules.contract_number(2026, 1) == "OL2026000001"
    assert rules.contract_number(2027, 123456) == "OL2027123456"


def test_known_answer_month_end_start_keeps_its_day_after_a_deferral():
    terms = PayAfterUseTerms(
        deferral=Deferral.MONTHS, deferral_months=1, then=RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.05"))
    )
    start = date(2026, 1, 31)
    end = rules.contract_end(start, 12, date(2040, 1, 1))
    lines = rules.obligations(terms, start=start, end=end, term_months=12)
    assert [(line.period_start, line.period_end) for line in lines] == [
        (date(2026, 2, 28), date(2026, 5, 30)),
        (date(2026, 5, 31), date(2026, 8, 30)),
        (date(2026, 8, 31), date(2026, 11, 29)),
        (date(2026, 11, 30), date(2027, 1, 30)),
    ]
    assert end == date(2027, 1, 30)
