"""Matching use cases: an enterprise's interest profile, its recommendations, and the funnel's
first two stages (shown, viewed).

Recommendations are ranked in the database: each relevance signal of the profile (industry through
the IPC concordance, IPC codes, keywords through the catalogue's full-text index) is one indexed
branch of a ``UNION ALL``; the branches are added up per catalogue row together with tier, cost
and region, exactly as :func:`marketplace.matching.rules.score` adds them, and only the best rows
leave the database. Their reasons are then computed by ``rules.score`` itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Table,
    TableClause,
    Text,
    and_,
    bindparam,
    case,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.accounts.rules import Principal
from marketplace.audit.services import record
from marketplace.catalogue import rules as catalogue_rules
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import now_utc
from marketplace.errors import Forbidden, ValidationFailed
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.matching import list_rules, rules
from marketplace.matching.models import Channel, FunnelStage, InterestProfile, InventoryEntry, MatchEvent
from marketplace.offers.models import PaymentMode
from marketplace.outbox.services import add_side_effect
from marketplace.patents.models import PatentType

_ENTRIES = CatalogueEntry.__table__
MAX_RECOMMENDATIONS = 50
DEFAULT_RECOMMENDATIONS = 20
#: The outbox message that computes an enterprise's stored list after its profile changed (matching.lists).
WARM_LIST = "matching.warm_list"
#: Weights of what an enterprise does, for the learned part of its profile.
VIEW_WEIGHT = 1
EVALUATION_WEIGHT = 3
#: Contract states in which the licensee holds the licence (its patent is not recommended to it).
LIVE = (ContractStatus.AWAITING_PAYMENT, ContractStatus.ACTIVE)


def licensed_patents(organisation_id: int) -> Select:
    """The patents the enterprise holds a live licence for: never recommended to it."""
    return select(LicenceContract.patent_id).where(
        LicenceContract.licensee_organisation_id == organisation_id, LicenceContract.status.in_(LIVE)
    )


def matching_refusal(principal: Principal | None) -> str | None:
    if principal is None:
        return "请先登录"
    if principal.organisation_kind is not OrganisationKind.ENTERPRISE or principal.is_expert:
        return "匹配推荐面向企业用户"
    return None


def require_enterprise(principal: Principal | None) -> Principal:
    refusal = matching_refusal(principal)
    if refusal:
        raise Forbidden(refusal)
    assert principal is not None
    return principal


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------


def prefilled(organisation: Organisation) -> dict[str, Any]:
    """A new profile from what the enterprise said at sign-up: its industry section and province."""
    return {
        "industries": [organisation.industry_code] if organisation.industry_code else [],
        "province_codes": [organisation.division_code[:2]]
        if organisation.division_code and organisation.division_code[:2] in catalogue_rules.PROVINCES
        else [],
    }


async def profile_for(session: AsyncSession, organisation_id: int) -> InterestProfile:
    """The enterprise's profile, created from its sign-up data on first use."""
    profile = await session.scalar(select(InterestProfile).where(InterestProfile.organisation_id == organisation_id))
    if profile is not None:
        return profile
    organisation = await session.get_one(Organisation, organisation_id)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    at = now_utc()
    values = {
        "organisation_id": organisation_id,
        "keywords": [],
        "ipc_codes": [],
        "learned_ipc": {},
        "learned_keywords": {},
        "industries": [],
        "province_codes": [],
        **prefilled(organisation),
        "prefers_pay_after_use": False,
        "digest_enabled": True,
        "push_enabled": True,
        "digest_through": at,
        "created_at": at,
        "updated_at": at,
    }
    # Two first requests of one enterprise at once: the second finds the first's row.
    await session.execute(dialect.insert(InterestProfile).values(values).on_conflict_do_nothing())
    return await session.scalar(select(InterestProfile).where(InterestProfile.organisation_id == organisation_id))


