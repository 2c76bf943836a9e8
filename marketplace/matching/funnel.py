"""Conversion funnel (转化漏斗): shown → viewed → evaluated → accepted → filed, per patent, per licensor
and per region; licensors read their own patents' funnel, platform admins everyone's.

What is counted. Every stage counts distinct (enterprise organisation, patent) pairs:

- shown (推荐展示): a ``MatchEvent`` of stage ``shown`` — the enterprise was recommended the patent
  (page, API, digest or push). Events are recorded for enterprises only (``services.matching_refusal``)
  and once per enterprise, patent and stage.
- viewed (查看): a ``MatchEvent`` of stage ``viewed`` — the enterprise opened the catalogue page.
- evaluated (评价): a ``PatentEvaluation`` by a user acting for an enterprise (the evaluator's
  organisation is of kind enterprise). Experts evaluate for the platform organisation and are not
  counted; two colleagues evaluating one patent are one pair.
- accepted (取得许可): a ``LicenceContract`` of any status whose licensee is an enterprise; a second
  licence of the same pair (after the first ended) is the same pair. A licence a university or
  institute takes is not an enterprise's conversion and is not in the funnel.
- filed (备案): such a contract whose patent-licence filing (专利实施许可合同备案, the ``ContractFiling``
  of registry ``licence_filing``) the registry has filed: it holds the registry's number, which is
  written when the first record is filed and kept through later change and cancellation records, so
  a filing that has since become due again for a change still counts as filed.

The period (business dates, Asia/Shanghai, both ends included) applies to when the pair reached
each stage:

- shown, viewed: the event's ``created_at`` (the first time: a later showing writes no row);
- evaluated: the earliest ``created_at`` of the pair's evaluations (editing one does not move it);
- accepted: the earliest ``created_at`` of the pair's contracts, the instant the written notice was
  accepted (``signed_on`` is only a date, and demonstration data move it);
- filed: the earliest ``filed_on`` of the pair's filings, the registry's decision date written when
  its results are imported. A later change or cancellation record overwrites ``filed_on``, so a
  filing changed since falls in the period of its latest record; the first filing date is kept
  nowhere else but the audit trail. A filing with a number but no ``filed_on`` (never imported)
  counts when there is no period and in no period.

Instants are compared with the period's Asia/Shanghai midnights; ``filed_on`` is a business date.

Scopes: a patent; a licensor (``Patent.owner_organisation_id``); a region, the licensor's province
(the first two digits of its ``division_code``). The table of a funnel groups by one of them.

Counting happens in the database: per stage one ``SELECT`` yields one row per distinct pair (events
are distinct already; the other stages ``GROUP BY`` enterprise and patent, the period in ``HAVING``
on the earliest time), counted per group; the five branches are one ``UNION ALL`` added up per
group, largest ``shown`` first, limited, with ``count(*) OVER ()`` for the number of groups. Only
counts leave the database, and the names of the rows shown.

Indexes the queries use (checked with ``EXPLAIN`` on both databases):

- one patent: ``match_events`` by ``ix_match_events_patent_stage`` (patent_id, stage), which also
  covers the count (index-only); ``patent_evaluations`` by ``ix_patent_evaluations_patent_id``;
  ``licence_contracts`` by ``ix_contracts_patent_status`` (patent_id, status); the filings by
  ``uq_contract_filing_registry`` (contract_id, registry) on PostgreSQL, by
  ``ix_contract_filings_registry_number`` (registry, number) on SQLite; organisations (the party's
  kind) by primary key;
- one licensor: its patents by ``ix_patents_owner_status`` (owner_organisation_id, …), then the same
  per-patent indexes in nested loops;
- a region or the whole platform: ``match_events`` is read whole — through
  ``ix_match_events_patent_stage``, which covers it, or scanned; the unique (organisation_id,
  patent_id, stage) index leads with the enterprise and serves ``record_events``' upsert, not these
  counts — and the smaller tables are joined to it by primary key or hashed.

``created_at`` has no index: a period narrows the rows a scope selected, it does not select them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, and_, case, func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.accounts.rules import Principal
from marketplace.errors import Forbidden, NotFound, ValidationFailed
from marketplace.evaluations.models import PatentEvaluation
from marketplace.filings.models import ContractFiling, Registry
from marketplace.licensing.models import LicenceContract
from marketplace.matching.funnel_rules import (
    BREAKDOWN_LIMIT,
    STAGES,
    Breakdown,
    Counts,
    Filters,
    Period,
    StageFigure,
    default_breakdown,
    region_label,
)
from marketplace.matching.models import FunnelStage, MatchEvent
from marketplace.patents.models import Patent

LICENSOR_KINDS = frozenset({OrganisationKind.UNIVERSITY, OrganisationKind.INSTITUTE})
REFUSAL = "转化漏斗仅向许可人（高校、科研机构）和平台管理员开放"

_Licensor = aliased(Organisation, name="funnel_licensor")
_Party = aliased(Organisation, name="funnel_party")


# ---------------------------------------------------------------------------------------------
# Who may read which funnel
# ---------------------------------------------------------------------------------------------


def is_licensor(principal: Principal | None) -> bool:
    return (
        principal is not None
        and not principal.is_platform_admin
        and not principal.is_expert
        and principal.organisation_kind in LICENSOR_KINDS
    )


def require_reader(principal: Principal | None) -> Principal:
    if principal is None:
        raise Forbidden("请先登录")
    if not (principal.is_platform_admin or is_licensor(principal)):
        raise Forbidden(REFUSAL)
    return principal


@dataclass(frozen=True)
class Scope:
    """What a funnel covers, with names for display; ``licensor_id`` is always set for a licensor."""

    patent_id: int | None = None
    patent_title: str | None = None
    patent_number: str | None = None
    licensor_id: int | None = None
    licensor_name: str | None = None
    region: str | None = None
    period: Period = field(default_factory=Period)

    @property
    def region_name(self) -> str | None:
        return region_label(self.region) if self.region else None


async def resolve_scope(session: AsyncSession, principal: Principal | None, filters: Filters) -> Scope:
    """The scope ``principal`` may read for ``filters``. A licensor reads only its own patents: another
    licensor asked for is 403, another's patent 404 (its existence is not confirmed)."""
    principal = require_reader(principal)
    licensor_id = filters.licensor_id
    if not principal.is_platform_admin:
        if licensor_id is not None and licensor_id != principal.organisation_id:
            raise Forbidden("许可人只能查看本机构专利的转化漏斗")
        licensor_id = principal.organisation_id
    patent_title = patent_number = None
    if filters.patent_id is not None:
        patent = (
            await session.execute(
                select(Patent.title, Patent.application_number, Patent.owner_organisation_id).where(
                    Patent.id == filters.patent_id
                )
            )
        ).first()
        if patent is None or (not principal.is_platform_admin and patent.owner_organisation_id != licensor_id):
            raise NotFound("未找到该专利")
        patent_title, patent_number = patent.title, f"ZL{patent.application_number}"
    licensor_name = None
    if licensor_id is not None:
        licensor_name = await session.scalar(select(Organisation.name).where(Organisation.id == licensor_id))
        if licensor_name is None:
            raise ValidationFailed.single("licensor_id", f"未找到编号为 {licensor_id} 的许可人", "not_found")
    return Scope(
        patent_id=filters.patent_id,
        patent_title=patent_title,
        patent_number=patent_number,
        licensor_id=licensor_id,
        licensor_name=licensor_name,
        region=filters.region,
        period=filters.period,
    )


