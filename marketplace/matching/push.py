"""Push and the inbox (推送与站内信): the weekly digest of new matches (每周推荐), licensors' pushes of
one published offer (定向推送), the enterprise's in-app inbox and the digest's unsubscribe link.

The digest (:func:`run_digest`) loads the offers published in its window once into a
:class:`~marketplace.matching.digest_rules.OfferIndex`, then streams the enterprises in keyset
chunks; for each it picks the best new matches with ``digest_rules.top_matches`` (scored by
``rules.score``, the reference the recommendations' SQL ranking agrees with), and per chunk, in one
transaction, writes the inbox messages, queues the emails, records the ``shown`` events and moves
each profile's ``digest_through`` on. Every write is keyed (``digest:<org>:<ISO week>``), so a run
repeated in the same week writes nothing twice. The worker runs it once per ISO week, from Monday
08:00 Asia/Shanghai (:func:`run_weekly_digest`).

A push (:func:`push_offer`) is checked against the rate limit, stored and handed to the worker
(``matching.push``), which picks the recipients by scoring every enterprise's profile against the
offer and delivers the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader
from sqlalchemy import Row, Select, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.accounts.models import Organisation, OrganisationKind, User, VerificationStatus
from marketplace.accounts.rules import Principal
from marketplace.audit.models import AuditRecord
from marketplace.audit.services import record
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import now_utc
from marketplace.db import ids_in
from marketplace.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed
from marketplace.licensing.models import LicenceContract
from marketplace.matching import digest_rules, rules, services
from marketplace.matching.digest_rules import Exclusions, Found, NewOffer, OfferIndex
from marketplace.matching.models import (
    Channel,
    FunnelStage,
    InboxKind,
    InboxMessage,
    InterestProfile,
    OfferPush,
)
from marketplace.offers import services as offer_services
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import Email, add_side_effect, handler, periodic_batches, queue_emails
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.settings import PROJECT_ROOT, Settings
from marketplace.web.templating import configure_environment

log = logging.getLogger(__name__)

CHUNK = 2000
#: Profiles scored between two yields to the event loop.
_YIELD_EVERY = 200
PUSH_KIND = "matching.push"
DIGEST_ENTITY = "weekly_digest"
_ENTRIES = CatalogueEntry.__table__
_PROFILES = InterestProfile.__table__
_ORGS = Organisation.__table__

# Emails are plain text, rendered from templates/matching/*.txt.j2 outside any request.
_TEXT = Environment(loader=FileSystemLoader(PROJECT_ROOT / "templates"), autoescape=False)
configure_environment(_TEXT)


def _dialect(session: AsyncSession) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


# ---------------------------------------------------------------------------------------------
# Enterprises and their profiles, as the digest and the push read them
# ---------------------------------------------------------------------------------------------

_PROFILE_COLUMNS = (
    _ORGS.c.id.label("organisation_id"),
    _ORGS.c.name.label("organisation_name"),
    _ORGS.c.industry_code,
    _ORGS.c.division_code,
    _PROFILES.c.id.label("profile_id"),
    _PROFILES.c.industries,
    _PROFILES.c.keywords,
    _PROFILES.c.ipc_codes,
    _PROFILES.c.province_codes,
    _PROFILES.c.max_upfront_fen,
    _PROFILES.c.prefers_pay_after_use,
    _PROFILES.c.learned_ipc,
    _PROFILES.c.learned_keywords,
    _PROFILES.c.digest_through,
)


def _enterprises(after: int, limit: int, flag: Any) -> Select:
    """Enterprises (not refused at verification) after ``after``, by id, with their profile if they
    have one; ``flag`` (digest_enabled or push_enabled) must be on — an enterprise without a
    profile row has the defaults, both on."""
    return (
        select(*_PROFILE_COLUMNS)
        .select_from(_ORGS.outerjoin(_PROFILES, _PROFILES.c.organisation_id == _ORGS.c.id))
        .where(
            _ORGS.c.kind == OrganisationKind.ENTERPRISE,
            _ORGS.c.verification_status != VerificationStatus.REJECTED,
            _ORGS.c.id > after,
            or_(_PROFILES.c.id.is_(None), flag.is_(True)),
        )
        .order_by(_ORGS.c.id)
        .limit(limit)
    )


def _profile_of(row: Row) -> rules.Profile:
    if row.profile_id is not None:
        return services.as_rules(row)  # type: ignore[arg-type]
    defaults = services.prefilled(row)  # type: ignore[arg-type]
    return rules.Profile(industries=tuple(defaults["industries"]), provinces=tuple(defaults["province_codes"]))


async def _live_licences(session: AsyncSession, first: int, last: int) -> dict[int, set[int]]:
    """Patents each licensee between ``first`` and ``last`` (organisation ids) holds a live licence of."""
    rows = await session.execute(
        select(LicenceContract.licensee_organisation_id, LicenceContract.patent_id).where(
            LicenceContract.licensee_organisation_id.between(first, last), LicenceContract.status.in_(services.LIVE)
        )
    )
    held: dict[int, set[int]] = {}
    for organisation_id, patent_id in rows:
        held.setdefault(organisation_id, set()).add(patent_id)
    return held


async def _recipients(session: AsyncSession, organisation_ids: Iterable[int]) -> dict[int, list[str]]:
    """Active users with a confirmed address, per organisation."""
    wanted = sorted(set(organisation_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.organisation_id, User.email)
        .where(
            ids_in(session.get_bind().dialect.name, User.organisation_id, wanted),
            User.is_active.is_(True),
            User.email_confirmed_at.is_not(None),
        )
        .order_by(User.id)
    )
    emails: dict[int, list[str]] = {}
    for organisation_id, email in rows:
        emails.setdefault(organisation_id, []).append(email)
    return emails


async def _insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> set[int]:
    """Inbox messages whose dedupe key is new; returns the organisations that got one."""
    table = InboxMessage.__table__
    written: set[int] = set()
    for start in range(0, len(rows), 2000):
        statement = (
            _dialect(session)
            .insert(table)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(table.c.organisation_id)
        )
        result = await session.execute(statement, rows[start : start + 2000])
        written.update(result.scalars())
    return written


def _message_row(organisation_id: int, kind: InboxKind, subject: str, body: str, items: list, key: str, at: datetime):
    return {
        "organisation_id": organisation_id,
        "kind": kind,
        "subject": subject,
        "body": body,
        "items": items,
        "dedupe_key": key,
        "read_at": None,
        "created_at": at,
        "updated_at": at,
    }


# ---------------------------------------------------------------------------------------------
# The weekly digest
# ---------------------------------------------------------------------------------------------


@dataclass
class DigestRun:
    """What one digest run did."""

    week: str
    cutoff: datetime
    offers: int = 0
    enterprises: int = 0
    messages: int = 0
    emails: int = 0
    events: int = 0
    chunks: int = 0
    #: Enterprises that already had this week's digest (a repeated run): left as they were.
    already: int = 0
    seconds: float = field(default=0.0, repr=False)


async def load_new_offers(session: AsyncSession, since: datetime, until: datetime) -> OfferIndex:
    """Catalogue offers published in (``since``, ``until``], indexed for matching."""
    e = _ENTRIES.c
    query = select(
        e.offer_id, e.patent_id, e.licensor_organisation_id, e.title, e.search_tokens, e.ipc_subclass, e.tier,
        e.upfront_cost_fen, e.pay_after_use, e.province_code, e.published_at,
    ).where(e.published_at > since, e.published_at <= until)  # fmt: skip
    offers = []
    result = await session.stream(query.execution_options(yield_per=5000))
    async for row in result:
        item = rules.Item(
            ipc_subclass=row.ipc_subclass,
            tokens=digest_rules.item_tokens(row.search_tokens),
            tier=str(row.tier) if row.tier is not None else None,
            upfront_cost_fen=row.upfront_cost_fen,
            pay_after_use=row.pay_after_use,
            province_code=row.province_code,
        )
        offers.append(
            NewOffer(row.offer_id, row.patent_id, row.licensor_organisation_id, row.title, row.published_at, item)
        )
    return OfferIndex.of(offers)


def _digest_body(template: Any, settings: Settings, organisation_name: str, organisation_id: int, found) -> str:
    return template.render(
        organisation_name=organisation_name,
        items=digest_rules.why_lines(found),
        base_url=settings.public_base_url,
        token=digest_rules.unsubscribe_token(settings.secret_key, organisation_id),
    )


async def run_digest(
    sessionmaker: async_sessionmaker, settings: Settings, *, at: datetime | None = None, chunk: int = CHUNK
) -> DigestRun:
    """The digest of the offers published up to ``at`` (default: now) for every enterprise that
    takes it: at most :data:`~digest_rules.DIGEST_SIZE` new relevant offers each, published after
    its ``digest_through`` and within the last seven days. One transaction per ``chunk`` enterprises;
    a repeated run in the same ISO week writes nothing twice. Ends with an audit record of the run."""
    started = now_utc()
    cutoff = (at or started).astimezone(UTC)
    run = DigestRun(week=digest_rules.week_key(cutoff), cutoff=cutoff)
    window_start = cutoff - digest_rules.DIGEST_WINDOW
    async with sessionmaker() as session:
        index = await load_new_offers(session, window_start, cutoff)
    run.offers = len(index)
    picker = digest_rules.Picker(index)
    template = _TEXT.get_template("matching/digest_email.txt.j2")
    after = 0
    while True:
        async with sessionmaker() as session, session.begin():
            rows = (await session.execute(_enterprises(after, chunk, _PROFILES.c.digest_enabled))).all()
            if not rows:
                break
            after = rows[-1].organisation_id
            await _digest_chunk(session, settings, picker, rows, run, template, window_start)
        run.chunks += 1
        run.enterprises += len(rows)
    run.seconds = (now_utc() - started).total_seconds()
    async with sessionmaker() as session, session.begin():
        await record(
            session,
            entity_type=DIGEST_ENTITY,
            entity_id=digest_rules.week_number(cutoff),
            action="digest.run",
            actor=None,
            reason=f"每周推荐 {run.week}",
            details={
                "week": run.week,
                "cutoff": cutoff.isoformat(),
                "offers": run.offers,
                "enterprises": run.enterprises,
                "messages": run.messages,
                "emails": run.emails,
                "already": run.already,
            },
        )
    return run


async def _digest_chunk(
    session: AsyncSession,
    settings: Settings,
    picker: digest_rules.Picker,
    rows: Sequence[Row],
    run: DigestRun,
    template: Any,
    window_start: datetime,
) -> None:
    at = now_utc()
    cutoff = run.cutoff
    offers = bool(picker.index.offers)
    held = await _live_licences(session, rows[0].organisation_id, rows[-1].organisation_id) if offers else {}
    chosen: dict[int, list[Found]] = {}
    messages = []
    for number, row in enumerate(rows):
        if not offers:
            break
        if number % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a worker inside the web process keeps answering requests
        exclusions = Exclusions(
            after=max(row.digest_through or window_start, window_start),
            organisation_id=row.organisation_id,
            patent_ids=frozenset(held.get(row.organisation_id, ())),
        )
        found = picker.pick(_profile_of(row), exclusions)
        if not found:
            continue
        chosen[row.organisation_id] = found
        messages.append(
            _message_row(
                row.organisation_id,
                InboxKind.DIGEST,
                digest_rules.digest_subject(len(found)),
                "本周新公告的开放许可专利中，以下几项与贵单位的兴趣画像匹配。",
                digest_rules.why_lines(found),
                f"digest:{row.organisation_id}:{run.week}",
                at,
            )
        )
    written = await _insert_messages(session, messages)
    already = set(chosen) - written
    run.messages += len(written)
    run.already += len(already)
    names = {row.organisation_id: row.organisation_name for row in rows}
    emails = []
    for organisation_id, addresses in (await _recipients(session, written)).items():
        found = chosen[organisation_id]
        body = _digest_body(template, settings, names[organisation_id], organisation_id, found)
        subject = digest_rules.digest_subject(len(found))
        emails.extend(Email(to, subject, body, f"digest:{organisation_id}:{run.week}:{to}") for to in addresses)
    run.emails += await queue_emails(session, emails, bulk=True)
    events = [(organisation_id, f.offer.patent_id) for organisation_id in written for f in chosen[organisation_id]]
    await services.record_pairs(session, events, FunnelStage.SHOWN, Channel.DIGEST)
    run.events += len(events)
    await _advance(session, rows, already, cutoff, at)


async def _advance(session: AsyncSession, rows: Sequence[Row], already: set[int], cutoff: datetime, at: datetime):
    """Offers published up to ``cutoff`` have been considered for these enterprises. One that already
    had this week's digest keeps its mark, so what was published since then goes in next week's."""
    existing = [
        row.organisation_id for row in rows if row.profile_id is not None and row.organisation_id not in already
    ]
    dialect = session.get_bind().dialect.name
    for start in range(0, len(existing), 5000):
        await session.execute(
            update(InterestProfile)
            .where(
                ids_in(dialect, InterestProfile.organisation_id, existing[start : start + 5000]),
                or_(InterestProfile.digest_through.is_(None), InterestProfile.digest_through < cutoff),
            )
            .values(digest_through=cutoff, updated_at=at)
            .execution_options(synchronize_session=False)
        )
    # An enterprise that never opened its profile gets one now, as on its first visit (from its
    # sign-up data), so that its mark is kept too.
    new = [
        {
            "organisation_id": row.organisation_id,
            "keywords": [],
            "ipc_codes": [],
            "learned_ipc": {},
            "learned_keywords": {},
            "industries": [],
            "province_codes": [],
            **services.prefilled(row),  # type: ignore[arg-type]
            "prefers_pay_after_use": False,
            "digest_enabled": True,
            "push_enabled": True,
            "digest_through": cutoff,
            "created_at": at,
            "updated_at": at,
        }
        for row in rows
        if row.profile_id is None and row.organisation_id not in already
    ]
    if new:
        await session.execute(_dialect(session).insert(_PROFILES).on_conflict_do_nothing(), new)


async def digest_ran(session: AsyncSession, at: datetime) -> bool:
    """Whether the digest of ``at``'s ISO week has run (its audit record exists)."""
    found = await session.scalar(
        select(AuditRecord.id)
        .where(AuditRecord.entity_type == DIGEST_ENTITY, AuditRecord.entity_id == digest_rules.week_number(at))
        .limit(1)
    )
    return found is not None


