"""Conversion funnel (转化漏斗), the pure parts: the request's filters, each stage's conversion rates
and the geometry of the charts the templates draw as inline SVG. No session, no framework.

The stages and what is counted are defined in :mod:`marketplace.matching.funnel`.

Rates are percentages with one decimal, rounded half-up on :class:`~decimal.Decimal` (never on a
float); a stage whose denominator is zero has no rate, shown as "—". A rate may exceed 100 %: an
enterprise can take a licence without having been shown or having evaluated the patent, and the
funnel reports that honestly rather than capping it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from marketplace.catalogue.rules import PROVINCES, province_name
from marketplace.clock import BUSINESS_TZ
from marketplace.errors import FieldError, ValidationFailed
from marketplace.matching.models import FunnelStage

STAGES: tuple[FunnelStage, ...] = tuple(FunnelStage)
NO_RATE = "—"
#: Rows of a breakdown table (the largest groups by ``shown``).
BREAKDOWN_LIMIT = 50
#: Groups drawn in a breakdown chart (the first rows of the table).
CHART_GROUPS = 10
MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2100, 12, 31)
_MAX_ID = 2**63 - 1
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ONE_DECIMAL = Decimal("0.1")


class Breakdown(enum.StrEnum):
    """What a funnel's table groups by."""

    PATENT = "patent"
    LICENSOR = "licensor"
    REGION = "region"

    @property
    def label(self) -> str:
        return {"patent": "按专利", "licensor": "按许可人", "region": "按地区（许可人所在省份）"}[self.value]

    @property
    def column_label(self) -> str:
        return {"patent": "专利", "licensor": "许可人", "region": "地区"}[self.value]


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Business dates (Asia/Shanghai), both ends included; either may be open."""

    start: date | None = None
    end: date | None = None

    @property
    def active(self) -> bool:
        return self.start is not None or self.end is not None

    @property
    def label(self) -> str:
        if not self.active:
            return "全部时间"
        start = self.start.isoformat() if self.start else "最早"
        end = self.end.isoformat() if self.end else "今天"
        return f"{start} 至 {end}"

    def instants(self) -> tuple[datetime | None, datetime | None]:
        """The period as UTC instants: from the start date's midnight (inclusive) to the midnight after
        the end date (exclusive)."""
        return (
            _midnight(self.start) if self.start else None,
            _midnight(self.end + timedelta(days=1)) if self.end else None,
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=BUSINESS_TZ).astimezone(UTC)


@dataclass(frozen=True)
class Filters:
    patent_id: int | None = None
    licensor_id: int | None = None
    region: str | None = None
    period: Period = Period()
    #: None: the request did not choose; the scope decides (see ``default_breakdown``).
    by: Breakdown | None = None


def default_breakdown(
    by: Breakdown | None, *, patent_id: int | None, licensor_id: int | None, region: str | None
) -> Breakdown:
    """What a funnel's table groups by when the request did not choose: one patent or one licensor →
    its patents; one region → its licensors; the whole platform → regions."""
    if by is not None:
        return by
    if patent_id is not None or licensor_id is not None:
        return Breakdown.PATENT
    if region is not None:
        return Breakdown.LICENSOR
    return Breakdown.REGION


def _identifier(raw: str, field: str, what: str, errors: list[FieldError]) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= _MAX_ID:
        return int(raw)
    errors.append(FieldError(field, f"{what}应为正整数编号"))
    return None


def _day(raw: str, field: str, what: str, errors: list[FieldError]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw) if _DATE.fullmatch(raw) else None
    except ValueError:
        day = None
    if day is None:
        errors.append(FieldError(field, f"{what}应为 YYYY-MM-DD 格式的日期，例如 2026-03-01"))
        return None
    if not MIN_DATE <= day <= MAX_DATE:
        bounds = f"{MIN_DATE.isoformat()} 至 {MAX_DATE.isoformat()}"
        errors.append(FieldError(field, f"{what}应在 {bounds} 之间", "out_of_range"))
        return None
    return day


def parse_filters(
    *, patent_id: str = "", licensor_id: str = "", region: str = "", start: str = "", end: str = "", by: str = ""
) -> Filters:
    """Filters from a query string (the pages and the API share the names ``patent_id``,
    ``licensor_id``, ``region``, ``from``, ``to``, ``by``); every problem is reported at once, against
    its field, never ignored."""
    errors: list[FieldError] = []
    patent = _identifier(patent_id, "patent_id", "专利", errors)
    licensor = _identifier(licensor_id, "licensor_id", "许可人", errors)
    province = region.strip() or None
    if province is not None and province not in PROVINCES:
        errors.append(FieldError("region", "地区应为两位省级行政区划代码，例如 11（北京市）"))
    first = _day(start, "from", "开始日期", errors)
    last = _day(end, "to", "结束日期", errors)
    if first is not None and last is not None and last < first:
        errors.append(FieldError("to", "结束日期不能早于开始日期", "out_of_range"))
    breakdown = None
    if by.strip():
        try:
            breakdown = Breakdown(by.strip())
        except ValueError:
            names = "、".join(f"{b.value}（{b.label}）" for b in Breakdown)
            errors.append(FieldError("by", f"分组应为：{names}"))
    if errors:
        raise ValidationFailed(errors)
    return Filters(patent, licensor, province, Period(first, last), breakdown)


def region_label(code: str | None) -> str:
    return province_name(code)


def region_options() -> list[tuple[str, str]]:
    """Provinces by code, for a filter."""
    return [(code, PROVINCES[code]) for code in sorted(PROVINCES)]


# ---------------------------------------------------------------------------------------------
# Counts and rates
# ---------------------------------------------------------------------------------------------


def percent(numerator: int, denominator: int) -> Decimal | None:
    """``numerator`` as a percentage of ``denominator``, one decimal, half-up; None when the
    denominator is zero (there is nothing to convert from)."""
    if denominator <= 0:
        return None
    return (Decimal(numerator) * 100 / Decimal(denominator)).quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP)


def percent_text(value: Decimal | None) -> str:
    return NO_RATE if value is None else f"{value}%"


@dataclass(frozen=True)
class StageFigure:
    stage: FunnelStage
    count: int
    #: Against the previous stage; None for the first stage or when the previous stage is zero.
    from_previous_pct: Decimal | None
    #: Against ``shown``; None when nothing was shown.
    from_shown_pct: Decimal | None

    @property
    def label(self) -> str:
        return self.stage.label

    @property
    def count_text(self) -> str:
        return f"{self.count:,}"

    @property
    def from_previous_text(self) -> str:
        return percent_text(self.from_previous_pct)

    @property
    def from_shown_text(self) -> str:
        return percent_text(self.from_shown_pct)


@dataclass(frozen=True)
class Counts:
    """Distinct (enterprise, patent) pairs that reached each stage."""

    shown: int = 0
    viewed: int = 0
    evaluated: int = 0
    accepted: int = 0
    filed: int = 0

    @classmethod
    def of(cls, by_stage: Mapping[str, int]) -> Counts:
        return cls(**{stage.value: int(by_stage.get(stage.value, 0) or 0) for stage in STAGES})

    def count(self, stage: FunnelStage) -> int:
        return int(getattr(self, stage.value))

    @property
    def is_empty(self) -> bool:
        return not any(self.count(stage) for stage in STAGES)

    def figures(self) -> list[StageFigure]:
        shown = self.shown
        result = []
        previous: int | None = None
        for stage in STAGES:
            count = self.count(stage)
            result.append(
                StageFigure(
                    stage=stage,
                    count=count,
                    from_previous_pct=None if previous is None else percent(count, previous),
                    from_shown_pct=percent(count, shown),
                )
            )
            previous = count
        return result

    def summary(self) -> str:
        """The funnel in one sentence, for a chart's description."""
        parts = []
        for figure in self.figures():
            text = f"{figure.label} {figure.count_text}"
            if figure.from_previous_pct is not None:
                text += f"（较上一步 {figure.from_previous_text}）"
            parts.append(text)
        return "；".join(parts)