def as_rules(profile: InterestProfile) -> rules.Profile:
    return rules.Profile(
        industries=tuple(profile.industries),
        keywords=tuple(profile.keywords),
        ipc_codes=tuple(profile.ipc_codes),
        provinces=tuple(profile.province_codes),
        max_upfront_fen=profile.max_upfront_fen,
        prefers_pay_after_use=profile.prefers_pay_after_use,
        learned_ipc=dict(profile.learned_ipc or {}),
        learned_keywords=dict(profile.learned_keywords or {}),
    )


_EDITABLE = ("industries", "keywords", "ipc_codes", "province_codes", "max_upfront_fen", "prefers_pay_after_use")


async def update_profile(
    session: AsyncSession,
    actor: Principal,
    data: rules.ProfileInput,
    *,
    digest_enabled: bool | None = None,
    push_enabled: bool | None = None,
    clear_learned: bool = False,
) -> InterestProfile:
    """Replace the profile's own fields (all checked first; nothing changes on an error), audited."""
    require_enterprise(actor)
    values, errors = rules.check_profile(data)
    if errors:
        raise ValidationFailed(errors)
    profile = await profile_for(session, actor.organisation_id)
    if digest_enabled is not None:
        values["digest_enabled"] = digest_enabled
    if push_enabled is not None:
        values["push_enabled"] = push_enabled
    if clear_learned:
        values["learned_ipc"] = {}
        values["learned_keywords"] = {}
    before = {name: getattr(profile, name) for name in values}
    changes = {name: {"from": before[name], "to": value} for name, value in values.items() if before[name] != value}
    if not changes:
        return profile
    ranked_for = list_rules.fingerprint(as_rules(profile))
    if "digest_enabled" in changes and digest_enabled:
        # As in set_digest: a returning subscriber gets what is new from now on, not a backlog.
        profile.digest_through = now_utc()
    for name, value in values.items():
        setattr(profile, name, value)
    profile.edited_at = now_utc()
    profile.edited_by_user_id = actor.user_id
    await session.flush()
    warm_if_changed(session, profile, ranked_for)
    await record(
        session,
        entity_type="interest_profile",
        entity_id=profile.id,
        action="profile.update",
        actor=actor,
        reason="企业修改兴趣画像",
        details={"changes": changes},
    )
    return profile


def input_of(profile: InterestProfile) -> rules.ProfileInput:
    """The profile's own fields as the form and the API send them."""
    return rules.ProfileInput(
        industries=tuple(profile.industries),
        keywords=tuple(profile.keywords),
        ipc_codes=tuple(profile.ipc_codes),
        provinces=tuple(profile.province_codes),
        max_upfront_fen=profile.max_upfront_fen,
        prefers_pay_after_use=profile.prefers_pay_after_use,
    )


async def clear_learned(session: AsyncSession, actor: Principal) -> InterestProfile:
    """Forget what the enterprise viewed and evaluated (清除学习记录); audited like any edit."""
    require_enterprise(actor)
    profile = await profile_for(session, actor.organisation_id)
    return await update_profile(session, actor, input_of(profile), clear_learned=True)


async def set_digest(session: AsyncSession, organisation_id: int, enabled: bool, *, actor: Principal | None) -> None:
    """Subscribe or unsubscribe an enterprise from the weekly digest (the e-mail link needs no login)."""
    profile = await profile_for(session, organisation_id)
    if profile.digest_enabled == enabled:
        return
    profile.digest_enabled = enabled
    if enabled:
        # A returning subscriber gets what is new from now on, not a backlog.
        profile.digest_through = now_utc()
    await session.flush()
    await record(
        session,
        entity_type="interest_profile",
        entity_id=profile.id,
        action="profile.digest",
        actor=actor,
        from_state="subscribed" if not enabled else "unsubscribed",
        to_state="subscribed" if enabled else "unsubscribed",
        reason="退订每周推荐" if not enabled else "订阅每周推荐",
    )