async def run_weekly_digest(
    sessionmaker: async_sessionmaker, settings: Settings, *, at: datetime | None = None
) -> DigestRun | None:
    """This ISO week's digest, unless it is not due yet (before Monday 08:00) or has already run."""
    at = at or now_utc()
    if not digest_rules.digest_week_due(at):
        return None
    async with sessionmaker() as session:
        if await digest_ran(session, at):
            return None
    run = await run_digest(sessionmaker, settings, at=at)
    log.info("weekly digest: %s", run)
    return run


@periodic_batches("matching.weekly_digest", 3600)
async def weekly_digest_job(sessionmaker: async_sessionmaker, settings: Settings) -> DigestRun | None:
    return await run_weekly_digest(sessionmaker, settings)


# ---------------------------------------------------------------------------------------------
# Unsubscribing from the digest (the emailed link, no login)
# ---------------------------------------------------------------------------------------------


class BadUnsubscribeLink(DomainError):
    status = 400
    code = "bad_unsubscribe_link"


async def unsubscribe_target(session: AsyncSession, settings: Settings, token: str) -> Organisation:
    """The enterprise a digest email's unsubscribe link names; a tampered link is refused."""
    organisation_id = digest_rules.unsubscribe_organisation(settings.secret_key, token or "")
    organisation = await session.get(Organisation, organisation_id) if organisation_id is not None else None
    if organisation is None or organisation.kind is not OrganisationKind.ENTERPRISE:
        raise BadUnsubscribeLink("退订链接无效：请使用每周推荐邮件中的完整链接，或登录后在“兴趣画像”页面退订")
    return organisation


