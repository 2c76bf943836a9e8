"""Stock patents in matching (库存专利): the ones a university or institute would license or assign
but has not offered in the catalogue, ranked for enterprises beside the published offers, and an
enterprise's stated interest (许可意向), which the licensor is told about.

``inventory_entries`` holds one row per such patent. It follows the patents: a changed patent and an
offer that leaves the catalogue queue ``matching.sync_inventory`` (the worker re-checks those
patents within seconds), an offer entering the catalogue deletes its row at once, and a daily job
re-checks every university and institute patent (expiry, anything missed).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.accounts.models import Organisation, OrganisationKind, Role, User
from marketplace.accounts.rules import Principal
from marketplace.audit.services import record
from marketplace.catalogue import rules as catalogue_rules
from marketplace.clock import today
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.matching import rules
from marketplace.matching.models import InventoryEntry, InventoryInterest
from marketplace.matching.services import (
    INVENTORY,
    item_of,
    matching_refusal,
    ranking_query,
    require_enterprise,
)
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import add_email, add_side_effect, handler, periodic_batches
from marketplace.patents.models import LegalStatus, Patent, PatentType, TransferIntent
from marketplace.settings import Settings

SYNC_KIND = "matching.sync_inventory"
CHUNK = 500
#: What a holder must be open to for a stock patent to be shown to enterprises.
OPEN_TO = frozenset({TransferIntent.LICENCE.value, TransferIntent.ASSIGNMENT.value})
MAX_NOTE = 500
DEFAULT_LIMIT = 10


def _eligible_conditions(on_day) -> list:
    published = exists().where(
        OpenLicenceOffer.patent_id == Patent.id, OpenLicenceOffer.status == OfferStatus.PUBLISHED
    )
    return [
        Organisation.kind.in_((OrganisationKind.UNIVERSITY, OrganisationKind.INSTITUTE)),
        Patent.legal_status == LegalStatus.GRANTED,
        Patent.expiry_date >= on_day,
        Patent.implemented.is_(False),
        ~published,
    ]


def is_open(intents: Sequence[str]) -> bool:
    return bool(OPEN_TO.intersection(intents))


async def sync(session: AsyncSession, patent_ids: Sequence[int], *, refresh: bool = True) -> int:
    """Bring the stock-patent rows of ``patent_ids`` in line with the patents; returns rows written
    or deleted. ``refresh`` recomputes the search tokens of rows that stay (a patent was edited)."""
    changed = 0
    on_day = today()
    for start in range(0, len(patent_ids), CHUNK):
        ids = list(patent_ids[start : start + CHUNK])
        eligible = {
            patent.id: (patent, organisation)
            for patent, organisation in await session.execute(
                select(Patent, Organisation)
                .join(Organisation, Organisation.id == Patent.owner_organisation_id)
                .where(Patent.id.in_(ids), *_eligible_conditions(on_day))
            )
            if is_open(patent.transfer_intents)
        }
        existing = {
            entry.patent_id: entry
            for entry in await session.scalars(select(InventoryEntry).where(InventoryEntry.patent_id.in_(ids)))
        }
        gone = [patent_id for patent_id in existing if patent_id not in eligible]
        if gone:
            await session.execute(delete(InventoryEntry).where(InventoryEntry.patent_id.in_(gone)))
            changed += len(gone)
        for patent_id, (patent, organisation) in eligible.items():
            entry = existing.get(patent_id)
            if entry is None:
                entry = InventoryEntry(patent_id=patent_id)
                session.add(entry)
            elif not refresh and entry.title == patent.title:
                continue
            _fill(entry, patent, organisation)
            changed += 1
        await session.flush()
    return changed


def _fill(entry: InventoryEntry, patent: Patent, organisation: Organisation) -> None:
    code = (patent.ipc_main or "").replace(" ", "").upper()
    entry.licensor_organisation_id = organisation.id
    entry.licensor_name = organisation.name
    entry.title = patent.title
    entry.search_tokens = catalogue_rules.index_tokens(patent.title, patent.abstract, patent.application_scenarios)
    entry.patent_type = patent.patent_type
    entry.ipc_class = code[:3] if len(code) >= 3 else None
    entry.ipc_subclass = code[:4] if len(code) >= 4 else None
    entry.province_code = organisation.division_code[:2] if organisation.division_code else None
    entry.transfer_intents = list(patent.transfer_intents)
    entry.expiry_date = patent.expiry_date


def queue_sync(session: AsyncSession, patent_ids: Sequence[int] = (), *, organisation_id: int | None = None) -> None:
    """Re-check these patents' (or a whole holder's) stock rows in the worker, after this
    transaction commits."""
    if patent_ids or organisation_id is not None:
        payload = {"patent_ids": list(patent_ids), "organisation_id": organisation_id}
        add_side_effect(session, kind=SYNC_KIND, payload=payload, key=f"{SYNC_KIND}:{uuid.uuid4().hex}")


async def leave_inventory(session: AsyncSession, patent_id: int) -> None:
    """The patent's offer entered the catalogue: it is no longer a stock patent."""
    await session.execute(delete(InventoryEntry).where(InventoryEntry.patent_id == patent_id))