async def learn_from_patent(session: AsyncSession, principal: Principal | None, patent_id: int, *, weight: int) -> None:
    """Let what an enterprise views (weight 1) or evaluates (3) count in its profile."""
    if matching_refusal(principal):
        return
    assert principal is not None
    entry = await session.execute(
        select(_ENTRIES.c.ipc_subclass, _ENTRIES.c.title).where(_ENTRIES.c.patent_id == patent_id).limit(1)
    )
    row = entry.first()
    if row is None:
        return
    profile = await profile_for(session, principal.organisation_id)
    ranked_for = list_rules.fingerprint(as_rules(profile))
    if row.ipc_subclass:
        profile.learned_ipc = rules.learn(profile.learned_ipc or {}, [row.ipc_subclass], weight)
    terms = rules.domain_terms(row.title)
    if terms:
        profile.learned_keywords = rules.learn(profile.learned_keywords or {}, terms, weight)
    await session.flush()
    warm_if_changed(session, profile, ranked_for)


def warm_if_changed(session: AsyncSession, profile: InterestProfile, ranked_for: str) -> None:
    """Queue the computation of the enterprise's stored list when what it is ranked for changed
    (a learned count that does not change the top terms does not), so its next visit is quick."""
    ranked = as_rules(profile)
    fingerprint = list_rules.fingerprint(ranked)
    if fingerprint != ranked_for and not ranked.is_empty:
        add_side_effect(
            session,
            kind=WARM_LIST,
            payload={"organisation_id": profile.organisation_id},
            key=f"{profile.organisation_id}:{fingerprint}:{uuid4().hex}",
        )


# ---------------------------------------------------------------------------------------------
# Funnel events
# ---------------------------------------------------------------------------------------------


async def record_events(
    session: AsyncSession, organisation_id: int, patent_ids: Sequence[int], stage: FunnelStage, channel: Channel
) -> None:
    """The first time ``organisation_id`` reached ``stage`` for each patent; later ones are no-ops."""
    await record_pairs(
        session, [(organisation_id, patent_id) for patent_id in dict.fromkeys(patent_ids)], stage, channel
    )


_EVENT_INSERT = text(
    "INSERT INTO match_events (organisation_id, patent_id, stage, channel, created_at, updated_at) "
    "SELECT o, p, :stage, :channel, :at, :at FROM unnest(:orgs, :patents) AS t(o, p) "
    "ON CONFLICT DO NOTHING"
).bindparams(
    bindparam("orgs", type_=postgresql.ARRAY(BigInteger)),
    bindparam("patents", type_=postgresql.ARRAY(BigInteger)),
    bindparam("at", type_=MatchEvent.__table__.c.created_at.type),
)


async def record_pairs(
    session: AsyncSession, pairs: Sequence[tuple[int, int]], stage: FunnelStage, channel: Channel
) -> None:
    """The first time each (organisation, patent) pair reached ``stage``; a pair that had already
    keeps its first event. On PostgreSQL one statement over two arrays per 50,000 pairs (a weekly
    digest writes millions)."""
    if not pairs:
        return
    at = now_utc()
    if session.get_bind().dialect.name == "postgresql":
        values = {"stage": stage.value, "channel": channel.value, "at": at}
        for start in range(0, len(pairs), 50_000):
            part = pairs[start : start + 50_000]
            orgs, patents = [o for o, _ in part], [p for _, p in part]
            await session.execute(_EVENT_INSERT, {**values, "orgs": orgs, "patents": patents})
        return
    rows = [
        {"organisation_id": o, "patent_id": p, "stage": stage, "channel": channel, "created_at": at, "updated_at": at}
        for o, p in pairs
    ]
    await session.execute(sqlite.insert(MatchEvent.__table__).on_conflict_do_nothing(), rows)


# ---------------------------------------------------------------------------------------------
# Recommendations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    """One recommended published offer, its points and why."""

    offer_id: int
    patent_id: int
    title: str
    licensor_name: str
    patent_type: PatentType
    ipc_subclass: str | None
    province_code: str | None
    payment_mode: PaymentMode
    pay_after_use: bool
    upfront_cost_fen: int
    tier: str | None
    published_at: datetime
    match: rules.Match

    @property
    def url(self) -> str:
        return f"/catalogue/{self.offer_id}"

    @property
    def province_name(self) -> str:
        return catalogue_rules.province_name(self.province_code)


