"""Quarterly statistics, the pure parts: quarter bounds, the request's validation, grouping and totals,
chart scaling and the CSV/XLSX layout."""

from __future__ import annotations

import csv
import io
from datetime import date
from itertools import pairwise

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.errors import ValidationFailed
from marketplace.filings.statistics import (
    MEASURES,
    Dimension,
    Figures,
    Quarter,
    QuarterFigures,
    Summary,
    assemble,
    bar_chart,
    group_key,
    group_label,
    last_quarters,
    nice_ceiling,
    parse_request,
    scale_ticks,
    table_charts,
    to_csv,
    to_xlsx,
)


@pytest.mark.parametrize(
    ("day", "quarter", "first", "last"),
    [
        (date(2026, 1, 1), Quarter(2026, 1), date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 3, 31), Quarter(2026, 1), date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 4, 1), Quarter(2026, 2), date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 8, 15), Quarter(2026, 3), date(2026, 7, 1), date(2026, 9, 30)),
        (date(2026, 12, 31), Quarter(2026, 4), date(2026, 10, 1), date(2026, 12, 31)),
        (date(2024, 2, 29), Quarter(2024, 1), date(2024, 1, 1), date(2024, 3, 31)),
    ],
)
def test_a_day_falls_in_its_quarter_between_the_quarter_bounds(day, quarter, first, last):
    assert Quarter.of(day) == quarter
    assert (quarter.first_day, quarter.last_day) == (first, last)
    assert quarter.first_day <= day <= quarter.last_day
    assert quarter.after == date.fromordinal(last.toordinal() + 1)


def test_quarters_step_over_the_year_end_and_read_in_chinese():
    assert Quarter(2025, 4).next() == Quarter(2026, 1)
    assert Quarter(2026, 1).previous() == Quarter(2025, 4)
    assert Quarter(2026, 2).previous() == Quarter(2026, 1)
    assert Quarter(2026, 3).label == "2026年第3季度"
    assert Quarter(2026, 3).short_label == "2026Q3"
    assert last_quarters(date(2026, 5, 20), 8) == [
        Quarter(2024, 3),
        Quarter(2024, 4),
        Quarter(2025, 1),
        Quarter(2025, 2),
        Quarter(2025, 3),
        Quarter(2025, 4),
        Quarter(2026, 1),
        Quarter(2026, 2),
    ]


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_consecutive_quarters_tile_the_calendar(day):
    quarter = Quarter.of(day)
    assert quarter.next().first_day == quarter.after
    assert quarter.next().previous() == quarter
    assert 90 <= (quarter.after - quarter.first_day).days <= 92


def test_an_empty_request_means_this_quarter_by_region():
    assert parse_request("", "", "", on=date(2026, 11, 3)) == (Quarter(2026, 4), Dimension.REGION)
    assert parse_request(" 2025 ", "2", "industry", on=date(2026, 11, 3)) == (Quarter(2025, 2), Dimension.INDUSTRY)
    assert parse_request("", "1", "", on=date(2026, 11, 3)) == (Quarter(2026, 1), Dimension.REGION)


@pytest.mark.parametrize(
    ("year", "quarter", "by", "fields"),
    [
        ("1999", "1", "", {"year"}),
        ("2101", "1", "", {"year"}),
        ("二〇二六", "1", "", {"year"}),
        ("2026", "0", "", {"quarter"}),
        ("2026", "5", "", {"quarter"}),
        ("2026", "Q1", "", {"quarter"}),
        ("20260", "1", "province", {"year", "by"}),
        ("x", "x", "x", {"year", "quarter", "by"}),
    ],
)
def test_every_bad_field_is_reported_at_once_in_chinese(year, quarter, by, fields):
    with pytest.raises(ValidationFailed) as caught:
        parse_request(year, quarter, by, on=date(2026, 5, 1))
    assert {error.field for error in caught.value.errors} == fields
    messages = caught.value.by_field()
    if "year" in fields:
        assert messages["year"] == "年份应为 2000 至 2100 之间的整数"
    if "quarter" in fields:
        assert messages["quarter"] == "季度应为 1 至 4"
    if "by" in fields:
        assert messages["by"].startswith("统计维度应为：region（地区）")