async def digest_enabled(session: AsyncSession, organisation_id: int) -> bool:
    enabled = await session.scalar(
        select(InterestProfile.digest_enabled).where(InterestProfile.organisation_id == organisation_id)
    )
    return enabled is not False


async def unsubscribe(session: AsyncSession, settings: Settings, token: str, actor: Principal | None) -> Organisation:
    """Stop the weekly digest for the link's enterprise (audited; the signed-in user, if any and of
    that enterprise, is recorded as the actor)."""
    organisation = await unsubscribe_target(session, settings, token)
    if actor is not None and actor.organisation_id != organisation.id:
        actor = None
    await services.set_digest(session, organisation.id, False, actor=actor)
    return organisation


# ---------------------------------------------------------------------------------------------
# The inbox (站内信)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbox:
    page: Page[InboxMessage]
    unread: int


async def inbox(
    session: AsyncSession, principal: Principal | None, *, page: int = 1, per_page: int = PER_PAGE
) -> Inbox:
    """The calling enterprise's messages, newest first, and how many are unread."""
    principal = services.require_enterprise(principal)
    page, per_page = page_bounds(page, per_page)
    mine = InboxMessage.organisation_id == principal.organisation_id
    total = int(await session.scalar(select(func.count()).select_from(InboxMessage).where(mine)) or 0)
    rows = await session.scalars(
        select(InboxMessage)
        .where(mine)
        .order_by(InboxMessage.created_at.desc(), InboxMessage.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    listing = Page(items=list(rows), number=page, per_page=per_page, total=total)
    return Inbox(listing, await unread_count(session, principal.organisation_id))


async def open_message(session: AsyncSession, principal: Principal | None, message_id: int) -> InboxMessage:
    """One message of the caller's enterprise, marked read; anyone else's is "not found"."""
    principal = services.require_enterprise(principal)
    message = await session.scalar(
        select(InboxMessage).where(
            InboxMessage.id == message_id, InboxMessage.organisation_id == principal.organisation_id
        )
    )
    if message is None:
        raise NotFound("站内信不存在")
    if message.read_at is None:
        message.read_at = now_utc()
        await session.flush()
    return message


async def unread_count(session: AsyncSession, organisation_id: int) -> int:
    """Unread messages of an organisation, for the navigation's 收件箱 badge."""
    count = await session.scalar(
        select(func.count())
        .select_from(InboxMessage)
        .where(InboxMessage.organisation_id == organisation_id, InboxMessage.read_at.is_(None))
    )
    return int(count or 0)


async def unread_for(session: AsyncSession, principal: Principal | None) -> int:
    """The badge's count: an enterprise user's unread messages; 0 for anyone else."""
    if services.matching_refusal(principal):
        return 0
    assert principal is not None
    return await unread_count(session, principal.organisation_id)


# ---------------------------------------------------------------------------------------------
# Licensors' pushes (定向推送)
# ---------------------------------------------------------------------------------------------


class PushRateLimited(DomainError):
    """A push the rate limit refuses (429); ``next_at`` is when it would be allowed."""

    status = 429

    def __init__(self, refusal: digest_rules.PushRefusal) -> None:
        super().__init__(refusal.message, code=refusal.code)
        self.next_at = refusal.next_at


def _require_licensor(actor: Principal | None) -> Principal:
    if actor is None:
        raise Forbidden("请先登录")
    if actor.is_platform_admin or actor.is_expert or not actor.can_hold_patents:
        raise Forbidden("仅声明的许可方可以推送")
    return actor


async def _own_offer(session: AsyncSession, actor: Principal | None, offer_id: int) -> OpenLicenceOffer:
    return await offer_services.get_for_licensor(session, _require_licensor(actor), offer_id)


async def _recent_pushes(session: AsyncSession, offer: OpenLicenceOffer, now: datetime) -> tuple[list, list]:
    """(this declaration's pushes, all the licensor's pushes) within the rate-limit windows. Versions
    of one declaration share a series: a new version does not restart the offer's interval."""
    since = now - max(digest_rules.PUSH_OFFER_INTERVAL, digest_rules.PUSH_LICENSOR_WINDOW)
    rows = await session.execute(
        select(OfferPush.created_at, OpenLicenceOffer.series_id)
        .join(OpenLicenceOffer, OpenLicenceOffer.id == OfferPush.offer_id)
        .where(OfferPush.licensor_organisation_id == offer.licensor_organisation_id, OfferPush.created_at > since)
    )
    pushes = rows.all()
    return [at for at, series in pushes if series == offer.series_id], [at for at, _ in pushes]


async def _refusal(session: AsyncSession, offer: OpenLicenceOffer, now: datetime) -> digest_rules.PushRefusal | None:
    mine, everyone = await _recent_pushes(session, offer, now)
    return digest_rules.push_refusal(now, mine, everyone)


@dataclass(frozen=True)
class PushLine:
    push: OfferPush
    pushed_by: str


@dataclass(frozen=True)
class PushPanel:
    offer: OpenLicenceOffer
    history: list[PushLine]
    #: Why a push now would be refused (None: it would be accepted).
    refusal: digest_rules.PushRefusal | None
    published: bool


async def push_panel(session: AsyncSession, actor: Principal | None, offer_id: int) -> PushPanel:
    """The licensor's view of an offer's pushes: earlier ones with their reach, and whether it may push now."""
    offer = await _own_offer(session, actor, offer_id)
    rows = await session.execute(
        select(OfferPush, User.display_name)
        .outerjoin(User, User.id == OfferPush.pushed_by_user_id)
        .join(OpenLicenceOffer, OpenLicenceOffer.id == OfferPush.offer_id)
        .where(OpenLicenceOffer.series_id == offer.series_id)
        .order_by(OfferPush.created_at.desc(), OfferPush.id.desc())
        .limit(50)
    )
    history = [PushLine(push, name or "—") for push, name in rows]
    published = offer.status is OfferStatus.PUBLISHED
    refusal = await _refusal(session, offer, now_utc()) if published else None
    return PushPanel(offer, history, refusal, published)


async def push_offer(session: AsyncSession, actor: Principal | None, offer_id: int, note: str = "") -> OfferPush:
    """Push a published offer to the enterprises it matches (the worker picks them), audited.
    Refused, writing nothing: not the offer's licensor (403/404), not published (409), a note over
    200 characters (422), the rate limit (429, with when it may push next)."""
    offer = await _own_offer(session, actor, offer_id)
    assert actor is not None
    if offer.status is not OfferStatus.PUBLISHED:
        raise Conflict("仅已公告的开放许可声明可以推送", code="offer_not_published")
    note = (note or "").strip()
    problem = digest_rules.check_note(note)
    if problem:
        raise ValidationFailed.single("note", problem, "too_long")
    # One push at a time per licensor, so two at once cannot both pass the limit.
    await session.execute(
        select(Organisation.id).where(Organisation.id == offer.licensor_organisation_id).with_for_update()
    )
    now = now_utc()
    refusal = await _refusal(session, offer, now)
    if refusal is not None:
        raise PushRateLimited(refusal)
    push = OfferPush(
        offer_id=offer.id,
        licensor_organisation_id=offer.licensor_organisation_id,
        pushed_by_user_id=actor.user_id,
        note=note,
        created_at=now,
        updated_at=now,
    )
    session.add(push)
    await session.flush()
    add_side_effect(session, kind=PUSH_KIND, payload={"push_id": push.id}, key=str(push.id))
    await record(
        session,
        entity_type=offer_services.ENTITY,
        entity_id=offer.id,
        action="push",
        actor=actor,
        reason=note or None,
        details={"push_id": push.id, "note": note},
    )
    return push


async def pushes_of(session: AsyncSession, actor: Principal | None, offer_id: int) -> list[OfferPush]:
    """The pushes of an offer's declaration (all its versions), newest first, for its licensor."""
    return [line.push for line in (await push_panel(session, actor, offer_id)).history]


# The worker's part: choosing the recipients and delivering


@dataclass(frozen=True)
class Recipient:
    organisation_id: int
    organisation_name: str
    match: rules.Match


async def push_recipients(
    session: AsyncSession, entry: Row, *, limit: int = digest_rules.PUSH_RECIPIENTS, chunk: int = 5000
) -> list[Recipient]:
    """Enterprises taking pushes whose profile makes the offer relevant, best score first (ties:
    the earlier-registered enterprise), at most ``limit``; never the licensor itself nor an
    enterprise already holding a live licence of the patent."""
    item = services.item_of(entry)
    licensed = set(
        await session.scalars(
            select(LicenceContract.licensee_organisation_id).where(
                LicenceContract.patent_id == entry.patent_id, LicenceContract.status.in_(services.LIVE)
            )
        )
    )
    best: digest_rules.Best[Recipient] = digest_rules.Best(limit)
    after = 0
    while True:
        rows = (await session.execute(_enterprises(after, chunk, _PROFILES.c.push_enabled))).all()
        if not rows:
            break
        after = rows[-1].organisation_id
        await asyncio.sleep(0)  # a worker inside the web process keeps answering requests
        for row in rows:
            if row.organisation_id == entry.licensor_organisation_id or row.organisation_id in licensed:
                continue
            match = rules.score(_profile_of(row), item)
            if match.relevant:
                best.offer(
                    (match.points, -row.organisation_id),
                    Recipient(row.organisation_id, row.organisation_name, match),
                )
    return best.sorted()


def push_subject(licensor_name: str, title: str) -> str:
    return f"许可方推送：{licensor_name}向贵单位推荐《{title}》"


@handler(PUSH_KIND)
async def deliver_push(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    """Deliver a push: inbox messages, emails and ``shown`` events for the chosen enterprises.
    Runs once per push (``delivered_at``); its writes are keyed, so a repeat changes nothing."""
    push = await session.get(OfferPush, int(message.payload["push_id"]), with_for_update=True)
    if push is None or push.delivered_at is not None:
        return
    entry = (await session.execute(select(_ENTRIES).where(_ENTRIES.c.offer_id == push.offer_id))).first()
    # An offer withdrawn before the worker came to it reaches nobody.
    recipients = await push_recipients(session, entry) if entry is not None else []
    at = now_utc()
    if entry is not None and recipients:
        subject = push_subject(entry.licensor_name, entry.title)
        note = push.note
        body = f"许可方附言：{note}" if note else f"{entry.licensor_name}认为该专利与贵单位的兴趣画像匹配。"
        rows = []
        for recipient in recipients:
            item = {
                "offer_id": entry.offer_id,
                "patent_id": entry.patent_id,
                "title": entry.title,
                "why": recipient.match.why,
                "points": recipient.match.points,
            }
            rows.append(
                _message_row(
                    recipient.organisation_id,
                    InboxKind.PUSH,
                    subject,
                    body,
                    [item],
                    f"push:{push.id}:{recipient.organisation_id}",
                    at,
                )
            )
        written = await _insert_messages(session, rows)
        template = _TEXT.get_template("matching/push_email.txt.j2")
        by_id = {r.organisation_id: r for r in recipients}
        emails = []
        for organisation_id, addresses in (await _recipients(session, written)).items():
            text_body = template.render(
                organisation_name=by_id[organisation_id].organisation_name,
                licensor_name=entry.licensor_name,
                note=note,
                title=entry.title,
                why=by_id[organisation_id].match.why,
                offer_id=entry.offer_id,
                base_url=settings.public_base_url,
            )
            emails.extend(Email(to, subject, text_body, f"push:{push.id}:{organisation_id}:{to}") for to in addresses)
        await queue_emails(session, emails, bulk=True)
        await services.record_pairs(
            session, [(o, entry.patent_id) for o in sorted(written)], FunnelStage.SHOWN, Channel.PUSH
        )
    push.recipients_count = len(recipients)
    push.delivered_at = at
    await record(
        session,
        entity_type=offer_services.ENTITY,
        entity_id=push.offer_id,
        action="push_delivered",
        actor=None,
        reason=f"推送送达 {len(recipients)} 家企业",
        details={"push_id": push.id, "recipients": len(recipients)},
    )
