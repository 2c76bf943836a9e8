"""Quarterly statistics (季度统计, domain rules §9): per business quarter (Asia/Shanghai), the new
licences, the filings with both registries, the contract and technology transaction values and the
money received, broken down by one dimension at a time — the licensor's province, the licensor's type,
the licensee's industry or the payment mode; on the admin page with bar charts drawn server-side as
SVG, as CSV and XLSX, in the API, and as an eight-quarter summary for the filings dashboard.

What falls in a quarter:

- new licences (新增许可): contracts signed (``signed_on``) in it, with the contract value fixed at
  signing (``ContractFiling.contract_value_fen``; both registries' rows carry it, counted once);
- filings (许可合同备案) and registrations (技术合同认定登记): records filed (``filed_on``) in it; a
  registration's technology transaction value is what the registry recorded, else
  ``rules.transaction_value_fen`` of the contract value;
- payments received (到账): payments received in it (by the business date of ``received_at``) less
  refunds completed in it, as the licensor's statement dates them.

Every figure is summed by the database per group (one statement per measure); a table's total row is
the sum of its rows.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import openpyxl
from openpyxl.styles import Alignment, Font
from sqlalchemy import BigInteger, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.accounts.rules import DIVISIONS, INDUSTRIES
from marketplace.billing.models import Payment, Refund, RefundStatus
from marketplace.clock import BUSINESS_TZ, now_utc, today
from marketplace.errors import FieldError, ValidationFailed
from marketplace.filings import rules
from marketplace.filings.models import ContractFiling, Registry
from marketplace.licensing.models import LicenceContract
from marketplace.money import FEN_PER_YUAN, format_yuan
from marketplace.offers.models import PaymentMode

PAGE_URL = "/admin/filings/statistics"
MIN_YEAR, MAX_YEAR = 2000, 2100
#: Quarters the dashboard summary shows.
SUMMARY_QUARTERS = 8
UNKNOWN = "unknown"
UNKNOWN_LABEL = "未填写"


# ---------------------------------------------------------------------------------------------
# Quarters and the request (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Quarter:
    year: int
    quarter: int

    @classmethod
    def of(cls, day: date) -> Quarter:
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def first_day(self) -> date:
        return date(self.year, 3 * self.quarter - 2, 1)

    @property
    def after(self) -> date:
        """The first day after the quarter."""
        return self.next().first_day

    @property
    def last_day(self) -> date:
        return self.after - timedelta(days=1)

    def next(self) -> Quarter:
        return Quarter(self.year + self.quarter // 4, self.quarter % 4 + 1)

    def previous(self) -> Quarter:
        return Quarter(self.year - (self.quarter == 1), (self.quarter - 2) % 4 + 1)

    @property
    def label(self) -> str:
        return f"{self.year}年第{self.quarter}季度"

    @property
    def short_label(self) -> str:
        return f"{self.year}Q{self.quarter}"


def last_quarters(on: date, count: int) -> list[Quarter]:
    """The ``count`` quarters up to and including ``on``'s, oldest first."""
    quarters = [Quarter.of(on)]
    while len(quarters) < count:
        quarters.append(quarters[-1].previous())
    return quarters[::-1]


class Dimension(enum.StrEnum):
    """What a table breaks the figures down by."""

    REGION = "region"
    LICENSOR_TYPE = "licensor_type"
    INDUSTRY = "industry"
    PAYMENT_MODE = "payment_mode"

    @property
    def label(self) -> str:
        return {
            "region": "地区（许可方所在省份）",
            "licensor_type": "许可方类型",
            "industry": "行业（被许可方所属行业门类）",
            "payment_mode": "支付方式",
        }[self.value]

    @property
    def column_label(self) -> str:
        return {"region": "地区", "licensor_type": "许可方类型", "industry": "行业", "payment_mode": "支付方式"}[
            self.value
        ]


