"""Open-licence offer rules: fee terms, descriptions, the payment timeline, eligibility, states."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from marketplace.errors import ValidationFailed
from marketplace.offers import rules
from marketplace.offers.models import OfferStatus
from marketplace.patents.models import LegalStatus, PatentType

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "shared/domain/test-vectors.json").read_text())["money"]
LIMITS = rules.FeeLimits()
TODAY = date(2026, 3, 1)


def parse(raw: dict[str, Any], term: int | None = 36) -> rules.FeeTerms:
    return rules.parse_fee_terms(raw, term_months=term, limits=LIMITS)


def errors_of(raw: Any, term: int | None = 36) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        rules.parse_fee_terms(raw, term_months=term, limits=LIMITS)
    return {e.field: e.message for e in caught.value.errors}


# --- known answers (shared/domain/test-vectors.json) -------------------------------------------


def test_royalty_is_rate_times_base_rounded_once_half_up():
    vector = VECTORS["royalty_rounding"]
    terms = parse({"mode": "royalty", "base": "sales", "rate": vector["rate"], "reporting_period": "annual"}, term=12)
    timeline = rules.payment_timeline(terms, term_months=12, start=date(2026, 1, 1), annual_base=vector["base_fen"])
    assert [p.amount_fen for p in timeline.payments] == [vector["royalty_fen"]]
    assert timeline.payments[0].due == date(2026, 12, 31)


def test_annual_minimum_true_up_known_answer():
    vector = VECTORS["annual_minimum_true_up"]
    assert rules.annual_minimum_true_up(vector["minimum_fen"], vector["quarterly_royalties_fen"]) == vector[
        "true_up_fen"
    ]
    assert rules.annual_minimum_true_up(1_000, [600, 600]) == 0


def test_instalments_known_answer():
    vector = VECTORS["instalments"]
    assert list(rules.instalment_amounts(vector["total_fen"], vector["count"])) == vector["amounts_fen"]


def test_pay_after_use_months_known_answer():
    vector = VECTORS["pay_after_use"]
    terms = parse(
        {
            "mode": "pay_after_use",
            "deferral": "months",
            "deferral_months": vector["deferral_months"],
            "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 0},
        }
    )
    timeline = rules.payment_timeline(terms, term_months=36, start=date.fromisoformat(vector["effective"]))
    first_due = date.fromisoformat(vector["first_due"])
    assert timeline.first_due_not_before == first_due
    assert [(p.due, p.amount_fen) for p in timeline.payments] == [(first_due, 3_000_000)]
    assert "前12个月无需付款" in timeline.notes[0]


def test_royalty_timeline_with_quarters_and_minimum_true_up_at_each_year_end():
    terms = parse(
        {"mode": "royalty", "base": "sales", "rate": "0.05", "annual_minimum_fen": 5_000_000}, term=24
    )
    # 80 M fen a year → 1 M fen royalty a quarter, 4 M a year: 1 M true-up at each contract-year end.
    timeline = rules.payment_timeline(terms, term_months=24, start=date(2026, 1, 15), annual_base=80_000_000)
    rows = [(p.due, p.amount_fen) for p in timeline.payments]
    assert rows[:5] == [
        (date(2026, 4, 14), 1_000_000),
        (date(2026, 7, 14), 1_000_000),
        (date(2026, 10, 14), 1_000_000),
        (date(2027, 1, 14), 1_000_000),
        (date(2027, 1, 14), 1_000_000),
    ]
    assert "最低使用费补足" in timeline.payments[4].what
    assert timeline.total_fen == 10_000_000
    assert timeline.end == date(2028, 1, 14)


def test_rising_rates_follow_contract_years_and_last_rate_holds():
    terms = parse(
        {"mode": "royalty", "base": "profit", "rate_schedule": "rising", "yearly_rates": ["0.1", "0.2"],
         "reporting_period": "annual"},
        term=36,
    )
    timeline = rules.payment_timeline(terms, term_months=36, start=date(2026, 1, 1), annual_base=1_000_000)
    assert [p.amount_fen for p in timeline.payments] == [100_000, 200_000, 200_000]


def test_partial_last_year_prorates_the_minimum_and_the_period():
    terms = parse({"mode": "royalty", "base": "sales", "rate": "0.01", "reporting_period": "semiannual",
                   "annual_minimum_fen": 1_200_000}, term=18)
    timeline = rules.payment_timeline(terms, term_months=18, start=date(2026, 1, 1), annual_base=0)
    assert [(p.due, p.amount_fen) for p in timeline.payments] == [
        (date(2026, 12, 31), 1_200_000),
        (date(2027, 6, 30), 600_000),
    ]
    assert "按6个月折算" in timeline.payments[1].what


def test_units_royalty_uses_the_per_unit_amount():
    terms = parse({"mode": "royalty", "base": "units", "unit_amount_fen": 250, "reporting_period": "annual"}, term=12)
    timeline = rules.payment_timeline(terms, term_months=12, start=date(2026, 1, 1), annual_base=10_000)
    assert [p.amount_fen for p in timeline.payments] == [2_500_000]


def test_cap_stops_royalties_once_reached():
    terms = parse({"mode": "royalty", "base": "sales", "rate": "0.1", "reporting_period": "annual",
                   "cap_fen": 250_000}, term=36)
    timeline = rules.payment_timeline(terms, term_months=36, start=date(2026, 1, 1), annual_base=1_000_000)
    assert [p.amount_fen for p in timeline.payments] == [100_000, 100_000, 50_000]
    assert timeline.total_fen == 250_000
    assert "达到上限¥2,500.00" in timeline.notes[0]


def test_entry_fee_then_royalty():
    terms = parse({"mode": "entry_fee_royalty", "entry_fee_fen": 1_000_000, "entry_due_days": 30,
                   "royalty": {"base": "sales", "rate": "0.02", "reporting_period": "annual"}}, term=24)
    timeline = rules.payment_timeline(terms, term_months=24, start=date(2026, 1, 1), annual_base=10_000_000)
    assert [(p.due, p.amount_fen, p.what[:3]) for p in timeline.payments] == [
        (date(2026, 1, 31), 1_000_000, "入门费"),
        (date(2026, 12, 31), 200_000, "第1合"),
        (date(2027, 12, 31), 200_000, "第2合"),
    ]
    assert rules.upfront_cost_fen(terms) == 1_000_000


def test_instalments_by_month_offsets():
    terms = parse({"mode": "instalments", "total_fen": 100, "count": 3, "month_offsets": [0, 6, 12]}, term=24)
    timeline = rules.payment_timeline(terms, term_months=24, start=date(2026, 1, 31))
    assert [(p.due, p.amount_fen) for p in timeline.payments] == [
        (date(2026, 1, 31), 34), (date(2026, 7, 31), 33), (date(2027, 1, 31), 33)
    ]
    assert rules.upfront_cost_fen(terms) == 34


def test_first_revenue_deferral_says_the_estimate_assumes_revenue_from_the_start():
    terms = parse({"mode": "pay_after_use", "deferral": "first_revenue",
                   "then": {"mode": "lump_sum", "amount_fen": 500, "due_days": 10}})
    timeline = rules.payment_timeline(terms, term_months=36, start=date(2026, 1, 1))
    assert timeline.payments[0].due == date(2026, 1, 11)
    assert "取得首笔收入后才开始付款" in timeline.notes[0] and "假设" in timeline.notes[0]


def test_add_months_clamps_to_month_end():
    assert rules.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert rules.add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert rules.add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)
    assert rules.licence_end(date(2026, 1, 15), 12) == date(2027, 1, 14)


# --- descriptions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"mode": "free"}, "免费许可，无需支付许可使用费。"),
        (
            {"mode": "lump_sum", "amount_fen": 5_000_000, "due_days": 30},
            "许可使用费一次总算、一次总付：¥50,000.00，于书面通知后30日内支付。",
        ),
        (
            {"mode": "instalments", "total_fen": 10_000_000, "count": 3, "interval_months": 6, "first_due_days": 30},
            "许可使用费一次总算、分期支付：总额¥100,000.00，分3期支付（首期¥33,333.34，其余每期¥33,333.33），"
            "首期于许可生效后30日内支付，其后每隔6个月支付一期。",
        ),
        (
            {"mode": "royalty", "base": "sales", "rate": "0.035", "reporting_period": "quarterly",
             "annual_minimum_fen": 2_000_000},
            "许可使用费按销售额的3.5%提成，按季度报告并支付；每个合同年度最低支付¥20,000.00。",
        ),
        (
            {"mode": "entry_fee_royalty", "entry_fee_fen": 1_000_000, "entry_due_days": 30,
             "royalty": {"base": "sales", "rate_schedule": "rising", "yearly_rates": ["0.02", "0.03", "0.04"],
                         "reporting_period": "quarterly"}},
            "预付入门费¥10,000.00，于书面通知后30日内支付；此外，许可使用费按销售额提成，费率逐年递增："
            "第1年2%、第2年3%、第3年及以后4%，按季度报告并支付。",
        ),
        (
            {"mode": "pay_after_use", "deferral": "months", "deferral_months": 12,
             "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 30}},
            "先用后付：许可生效后12个月内无需付款，期满后按以下标准支付，合同年度自期满之日起算——"
            "许可使用费一次总算、一次总付：¥30,000.00，于先用后付期满后30日内支付。",
        ),
        (
            {"mode": "royalty", "base": "units", "unit_amount_fen": 500, "reporting_period": "monthly",
             "cap_fen": 10_000_000},
            "许可使用费按实施数量提成，每件¥5.00，按月报告并支付；提成总额以¥100,000.00为上限。",
        ),
    ],
)
def test_describe_terms_in_plain_chinese(raw, expected):
    assert rules.describe_terms(parse(raw)) == expected


def test_terms_round_trip_through_json():
    raw = {"mode": "pay_after_use", "deferral": "months", "deferral_months": 6,
           "then": {"mode": "royalty", "base": "sales", "rate": "0.0350", "reporting_period": "annual"}}
    terms = parse(raw)
    stored = terms.to_json()
    assert stored["then"]["rate"] == "0.035"
    assert rules.terms_from_json(stored) == terms
    assert rules.is_pay_after_use(terms) and rules.upfront_cost_fen(terms) == 0


# --- validation messages per mode -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ("lump_sum", "fee_terms", "许可使用费条款应为对象"),
        ({}, "fee_terms.mode", "请选择支付方式"),
        ({"mode": "barter"}, "fee_terms.mode", "支付方式不在可选范围内"),
        ({"mode": "free", "amount_fen": 1}, "fee_terms.amount_fen", "不支持的字段"),
        ({"mode": "lump_sum", "due_days": 30}, "fee_terms.amount_fen", "请填写许可使用费金额"),
        ({"mode": "lump_sum", "amount_fen": 0, "due_days": 30}, "fee_terms.amount_fen", "许可使用费金额应大于零"),
        ({"mode": "lump_sum", "amount_fen": "5000", "due_days": 30}, "fee_terms.amount_fen", "应为以分计的整数"),
        ({"mode": "lump_sum", "amount_fen": True, "due_days": 30}, "fee_terms.amount_fen", "应为以分计的整数"),
        ({"mode": "lump_sum", "amount_fen": 2_000_000_001, "due_days": 30}, "fee_terms.amount_fen",
         "许可使用费金额不得超过¥20,000,000.00"),
        ({"mode": "lump_sum", "amount_fen": 10**40, "due_days": 30}, "fee_terms.amount_fen", "不得超过"),
        ({"mode": "lump_sum", "amount_fen": 100, "due_days": 400}, "fee_terms.due_days", "应在0至365之间"),
        ({"mode": "instalments", "total_fen": 100, "count": 1, "interval_months": 1, "first_due_days": 0},
         "fee_terms.count", "分期数应在2至60之间"),
        ({"mode": "instalments", "total_fen": 100, "count": 61, "interval_months": 1, "first_due_days": 0},
         "fee_terms.count", "分期数应在2至60之间"),
        ({"mode": "instalments", "total_fen": 2, "count": 3, "interval_months": 1, "first_due_days": 0},
         "fee_terms.total_fen", "总额不足以分为3期"),
        ({"mode": "instalments", "total_fen": 100, "count": 3, "interval_months": 18, "first_due_days": 0},
         "fee_terms.interval_months", "超出许可期限（36个月）"),
        ({"mode": "instalments", "total_fen": 100, "count": 3, "month_offsets": [0, 6]},
         "fee_terms.month_offsets", "共3期，已填2个"),
        ({"mode": "instalments", "total_fen": 100, "count": 3, "month_offsets": [0, 6, 6]},
         "fee_terms.month_offsets[2]", "各期付款月份应逐期递增"),
        ({"mode": "instalments", "total_fen": 100, "count": 2, "month_offsets": [0, 36]},
         "fee_terms.month_offsets[1]", "第2期（第36个月）超出许可期限（36个月）"),
        ({"mode": "instalments", "total_fen": 100, "count": 2, "month_offsets": [0, 6], "interval_months": 6},
         "fee_terms.month_offsets", "请在“固定间隔”和“指定月份”中选择一种分期方式"),
        ({"mode": "royalty", "rate": "0.03"}, "fee_terms.base", "请选择提成基数"),
        ({"mode": "royalty", "base": "sales"}, "fee_terms.rate", "请填写提成费率"),
        ({"mode": "royalty", "base": "sales", "rate": "0.21"}, "fee_terms.rate", "费率不得超过20%"),
        ({"mode": "royalty", "base": "added_output", "rate": "0.25"}, "fee_terms.rate", "费率不得超过20%"),
        ({"mode": "royalty", "base": "sales", "rate": "0"}, "fee_terms.rate", "费率应大于零"),
        ({"mode": "royalty", "base": "sales", "rate": "abc"}, "fee_terms.rate", "费率应为小数"),
        ({"mode": "royalty", "base": "sales", "rate": "NaN"}, "fee_terms.rate", "费率应为小数"),
        ({"mode": "royalty", "base": "sales", "rate": "0.0000001"}, "fee_terms.rate", "最多保留小数点后六位"),
        ({"mode": "royalty", "base": "sales", "rate_schedule": "rising"}, "fee_terms.yearly_rates",
         "逐年递增或递减的费率须填写各合同年度的费率"),
        ({"mode": "royalty", "base": "sales", "rate_schedule": "rising", "yearly_rates": ["0.03", "0.02"]},
         "fee_terms.yearly_rates", "逐年递增的费率应逐年不降低"),
        ({"mode": "royalty", "base": "sales", "rate_schedule": "falling", "yearly_rates": ["0.02", "0.02"]},
         "fee_terms.yearly_rates", "逐年递减的费率应逐年不升高"),
        ({"mode": "royalty", "base": "sales", "rate_schedule": "rising", "yearly_rates": ["0.02", "0.5"]},
         "fee_terms.yearly_rates[1]", "费率不得超过20%"),
        ({"mode": "royalty", "base": "sales", "rate": "0.02", "rate_schedule": "rising",
          "yearly_rates": ["0.01", "0.02"]}, "fee_terms.rate", "请填写各年度费率"),
        ({"mode": "royalty", "base": "units", "rate": "0.02"}, "fee_terms.rate", "按数量提成时请填写每件金额"),
        ({"mode": "royalty", "base": "units"}, "fee_terms.unit_amount_fen", "请填写每件提成金额"),
        ({"mode": "royalty", "base": "sales", "rate": "0.02", "reporting_period": "weekly"},
         "fee_terms.reporting_period", "报告周期不在可选范围内"),
        ({"mode": "royalty", "base": "sales", "rate": "0.02", "annual_minimum_fen": 500, "cap_fen": 400},
         "fee_terms.cap_fen", "提成总额上限不得低于年度最低使用费"),
        ({"mode": "entry_fee_royalty", "entry_fee_fen": 100, "entry_due_days": 0},
         "fee_terms.royalty", "请填写提成条款"),
        ({"mode": "entry_fee_royalty", "entry_fee_fen": 100, "entry_due_days": 0,
          "royalty": {"mode": "royalty", "base": "sales", "rate": "0.02"}}, "fee_terms.royalty.mode", "不支持的字段"),
        ({"mode": "entry_fee_royalty", "entry_fee_fen": 100, "entry_due_days": 0,
          "royalty": {"base": "profit", "rate": "0.41"}}, "fee_terms.royalty.rate", "费率不得超过40%"),
        ({"mode": "pay_after_use", "deferral": "months", "then": {"mode": "lump_sum", "amount_fen": 1, "due_days": 0}},
         "fee_terms.deferral_months", "请填写先用后付期限（月）"),
        ({"mode": "pay_after_use", "deferral": "months", "deferral_months": 61,
          "then": {"mode": "lump_sum", "amount_fen": 1, "due_days": 0}},
         "fee_terms.deferral_months", "应在1至60之间"),
        ({"mode": "pay_after_use", "deferral": "months", "deferral_months": 36,
          "then": {"mode": "lump_sum", "amount_fen": 1, "due_days": 0}},
         "fee_terms.deferral_months", "先用后付期限应短于许可期限"),
        ({"mode": "pay_after_use", "deferral": "first_revenue", "then": {"mode": "free"}},
         "fee_terms.then.mode", "先用后付之后的支付方式应为"),
        ({"mode": "pay_after_use", "deferral": "first_revenue", "then": {"mode": "pay_after_use"}},
         "fee_terms.then.mode", "先用后付之后的支付方式应为"),
        ({"mode": "pay_after_use", "deferral": "months", "deferral_months": 30,
          "then": {"mode": "instalments", "total_fen": 100, "count": 2, "month_offsets": [0, 6]}},
         "fee_terms.then.month_offsets[1]", "超出许可期限（6个月）"),
        ({"mode": "pay_after_use", "deferral": "first_revenue"}, "fee_terms.then", "请填写先用后付期满后的支付方式"),
    ],
)
def test_invalid_terms_are_named_by_field_in_chinese(raw, field, message):
    errors = errors_of(raw)
    assert field in errors, errors
    assert message in errors[field]


def test_all_problems_are_reported_together():
    errors = errors_of({"mode": "royalty", "base": "sales", "rate": "0.9", "cap_fen": -5, "extra": 1})
    assert set(errors) == {"fee_terms.rate", "fee_terms.cap_fen", "fee_terms.extra"}


def test_rate_limits_come_from_the_caller():
    strict = rules.FeeLimits(max_rate_sales=Decimal("0.05"))
    with pytest.raises(ValidationFailed) as caught:
        rules.parse_fee_terms({"mode": "royalty", "base": "sales", "rate": "0.06"}, term_months=12, limits=strict)
    assert caught.value.errors[0].message == "费率不得超过5%"
    assert rules.terms_from_json({"mode": "royalty", "base": "sales", "rate": "0.06"}).rate == Decimal("0.06")


def test_term_checks_are_skipped_when_the_term_is_unknown():
    parse({"mode": "instalments", "total_fen": 100, "count": 2, "month_offsets": [0, 500]}, term=None)


# --- properties -----------------------------------------------------------------------------------

starts = st.dates(min_value=date(2020, 1, 1), max_value=date(2040, 12, 31))
terms_months = st.integers(min_value=1, max_value=360)
amounts = st.integers(min_value=1, max_value=LIMITS.max_fixed_fee_fen)
rates = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.2"), places=4)


@st.composite
def royalty_raw(draw, with_mode: bool = True) -> dict[str, Any]:
    base = draw(st.sampled_from(["sales", "profit", "units", "added_output"]))
    raw: dict[str, Any] = {"base": base, "reporting_period": draw(st.sampled_from(list(rules.ReportingPeriod))).value}
    if with_mode:
        raw["mode"] = "royalty"
    if base == "units":
        raw["unit_amount_fen"] = draw(st.integers(1, 100_000))
    elif draw(st.booleans()):
        raw["rate"] = str(draw(rates))
    else:
        yearly = sorted(draw(st.lists(rates, min_size=2, max_size=5)))
        assume(yearly[0] != yearly[-1])
        falling = draw(st.booleans())
        raw["rate_schedule"] = "falling" if falling else "rising"
        raw["yearly_rates"] = [str(r) for r in (reversed(yearly) if falling else yearly)]
    if draw(st.booleans()):
        raw["annual_minimum_fen"] = draw(st.integers(1, 10_000_000))
    if draw(st.booleans()):
        raw["cap_fen"] = draw(st.integers(raw.get("annual_minimum_fen", 1), 50_000_000))
    return raw


@st.composite
def any_terms(draw) -> tuple[rules.FeeTerms, int]:
    """Valid fee terms of every mode together with a licence term they fit."""
    term = draw(terms_months)
    lump = {"mode": "lump_sum", "amount_fen": draw(amounts), "due_days": draw(st.integers(0, 365))}
    count = draw(st.integers(2, 60))
    instalments: dict[str, Any] = {"mode": "instalments", "total_fen": draw(st.integers(count, 10**9)), "count": count}
    if draw(st.booleans()):
        instalments |= {"interval_months": draw(st.integers(1, 60)), "first_due_days": draw(st.integers(0, 365))}
    else:
        instalments["month_offsets"] = sorted(draw(st.sets(st.integers(0, 400), min_size=count, max_size=count)))
    entry = {"mode": "entry_fee_royalty", "entry_fee_fen": draw(amounts), "entry_due_days": draw(st.integers(0, 365)),
             "royalty": draw(royalty_raw(with_mode=False))}
    simple = draw(st.sampled_from([lump, instalments, draw(royalty_raw()), entry, {"mode": "free"}]))
    if simple["mode"] != "free" and draw(st.booleans()):
        deferral = draw(st.sampled_from(["months", "first_revenue"]))
        raw: dict[str, Any] = {"mode": "pay_after_use", "deferral": deferral, "then": simple}
        if deferral == "months":
            raw["deferral_months"] = draw(st.integers(1, 60))
    else:
        raw = simple
    try:
        return parse(raw, term=term), term
    except ValidationFailed:
        assume(False)
        raise


@given(total=st.integers(min_value=2, max_value=10**12), count=st.integers(min_value=2, max_value=60))
def test_instalments_always_sum_exactly_to_the_total(total, count):
    assume(total >= count)
    parts = rules.instalment_amounts(total, count)
    assert sum(parts) == total and len(parts) == count
    assert max(parts) - min(parts) <= 1
    assert list(parts) == sorted(parts, reverse=True)


@settings(max_examples=300, deadline=None)
@given(case=any_terms(), start=starts, annual_base=st.integers(0, 10**12))
def test_every_payment_is_inside_the_licence_term_and_never_negative(case, start, annual_base):
    terms, term = case
    timeline = rules.payment_timeline(terms, term_months=term, start=start, annual_base=annual_base)
    assert timeline.end == rules.add_months(start, term) - timedelta(days=1)
    for payment in timeline.payments:
        assert start <= payment.due <= timeline.end
        assert payment.amount_fen > 0
    assert timeline.total_fen == sum(p.amount_fen for p in timeline.payments)
    if timeline.first_due_not_before is not None:
        assert all(p.due >= timeline.first_due_not_before for p in timeline.payments)
    if isinstance(terms, rules.InstalmentTerms):
        assert timeline.total_fen == terms.total_fen
    royalty = rules.royalty_of(terms)
    if royalty is not None and royalty.cap_fen is not None:
        royalty_paid = sum(p.amount_fen for p in timeline.payments if "合同年度" in p.what)
        assert royalty_paid <= royalty.cap_fen


@settings(max_examples=200, deadline=None)
@given(
    start=starts,
    term=st.integers(2, 120),
    deferral=st.integers(1, 60),
    due_days=st.integers(0, 365),
)
def test_months_deferral_moves_every_payment_past_the_deferral(start, term, deferral, due_days):
    raw = {"mode": "pay_after_use", "deferral": "months", "deferral_months": deferral,
           "then": {"mode": "lump_sum", "amount_fen": 1_000, "due_days": due_days}}
    try:
        terms = parse(raw, term=term)
    except ValidationFailed:
        assume(False)
        return
    timeline = rules.payment_timeline(terms, term_months=term, start=start)
    assert timeline.first_due_not_before == rules.add_months(start, deferral)
    assert [p.due for p in timeline.payments] == [rules.add_months(start, deferral) + timedelta(days=due_days)]


@settings(max_examples=200, deadline=None)
@given(
    start=starts,
    term=st.integers(1, 120),
    rate=rates,
    minimum=st.integers(1, 10_000_000),
    base=st.integers(0, 10**10),
    period=st.sampled_from(list(rules.ReportingPeriod)),
)
def test_annual_minimum_is_topped_up_once_per_year_never_double_counted(start, term, rate, minimum, base, period):
    terms = parse({"mode": "royalty", "base": "sales", "rate": str(rate), "reporting_period": period.value,
                   "annual_minimum_fen": minimum}, term=term)
    timeline = rules.payment_timeline(terms, term_months=term, start=start, annual_base=base)
    by_year: dict[int, list[rules.Payment]] = {}
    for payment in timeline.payments:
        year = int(re.match(r"第(\d+)合同年度", payment.what).group(1))
        by_year.setdefault(year, []).append(payment)
    for year in range(1, (term + 11) // 12 + 1):
        lines = by_year.get(year, [])
        true_ups = [p for p in lines if "最低使用费补足" in p.what]
        royalties = sum(p.amount_fen for p in lines if p not in true_ups)
        months = min(12, term - 12 * (year - 1))
        prorated = (Decimal(minimum) * months / 12).to_integral_value("ROUND_HALF_UP")
        year_minimum = minimum if months == 12 else int(prorated)
        assert len(true_ups) <= 1
        assert royalties + sum(p.amount_fen for p in true_ups) == max(year_minimum, royalties)


# --- eligibility ----------------------------------------------------------------------------------


def patent(**overrides: Any) -> rules.PatentFacts:
    values: dict[str, Any] = {
        "patent_type": PatentType.INVENTION,
        "legal_status": LegalStatus.GRANTED,
        "expiry_date": date(2040, 1, 1),
        "annual_fee_paid_until": date(2026, 12, 31),
    }
    values.update(overrides)
    return rules.PatentFacts(**values)


def offer(**overrides: Any) -> rules.OfferFacts:
    values: dict[str, Any] = {"licence_term_months": 36, "has_evaluation_report": False}
    values.update(overrides)
    return rules.OfferFacts(**values)


WORDS = ("最佳", "第一", "国家级")


def check(p: rules.PatentFacts, o: rules.OfferFacts | None = None) -> dict[str, str]:
    problems = rules.check_eligibility(p, o or offer(), today=TODAY, advertising_words=WORDS)
    return {x.code: x.message for x in problems}


def test_a_granted_paid_unencumbered_invention_is_eligible():
    assert check(patent()) == {}


@pytest.mark.parametrize(
    ("facts", "code", "message"),
    [
        ({"legal_status": LegalStatus.PENDING}, "not_in_force", "专利尚未授权"),
        ({"legal_status": LegalStatus.LAPSED}, "not_in_force", "专利权已终止"),
        ({"legal_status": LegalStatus.INVALIDATED}, "not_in_force", "已被宣告无效"),
        ({"legal_status": LegalStatus.EXPIRED}, "not_in_force", "期限已届满"),
        ({"expiry_date": date(2026, 2, 28)}, "not_in_force", "专利权已于2026-02-28期满"),
        ({"annual_fee_paid_until": None}, "annual_fee_unpaid", "年费未缴纳（含滞纳期）"),
        ({"annual_fee_paid_until": date(2026, 2, 28)}, "annual_fee_unpaid", "年费未缴纳（含滞纳期）"),
        ({"exclusive_licence": True}, "exclusive_licence", "独占实施许可"),
        ({"sole_licence": True}, "exclusive_licence", "排他实施许可"),
        ({"proceedings_suspended": True}, "proceedings_suspended", "中止程序"),
        ({"pledged": True}, "pledge_without_consent", "须取得质权人同意"),
        ({"has_co_owners": True}, "co_owner_consent_missing", "全体共有人的书面同意"),
        ({"patent_type": PatentType.UTILITY_MODEL}, "evaluation_report_missing", "实用新型专利须附专利权评价报告"),
        ({"patent_type": PatentType.DESIGN}, "evaluation_report_missing", "外观设计专利须附专利权评价报告"),
    ],
)
def test_each_failed_condition_is_named(facts, code, message):
    problems = check(patent(**facts))
    assert code in problems and message in problems[code]
    # An expired patent also leaves no room for the licence term; nothing else may be reported.
    assert set(problems) - {"term_exceeds_patent"} == {code}


def test_consents_and_reports_lift_the_conditions():
    facts = patent(pledged=True, pledgee_consent=True, has_co_owners=True, co_owner_consent=True,
                   patent_type=PatentType.UTILITY_MODEL)
    assert check(facts, offer(has_evaluation_report=True)) == {}


def test_licence_may_end_on_the_expiry_day_but_not_after():
    # A 12-month licence from 2026-03-01 ends on 2027-02-28.
    assert check(patent(expiry_date=date(2027, 2, 28)), offer(licence_term_months=12)) == {}
    problems = check(patent(expiry_date=date(2027, 2, 27)), offer(licence_term_months=12))
    assert problems == {"term_exceeds_patent": "许可期限（12个月，至2027-02-28）超过专利剩余保护期（至2027-02-27）"}


def test_advertising_words_are_named():
    problems = check(patent(), offer(other_terms="本技术国内第一，效果最佳", field_of_use="国家级示范"))
    assert problems == {"advertising_words": "声明文字含有商业性宣传用语：最佳、第一、国家级"}


def test_all_failures_are_listed_together():
    problems = check(
        patent(legal_status=LegalStatus.LAPSED, annual_fee_paid_until=None, pledged=True, exclusive_licence=True),
        offer(other_terms="最佳"),
    )
    assert set(problems) == {
        "not_in_force", "annual_fee_unpaid", "pledge_without_consent", "exclusive_licence", "advertising_words"
    }


def test_offer_fields_are_checked():
    errors = {e.field: e.message for e in rules.offer_field_errors(
        term_months=0, territory=" ", field_of_use="x" * 301, other_terms="y" * 5001)}
    assert errors == {
        "licence_term_months": "许可期限应在1至360个月之间",
        "territory": "请填写许可地域范围",
        "field_of_use": "实施领域不能超过300个字符",
        "other_terms": "其他事项不能超过5000个字符",
    }
    assert rules.offer_field_errors(term_months="12", territory="中国", field_of_use=None, other_terms="")[0].message \
        == "许可期限应为整数（月）"


# --- state machine --------------------------------------------------------------------------------


def test_transition_table():
    t = rules.OFFER_TRANSITIONS
    assert t[OfferStatus.DRAFT] == {OfferStatus.SUBMITTED}
    assert t[OfferStatus.SUBMITTED] == {OfferStatus.PUBLISHED, OfferStatus.REJECTED}
    assert t[OfferStatus.REJECTED] == {OfferStatus.DRAFT}
    assert t[OfferStatus.PUBLISHED] == {OfferStatus.WITHDRAWN}
    assert t[OfferStatus.WITHDRAWN] == frozenset()
    assert set(t) == set(OfferStatus)


@pytest.mark.parametrize(
    ("status", "is_admin", "actions"),
    [
        (OfferStatus.DRAFT, False, ("edit", "submit")),
        (OfferStatus.REJECTED, False, ("edit",)),
        (OfferStatus.SUBMITTED, True, ()),
        (OfferStatus.PUBLISHED, False, ("new_version",)),
        (OfferStatus.PUBLISHED, True, ("new_version", "withdraw")),
        (OfferStatus.WITHDRAWN, True, ()),
    ],
)
def test_licensor_actions_per_state_and_role(status, is_admin, actions):
    assert rules.licensor_actions(status, is_org_admin=is_admin) == actions
