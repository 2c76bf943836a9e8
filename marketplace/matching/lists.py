"""Serving recommendations from each enterprise's stored list (see ``list_rules`` for why it is exact).

A visit loads the enterprise's list, scores the catalogue rows changed since it was made (an
indexed range of ``updated_at``) and the patents whose licence to the enterprise ended meanwhile,
drops the listed rows that went away or are now licensed to it, and stores the result for the next
visit. The worker brings the lists of recent visitors up to date daily (:func:`refresh_lists`), so a
visit scores at most a day's changes. Only a new enterprise, a changed profile (or learned signal
that counts), a list left for weeks or a new ranking computes the list from the whole catalogue;
sign-up and profile edits queue that computation in the outbox (:data:`services.WARM_LIST`), so the
next visit finds it done.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.accounts.models import Organisation
from marketplace.catalogue.models import CatalogueEntry
from marketplace.matching import list_rules, rules, services
from marketplace.matching.list_rules import LIST_SIZE, Entry, RankedList
from marketplace.matching.models import RecommendationList
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import handler, periodic_batches
from marketplace.settings import Settings

_ENTRIES = CatalogueEntry.__table__
_LISTS = RecommendationList.__table__


def _entry(row: Any) -> Entry:
    mapping = row._mapping
    published = mapping["newest"] if "newest" in mapping else mapping["published_at"]
    return Entry(row.id, row.patent_id, int(row.total), list_rules.micros(published))


async def _caught_up(
    session: AsyncSession, profile: rules.Profile, organisation_id: int, stored: Any, live: set[int], size: int
) -> RankedList:
    """The stored list once the catalogue's changes since it was made are taken in."""
    current = RankedList(tuple(Entry.load(values) for values in stored.entries), list_rules.load_key(stored.boundary))
    listed = [entry.id for entry in current.entries]
    present: dict[int, datetime] = {}
    if listed:
        rows = await session.execute(select(_ENTRIES.c.id, _ENTRIES.c.updated_at).where(_ENTRIES.c.id.in_(listed)))
        present = {row.id: row.updated_at for row in rows}
    dropped = {
        entry.id
        for entry in current.entries
        if entry.id not in present or present[entry.id] > stored.fresh_through or entry.patent_id in live
    }
    # A licence that ended makes its patent eligible again, whatever its row's age.
    ended = set(stored.excluded_patent_ids) - live
    dialect = session.get_bind().dialect.name
    query = services.ranking_query(
        dialect,
        profile,
        organisation_id,
        limit=None,
        changed_since=stored.fresh_through,
        also_patents=ended,
        keys_only=True,
    )
    rescored = [_entry(row) for row in await session.execute(query)] if query is not None else []
    return list_rules.merge(current, dropped=dropped, rescored=rescored, size=size)


async def up_to_date(
    session: AsyncSession,
    profile: rules.Profile,
    organisation_id: int,
    *,
    limit: int = LIST_SIZE,
    size: int = LIST_SIZE,
    visit: bool = False,
) -> RankedList:
    """The enterprise's list of ``size`` rows, brought up to date (or computed) and stored, able to
    serve ``limit`` of them; ``visit``: the enterprise is looking at it (page or API)."""
    if profile.is_empty:
        return RankedList((), None)
    fingerprint = list_rules.fingerprint(profile)
    # The wall clock, as ``updated_at`` is stamped (advanced-alchemy), not the business clock.
    started = datetime.now(UTC)
    await services.no_jit(session)
    live = set(await session.scalars(services.licensed_patents(organisation_id)))
    # Core, not the ORM: a second visit in one session must read what the first one wrote.
    stored = (await session.execute(select(_LISTS).where(_LISTS.c.organisation_id == organisation_id))).first()
    ranked = None
    usable = stored is not None and stored.fingerprint == fingerprint
    if usable and started - stored.fresh_through <= list_rules.MAX_AGE:
        ranked = await _caught_up(session, profile, organisation_id, stored, live, size)
        if not ranked.serves(limit):
            ranked = None
    if ranked is None:
        rows = await services.ranked_rows(session, profile, organisation_id, limit=size)
        ranked = list_rules.fresh([_entry(row) for row in rows], size)
    await _store(session, organisation_id, fingerprint, ranked, started - list_rules.SETTLE, live, visit)
    return ranked