def test_group_keys_and_labels_read_the_code_tables():
    assert group_key(Dimension.REGION, None) == group_key(Dimension.REGION, " ") == "unknown"
    assert group_label(Dimension.REGION, "44") == "广东省"
    assert group_label(Dimension.REGION, "unknown") == "未填写"
    assert group_label(Dimension.REGION, "99") == "未收录的地区代码 99"
    assert group_key(Dimension.INDUSTRY, "c") == "C"
    assert group_label(Dimension.INDUSTRY, "C") == "C 制造业"
    assert group_label(Dimension.INDUSTRY, "unknown") == "未填写"
    assert group_label(Dimension.LICENSOR_TYPE, "institute") == "科研机构"
    assert group_label(Dimension.PAYMENT_MODE, "entry_fee_royalty") == "提成支付附加预付入门费"


def test_rows_follow_the_code_tables_order_with_unfilled_last_and_empty_groups_left_out():
    groups = {
        "unknown": Figures(new_licences=1),
        "royalty": Figures(new_licences=2, contract_value_fen=300),
        "free": Figures(new_licences=4),
        "lump_sum": Figures(),
    }
    table = assemble(Quarter(2026, 1), Dimension.PAYMENT_MODE, groups)
    assert [row.label for row in table.rows] == ["免费", "提成支付", "未填写"]
    assert table.total == Figures(new_licences=7, contract_value_fen=300)

    regions = assemble(Quarter(2026, 1), Dimension.REGION, {"unknown": Figures(1), "44": Figures(1), "11": Figures(1)})
    assert [row.key for row in regions.rows] == ["11", "44", "unknown"]


figures = st.builds(
    Figures,
    *(st.integers(min_value=0, max_value=10**6) for _ in range(5)),
    st.integers(min_value=-(10**6), max_value=10**6),
)


@given(st.dictionaries(st.sampled_from(["11", "31", "44", "65", "unknown"]), figures))
def test_the_total_row_is_the_sum_of_the_rows(groups):
    table = assemble(Quarter(2026, 2), Dimension.REGION, groups)
    for measure in MEASURES:
        column = [getattr(row.figures, measure.name) for row in table.rows]
        assert getattr(table.total, measure.name) == sum(column)


@pytest.mark.parametrize(
    ("value", "end"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (250, 500), (1_000_001, 2_000_000)],
)
def test_the_scale_ends_on_a_round_number_not_below_the_largest_value(value, end):
    assert nice_ceiling(value) == end


def test_gridlines_fall_on_whole_numbers():
    assert scale_ticks(1) == [0, 1]
    assert scale_ticks(2) == [0, 1, 2]
    assert scale_ticks(5) == [0, 5]
    assert scale_ticks(20) == [0, 5, 10, 15, 20]
    assert scale_ticks(50) == [0, 25, 50]


def test_bars_are_proportional_to_their_values_on_the_scale():
    chart = bar_chart("c", "新增许可合同", [("北京市", 8), ("广东省", 4), ("未填写", 0)], str, plot_width=400)
    assert [bar.width for bar in chart.bars] == [320.0, 160.0, 0.0]  # scale 0–10
    assert [(tick.position, tick.text) for tick in chart.ticks] == [(0, "0"), (200.0, "5"), (400.0, "10")]
    assert [bar.y for bar in chart.bars] == [10.0, 34.0, 58.0]
    assert chart.height == chart.top + 3 * chart.row_height + chart.axis_height
    assert chart.width == chart.label_width + 400 + chart.value_width