_KIND_KEYWORD, _KIND_LEARNED_KEYWORD = 3, 4


@dataclass(frozen=True)
class Source:
    """A table matching ranks: the catalogue (published offers) or the stock patents (inventory)."""

    table: Table
    #: SQLite's FTS5 table over ``search_tokens`` (rowid = the row's id).
    fts_name: str
    #: Whether rows carry offer terms and a tier (the catalogue) or not (stock patents).
    has_terms: bool

    @property
    def fts(self) -> TableClause:
        return table(self.fts_name, column("rowid", Integer))


CATALOGUE = Source(_ENTRIES, "catalogue_fts", has_terms=True)
INVENTORY = Source(InventoryEntry.__table__, "inventory_fts", has_terms=False)


def _scoring_columns(source: Source) -> list[Any]:
    """The columns a row's points and eligibility are computed from (no text: the lists stay narrow)."""
    c = source.table.c
    names = ["id", "licensor_organisation_id", "patent_id", "ipc_subclass", "ipc_class", "province_code"]
    names += ["tier", "upfront_cost_fen", "pay_after_use", "published_at"] if source.has_terms else ["expiry_date"]
    return [c[name] for name in names]


def _keyword_branch(
    source: Source, dialect: str, kind: int, points: int, keyword: str, name: str, within: Any = None
) -> Select | None:
    """The rows whose text has every token of ``keyword``, with their scoring columns (the index
    scan reads those rows anyway) and the keyword's kind and points. ``within``: on PostgreSQL, a
    CTE of a few rows' scoring columns and ``words`` (their tokens as an array) to test instead of
    the whole table's index."""
    tokens = list(rules.keyword_tokens(keyword))
    if not tokens:
        return None
    # Constants inline: the kinds and points are our own integers, and a literal keeps the UNION typed.
    labels = (literal_column(str(int(kind))).label("kind"), literal_column(str(int(points))).label("points"))
    if within is not None:
        # Every token among the row's (as rules.keyword_hit has it), each branch its own parameter.
        columns = [within.c[column.name] for column in _scoring_columns(source)]
        wanted = bindparam(name, tokens, type_=postgresql.ARRAY(Text))
        return select(*columns, *labels).where(within.c.words.op("@>")(wanted))
    query = select(*_scoring_columns(source), *labels)
    if dialect == "sqlite":
        # Each branch its own parameter name: text() clauses sharing a name would share the value.
        match = text(f"{source.fts_name} MATCH :{name}").bindparams(**{name: catalogue_rules.fts5_match(tokens, [])})
        return query.select_from(source.fts.join(source.table, source.table.c.id == source.fts.c.rowid)).where(match)
    tsquery = func.to_tsquery(literal_column("'simple'"), catalogue_rules.pg_tsquery(tokens))
    vector = func.to_tsvector(literal_column("'simple'"), source.table.c.search_tokens)
    return query.where(vector.op("@@")(tsquery))