# ---------------------------------------------------------------------------------------------
# The statements
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """Where one stage's rows come from. ``party_id`` is None when each row is a distinct pair."""

    table: FromClause
    patent_id: Any
    at: Any
    party_id: Any = None
    where: tuple[ColumnElement[bool], ...] = ()
    #: ``at`` is a business date rather than an instant.
    dated: bool = False


def _enterprise(organisation_id: Any) -> ColumnElement[bool]:
    return and_(_Party.id == organisation_id, _Party.kind == OrganisationKind.ENTERPRISE)


def _source(stage: FunnelStage) -> _Source:
    if stage in (FunnelStage.SHOWN, FunnelStage.VIEWED):
        return _Source(
            MatchEvent.__table__, MatchEvent.patent_id, MatchEvent.created_at, where=(MatchEvent.stage == stage,)
        )
    if stage is FunnelStage.EVALUATED:
        table = PatentEvaluation.__table__.join(_Party, _enterprise(PatentEvaluation.evaluator_organisation_id))
        return _Source(
            table, PatentEvaluation.patent_id, PatentEvaluation.created_at, PatentEvaluation.evaluator_organisation_id
        )
    contracts = LicenceContract.__table__.join(_Party, _enterprise(LicenceContract.licensee_organisation_id))
    if stage is FunnelStage.ACCEPTED:
        return _Source(
            contracts, LicenceContract.patent_id, LicenceContract.created_at, LicenceContract.licensee_organisation_id
        )
    filed = contracts.join(
        ContractFiling,
        and_(
            ContractFiling.contract_id == LicenceContract.id,
            ContractFiling.registry == Registry.LICENCE_FILING,
            ContractFiling.number.is_not(None),
        ),
    )
    return _Source(
        filed, LicenceContract.patent_id, ContractFiling.filed_on, LicenceContract.licensee_organisation_id, dated=True
    )


