"""Catalogue use cases: keeping the search table in step with published offers, and searching it.

Searching is public (no principal): everything in ``catalogue_entries`` is a published offer.
Queries are SQLAlchemy Core over the one denormalised table; only the full-text match is
dialect-specific: on SQLite an FTS5 match (keyword and equality facets, see migration 0002)
joined by rowid; on PostgreSQL the GIN-indexed ``to_tsvector('simple', search_tokens)``
expression, which the planner ANDs with the facets' B-tree indexes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import reduce
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    String,
    case,
    cast,
    column,
    delete,
    func,
    literal,
    literal_column,
    null,
    select,
    table,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Organisation
from marketplace.catalogue import rules
from marketplace.catalogue.models import CatalogueEntry
from marketplace.catalogue.rules import CatalogueQuery, SortOrder, index_tokens
from marketplace.clock import now_utc
from marketplace.errors import ValidationFailed
from marketplace.evaluations import services as evaluation_services
from marketplace.evaluations.models import PatentTier
from marketplace.evaluations.rules import Aggregate
from marketplace.matching import inventory
from marketplace.offers.models import OpenLicenceOffer, PaymentMode
from marketplace.patents.models import PatentType

_ENTRIES = CatalogueEntry.__table__
_FTS = table("catalogue_fts", column("rowid", Integer))
#: How many licensors the sidebar lists (the busiest first).
LICENSOR_FACET_SIZE = 20


def _ipc_parts(ipc: str | None) -> tuple[str | None, str | None, str | None]:
    """Section, class and subclass of an IPC code (``H01M 10/0525`` → H, H01, H01M)."""
    code = (ipc or "").replace(" ", "").upper()
    return (code[:1] or None, code[:3] if len(code) >= 3 else None, code[:4] if len(code) >= 4 else None)


async def upsert_entry(session: AsyncSession, offer: OpenLicenceOffer) -> CatalogueEntry:
    """Put a published offer in the catalogue (or refresh its row). Call in the publishing transaction."""
    patent = offer.patent
    licensor = offer.licensor
    section, ipc_class, subclass = _ipc_parts(patent.ipc_main)
    tier = await session.scalar(select(PatentTier.tier).where(PatentTier.patent_id == patent.id))
    entry = await session.scalar(select(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id))
    if entry is None:
        entry = CatalogueEntry(offer_id=offer.id)
        session.add(entry)
    entry.patent_id = patent.id
    entry.licensor_organisation_id = licensor.id
    entry.title = patent.title
    entry.licensor_name = licensor.name
    entry.search_tokens = index_tokens(
        patent.title, patent.abstract, " ".join([patent.application_scenarios or "", offer.field_of_use or ""])
    )
    entry.patent_type = patent.patent_type
    entry.ipc_section = section
    entry.ipc_class = ipc_class
    entry.ipc_subclass = subclass
    entry.tier = tier
    entry.province_code = licensor.province_code
    entry.payment_mode = offer.payment_mode
    entry.pay_after_use = offer.pay_after_use
    entry.upfront_cost_fen = offer.upfront_cost_fen
    entry.trl = patent.trl
    entry.published_at = offer.published_at or now_utc()
    entry.expiry_date = patent.expiry_date
    await session.flush()
    await inventory.leave_inventory(session, patent.id)
    return entry


async def remove_entry(session: AsyncSession, offer_id: int) -> None:
    """Take an offer out of the catalogue (withdrawn, superseded, patent no longer in force); its
    patent may become a stock patent again."""
    patent_ids = list(
        await session.scalars(
            delete(CatalogueEntry).where(CatalogueEntry.offer_id == offer_id).returning(CatalogueEntry.patent_id)
        )
    )
    inventory.queue_sync(session, patent_ids)


@dataclass(frozen=True)
class CatalogueHit:
    """One result line: what the list shows, without the (large) token text."""

    offer_id: int
    patent_id: int
    title: str
    licensor_organisation_id: int
    licensor_name: str
    patent_type: PatentType
    ipc_section: str | None
    ipc_class: str | None
    province_code: str | None
    payment_mode: PaymentMode
    pay_after_use: bool
    upfront_cost_fen: int
    trl: int | None
    published_at: datetime
    expiry_date: date

    @property
    def province_name(self) -> str:
        return rules.province_name(self.province_code)

    @property
    def url(self) -> str:
        return f"/catalogue/{self.offer_id}"


_HIT_COLUMNS = [_ENTRIES.c[name] for name in CatalogueHit.__dataclass_fields__]


@dataclass(frozen=True)
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool = False


@dataclass(frozen=True)
class Facets:
    """Counts for the sidebar, each under every current filter (a chosen value stays listed)."""

    patent_type: list[FacetValue]
    payment_mode: list[FacetValue]
    province: list[FacetValue]
    ipc_section: list[FacetValue]
    licensor: list[FacetValue]


@dataclass(frozen=True)
class CatalogueResult:
    """One page of a search, the number of matches across all pages, and the sidebar's counts."""

    query: CatalogueQuery
    items: list[CatalogueHit]
    total: int
    facets: Facets
    #: The sort actually applied (relevance falls back to newest without a keyword).
    sort: SortOrder
    #: Market evaluations of the page's patents, by patent id.
    evaluations: dict[int, Aggregate] = field(default_factory=dict)

    @property
    def page(self) -> int:
        return self.query.page

    @property
    def page_size(self) -> int:
        return self.query.page_size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class _Matches:
    """The rows a query matches: what to read, under which conditions, and (with a keyword) how
    relevant each row is (higher is better)."""

    source: FromClause
    conditions: list[ColumnElement[bool]]
    relevance: ColumnElement[Any] | None = None

    @property
    def everything(self) -> bool:
        return self.source is _ENTRIES and not self.conditions