def _row_signals(
    profile: rules.Profile, weights: rules.Weights, c: Any, *, pruned: bool = False, reach: int | None = None
) -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[bool] | None]:
    """Industry and IPC points computed from a row's own codes (``c``: the table's or a subquery's
    columns) — a ``CASE`` over the concordance lines the profile matches, best first — and the
    condition that either is earned (None when the profile has neither signal, or when no row can
    earn ``reach`` points from them). ``pruned`` leaves out of that condition the rows only a weak
    industry line selects (see :func:`pruning_bound`) unless they are in one of the profile's
    provinces; ``reach`` leaves out the lines that cannot bring a row's industry and IPC points to it."""

    def with_subclass(where: ColumnElement[bool]) -> ColumnElement[bool]:
        return and_(c.ipc_subclass.is_not(None), where)

    industry_whens = []
    for branch in rules.industry_branches(profile.industries, weights):
        lines = []
        if branch.subclasses:
            lines.append(c.ipc_subclass.in_(branch.subclasses))
        if branch.classes:
            where = c.ipc_class.in_(branch.classes)
            if branch.overridden:
                where = and_(where, c.ipc_subclass.not_in(branch.overridden))
            lines.append(with_subclass(where))
        industry_whens.append((or_(*lines), branch.points))
    ipc_whens = []
    subclasses = [code for code in profile.ipc_codes if len(code) == 4]
    classes = [code for code in profile.ipc_codes if len(code) == 3]
    if subclasses:
        ipc_whens.append((c.ipc_subclass.in_(subclasses), weights.ipc_subclass))
    if classes:
        ipc_whens.append((with_subclass(c.ipc_class.in_(classes)), weights.ipc_class))
    if profile.top_learned_ipc:
        ipc_whens.append((c.ipc_subclass.in_(profile.top_learned_ipc), weights.ipc_learned))
    best_industry = max((points for _, points in industry_whens), default=0)
    best_ipc = max((points for _, points in ipc_whens), default=0)
    conditions: list[ColumnElement[bool]] = []
    for where, points in industry_whens:
        if reach is not None and points + best_ipc < reach:
            continue
        if not pruned or points > weights.industry_related:
            conditions.append(where)
        elif profile.provinces:
            conditions.append(and_(where, c.province_code.in_(profile.provinces)))
    conditions += [where for where, points in ipc_whens if reach is None or points + best_industry >= reach]

    def total(whens: list[tuple[ColumnElement[bool], int]]) -> ColumnElement[int]:
        return case(*whens, else_=0) if whens else literal_column("0")

    return total(industry_whens), total(ipc_whens), (or_(*conditions) if conditions else None)


def keyword_branches(
    dialect: str,
    profile: rules.Profile,
    weights: rules.Weights = rules.WEIGHTS,
    *,
    source: Source = CATALOGUE,
    within: Any = None,
) -> list[Select]:
    """One full-text query per keyword (explicit and learned)."""
    keywords = [(_KIND_KEYWORD, weights.keyword, word, f"keyword_{i}") for i, word in enumerate(profile.keywords)]
    keywords += [
        (_KIND_LEARNED_KEYWORD, weights.keyword_learned, word, f"learned_{i}")
        for i, word in enumerate(profile.top_learned_keywords)
    ]
    branches = []
    for kind, points, word, name in keywords:
        branch = _keyword_branch(source, dialect, kind, points, word, name, within)
        if branch is not None:
            branches.append(branch)
    return branches


def _capped(value: ColumnElement[int], cap: int) -> ColumnElement[int]:
    return case((value > cap, cap), else_=value)


def _boosters(profile: rules.Profile, weights: rules.Weights, source: Source, c: Any) -> ColumnElement[int]:
    """Tier, cost fit and region, as ``rules.score`` adds them (stock patents: region only)."""
    total: ColumnElement[int] = literal_column("0")
    if source.has_terms:
        tier = case((c.tier == "high_value", weights.tier_high), else_=0)
        if profile.max_upfront_fen is None:
            cost = case((c.upfront_cost_fen == 0, weights.no_upfront), else_=0)
        else:
            cost = case(
                (c.upfront_cost_fen == 0, weights.no_upfront),
                (c.upfront_cost_fen <= profile.max_upfront_fen, weights.within_budget),
                else_=weights.over_budget,
            )
        after_use = weights.pay_after_use_preferred if profile.prefers_pay_after_use else weights.pay_after_use
        total = tier + cost + case((c.pay_after_use, after_use), else_=0)
    if profile.provinces:
        total = total + case((c.province_code.in_(profile.provinces), weights.same_region), else_=0)
    return total


def pruning_bound(profile: rules.Profile, weights: rules.Weights = rules.WEIGHTS) -> int | None:
    """The most points a catalogue row can earn when only a weak industry line selects it (a section,
    or a division related to a profile group) and its licensor is outside the profile's provinces;
    None when the profile has no weak line. Such rows are most of the catalogue for a broad profile,
    and none of them can rank above a row with more points than this."""
    lines = rules.industry_branches(profile.industries, weights)
    weak = [line.points for line in lines if line.points <= weights.industry_related]
    if not weak:
        return None
    return max(weak) + booster_bound(profile, weights) - (weights.same_region if profile.provinces else 0)