@handler(SYNC_KIND)
async def _sync_message(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    patent_ids = [int(patent_id) for patent_id in message.payload.get("patent_ids") or []]
    organisation_id = message.payload.get("organisation_id")
    if organisation_id is not None:
        owned = await session.scalars(select(Patent.id).where(Patent.owner_organisation_id == int(organisation_id)))
        patent_ids += list(owned)
    await sync(session, sorted(set(patent_ids)))


@periodic_batches("matching.inventory", every_seconds=24 * 3600)
async def inventory_job(sessionmaker: async_sessionmaker, settings: Settings) -> int:
    """Re-check every university and institute patent, CHUNK per transaction (id keyset)."""
    after, changed = 0, 0
    holders = select(Organisation.id).where(
        Organisation.kind.in_((OrganisationKind.UNIVERSITY, OrganisationKind.INSTITUTE))
    )
    while True:
        async with sessionmaker() as session, session.begin():
            ids = list(
                await session.scalars(
                    select(Patent.id)
                    .where(Patent.id > after, Patent.owner_organisation_id.in_(holders))
                    .order_by(Patent.id)
                    .limit(CHUNK)
                )
            )
            if not ids:
                return changed
            changed += await sync(session, ids, refresh=False)
            after = ids[-1]


# ---------------------------------------------------------------------------------------------
# Ranking and reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockRecommendation:
    patent_id: int
    title: str
    licensor_name: str
    patent_type: PatentType
    ipc_subclass: str | None
    province_code: str | None
    transfer_intents: list[str]
    match: rules.Match

    @property
    def url(self) -> str:
        return f"/inventory/{self.patent_id}"

    @property
    def intents_label(self) -> str:
        return "、".join(TransferIntent(value).label for value in self.transfer_intents if value in OPEN_TO)

    @property
    def province_name(self) -> str:
        return catalogue_rules.province_name(self.province_code)


async def rank(
    session: AsyncSession, profile: rules.Profile, organisation_id: int, *, limit: int = DEFAULT_LIMIT
) -> list[StockRecommendation]:
    """The best stock patents for ``profile`` (same points as the catalogue, without offer terms)."""
    query = ranking_query(session.get_bind().dialect.name, profile, organisation_id, limit=limit, source=INVENTORY)
    if query is None:
        return []
    return [
        StockRecommendation(
            patent_id=row.patent_id,
            title=row.title,
            licensor_name=row.licensor_name,
            patent_type=PatentType(row.patent_type),
            ipc_subclass=row.ipc_subclass,
            province_code=row.province_code,
            transfer_intents=list(row.transfer_intents),
            match=rules.score(profile, item_of(row)),
        )
        for row in await session.execute(query)
    ]


@dataclass(frozen=True)
class StockPatent:
    """What the public stock-patent page shows."""

    entry: InventoryEntry
    patent: Patent
    interest: InventoryInterest | None
    interest_count: int


async def stock_patent(session: AsyncSession, principal: Principal | None, patent_id: int) -> StockPatent:
    entry = await session.scalar(select(InventoryEntry).where(InventoryEntry.patent_id == patent_id))
    if entry is None:
        raise NotFound("该专利不在库存专利推荐范围内（可能已发布开放许可或已失效）")
    patent = await session.get_one(Patent, patent_id)
    interest = None
    if principal is not None and not matching_refusal(principal):
        interest = await session.scalar(
            select(InventoryInterest).where(
                InventoryInterest.patent_id == patent_id,
                InventoryInterest.organisation_id == principal.organisation_id,
            )
        )
    count = await session.scalar(
        select(func.count()).select_from(InventoryInterest).where(InventoryInterest.patent_id == patent_id)
    )
    return StockPatent(entry=entry, patent=patent, interest=interest, interest_count=count)


async def express_interest(session: AsyncSession, actor: Principal, patent_id: int, note: str) -> InventoryInterest:
    """An enterprise tells the holder it would take a licence (or buy) this stock patent: recorded
    once per enterprise and patent, audited, and mailed to the holder's administrators."""
    require_enterprise(actor)
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ValidationFailed.single("note", f"留言不超过 {MAX_NOTE} 字", "too_long")
    stock = await stock_patent(session, actor, patent_id)
    if stock.interest is not None:
        raise Conflict("贵企业已对该专利表达过许可意向", code="already_interested")
    interest = InventoryInterest(
        organisation_id=actor.organisation_id, patent_id=patent_id, user_id=actor.user_id, note=note
    )
    try:
        async with session.begin_nested():
            session.add(interest)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("贵企业已对该专利表达过许可意向", code="already_interested") from exc
    await record(
        session,
        entity_type="inventory_interest",
        entity_id=interest.id,
        action="interest.create",
        actor=actor,
        to_state="interested",
        reason=note or "表达许可意向",
        details={"patent_id": patent_id},
    )
    admins = await session.scalars(
        select(User.email).where(
            User.organisation_id == stock.entry.licensor_organisation_id,
            User.role == Role.ORG_ADMIN,
            User.is_active.is_(True),
        )
    )
    body = (
        f"{actor.organisation_name}（联系人：{actor.display_name}）对贵单位的库存专利"
        f"「{stock.patent.title}」（{stock.patent.patent_number}）表达了许可意向。\n"
        + (f"留言：{note}\n" if note else "")
        + f"可在平台查看该专利：/patents/{patent_id}。发布开放许可声明后，企业即可按公告条件取得许可。"
    )
    for email in admins:
        add_email(
            session,
            to=email,
            subject=f"企业许可意向：{stock.patent.title}",
            body=body,
            dedupe_key=f"inventory-interest:{interest.id}:{email}",
        )
    return interest


async def interests_for_patent(session: AsyncSession, patent_id: int) -> list[tuple[InventoryInterest, str]]:
    """Who stated an interest in a patent (for its holder's patent page), newest first."""
    rows = await session.execute(
        select(InventoryInterest, Organisation.name)
        .join(Organisation, Organisation.id == InventoryInterest.organisation_id)
        .where(InventoryInterest.patent_id == patent_id)
        .order_by(InventoryInterest.created_at.desc(), InventoryInterest.id.desc())
    )
    return [(interest, name) for interest, name in rows]