def _equality_filters(query: CatalogueQuery) -> list[ColumnElement[bool]]:
    c = _ENTRIES.c
    checks: list[tuple[Any, Callable[[Any], ColumnElement[bool]]]] = [
        (query.patent_type, lambda v: c.patent_type == v),
        (query.ipc_section, lambda v: c.ipc_section == v),
        (query.ipc_class, lambda v: c.ipc_class == v),
        (query.licensor, lambda v: c.licensor_organisation_id == v),
        (query.province, lambda v: c.province_code == v),
        (query.payment_mode, lambda v: c.payment_mode == v),
        (query.pay_after_use, lambda v: c.pay_after_use.is_(v)),
        (query.min_trl, lambda v: c.trl >= v),
    ]
    return [condition(value) for value, condition in checks if value is not None]


def _upfront_filter(query: CatalogueQuery) -> list[ColumnElement[bool]]:
    return [] if query.max_upfront_fen is None else [_ENTRIES.c.upfront_cost_fen <= query.max_upfront_fen]


def _title_hits(tokens: list[str]) -> ColumnElement[int]:
    """Relevance: how many of the query's words the title contains (most first; newest break ties).

    Every match contains every word somewhere, so this puts title matches above abstract-only
    mentions, as bm25 (SQLite) or ts_rank (PostgreSQL) do with title words indexed three times.
    Those scorers must score every match, though (ts_rank re-parses each row's tokens, bm25 reads
    each facet token's whole doclist), which at 1.35 million rows cost more than the rest of a
    keyword-plus-facets search together; comparing titles costs next to nothing.
    """
    title = func.lower(_ENTRIES.c.title)
    hits = [case((title.contains(token, autoescape=True), 1), else_=0) for token in tokens]
    return reduce(operator.add, hits)


def _matches(dialect: str, query: CatalogueQuery) -> _Matches:
    tokens = query.tokens
    relevance = _title_hits(tokens) if tokens else None
    if dialect == "sqlite":
        facet_terms = rules.fts5_facet_terms(query)
        if not tokens and not facet_terms:
            return _Matches(_ENTRIES, _upfront_filter(query))
        # FTS5 intersects the keyword with the equality facets (SQLite cannot combine B-tree
        # indexes); the matching rowids are joined to the table.
        match = text("catalogue_fts MATCH :fts_match").bindparams(fts_match=rules.fts5_match(tokens, facet_terms))
        hits = select(_FTS.c.rowid).where(match).subquery("fts_hits")
        return _Matches(_ENTRIES.join(hits, hits.c.rowid == _ENTRIES.c.id), _upfront_filter(query), relevance)
    conditions = [*_equality_filters(query), *_upfront_filter(query)]
    if not tokens:
        return _Matches(_ENTRIES, conditions)
    # Exactly the indexed expression, so the planner uses ix_catalogue_fts (and ANDs it with the
    # facets' B-tree indexes).
    vector = func.to_tsvector(literal_column("'simple'"), _ENTRIES.c.search_tokens)
    tsquery = func.to_tsquery(literal_column("'simple'"), rules.pg_tsquery(tokens))
    return _Matches(_ENTRIES, [vector.op("@@")(tsquery), *conditions], relevance)