def booster_bound(profile: rules.Profile, weights: rules.Weights = rules.WEIGHTS) -> int:
    """The most points tier, cost fit, pay-after-use and region can add to a catalogue row."""
    after_use = weights.pay_after_use_preferred if profile.prefers_pay_after_use else weights.pay_after_use
    region = weights.same_region if profile.provinces else 0
    return weights.tier_high + max(weights.no_upfront, weights.within_budget) + after_use + region


def ranking_query(
    dialect: str,
    profile: rules.Profile,
    organisation_id: int,
    *,
    limit: int | None,
    weights: rules.Weights = rules.WEIGHTS,
    source: Source = CATALOGUE,
    pruned: bool = False,
    part: str = "all",
    at_least: int | None = None,
    changed_since: datetime | None = None,
    also_patents: Collection[int] = (),
    keys_only: bool = False,
) -> Select | None:
    """The best ``limit`` rows of ``source`` for ``profile`` with their total points; None when the
    profile has no relevance signal (then nothing is relevant). ``pruned``: only among the rows
    :func:`pruning_bound` does not bound (points are computed the same way). ``part``: ``keywords``
    ranks only the rows a keyword finds; ``codes`` only the rows the IPC codes select, with no
    keyword points and only those with ``at_least`` points (see :func:`rank`). ``changed_since``:
    only the rows changed after that instant, or whose patent is in ``also_patents`` (a stored list
    brought up to date, see ``matching.lists``); ``keys_only``: each row's id, patent id, publication
    instant and points, not the whole row.

    Every candidate's points are computed once from its own columns, in two passes: the rows a
    keyword finds (the full-text index, keyword points added up per row in a CTE that carries the
    scoring columns, so nothing is read twice) and the rows only their IPC codes select (industry
    and IPC points as ``CASE`` expressions over the codes, no text read). Only the best ``limit`` ids
    then fetch their whole row. A ``UNION ALL`` of one branch per signal, grouped by row and joined
    back to the table, took seconds for a broad profile over the national stock (docs/benchmarks.md)."""
    c = source.table.c
    reach = None if at_least is None else at_least - booster_bound(profile, weights)
    _, _, coded = _row_signals(profile, weights, c, pruned=pruned, reach=reach)
    branches = keyword_branches(dialect, profile, weights, source=source) if part != "codes" else []
    if part == "keywords":
        coded = None
    if coded is None and not branches:
        return None
    rows = c
    if changed_since is not None:
        changed = c.updated_at > changed_since
        if also_patents:
            changed = or_(changed, c.patent_id.in_(sorted(also_patents)))
        if dialect == "postgresql":
            # A few thousand changed rows: each one's tokens become an array once (about 4 µs), and
            # every keyword is tested against it. Through the GIN index a common term would visit
            # all its hits (tens of thousands); filtering by age instead made the planner run
            # to_tsvector (25 µs a row) for every row and keyword: p50 1.0 s for a week's changes at
            # national scale (docs/benchmarks.md).
            words = [func.string_to_array(c.search_tokens, literal_column("' '")).label("words")] if branches else []
            recent = select(*_scoring_columns(source), *words).where(changed).cte("changed_rows")
            recent = recent.prefix_with("MATERIALIZED")
            rows = recent.c
            if branches:
                branches = keyword_branches(dialect, profile, weights, source=source, within=recent)
            if coded is not None:
                _, _, coded = _row_signals(profile, weights, rows, pruned=pruned, reach=reach)
        else:
            branches = [branch.where(changed) for branch in branches]
            coded = and_(coded, changed) if coded is not None else None

    def newest(cols: Any) -> ColumnElement[Any]:
        return (cols.published_at if source.has_terms else cols.expiry_date).label("newest")

    def scored(cols: Any, keyword_points: ColumnElement[int] | None, where: ColumnElement[bool]) -> Select:
        industry, ipc, _ = _row_signals(profile, weights, cols)
        total = industry + ipc + _boosters(profile, weights, source, cols)
        if keyword_points is not None:
            total = total + keyword_points
        # NOT IN an uncorrelated list: one hashed lookup per row, not a probe of the contracts.
        licensed = licensed_patents(organisation_id)
        eligible = and_(cols.licensor_organisation_id != organisation_id, cols.patent_id.not_in(licensed))
        if at_least is not None:
            eligible = and_(eligible, total >= at_least)
        return select(cols.id.label("id"), cols.patent_id.label("patent_id"), newest(cols), total.label("total")).where(
            eligible, where
        )

    passes = []
    words = None
    if branches:
        hits = union_all(*branches).subquery("hits")
        columns = [hits.c[column.name] for column in _scoring_columns(source)]

        def part(kind: int) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((hits.c.kind == kind, hits.c.points))), 0)

        points = _capped(part(_KIND_KEYWORD), weights.keyword_cap) + _capped(
            part(_KIND_LEARNED_KEYWORD), weights.keyword_learned_cap
        )
        words = select(*columns, points.label("keyword_points")).group_by(*columns).cte("keyword_hits")
        passes.append(scored(words.c, words.c.keyword_points, true()))
    if coded is not None:
        if words is None:
            where = coded
        elif rows is c:
            where = and_(coded, ~exists().where(words.c.id == c.id))
        else:
            # Changed rows only: the planner cannot estimate how many (the statistics lag the newest
            # updated_at) and took a nested-loop anti join, 170 ms for a week's changes; NOT IN an
            # uncorrelated list is one hashed lookup per row whatever the estimate.
            where = and_(coded, rows.id.not_in(select(words.c.id)))
        passes.append(scored(rows, None, where))
    candidates = (union_all(*passes) if len(passes) > 1 else passes[0]).subquery("candidates")
    order = (candidates.c.total.desc(), candidates.c.newest.desc(), candidates.c.id.desc())
    if keys_only:
        return select(candidates).order_by(*order).limit(limit)
    best = select(candidates).order_by(*order).limit(limit).subquery("best")
    return (
        select(source.table, best.c.total)
        .join(best, best.c.id == c.id)
        .order_by(best.c.total.desc(), best.c.newest.desc(), c.id.desc())
    )


