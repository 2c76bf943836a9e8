"""Response shape of ``GET /api/v1/funnel`` (转化漏斗)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec

from marketplace.matching.funnel import Report, Row, Scope, Table
from marketplace.matching.funnel_rules import Counts


def _pct(value: Decimal | None) -> float | None:
    # Rounded half-up on Decimal to one decimal first; the float is only its JSON spelling.
    return float(value) if value is not None else None


class FunnelStageOut(msgspec.Struct):
    """One stage: distinct (enterprise, patent) pairs that reached it, and its conversion in percent
    (one decimal) from the previous stage and from ``shown``; null when that denominator is zero (and
    ``from_previous_pct`` of ``shown``, which has no previous stage)."""

    stage: str
    label: str
    count: int
    from_previous_pct: float | None
    from_shown_pct: float | None

    @classmethod
    def list_of(cls, counts: Counts) -> list[FunnelStageOut]:
        return [
            cls(f.stage.value, f.label, f.count, _pct(f.from_previous_pct), _pct(f.from_shown_pct))
            for f in counts.figures()
        ]


class FunnelScopeOut(msgspec.Struct):
    """What the funnel covers (null: not restricted); a licensor's token is always restricted to itself.
    ``from`` and ``to`` are business dates (Asia/Shanghai), both included."""

    patent_id: int | None
    patent_number: str | None
    patent_title: str | None
    licensor_id: int | None
    licensor_name: str | None
    region: str | None
    region_name: str | None
    from_: date | None = msgspec.field(name="from")
    to: date | None = None

    @classmethod
    def of(cls, scope: Scope) -> FunnelScopeOut:
        return cls(
            patent_id=scope.patent_id,
            patent_number=scope.patent_number,
            patent_title=scope.patent_title,
            licensor_id=scope.licensor_id,
            licensor_name=scope.licensor_name,
            region=scope.region,
            region_name=scope.region_name,
            from_=scope.period.start,
            to=scope.period.end,
        )


class FunnelGroupOut(msgspec.Struct):
    """One row of the breakdown: ``key`` is the patent id, the licensor's organisation id, or the
    two-digit province code; ``number`` is the patent number (专利号) for patents."""

    key: str
    label: str
    stages: list[FunnelStageOut]
    number: str | None = None

    @classmethod
    def of(cls, row: Row) -> FunnelGroupOut:
        return cls(row.key, row.label, FunnelStageOut.list_of(row.counts), row.number)


class FunnelOut(msgspec.Struct, omit_defaults=True):
    """The funnel: the scope, its totals per stage, and exactly one breakdown — ``by_patent``,
    ``by_licensor`` or ``by_region`` as ``by`` says — the largest ``shown`` first, at most
    ``groups_limit`` rows of ``groups_total``."""

    scope: FunnelScopeOut
    stages: list[FunnelStageOut]
    by: str
    groups_total: int
    groups_limit: int
    by_patent: list[FunnelGroupOut] | None = None
    by_licensor: list[FunnelGroupOut] | None = None
    by_region: list[FunnelGroupOut] | None = None

    @classmethod
    def of(cls, report: Report) -> FunnelOut:
        table: Table = report.tables[0]
        groups = [FunnelGroupOut.of(row) for row in table.rows]
        return cls(
            scope=FunnelScopeOut.of(report.scope),
            stages=FunnelStageOut.list_of(report.totals),
            by=table.by.value,
            groups_total=table.total,
            groups_limit=table.limit,
            **{f"by_{table.by.value}": groups},
        )