async def _store(
    session: AsyncSession,
    organisation_id: int,
    fingerprint: str,
    ranked: RankedList,
    fresh_through: datetime,
    live: set[int],
    visit: bool,
) -> None:
    """Insert or replace the enterprise's list (two visits at once: the later write wins, and either
    is exact as of its own reading)."""
    at = datetime.now(UTC)
    values = {
        "fingerprint": fingerprint,
        "entries": [entry.dump() for entry in ranked.entries],
        "boundary": list_rules.dump_key(ranked.boundary),
        "fresh_through": fresh_through,
        "excluded_patent_ids": sorted(live),
        "updated_at": at,
    }
    if visit:
        values["visited_at"] = at
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_LISTS).values(organisation_id=organisation_id, created_at=at, **values)
    await session.execute(statement.on_conflict_do_update(index_elements=["organisation_id"], set_=values))


async def served(
    session: AsyncSession, profile: rules.Profile, organisation_id: int, *, limit: int
) -> list[services.Recommendation]:
    """The enterprise's best ``limit`` published offers with their reasons, from its stored list."""
    ranked = await up_to_date(session, profile, organisation_id, limit=limit, visit=True)
    top = ranked.entries[:limit]
    if not top:
        return []
    rows = {
        row.id: row for row in await session.execute(select(_ENTRIES).where(_ENTRIES.c.id.in_([e.id for e in top])))
    }
    # A row withdrawn between the two reads is left out (the next visit drops it from the list).
    return [
        services.recommendation_of(rows[entry.id], rules.score(profile, services.item_of(rows[entry.id])))
        for entry in top
        if entry.id in rows
    ]


@handler(services.WARM_LIST)
async def _warm(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    """Compute an enterprise's list after its profile changed, before its next visit."""
    organisation_id = int(message.payload["organisation_id"])
    if await session.get(Organisation, organisation_id) is None:
        return
    await _for_the_page(session, organisation_id)


async def _for_the_page(session: AsyncSession, organisation_id: int) -> None:
    """The enterprise's list, from its current profile, enough for the page (a list that already
    serves it is only brought up to date, not ranked afresh)."""
    profile = await services.profile_for(session, organisation_id)
    await up_to_date(session, services.as_rules(profile), organisation_id, limit=services.DEFAULT_RECOMMENDATIONS)


#: Lists visited this recently are kept up to date by :func:`refresh_lists`.
ACTIVE = timedelta(days=30)
#: … when they were last brought up to date this long ago (once a day, at whichever hour).
REFRESH_AFTER = timedelta(hours=20)
REFRESH_BATCH = 100


@periodic_batches("matching.refresh_lists", 3600)
async def refresh_lists(sessionmaker: async_sessionmaker, settings: Settings) -> int:
    """Bring up to date, once a day, the lists of the enterprises that visited in the last 30 days
    (or signed up, and have not visited yet):
    a visit then scores at most a day's catalogue changes (a week's cost about five times as much,
    docs/benchmarks.md). 100 lists per transaction; returns how many were brought up to date."""
    done, after = 0, 0
    while True:
        async with sessionmaker() as session, session.begin():
            now = datetime.now(UTC)
            due = (
                select(_LISTS.c.organisation_id)
                .where(
                    # Visited lately, or made lately (at sign-up) and waiting for the first visit.
                    or_(
                        _LISTS.c.visited_at > now - ACTIVE,
                        and_(_LISTS.c.visited_at.is_(None), _LISTS.c.created_at > now - ACTIVE),
                    ),
                    _LISTS.c.fresh_through < now - REFRESH_AFTER,
                    _LISTS.c.organisation_id > after,
                )
                .order_by(_LISTS.c.organisation_id)
                .limit(REFRESH_BATCH)
            )
            organisation_ids = list(await session.scalars(due))
            if not organisation_ids:
                return done
            for organisation_id in organisation_ids:
                await _for_the_page(session, organisation_id)
            done += len(organisation_ids)
            after = organisation_ids[-1]