# ---------------------------------------------------------------------------------------------
# Charts (pure geometry; templates/matching/funnel_chart.html.j2 draws them as inline SVG)
# ---------------------------------------------------------------------------------------------

STAGE_COLOURS: dict[FunnelStage, str] = {
    FunnelStage.SHOWN: "#2f6fb0",
    FunnelStage.VIEWED: "#4f8fd0",
    FunnelStage.EVALUATED: "#e08a1e",
    FunnelStage.ACCEPTED: "#3a9b5c",
    FunnelStage.FILED: "#7a4fb0",
}


#: Room for one legend entry (swatch and a stage's name).
LEGEND_STEP = 80


def short_text(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Bar:
    #: Text left of the bar (a stage, or a group's name on its first bar); may be empty.
    label: str
    #: Text right of the bar: the count and its rate.
    text: str
    #: The whole story of the bar, for its tooltip and screen readers.
    title: str
    colour: str
    y: float
    width: float


@dataclass(frozen=True)
class GroupLabel:
    text: str
    title: str
    y: float


@dataclass(frozen=True)
class LegendItem:
    label: str
    colour: str
    x: float


@dataclass(frozen=True)
class Chart:
    """Horizontal bars on one scale: label on the left, bar, count and rate after it."""

    id: str
    title: str
    description: str
    bars: list[Bar]
    groups: list[GroupLabel]
    legend: list[LegendItem]
    label_width: int
    plot_width: int
    value_width: int
    bar_height: int
    top: int
    rows_height: float
    font_size: int = 12

    @property
    def width(self) -> int:
        return self.label_width + self.plot_width + self.value_width

    @property
    def height(self) -> int:
        return int(self.top + self.rows_height + 4)

    @property
    def text_offset(self) -> float:
        """From a bar's top to its texts' baseline."""
        return self.bar_height - max(self.bar_height // 4, 1)


def _scaled(count: int, largest: int, plot_width: int) -> float:
    if largest <= 0 or count <= 0:
        return 0.0
    return round(plot_width * count / largest, 2)


def _bar_text(figure: StageFigure) -> str:
    if figure.stage is STAGES[0]:
        return figure.count_text
    return f"{figure.count_text}（较上一步 {figure.from_previous_text}，占展示 {figure.from_shown_text}）"


def _bar_title(prefix: str, figure: StageFigure) -> str:
    return (
        f"{prefix}{figure.label}：{figure.count_text}，较上一步 {figure.from_previous_text}，"
        f"占推荐展示 {figure.from_shown_text}"
    )


def funnel_chart(chart_id: str, title: str, counts: Counts, *, plot_width: int = 360) -> Chart:
    """One bar per stage, all on the scale of the largest stage."""
    label_width, value_width, row_height, bar_height, top = 72, 330, 28, 18, 6
    figures = counts.figures()
    largest = max(figure.count for figure in figures)
    bars = [
        Bar(
            label=figure.label,
            text=_bar_text(figure),
            title=_bar_title("", figure),
            colour=STAGE_COLOURS[figure.stage],
            y=top + index * row_height + (row_height - bar_height) / 2,
            width=_scaled(figure.count, largest, plot_width),
        )
        for index, figure in enumerate(figures)
    ]
    return Chart(
        id=chart_id,
        title=title,
        description=counts.summary(),
        bars=bars,
        groups=[],
        legend=[],
        label_width=label_width,
        plot_width=plot_width,
        value_width=value_width,
        bar_height=bar_height,
        top=top,
        rows_height=len(bars) * row_height,
    )


def breakdown_chart(chart_id: str, title: str, rows: Sequence[tuple[str, Counts]], *, plot_width: int = 300) -> Chart:
    """Per group (the first ``CHART_GROUPS`` rows), one thin bar per stage with the group's name beside
    them, every group on one scale; a legend names the stages' colours. A bar's text is its count and,
    in brackets, its rate against the previous stage."""
    label_width, value_width, bar_height, bar_gap, group_gap, legend_height = 170, 130, 10, 3, 12, 24
    shown_rows = list(rows[:CHART_GROUPS])
    largest = max((counts.count(stage) for _, counts in shown_rows for stage in STAGES), default=0)
    group_height = len(STAGES) * (bar_height + bar_gap) - bar_gap
    bars: list[Bar] = []
    groups: list[GroupLabel] = []
    y = float(legend_height)
    for name, counts in shown_rows:
        middle = round(y + group_height / 2 + 4, 2)
        groups.append(GroupLabel(short_text(name, 13), f"{name}：{counts.summary()}", middle))
        for index, figure in enumerate(counts.figures()):
            bars.append(
                Bar(
                    label="",
                    text=figure.count_text if index == 0 else f"{figure.count_text}（{figure.from_previous_text}）",
                    title=_bar_title(f"{name} · ", figure),
                    colour=STAGE_COLOURS[figure.stage],
                    y=round(y + index * (bar_height + bar_gap), 2),
                    width=_scaled(figure.count, largest, plot_width),
                )
            )
        y += group_height + group_gap
    described = "；".join(f"{name}：{counts.summary()}" for name, counts in shown_rows) or "没有数据"
    return Chart(
        id=chart_id,
        title=title,
        description=described,
        bars=bars,
        groups=groups,
        legend=[
            LegendItem(stage.label, STAGE_COLOURS[stage], label_width + index * LEGEND_STEP)
            for index, stage in enumerate(STAGES)
        ],
        label_width=label_width,
        plot_width=plot_width,
        value_width=value_width,
        bar_height=bar_height,
        top=0,
        rows_height=y,
        font_size=10,
    )
