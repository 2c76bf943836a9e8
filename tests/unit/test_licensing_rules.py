"""Licence rules: the licence period and the payment obligations accepted terms create (the billing
payment plan, whose properties tests/unit/test_billing_rules.py checks over random terms), plus a few
known answers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.billing.rules import payment_plan
from marketplace.licensing import rules
from marketplace.licensing.models import ObligationKind
from marketplace.offers.rules import (
    MAX_LICENCE_TERM_MONTHS,
    Deferral,
    InstalmentTerms,
    PayAfterUseTerms,
    RoyaltyBase,
    RoyaltyTerms,
    licence_end,
)
from tests.unit.test_billing_rules import licences


@settings(max_examples=200, deadline=None)
@given(licences())
def test_obligations_are_the_billing_payment_plan(licence):
    lines = rules.obligations(
        licence.terms,
        start=licence.start,
        end=licence.end,
        term_months=licence.term,
        first_revenue_on=licence.first_revenue_on,
    )
    assert lines == licence.plan()
    assert lines == payment_plan(
        licence.terms,
        start=licence.start,
        end=licence.end,
        term_months=licence.term,
        first_revenue_on=licence.first_revenue_on,
    )


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
    assert [(line.key, line.period_start, line.period_end) for line in lines] == [
        ("royalty:1:1", date(2026, 3, 1), date(2026, 5, 31)),
        ("royalty:1:2", date(2026, 6, 1), date(2026, 8, 31)),
        ("royalty:1:3", date(2026, 9, 1), date(2026, 11, 30)),
        ("royalty:1:4", date(2026, 12, 1), date(2027, 1, 14)),
    ]


def test_known_answer_instalments_after_a_deferral():
    terms = PayAfterUseTerms(
        deferral=Deferral.MONTHS,
        deferral_months=12,
        then=InstalmentTerms(total_fen=100_000_01, count=3, interval_months=6, first_due_days=10),
    )
    lines = rules.obligations(terms, start=date(2026, 3, 1), end=date(2029, 2, 28), term_months=36)
    assert [(line.key, line.amount_fen, line.due_date) for line in lines] == [
        ("instalment:1", 3_333_334, date(2027, 3, 11)),
        ("instalment:2", 3_333_334, date(2027, 9, 11)),
        ("instalment:3", 3_333_333, date(2028, 3, 11)),
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


def test_known_answer_a_royalty_with_an_annual_minimum_stores_a_true_up_per_contract_year():
    terms = RoyaltyTerms(base=RoyaltyBase.SALES, rate=Decimal("0.035"), annual_minimum_fen=2_000_000)
    start = date(2026, 7, 1)
    lines = rules.obligations(terms, start=start, end=licence_end(start, 30), term_months=30)
    true_ups = [line for line in lines if line.kind is ObligationKind.TRUE_UP]
    assert [(line.key, line.due_date, line.contract_year, line.months) for line in true_ups] == [
        ("true_up:1", date(2027, 6, 30), 1, 12),
        ("true_up:2", date(2028, 6, 30), 2, 12),
        ("true_up:3", date(2028, 12, 31), 3, 6),
    ]
    assert all(line.amount_fen is None for line in lines)
    assert [line.key for line in lines][-3:] == ["royalty:3:1", "royalty:3:2", "true_up:3"]
    assert true_ups[-1].description == "第3合同年度最低使用费补足（本年度6个月，最低额按比例折算为¥10,000.00）"