def _province(division_code: Any) -> ColumnElement[str]:
    # Constants inline: a bound parameter in SELECT and GROUP BY would be two expressions to PostgreSQL.
    return func.substr(division_code, literal_column("1"), literal_column("2"))


def _period(at: Any, period: Period, *, dated: bool) -> list[ColumnElement[bool]]:
    if dated:
        low, high = period.start, period.end
        return [c for c in (at >= low if low else None, at <= high if high else None) if c is not None]
    start, after = period.instants()
    return [c for c in (at >= start if start else None, at < after if after else None) if c is not None]


def _pairs(stage: FunnelStage, scope: Scope, by: Breakdown | None) -> Select:
    """One row per distinct pair that reached ``stage`` in ``scope`` (and its period), with the
    group ``key`` when ``by`` is given."""
    source = _source(stage)
    scoped = scope.licensor_id is not None or scope.region is not None
    needs_patent = scoped or by in (Breakdown.LICENSOR, Breakdown.REGION)
    needs_licensor = scope.region is not None or by is Breakdown.REGION
    table = source.table
    if needs_patent:
        table = table.join(Patent, Patent.id == source.patent_id)
    if needs_licensor:
        table = table.join(_Licensor, _Licensor.id == Patent.owner_organisation_id)
    where = list(source.where)
    if scope.patent_id is not None:
        where.append(source.patent_id == scope.patent_id)
    if scope.licensor_id is not None:
        where.append(Patent.owner_organisation_id == scope.licensor_id)
    if scope.region is not None:
        where.append(_province(_Licensor.division_code) == scope.region)
    keys: list[Any] = []
    if by is Breakdown.PATENT:
        keys = [source.patent_id]
    elif by is Breakdown.LICENSOR:
        keys = [Patent.owner_organisation_id]
    elif by is Breakdown.REGION:
        keys = [_province(_Licensor.division_code)]
    columns = [key.label("key") for key in keys] or [source.patent_id.label("patent_id")]
    if source.party_id is None:
        where += _period(source.at, scope.period, dated=source.dated)
        return select(*columns).select_from(table).where(*where)
    query = select(*columns).select_from(table).where(*where).group_by(source.party_id, source.patent_id, *keys)
    reached = _period(func.min(source.at), scope.period, dated=source.dated)
    return query.having(and_(*reached)) if reached else query


def _stage_counts(stage: FunnelStage, scope: Scope, by: Breakdown | None) -> Select:
    pairs = _pairs(stage, scope, by).subquery()
    number = literal_column(str(STAGES.index(stage))).label("stage")
    if by is None:
        return select(number, func.count().label("n")).select_from(pairs)
    return select(pairs.c.key, number, func.count().label("n")).group_by(pairs.c.key)


def _by_stage(stages: Any) -> list[Any]:
    return [
        func.sum(case((stages.c.stage == literal_column(str(index)), stages.c.n), else_=literal_column("0"))).label(
            stage.value
        )
        for index, stage in enumerate(STAGES)
    ]