def _order(columns: Any, sort: SortOrder) -> list[Any]:
    """ORDER BY for ``sort`` over ``columns`` (the table's or the matches'); the newest break ties."""
    first = {
        SortOrder.RELEVANCE: ["relevance"],
        SortOrder.NEWEST: [],
        SortOrder.UPFRONT_ASC: ["upfront_cost_fen"],
        SortOrder.EXPIRY_DESC: ["expiry_date"],
    }[sort]
    ascending = sort is SortOrder.UPFRONT_ASC
    keys = [columns[name].asc() if ascending else columns[name].desc() for name in first]
    return [*keys, columns["published_at"].desc(), columns["id"].desc()]


#: Facet name → the column it counts (licensors are counted separately, with their names).
_FACET_COLUMNS = {
    "patent_type": "patent_type",
    "payment_mode": "payment_mode",
    "province": "province_code",
    "ipc_section": "ipc_section",
}
_SORT_COLUMNS = ("id", "published_at", "upfront_cost_fen", "expiry_date")
_Counts = dict[str, list[tuple[str, int, str | None]]]


async def search(session: AsyncSession, query: CatalogueQuery) -> CatalogueResult:
    """One page of published offers matching ``query``, the total, and the sidebar's facet counts.

    Every keyword token must match (in any order); a query without a searchable word filters
    nothing. Out-of-range values raise :class:`ValidationFailed` before anything is read.

    A search that narrows anything reads its matches once, into a materialised CTE (so the
    full-text match runs once), and one statement answers both which rows make
    the page and every facet count; a second fetches the page's rows. The unfiltered catalogue is
    paged and counted straight from its indexes instead.
    """
    query = rules.normalise_query(query)
    errors = rules.validate_query(query)
    if errors:
        raise ValidationFailed(errors)
    matches = _matches(session.bind.dialect.name, query)
    sort = query.effective_sort(matches.relevance is not None)
    if matches.everything:
        page = select(*_HIT_COLUMNS).order_by(*_order(_ENTRIES.c, sort)).limit(query.page_size).offset(query.offset)
        items = [CatalogueHit(*row) for row in await session.execute(page)]
        counts = await _counts(session, _ENTRIES)
    else:
        items, counts = await _page_of_matches(session, matches, query, sort)
    facets = await _facets(session, query, counts)
    total = sum(n for _, n, _ in counts["patent_type"])
    evaluations = await evaluation_services.aggregates(session, (hit.patent_id for hit in items))
    return CatalogueResult(query=query, items=items, total=total, facets=facets, sort=sort, evaluations=evaluations)


async def _page_of_matches(
    session: AsyncSession, matches: _Matches, query: CatalogueQuery, sort: SortOrder
) -> tuple[list[CatalogueHit], _Counts]:
    c = _ENTRIES.c
    columns = [c[name] for name in (*_SORT_COLUMNS, *_FACET_COLUMNS.values(), "licensor_organisation_id")]
    if sort is SortOrder.RELEVANCE and matches.relevance is not None:
        columns.append(matches.relevance.label("relevance"))
    hits = select(*columns).select_from(matches.source).where(*matches.conditions).cte("hits")
    hits = hits.prefix_with("MATERIALIZED")
    # Numbering only the page's rows keeps the sort a top-N sort, however many rows match.
    page_rows = (
        select(hits).order_by(*_order(hits.c, sort)).limit(query.page_size).offset(query.offset).subquery("page")
    )
    position = func.row_number().over(order_by=_order(page_rows.c, sort)).label("position")
    counts = await _counts(session, hits, select(page_rows.c.id, position).subquery("page_ids"))
    positions = {int(value): n for value, n, _ in counts["page"]}
    if not positions:
        return [], counts
    rows = await session.execute(select(c.id, *_HIT_COLUMNS).where(c.id.in_(positions)))
    by_id = {row[0]: CatalogueHit(*row[1:]) for row in rows}
    return [by_id[entry_id] for entry_id in sorted(positions, key=positions.__getitem__)], counts


