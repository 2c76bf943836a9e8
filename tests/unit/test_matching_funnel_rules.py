"""The conversion funnel's pure parts: rates (half-up on Decimal, "—" without a denominator), the
filters, the period's Asia/Shanghai bounds and the charts' geometry."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.errors import ValidationFailed
from marketplace.matching.funnel_rules import (
    CHART_GROUPS,
    NO_RATE,
    STAGES,
    Breakdown,
    Counts,
    Period,
    breakdown_chart,
    default_breakdown,
    funnel_chart,
    parse_filters,
    percent,
    percent_text,
    region_options,
)
from marketplace.matching.models import FunnelStage


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (2, 3, "66.7"),
        (1, 3, "33.3"),
        (1, 8, "12.5"),
        (1, 16, "6.3"),  # 6.25: half-up (a float's round() gives 6.2)
        (1, 80, "1.3"),  # 1.25
        (1, 2000, "0.1"),  # 0.05
        (1, 2001, "0.0"),
        (3, 2, "150.0"),
        (0, 5, "0.0"),
        (7, 7, "100.0"),
    ],
)
def test_percent_has_one_decimal_rounded_half_up(numerator, denominator, expected):
    assert percent(numerator, denominator) == Decimal(expected)
    assert str(percent(numerator, denominator)) == expected
    assert percent_text(percent(numerator, denominator)) == f"{expected}%"


@pytest.mark.parametrize(("numerator", "denominator"), [(0, 0), (5, 0)])
def test_no_denominator_is_no_rate(numerator, denominator):
    assert percent(numerator, denominator) is None
    assert percent_text(None) == NO_RATE == "—"


def test_each_stage_against_the_previous_and_against_shown():
    figures = Counts(3, 2, 1, 1, 1).figures()
    assert [(f.stage, f.count, f.from_previous_text, f.from_shown_text) for f in figures] == [
        (FunnelStage.SHOWN, 3, "—", "100.0%"),
        (FunnelStage.VIEWED, 2, "66.7%", "66.7%"),
        (FunnelStage.EVALUATED, 1, "50.0%", "33.3%"),
        (FunnelStage.ACCEPTED, 1, "100.0%", "33.3%"),
        (FunnelStage.FILED, 1, "100.0%", "33.3%"),
    ]
    # Licences taken without an evaluation: more than 100 % is reported, not capped.
    assert Counts(4, 2, 1, 2, 1).figures()[3].from_previous_text == "200.0%"
    assert Counts(1, 0, 0, 1).figures()[3].from_previous_text == "—"
    assert Counts(12345).figures()[0].count_text == "12,345"


def test_an_empty_funnel_has_no_rates_and_flat_bars():
    counts = Counts()
    assert counts.is_empty
    assert {(f.from_previous_text, f.from_shown_text) for f in counts.figures()} == {("—", "—")}
    chart = funnel_chart("c", "空", counts)
    assert [bar.width for bar in chart.bars] == [0.0] * len(STAGES)
    assert chart.bars[0].text == "0" and chart.bars[1].text == "0（较上一步 —，占展示 —）"
    empty = breakdown_chart("b", "空", [])
    assert (empty.bars, empty.groups, empty.description) == ([], [], "没有数据")


def test_counts_of_a_mapping_and_the_summary():
    counts = Counts.of({"shown": 4, "viewed": 2, "accepted": None})
    assert counts == Counts(4, 2, 0, 0, 0)
    assert counts.summary().startswith("推荐展示 4；查看 2（较上一步 50.0%）；评价 0（较上一步 0.0%）")


monotone = st.lists(st.integers(0, 10**9), min_size=5, max_size=5).map(lambda xs: sorted(xs, reverse=True))


@given(monotone)
def test_monotone_counts_give_rates_between_0_and_100(values):
    figures = Counts(*values).figures()
    for previous, figure in pairwise(figures):
        if previous.count == 0:
            assert figure.from_previous_pct is None and figure.from_previous_text == "—"
        else:
            assert Decimal(0) <= figure.from_previous_pct <= Decimal(100)
            assert figure.from_previous_pct.as_tuple().exponent == -1
    for figure in figures:
        if values[0] == 0:
            assert figure.from_shown_pct is None and figure.from_shown_text == "—"
        else:
            assert Decimal(0) <= figure.from_shown_pct <= Decimal(100)


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_percent_is_the_exact_ratio_within_half_a_tenth(numerator, denominator):
    result = percent(numerator, denominator)
    if denominator == 0:
        assert result is None
        return
    exact = Decimal(numerator) * 100 / Decimal(denominator)
    assert abs(result - exact) <= Decimal("0.05")


@given(st.lists(st.integers(0, 10**7), min_size=5, max_size=5), st.integers(100, 800))
def test_funnel_bars_fit_the_plot_and_follow_the_counts(values, plot_width):
    chart = funnel_chart("c", "t", Counts(*values), plot_width=plot_width)
    widths = [bar.width for bar in chart.bars]
    assert all(0 <= width <= plot_width for width in widths)
    if max(values) > 0:
        assert max(widths) == plot_width
    # A larger count never has a shorter bar.
    for (_, shorter), (_, longer) in pairwise(sorted(zip(values, widths, strict=True))):
        assert shorter <= longer
    assert [bar.label for bar in chart.bars] == [stage.label for stage in STAGES]
    ys = [bar.y for bar in chart.bars]
    assert all(later - earlier >= chart.bar_height for earlier, later in pairwise(ys))
    assert chart.bars[-1].y + chart.bar_height <= chart.height
    assert chart.width == chart.label_width + chart.plot_width + chart.value_width


@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), monotone), max_size=15))
def test_breakdown_charts_draw_the_first_groups_on_one_scale(rows):
    chart = breakdown_chart("b", "t", [(name, Counts(*values)) for name, values in rows])
    drawn = rows[:CHART_GROUPS]
    assert len(chart.groups) == len(drawn) and len(chart.bars) == len(drawn) * len(STAGES)
    assert all(0 <= bar.width <= chart.plot_width for bar in chart.bars)
    assert all(len(group.text) <= 13 for group in chart.groups)
    ys = [bar.y for bar in chart.bars]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)
    assert all(bar.y + chart.bar_height <= chart.height for bar in chart.bars)
    assert [item.label for item in chart.legend] == [stage.label for stage in STAGES]
    assert chart.legend[-1].x + 80 <= chart.width


def test_filters_parse_and_report_every_problem_against_its_field():
    filters = parse_filters(patent_id="7", licensor_id=" 12 ", region="33", start="2026-01-01", end="2026-03-31", by="")
    assert (filters.patent_id, filters.licensor_id, filters.region) == (7, 12, "33")
    assert filters.period == Period(date(2026, 1, 1), date(2026, 3, 31)) and filters.by is None
    assert parse_filters() == parse_filters(patent_id=" ", by="")
    with pytest.raises(ValidationFailed) as caught:
        parse_filters(patent_id="0", licensor_id="x1", region="99", start="2026-02-30", end="20260301", by="industry")
    assert [(e.field, e.message) for e in caught.value.errors] == [
        ("patent_id", "专利应为正整数编号"),
        ("licensor_id", "许可人应为正整数编号"),
        ("region", "地区应为两位省级行政区划代码，例如 11（北京市）"),
        ("from", "开始日期应为 YYYY-MM-DD 格式的日期，例如 2026-03-01"),
        ("to", "结束日期应为 YYYY-MM-DD 格式的日期，例如 2026-03-01"),
        ("by", "分组应为：patent（按专利）、licensor（按许可人）、region（按地区（许可人所在省份））"),
    ]
    with pytest.raises(ValidationFailed) as caught:
        parse_filters(start="2026-05-01", end="2026-04-30")
    assert [(e.field, e.message) for e in caught.value.errors] == [("to", "结束日期不能早于开始日期")]
    with pytest.raises(ValidationFailed) as caught:
        parse_filters(start="1999-12-31", patent_id=str(2**63))
    assert {e.field for e in caught.value.errors} == {"from", "patent_id"}


def test_the_period_is_bounded_by_shanghai_midnights():
    period = Period(date(2026, 1, 1), date(2026, 1, 31))
    assert period.instants() == (
        datetime(2025, 12, 31, 16, 0, tzinfo=UTC),
        datetime(2026, 1, 31, 16, 0, tzinfo=UTC),
    )
    assert Period().instants() == (None, None) and not Period().active
    assert Period(None, date(2026, 1, 31)).label == "最早 至 2026-01-31"
    assert Period().label == "全部时间"


def test_the_table_groups_by_what_the_scope_is_made_of():
    assert default_breakdown(None, patent_id=1, licensor_id=None, region=None) is Breakdown.PATENT
    assert default_breakdown(None, patent_id=None, licensor_id=3, region="11") is Breakdown.PATENT
    assert default_breakdown(None, patent_id=None, licensor_id=None, region="11") is Breakdown.LICENSOR
    assert default_breakdown(None, patent_id=None, licensor_id=None, region=None) is Breakdown.REGION
    assert default_breakdown(Breakdown.REGION, patent_id=1, licensor_id=None, region=None) is Breakdown.REGION


def test_region_options_are_the_provinces_by_code():
    options = region_options()
    assert options[0] == ("11", "北京市") and ("33", "浙江省") in options
    assert [code for code, _ in options] == sorted(code for code, _ in options)