async def totals(session: AsyncSession, scope: Scope) -> Counts:
    """The scope's count of pairs per stage (one statement)."""
    stages = union_all(*(_stage_counts(stage, scope, None) for stage in STAGES)).subquery("stages")
    row = (await session.execute(select(*_by_stage(stages)))).one()
    return Counts.of({stage.value: row[index] for index, stage in enumerate(STAGES)})


@dataclass(frozen=True)
class Row:
    """One group of a funnel's table: a patent, a licensor or a province."""

    by: Breakdown
    key: str
    label: str
    counts: Counts
    #: The patent's number (专利号), for rows of patents.
    number: str | None = None

    @property
    def figures(self) -> list[StageFigure]:
        return self.counts.figures()


@dataclass(frozen=True)
class Table:
    by: Breakdown
    rows: list[Row]
    #: Groups with any pair in the scope (the rows are the first ``limit`` of them).
    total: int
    limit: int = BREAKDOWN_LIMIT

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)


async def breakdown(session: AsyncSession, scope: Scope, by: Breakdown, *, limit: int = BREAKDOWN_LIMIT) -> Table:
    """The scope's groups by ``by``, most pairs shown first (then by key), at most ``limit``."""
    stages = union_all(*(_stage_counts(stage, scope, by) for stage in STAGES)).subquery("stages")
    sums = _by_stage(stages)
    statement = (
        select(stages.c.key, *sums, func.count().over().label("groups"))
        .group_by(stages.c.key)
        .order_by(sums[0].desc(), stages.c.key)
        .limit(limit)
    )
    found = list(await session.execute(statement))
    labels = await _labels(session, by, [row.key for row in found])
    rows = []
    for row in found:
        label, number = labels.get(str(row.key), (str(row.key), None))
        counts = Counts.of({stage.value: row._mapping[stage.value] for stage in STAGES})
        rows.append(Row(by, str(row.key), label, counts, number))
    total = int(found[0].groups) if found else 0
    return Table(by, rows, total, limit)


async def _labels(session: AsyncSession, by: Breakdown, keys: Sequence[Any]) -> dict[str, tuple[str, str | None]]:
    if by is Breakdown.REGION:
        return {str(key): (region_label(key), None) for key in keys}
    if not keys:
        return {}
    if by is Breakdown.PATENT:
        rows = await session.execute(
            select(Patent.id, Patent.title, Patent.application_number).where(Patent.id.in_(list(keys)))
        )
        return {str(patent_id): (title, f"ZL{number}") for patent_id, title, number in rows}
    rows = await session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(list(keys))))
    return {str(organisation_id): (name, None) for organisation_id, name in rows}


@dataclass(frozen=True)
class Report:
    scope: Scope
    totals: Counts
    tables: list[Table] = field(default_factory=list)

    @property
    def figures(self) -> list[StageFigure]:
        return self.totals.figures()

    def table(self, by: Breakdown) -> Table | None:
        return next((table for table in self.tables if table.by is by), None)


async def report(
    session: AsyncSession, principal: Principal | None, filters: Filters, *, tables: Sequence[Breakdown] | None = None
) -> Report:
    """The funnel ``principal`` asked for: the scope's totals and its tables (by default the one
    ``filters`` chooses)."""
    scope = await resolve_scope(session, principal, filters)
    if tables is None:
        tables = [
            default_breakdown(filters.by, patent_id=scope.patent_id, licensor_id=scope.licensor_id, region=scope.region)
        ]
    return Report(scope, await totals(session, scope), [await breakdown(session, scope, by) for by in tables])


async def licensor_options(session: AsyncSession) -> list[tuple[str, str]]:
    """Universities and institutes owning patents, for the admin page's filter."""
    rows = await session.execute(
        select(Organisation.id, Organisation.name)
        .where(
            Organisation.kind.in_(list(LICENSOR_KINDS)),
            select(Patent.id).where(Patent.owner_organisation_id == Organisation.id).exists(),
        )
        .order_by(Organisation.name)
    )
    return [(str(organisation_id), name) for organisation_id, name in rows]