async def _counts(session: AsyncSession, rows: FromClause, page_ids: FromClause | None = None) -> _Counts:
    """Counts per value of every facet over ``rows`` in one statement, and the page's ids with
    their positions (as facet "page"). Every row has a patent type, so its counts add up to the total."""
    n = func.count().label("n")
    parts = []
    if page_ids is not None:
        parts.append(select(literal("page"), cast(page_ids.c.id, String), page_ids.c.position, null()))
    for facet, name in _FACET_COLUMNS.items():
        value = rows.c[name]
        parts.append(
            select(literal(facet).label("facet"), type_coerce(value, String).label("value"), n, null().label("label"))
            .where(value.is_not(None))
            .group_by(value)
        )
    licensor = rows.c.licensor_organisation_id
    busiest = (
        select(licensor.label("id"), n).group_by(licensor).order_by(n.desc(), licensor).limit(LICENSOR_FACET_SIZE)
    ).subquery("busiest")
    organisations = Organisation.__table__
    parts.append(
        select(literal("licensor"), cast(busiest.c.id, String), busiest.c.n, organisations.c.name).select_from(
            busiest.join(organisations, organisations.c.id == busiest.c.id)
        )
    )
    counts: _Counts = {facet: [] for facet in ("page", *_FACET_COLUMNS, "licensor")}
    for facet, value, count, label in await session.execute(union_all(*parts)):
        counts[facet].append((value, count, label))
    return counts


def _enum_facet(
    members: type[PatentType | PaymentMode], counts: list[tuple[str, int, Any]], selected: Any
) -> list[FacetValue]:
    """Values in the enum's own order; the chosen one stays listed even when nothing matches it."""
    by_value = {value: n for value, n, _ in counts}
    return [
        FacetValue(m.value, m.label, by_value.get(m.value, 0), m == selected)
        for m in members
        if by_value.get(m.value) or m == selected
    ]


def _code_facet(
    counts: list[tuple[str, int, Any]], selected: str | None, label: Callable[[str], str], by_count: bool
) -> list[FacetValue]:
    by_value = {value: n for value, n, _ in counts}
    if selected and selected not in by_value:
        by_value[selected] = 0
    order = (lambda code: (-by_value[code], code)) if by_count else (lambda code: code)
    return [FacetValue(code, label(code), by_value[code], code == selected) for code in sorted(by_value, key=order)]


async def _facets(session: AsyncSession, query: CatalogueQuery, counts: _Counts) -> Facets:
    licensors = [(int(value), label or "", n) for value, n, label in counts["licensor"]]
    licensors.sort(key=lambda row: (-row[2], row[0]))
    if query.licensor is not None and all(org_id != query.licensor for org_id, _, _ in licensors):
        name = await session.scalar(select(Organisation.name).where(Organisation.id == query.licensor))
        licensors.append((query.licensor, name or f"许可人 {query.licensor}", 0))
    return Facets(
        patent_type=_enum_facet(PatentType, counts["patent_type"], query.patent_type),
        payment_mode=_enum_facet(PaymentMode, counts["payment_mode"], query.payment_mode),
        province=_code_facet(counts["province"], query.province, rules.province_name, by_count=True),
        ipc_section=_code_facet(counts["ipc_section"], query.ipc_section, rules.ipc_section_label, by_count=False),
        licensor=[FacetValue(str(org_id), name, n, org_id == query.licensor) for org_id, name, n in licensors],
    )


@dataclass(frozen=True)
class CatalogueSummary:
    """What the home page shows: how much is on offer, and the latest offers."""

    offers: int
    licensors: int
    newest: list[CatalogueHit]
    evaluations: dict[int, Aggregate]


async def summary(session: AsyncSession, newest: int = 6) -> CatalogueSummary:
    counts = (
        await session.execute(select(func.count(), func.count(func.distinct(_ENTRIES.c.licensor_organisation_id))))
    ).one()
    rows = await session.execute(select(*_HIT_COLUMNS).order_by(*_order(_ENTRIES.c, SortOrder.NEWEST)).limit(newest))
    hits = [CatalogueHit(*row) for row in rows]
    evaluations = await evaluation_services.aggregates(session, (hit.patent_id for hit in hits))
    return CatalogueSummary(offers=counts[0], licensors=counts[1], newest=hits, evaluations=evaluations)