def item_of(row: Any) -> rules.Item:
    """A catalogue row (or, without offer columns, a stock-patent row) as matching sees it."""
    mapping = row._mapping
    tier = mapping.get("tier")
    return rules.Item(
        ipc_subclass=row.ipc_subclass,
        tokens=frozenset(row.search_tokens.split()),
        tier=str(tier) if tier is not None else None,
        upfront_cost_fen=mapping.get("upfront_cost_fen"),
        pay_after_use=bool(mapping.get("pay_after_use", False)),
        province_code=row.province_code,
    )


def recommendation_of(row: Any, match: rules.Match) -> Recommendation:
    return Recommendation(
        offer_id=row.offer_id,
        patent_id=row.patent_id,
        title=row.title,
        licensor_name=row.licensor_name,
        patent_type=PatentType(row.patent_type),
        ipc_subclass=row.ipc_subclass,
        province_code=row.province_code,
        payment_mode=PaymentMode(row.payment_mode),
        pay_after_use=row.pay_after_use,
        upfront_cost_fen=row.upfront_cost_fen,
        tier=str(row.tier) if row.tier is not None else None,
        published_at=row.published_at,
        match=match,
    )


async def rank(
    session: AsyncSession, profile: rules.Profile, organisation_id: int, *, limit: int = DEFAULT_RECOMMENDATIONS
) -> list[Recommendation]:
    """The best published offers for ``profile``, each with the reasons for its points, ranked over
    the whole catalogue (the recommendations page keeps the result: ``matching.lists``)."""
    rows = await ranked_rows(session, profile, organisation_id, limit=limit)
    return [recommendation_of(row, rules.score(profile, item_of(row))) for row in rows]