def test_an_amount_chart_scales_in_whole_yuan_and_a_net_refund_draws_no_bar():
    money = MEASURES[-1]
    chart = bar_chart(
        "m", "到账金额", [("北京市", 150_050), ("广东省", -2_000)], money.text, scale_text=money.scale_text, step=100
    )
    # 1,500.50 yuan → a scale to 2,000 yuan.
    assert [tick.text for tick in chart.ticks] == ["0", "500", "1,000", "1,500", "2,000"]
    assert chart.bars[0].width == round(360 * 150_050 / 200_000, 2)
    assert (chart.bars[1].width, chart.bars[1].text) == (0, "-20.00")
    nothing = bar_chart("z", "到账金额", [("北京市", 0)], money.text, scale_text=money.scale_text, step=100)
    assert [tick.text for tick in nothing.ticks] == ["0", "1"] and nothing.bars[0].width == 0


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=40))
def test_no_bar_runs_past_the_plot_and_bigger_values_get_longer_bars(values):
    chart = bar_chart("p", "t", [(str(n), value) for n, value in enumerate(values)], str)
    widths = [bar.width for bar in chart.bars]
    assert all(0 <= width <= chart.plot_width for width in widths)
    assert max(widths) > chart.plot_width / 10 or max(values) == 0
    for (a, wa), (b, wb) in pairwise(zip(values, widths, strict=True)):
        assert wa <= wb if a < b else wa >= wb


def test_long_labels_are_shortened_in_the_chart_but_kept_whole_for_its_tooltip():
    table = assemble(Quarter(2026, 1), Dimension.INDUSTRY, {"D": Figures(new_licences=1)})
    chart = table_charts(table)[0]
    bar = chart.bars[0]
    assert bar.label == "D 电力、热力、燃气及水生产和供应业"
    assert bar.short_label == "D 电力、热力、燃气及水生…" and len(bar.short_label) == 14
    assert chart.title == "2026年第1季度新增许可合同（按行业，份）"
    assert [c.id for c in table_charts(table)] == [f"chart-{m.name}" for m in MEASURES]


def test_the_dashboard_chart_groups_three_counts_per_quarter_on_one_scale():
    summary = Summary(
        [
            QuarterFigures(Quarter(2025, 4), Figures(new_licences=4, filings=2, registrations=0)),
            QuarterFigures(Quarter(2026, 1), Figures(new_licences=8, filings=5, registrations=1)),
        ]
    )
    chart = summary.chart
    assert [group.label for group in chart.groups] == ["2025Q4", "2026Q1"]
    heights = [[column.height for column in group.columns] for group in chart.groups]
    assert heights == [[48.0, 24.0, 0.0], [96.0, 60.0, 12.0]]  # scale 0–10 over 120 px
    for group in chart.groups:
        for column in group.columns:
            assert column.y + column.height == chart.baseline
    xs = [column.x for group in chart.groups for column in group.columns]
    assert xs == sorted(xs) and xs[0] >= chart.left and xs[-1] < chart.left + chart.plot_width
    assert [name for name, _ in chart.series] == ["新增许可合同", "许可合同备案", "技术合同登记"]
    assert summary.url == "/admin/filings/statistics"


HEADERS = ["许可方类型", "新增许可合同（份）", "许可合同备案（件）", "技术合同登记（件）", "合同成交额（元）",
           "技术交易额（元）", "到账金额（元，扣除退款）"]  # fmt: skip


def _table():
    return assemble(
        Quarter(2026, 1),
        Dimension.LICENSOR_TYPE,
        {
            "university": Figures(2, 1, 1, 1_234_567, 1_000_000, 50_000),
            "institute": Figures(1, 0, 0, 0, 0, -10_000),
        },
    )


def test_the_csv_has_a_bom_chinese_headers_plain_yuan_and_the_total_row():
    content = to_csv(_table())
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows == [
        HEADERS,
        ["高等院校", "2", "1", "1", "12345.67", "10000.00", "500.00"],
        ["科研机构", "1", "0", "0", "0.00", "0.00", "-100.00"],
        ["合计", "3", "1", "1", "12345.67", "10000.00", "400.00"],
    ]
    assert _table().filename("csv") == "statistics-2026Q1-licensor_type.csv"


def test_the_xlsx_keeps_counts_and_yuan_as_numbers():
    workbook = openpyxl.load_workbook(io.BytesIO(to_xlsx(_table())))
    sheet = workbook["季度统计"]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[1][:4] == ["高等院校", 2, 1, 1]
    assert [float(value) for value in rows[1][4:]] == [12345.67, 10000.0, 500.0]
    assert rows[3][0] == "合计" and float(rows[3][6]) == 400.0
    assert sheet["E2"].number_format == "#,##0.00" and sheet["B2"].number_format == "#,##0"
    assert "许可方类型" in [row[1] for row in workbook["说明"].iter_rows(values_only=True)]