def _whole_number(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 6 else None


def parse_request(raw_year: str, raw_quarter: str, raw_by: str, *, on: date) -> tuple[Quarter, Dimension]:
    """The quarter and the dimension asked for; an empty field means this quarter's year, this
    quarter, or the region. Every problem is reported at once, against the field to correct."""
    current = Quarter.of(on)
    errors = []
    year = _whole_number(raw_year) if raw_year.strip() else current.year
    if year is None or not MIN_YEAR <= year <= MAX_YEAR:
        errors.append(FieldError("year", f"年份应为 {MIN_YEAR} 至 {MAX_YEAR} 之间的整数", "out_of_range"))
    quarter = _whole_number(raw_quarter) if raw_quarter.strip() else current.quarter
    if quarter is None or not 1 <= quarter <= 4:
        errors.append(FieldError("quarter", "季度应为 1 至 4", "out_of_range"))
    by = raw_by.strip() or Dimension.REGION.value
    if by not in {d.value for d in Dimension}:
        names = "、".join(f"{d.value}（{d.column_label}）" for d in Dimension)
        errors.append(FieldError("by", f"统计维度应为：{names}", "invalid"))
    if errors:
        raise ValidationFailed(errors)
    assert year is not None and quarter is not None
    return Quarter(year, quarter), Dimension(by)


# ---------------------------------------------------------------------------------------------
# Figures, rows and the table (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    new_licences: int = 0
    filings: int = 0
    registrations: int = 0
    contract_value_fen: int = 0
    transaction_value_fen: int = 0
    payments_received_fen: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    @property
    def is_empty(self) -> bool:
        return not any(astuple(self))


@dataclass(frozen=True)
class Measure:
    name: str
    label: str
    unit: str
    note: str = ""

    @property
    def is_money(self) -> bool:
        return self.name.endswith("_fen")

    @property
    def heading(self) -> str:
        return f"{self.label}（{self.unit}{'，' + self.note if self.note else ''}）"

    def text(self, value: int) -> str:
        return format_yuan(value) if self.is_money else f"{value:,}"

    def scale_text(self, value: int) -> str:
        """A gridline's value: whole yuan for amounts (the scale ends on whole yuan)."""
        return f"{value // FEN_PER_YUAN:,}" if self.is_money else f"{value:,}"


MEASURES: tuple[Measure, ...] = (
    Measure("new_licences", "新增许可合同", "份"),
    Measure("filings", "许可合同备案", "件"),
    Measure("registrations", "技术合同登记", "件"),
    Measure("contract_value_fen", "合同成交额", "元"),
    Measure("transaction_value_fen", "技术交易额", "元"),
    Measure("payments_received_fen", "到账金额", "元", "扣除退款"),
)
assert [m.name for m in MEASURES] == [f.name for f in fields(Figures)]


def group_key(dimension: Dimension, raw: Any) -> str:
    """A group's key from the value the database grouped by (empty or missing → ``unknown``)."""
    value = getattr(raw, "value", raw)
    if value is None or not str(value).strip():
        return UNKNOWN
    value = str(value).strip()
    return value.upper() if dimension is Dimension.INDUSTRY else value


def group_label(dimension: Dimension, key: str) -> str:
    if key == UNKNOWN:
        return UNKNOWN_LABEL
    if dimension is Dimension.REGION:
        return DIVISIONS.get(f"{key}0000") or f"未收录的地区代码 {key}"
    if dimension is Dimension.LICENSOR_TYPE:
        return OrganisationKind(key).label if key in {k.value for k in OrganisationKind} else key
    if dimension is Dimension.INDUSTRY:
        name = INDUSTRIES.get(key)
        return f"{key} {name}" if name else f"未收录的行业门类 {key}"
    return PaymentMode(key).label if key in {m.value for m in PaymentMode} else key


def _order(dimension: Dimension, key: str) -> tuple[int, int, str]:
    """Codes in their table's order (provinces by code, kinds and modes as the enums list them);
    what was not filled in comes last."""
    if key == UNKNOWN:
        return (2, 0, "")
    listed: list[str] = []
    if dimension is Dimension.LICENSOR_TYPE:
        listed = [kind.value for kind in OrganisationKind]
    elif dimension is Dimension.PAYMENT_MODE:
        listed = [mode.value for mode in PaymentMode]
    if key in listed:
        return (0, listed.index(key), key)
    return (0 if not listed else 1, 0, key)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    figures: Figures


@dataclass(frozen=True)
class Table:
    quarter: Quarter
    dimension: Dimension
    rows: list[Row]
    total: Figures

    def filename(self, extension: str) -> str:
        return f"statistics-{self.quarter.short_label}-{self.dimension.value}.{extension}"

    @property
    def query(self) -> str:
        return f"year={self.quarter.year}&quarter={self.quarter.quarter}&by={self.dimension.value}"


def assemble(quarter: Quarter, dimension: Dimension, groups: dict[str, Figures]) -> Table:
    """The table's rows in display order, without empty groups, and the total row (their sum)."""
    rows = [
        Row(key, group_label(dimension, key), figures)
        for key, figures in sorted(groups.items(), key=lambda item: _order(dimension, item[0]))
        if not figures.is_empty
    ]
    total = Figures()
    for row in rows:
        total += row.figures
    return Table(quarter, dimension, rows, total)


# ---------------------------------------------------------------------------------------------
# Charts (pure geometry; the templates draw them as inline SVG)
# ---------------------------------------------------------------------------------------------


def nice_ceiling(value: int) -> int:
    """The end of a chart's scale: the smallest 1, 2 or 5 × 10ⁿ not below ``value`` (at least 1), so
    the gridlines fall on round numbers."""
    if value <= 1:
        return 1
    magnitude = 10 ** (len(str(value)) - 1)
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def scale_ticks(end: int) -> list[int]:
    """Gridline values from 0 to ``end``: quarters when they are whole, else halves, else the ends."""
    for parts in (4, 2):
        if end % parts == 0:
            return [end * n // parts for n in range(parts + 1)]
    return [0, end]


def short_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Bar:
    label: str
    short_label: str
    value: int
    text: str
    y: float
    width: float


@dataclass(frozen=True)
class Tick:
    position: float
    text: str


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per row: the label on the left, the bar, its value after it."""

    id: str
    title: str
    bars: list[Bar]
    ticks: list[Tick]
    label_width: int = 190
    plot_width: int = 360
    value_width: int = 130
    row_height: int = 24
    bar_height: int = 16
    top: int = 6
    axis_height: int = 22

    @property
    def width(self) -> int:
        return self.label_width + self.plot_width + self.value_width

    @property
    def height(self) -> int:
        return self.top + len(self.bars) * self.row_height + self.axis_height

    @property
    def plot_bottom(self) -> int:
        return self.top + len(self.bars) * self.row_height


def bar_chart(
    chart_id: str,
    title: str,
    items: Sequence[tuple[str, int]],
    text: Callable[[int], str],
    *,
    scale_text: Callable[[int], str] = str,
    step: int = 1,
    plot_width: int = 360,
) -> BarChart:
    """Bars scaled to a round end of scale, in whole ``step`` s (100 fen: whole yuan); a negative value
    (more refunded than received) draws no bar but still shows its number."""
    largest = max((value for _, value in items), default=0)
    end = nice_ceiling(-(-largest // step)) * step
    bars = [
        Bar(
            label=label,
            short_label=short_text(label, 14),
            value=value,
            text=text(value),
            y=BarChart.top + index * BarChart.row_height + (BarChart.row_height - BarChart.bar_height) / 2,
            width=round(plot_width * max(value, 0) / end, 2),
        )
        for index, (label, value) in enumerate(items)
    ]
    gridlines = [whole * step for whole in scale_ticks(end // step)]
    ticks = [Tick(round(plot_width * value / end, 2), scale_text(value)) for value in gridlines]
    return BarChart(chart_id, title, bars, ticks, plot_width=plot_width)


def table_charts(table: Table) -> list[BarChart]:
    """One chart per measure, over the table's rows (amounts in yuan)."""
    by = table.dimension.column_label
    return [
        bar_chart(
            f"chart-{measure.name}",
            f"{table.quarter.label}{measure.label}（按{by}，{measure.unit}）",
            [(row.label, getattr(row.figures, measure.name)) for row in table.rows],
            measure.text,
            scale_text=measure.scale_text,
            step=FEN_PER_YUAN if measure.is_money else 1,
        )
        for measure in MEASURES
    ]


SERIES_COLOURS = ("#2f6fb0", "#e08a1e", "#3a9b5c")


@dataclass(frozen=True)
class Column:
    label: str
    value: int
    colour: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class ColumnGroup:
    label: str
    centre: float
    columns: list[Column]


@dataclass(frozen=True)
class GroupedBarChart:
    """Vertical bars grouped per quarter, one colour per series, the scale on the left."""

    title: str
    series: list[tuple[str, str]]
    groups: list[ColumnGroup]
    ticks: list[Tick]
    left: int = 40
    top: int = 8
    plot_width: int = 400
    plot_height: int = 120
    bottom: int = 22

    @property
    def width(self) -> int:
        return self.left + self.plot_width + 8

    @property
    def height(self) -> int:
        return self.top + self.plot_height + self.bottom

    @property
    def baseline(self) -> int:
        return self.top + self.plot_height


def grouped_bar_chart(
    title: str, series: Sequence[str], groups: Sequence[tuple[str, Sequence[int]]], *, plot_width: int = 400
) -> GroupedBarChart:
    """``groups`` are (label, one value per series); every bar shares one round end of scale."""
    chart = GroupedBarChart(title, [], [], [], plot_width=plot_width)
    end = nice_ceiling(max((value for _, values in groups for value in values), default=0))
    slot = plot_width / max(len(groups), 1)
    column_width = slot * 0.8 / max(len(series), 1)
    laid_out = []
    for index, (label, values) in enumerate(groups):
        start = chart.left + index * slot + slot * 0.1
        columns = []
        for n, value in enumerate(values):
            height = round(chart.plot_height * max(value, 0) / end, 2)
            columns.append(
                Column(
                    label=series[n],
                    value=value,
                    colour=SERIES_COLOURS[n % len(SERIES_COLOURS)],
                    x=round(start + n * column_width, 2),
                    y=round(chart.baseline - height, 2),
                    width=round(column_width, 2),
                    height=height,
                )
            )
        laid_out.append(ColumnGroup(label, round(chart.left + (index + 0.5) * slot, 2), columns))
    ticks = [Tick(round(chart.baseline - chart.plot_height * v / end, 2), f"{v:,}") for v in scale_ticks(end)]
    legend = [(name, SERIES_COLOURS[n % len(SERIES_COLOURS)]) for n, name in enumerate(series)]
    return GroupedBarChart(title, legend, laid_out, ticks, plot_width=plot_width)


def _counts(figures: Figures) -> tuple[int, int, int]:
    return figures.new_licences, figures.filings, figures.registrations


@dataclass(frozen=True)
class QuarterFigures:
    quarter: Quarter
    figures: Figures


@dataclass(frozen=True)
class Summary:
    """The dashboard's view: the totals of the last quarters, oldest first."""

    quarters: list[QuarterFigures]
    url: str = PAGE_URL

    @property
    def chart(self) -> GroupedBarChart:
        return grouped_bar_chart(
            f"最近{len(self.quarters)}个季度的新增许可、许可合同备案与技术合同登记",
            [MEASURES[0].label, MEASURES[1].label, MEASURES[2].label],
            [(item.quarter.short_label, _counts(item.figures)) for item in self.quarters],
        )

    @property
    def latest(self) -> QuarterFigures | None:
        return self.quarters[-1] if self.quarters else None


# ---------------------------------------------------------------------------------------------
# Reading the figures: one GROUP BY statement per measure
# ---------------------------------------------------------------------------------------------

_Licensor = aliased(Organisation, name="stat_licensor")
_Licensee = aliased(Organisation, name="stat_licensee")


def _instant(day: date) -> datetime:
    """Midnight of a business date, as a UTC instant."""
    return datetime.combine(day, time.min, tzinfo=BUSINESS_TZ).astimezone(UTC)


def _key_column(dimension: Dimension | None) -> Any:
    if dimension is Dimension.REGION:
        return func.substr(_Licensor.division_code, 1, 2)
    if dimension is Dimension.LICENSOR_TYPE:
        return _Licensor.kind
    if dimension is Dimension.INDUSTRY:
        return _Licensee.industry_code
    if dimension is Dimension.PAYMENT_MODE:
        return LicenceContract.payment_mode
    return literal("")


def _with_party(statement: Any, dimension: Dimension | None) -> Any:
    if dimension in (Dimension.REGION, Dimension.LICENSOR_TYPE):
        return statement.join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
    if dimension is Dimension.INDUSTRY:
        return statement.join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
    return statement


def _bucket(column: Any, bounds: Sequence[Any]) -> Any:
    """Which quarter a row falls in, given the quarters' boundaries (the rows are filtered to the span)."""
    if len(bounds) == 2:
        return literal(0)
    return case(*[(column < bound, index) for index, bound in enumerate(bounds[1:-1])], else_=len(bounds) - 2)


Sums = dict[tuple[int, str], dict[str, int]]


async def _grouped(
    session: AsyncSession,
    sums: Sums,
    dimension: Dimension | None,
    inner: Any,
    aggregates: dict[str, Callable[[Any], Any]],
) -> None:
    """Group ``inner`` (columns ``bucket``, ``key`` and the values) and add each aggregate to ``sums``.
    Grouping an outer query by the inner query's columns keeps PostgreSQL from comparing two copies of
    an expression with bound parameters (the CASE and SUBSTR) in SELECT and GROUP BY."""
    sub = inner.subquery()
    statement = select(sub.c.bucket, sub.c.key, *(aggregate(sub.c) for aggregate in aggregates.values())).group_by(
        sub.c.bucket, sub.c.key
    )
    for bucket, raw_key, *values in await session.execute(statement):
        key = group_key(dimension, raw_key) if dimension is not None else ""
        found = sums[(int(bucket), key)]
        for name, value in zip(aggregates, values, strict=True):
            found[name] = found.get(name, 0) + int(value or 0)


def _rows_of(column: Any, bounds: Sequence[Any]) -> Any:
    return and_(column >= bounds[0], column < bounds[-1])


async def _figures(session: AsyncSession, quarters: Sequence[Quarter], dimension: Dimension | None) -> Sums:
    """The sums of every measure per (index of the quarter in ``quarters``, group key) for consecutive
    quarters."""
    days = [quarters[0].first_day, *(q.after for q in quarters)]
    instants = [_instant(day) for day in days]
    key = _key_column(dimension)
    sums: Sums = defaultdict(dict)

    licence_filing = and_(
        ContractFiling.contract_id == LicenceContract.id, ContractFiling.registry == Registry.LICENCE_FILING
    )
    signed = _with_party(
        select(
            _bucket(LicenceContract.signed_on, days).label("bucket"),
            key.label("key"),
            func.coalesce(ContractFiling.contract_value_fen, 0).label("value"),
        )
        .select_from(LicenceContract)
        .outerjoin(ContractFiling, licence_filing),
        dimension,
    ).where(_rows_of(LicenceContract.signed_on, days))
    await _grouped(
        session,
        sums,
        dimension,
        signed,
        {"new_licences": lambda c: func.count(), "contract_value_fen": lambda c: func.sum(c.value)},
    )

    def filed(registry: Registry, *values: Any) -> Any:
        return _with_party(
            select(_bucket(ContractFiling.filed_on, days).label("bucket"), key.label("key"), *values)
            .select_from(ContractFiling)
            .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id),
            dimension,
        ).where(ContractFiling.registry == registry, _rows_of(ContractFiling.filed_on, days))

    await _grouped(session, sums, dimension, filed(Registry.LICENCE_FILING), {"filings": lambda c: func.count()})
    # The value the registry recorded, when it did; else the contract value the rule turns into one
    # (summed first: the rule is the whole value, so applying it to the sum is applying it per row).
    recorded = cast(ContractFiling.recorded["transaction_value_fen"].as_string(), BigInteger)
    registrations = filed(
        Registry.TECH_CONTRACT, recorded.label("recorded"), ContractFiling.contract_value_fen.label("value")
    )
    await _grouped(
        session,
        sums,
        dimension,
        registrations,
        {
            "registrations": lambda c: func.count(),
            "recorded_fen": lambda c: func.sum(c.recorded),
            "unrecorded_value_fen": lambda c: func.sum(case((c.recorded.is_(None), c.value), else_=0)),
        },
    )

    def money(table: Any, at: Any, *conditions: Any) -> Any:
        return _with_party(
            select(_bucket(at, instants).label("bucket"), key.label("key"), table.amount_fen.label("amount"))
            .select_from(table)
            .join(LicenceContract, LicenceContract.id == table.contract_id),
            dimension,
        ).where(_rows_of(at, instants), *conditions)

    await _grouped(
        session,
        sums,
        dimension,
        money(Payment, Payment.received_at, Payment.received_at.is_not(None)),
        {"received_fen": lambda c: func.sum(c.amount)},
    )
    await _grouped(
        session,
        sums,
        dimension,
        money(Refund, Refund.completed_at, Refund.status == RefundStatus.SUCCEEDED),
        {"refunded_fen": lambda c: func.sum(c.amount)},
    )
    return sums


def _as_figures(found: dict[str, int]) -> Figures:
    return Figures(
        new_licences=found.get("new_licences", 0),
        filings=found.get("filings", 0),
        registrations=found.get("registrations", 0),
        contract_value_fen=found.get("contract_value_fen", 0),
        transaction_value_fen=found.get("recorded_fen", 0)
        + rules.transaction_value_fen(found.get("unrecorded_value_fen", 0)),
        payments_received_fen=found.get("received_fen", 0) - found.get("refunded_fen", 0),
    )


async def quarterly(session: AsyncSession, quarter: Quarter, dimension: Dimension) -> Table:
    """The quarter's figures per group of ``dimension``, with the total row."""
    sums = await _figures(session, [quarter], dimension)
    return assemble(quarter, dimension, {key: _as_figures(found) for (_, key), found in sums.items()})


async def statistics(session: AsyncSession, *, year: str, quarter: str, by: str, on: date | None = None) -> Table:
    """The table a request asks for (see :func:`parse_request` for the defaults)."""
    chosen, dimension = parse_request(year, quarter, by, on=on or today())
    return await quarterly(session, chosen, dimension)


async def dashboard_summary(session: AsyncSession, on: date | None = None) -> Summary:
    """The totals of the last eight quarters up to ``on``'s (default today), oldest first."""
    quarters = last_quarters(on or today(), SUMMARY_QUARTERS)
    sums = await _figures(session, quarters, None)
    return Summary([QuarterFigures(q, _as_figures(sums.get((n, ""), {}))) for n, q in enumerate(quarters)])


# ---------------------------------------------------------------------------------------------
# Exports: CSV (UTF-8 with BOM, for Excel) and XLSX
# ---------------------------------------------------------------------------------------------


def headers(dimension: Dimension) -> list[str]:
    return [dimension.column_label, *(measure.heading for measure in MEASURES)]


def _lines(table: Table) -> Iterator[tuple[str, Figures]]:
    for row in table.rows:
        yield row.label, row.figures
    yield "合计", table.total


def _plain_yuan(fen: int) -> str:
    return format_yuan(fen).replace(",", "")


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers(table.dimension))
    for label, figures in _lines(table):
        values = astuple(figures)
        writer.writerow(
            [label, *(_plain_yuan(v) if m.is_money else str(v) for m, v in zip(MEASURES, values, strict=True))]
        )
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "季度统计"
    sheet.append(headers(table.dimension))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for label, figures in _lines(table):
        values = astuple(figures)
        sheet.append(
            [label, *(Decimal(v) / FEN_PER_YUAN if m.is_money else v for m, v in zip(MEASURES, values, strict=True))]
        )
        for measure, cell in zip(MEASURES, sheet[sheet.max_row][1:], strict=True):
            cell.number_format = "#,##0.00" if measure.is_money else "#,##0"
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDEFG", (36, 18, 18, 18, 20, 20, 24), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "B2"

    about = workbook.create_sheet("说明")
    for label, value in (
        ("季度", f"{table.quarter.label}（{table.quarter.first_day} 至 {table.quarter.last_day}）"),
        ("统计维度", table.dimension.label),
        ("生成时间", now_utc().astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")),
        ("口径", "新增许可合同按合同签订日期；合同成交额为这些合同签订时确定的金额；"),
        ("", "许可合同备案与技术合同登记按办结日期；技术交易额以登记机构记录的金额为准；"),
        ("", "到账金额按到账日期，扣除当季完成的退款。日期均为北京时间。"),
    ):
        about.append([label, value])
    about.column_dimensions["A"].width = 12
    about.column_dimensions["B"].width = 90
    for row in about.iter_rows():
        row[1].alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# API shape (amounts in fen)
# ---------------------------------------------------------------------------------------------


class FiguresOut(msgspec.Struct):
    new_licences: int
    filings: int
    registrations: int
    contract_value_fen: int
    transaction_value_fen: int
    payments_received_fen: int

    @classmethod
    def of(cls, figures: Figures) -> FiguresOut:
        return cls(*astuple(figures))


class RowOut(msgspec.Struct):
    key: str
    label: str
    new_licences: int
    filings: int
    registrations: int
    contract_value_fen: int
    transaction_value_fen: int
    payments_received_fen: int


class StatisticsOut(msgspec.Struct):
    year: int
    quarter: int
    by: str
    rows: list[RowOut]
    total: FiguresOut

    @classmethod
    def of(cls, table: Table) -> StatisticsOut:
        return cls(
            year=table.quarter.year,
            quarter=table.quarter.quarter,
            by=table.dimension.value,
            rows=[RowOut(row.key, row.label, *astuple(row.figures)) for row in table.rows],
            total=FiguresOut.of(table.total),
        )