async def ranked_rows(session: AsyncSession, profile: rules.Profile, organisation_id: int, *, limit: int) -> list[Any]:
    """The best ``limit`` catalogue rows for ``profile``, best first, each with its ``total``."""
    dialect = session.get_bind().dialect.name
    query = ranking_query(dialect, profile, organisation_id, limit=limit)
    if query is None:
        return []
    await no_jit(session)
    rows = await keywords_first(session, dialect, profile, organisation_id, limit)
    if rows is None:
        rows = await pruned_rows(session, dialect, profile, organisation_id, limit)
    if rows is None:
        rows = list(await session.execute(query))
    return rows


async def no_jit(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # A broad profile's plan passes jit_above_cost, and compiling it (20–90 ms) costs more than
        # the scan it would speed up; LOCAL ends with the caller's transaction.
        await session.execute(text("SET LOCAL jit = off"))


async def keywords_first(
    session: AsyncSession, dialect: str, profile: rules.Profile, organisation_id: int, limit: int
) -> list[Any] | None:
    """The best ``limit`` rows when the rows a keyword finds give ``limit`` of them: their last total
    is then the least a row must earn, so only the rows whose IPC codes can bring them there are
    scored besides (most rows of a broad industry cannot). None when the keywords find fewer.

    Exact: a row the codes select earns its keyword points only in the first list; if it is not
    there its total ranks it after that list's last row, and so does the smaller total the second
    query gives it."""
    query = ranking_query(dialect, profile, organisation_id, limit=limit, part="keywords")
    if query is None:
        return None
    found = list(await session.execute(query))
    if len(found) < limit:
        return None
    codes = ranking_query(dialect, profile, organisation_id, limit=limit, part="codes", at_least=found[-1].total)
    merged = {row.id: row for row in (await session.execute(codes) if codes is not None else [])}
    merged.update({row.id: row for row in found})
    return sorted(merged.values(), key=lambda row: (row.total, row.published_at, row.id), reverse=True)[:limit]


async def pruned_rows(
    session: AsyncSession, dialect: str, profile: rules.Profile, organisation_id: int, limit: int
) -> list[Any] | None:
    """The best ``limit`` rows found without scoring the rows only a weak industry line selects,
    when the last of them has more points than any of those can (so the order is the full one);
    None when that is not so, and every candidate must be scored."""
    bound = pruning_bound(profile)
    query = ranking_query(dialect, profile, organisation_id, limit=limit, pruned=True) if bound is not None else None
    if query is None:
        return None
    rows = list(await session.execute(query))
    return rows if len(rows) == limit and rows[-1].total > bound else None


async def recommendations(
    session: AsyncSession, principal: Principal | None, *, limit: int = DEFAULT_RECOMMENDATIONS, channel: Channel
) -> tuple[InterestProfile, list[Recommendation]]:
    """The calling enterprise's recommendations; each shown offer is a funnel ``shown`` event."""
    principal = require_enterprise(principal)
    if not 1 <= limit <= MAX_RECOMMENDATIONS:
        raise ValidationFailed.single("limit", f"条数应在 1 到 {MAX_RECOMMENDATIONS} 之间", "out_of_range")
    profile = await profile_for(session, principal.organisation_id)
    from marketplace.matching import lists  # lists ranks through this module

    items = await lists.served(session, as_rules(profile), principal.organisation_id, limit=limit)
    await record_events(
        session, principal.organisation_id, [item.patent_id for item in items], FunnelStage.SHOWN, channel
    )
    return profile, items


async def note_view(session: AsyncSession, principal: Principal | None, patent_id: int, via: str = "") -> None:
    """An enterprise opened a catalogue patent: the funnel's ``viewed`` stage and its learned profile.
    ``via`` is the channel the link came from (a recommendation, the digest, a push)."""
    if matching_refusal(principal):
        return
    assert principal is not None
    channel = Channel(via) if via in {c.value for c in Channel} else Channel.CATALOGUE
    await record_events(session, principal.organisation_id, [patent_id], FunnelStage.VIEWED, channel)
    await learn_from_patent(session, principal, patent_id, weight=VIEW_WEIGHT)
