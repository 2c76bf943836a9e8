"""Stored tiers (分层) of catalogue patents: computing them from the database with the rule file
(``tiering``), keeping ``patent_tiers`` current, and reading them for licensors and admins.

A tier is recomputed for one patent when an evaluation of it is saved (same transaction) and for
every catalogue patent by the worker's daily job (chunks of ``CHUNK`` patents, one transaction each,
so memory stays flat). A stored row is rewritten only when the outcome changed; a change of tier or
of the re-evaluation flag is audited (``patent_tier``, keyed by the patent id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, case, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from marketplace.accounts.models import Organisation
from marketplace.audit.services import record
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import business_date, now_utc, today
from marketplace.errors import FieldError, ValidationFailed
from marketplace.evaluations import tiering
from marketplace.evaluations.models import CooperationWillingness, PatentEvaluation, PatentTier
from marketplace.evaluations.tiering import Assessment, EvaluationSignals, PatentFacts, Tier, TieringRules
from marketplace.licensing.models import LicenceContract
from marketplace.licensing.services import RETIER_PATENT
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import handler, periodic_batches
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.patents.models import Patent
from marketplace.settings import Settings

ENTITY = "patent_tier"
CHUNK = 500
TIER_OPTIONS = [(t.value, t.label) for t in Tier]


def rules_for(settings: Settings) -> TieringRules:
    return tiering.load_rules(settings.tiering_rules_file)


# ---------------------------------------------------------------------------------------------
# Computing
# ---------------------------------------------------------------------------------------------


async def _inputs(
    session: AsyncSession, patent_ids: Sequence[int], rules: TieringRules
) -> dict[int, tuple[PatentFacts, EvaluationSignals]]:
    """Each patent's facts and evaluation signals, in four grouped queries."""
    patents = await session.execute(
        select(Patent.id, Patent.patent_type, Patent.legal_status, Patent.grant_date, Patent.expiry_date).where(
            Patent.id.in_(patent_ids)
        )
    )
    first_listed = dict(
        (
            await session.execute(
                select(OpenLicenceOffer.patent_id, func.min(OpenLicenceOffer.published_at))
                .where(OpenLicenceOffer.patent_id.in_(patent_ids), OpenLicenceOffer.published_at.is_not(None))
                .group_by(OpenLicenceOffer.patent_id)
            )
        ).all()
    )
    licences = dict(
        (
            await session.execute(
                select(LicenceContract.patent_id, func.count())
                .where(LicenceContract.patent_id.in_(patent_ids))
                .group_by(LicenceContract.patent_id)
            )
        ).all()
    )
    positive = PatentEvaluation.prospects >= rules.positive_prospects_at_least
    if rules.positive_if_interested_now:
        positive = positive | PatentEvaluation.interested_now.is_(True)
    cooperative = PatentEvaluation.cooperation.in_([CooperationWillingness.STRONG, CooperationWillingness.WILLING])
    signals = {
        patent_id: EvaluationSignals(int(count), int(total), int(interested), int(willing), int(good))
        for patent_id, count, total, interested, willing, good in await session.execute(
            select(
                PatentEvaluation.patent_id,
                func.count(),
                func.sum(PatentEvaluation.prospects),
                func.sum(case((PatentEvaluation.interested_now.is_(True), 1), else_=0)),
                func.sum(case((cooperative, 1), else_=0)),
                func.sum(case((positive, 1), else_=0)),
            )
            .where(PatentEvaluation.patent_id.in_(patent_ids))
            .group_by(PatentEvaluation.patent_id)
        )
    }
    inputs = {}
    for patent_id, patent_type, legal_status, grant_date, expiry_date in patents:
        listed = first_listed.get(patent_id)
        facts = PatentFacts(
            patent_type=patent_type.value,
            legal_status=legal_status.value,
            grant_date=grant_date,
            expiry_date=expiry_date,
            licences=int(licences.get(patent_id, 0)),
            first_listed_on=business_date(listed) if listed else None,
        )
        inputs[patent_id] = (facts, signals.get(patent_id, EvaluationSignals()))
    return inputs


def _values(assessment: Assessment) -> dict[str, object]:
    return {
        "tier": assessment.tier,
        "points": assessment.points,
        "reasons": assessment.reasons_json(),
        "needs_re_evaluation": assessment.needs_re_evaluation,
        "re_evaluation_reason": assessment.re_evaluation_reason,
        "rules_stamp": assessment.rules_stamp,
    }


def _unchanged(row: PatentTier, values: dict[str, object]) -> bool:
    return all(getattr(row, name) == value for name, value in values.items())


async def _insert(session: AsyncSession, patent_id: int, values: dict[str, object]) -> None:
    """A first tier; a concurrent first computation of the same patent (the job and an evaluation)
    turns into an update of the row the other wrote."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    at = now_utc()
    row = {**values, "patent_id": patent_id, "computed_at": at, "created_at": at, "updated_at": at}
    statement = dialect.insert(PatentTier).values(row)
    changed = {name: statement.excluded[name] for name in (*values, "computed_at", "updated_at")}
    await session.execute(statement.on_conflict_do_update(index_elements=["patent_id"], set_=changed))


async def retier(
    session: AsyncSession, patent_ids: Sequence[int], rules: TieringRules, *, on: date | None = None, trigger: str
) -> int:
    """Recompute the tiers of ``patent_ids``; returns how many stored results changed."""
    if not patent_ids:
        return 0
    on = on or today()
    inputs = await _inputs(session, patent_ids, rules)
    stored = {
        row.patent_id: row
        for row in await session.scalars(select(PatentTier).where(PatentTier.patent_id.in_(list(inputs))))
    }
    changed = 0
    new_tiers: dict[Tier, list[int]] = {}
    for patent_id, (facts, signals) in inputs.items():
        assessment = tiering.assess(facts, signals, rules, on)
        values = _values(assessment)
        row = stored.get(patent_id)
        if row is not None and _unchanged(row, values):
            continue
        changed += 1
        before = (row.tier, row.needs_re_evaluation) if row is not None else (None, None)
        if row is None:
            await _insert(session, patent_id, values)
        else:
            for name, value in values.items():
                setattr(row, name, value)
            row.computed_at = now_utc()
        if before != (assessment.tier, assessment.needs_re_evaluation):
            await _audit(session, patent_id, before, assessment, trigger)
        if before[0] != assessment.tier:
            new_tiers.setdefault(assessment.tier, []).append(patent_id)
    await session.flush()
    # Matching ranks catalogue rows by tier without a join, so the copy there follows each change.
    for tier, ids in new_tiers.items():
        await session.execute(
            update(CatalogueEntry)
            .where(CatalogueEntry.patent_id.in_(ids))
            .values(tier=tier)
            .execution_options(synchronize_session=False)
        )
    return changed


async def _audit(
    session: AsyncSession, patent_id: int, before: tuple[Tier | None, bool | None], after: Assessment, trigger: str
) -> None:
    old_tier, old_flag = before
    await record(
        session, entity_type=ENTITY, entity_id=patent_id, action="retier", actor=None,
        from_state=old_tier.value if old_tier else None, to_state=after.tier.value, reason=after.summary,
        details={
            "trigger": trigger,
            "from": {"tier": old_tier.value if old_tier else None, "needs_re_evaluation": old_flag},
            "to": {"tier": after.tier.value, "needs_re_evaluation": after.needs_re_evaluation},
            "points": after.points,
            "lines": [line.text for line in after.lines],
            "notes": list(after.notes),
            "re_evaluation_reason": after.re_evaluation_reason,
            "rules": after.rules_stamp,
        },
    )  # fmt: skip


def _in_catalogue(patent_id: ColumnElement[int]) -> ColumnElement[bool]:
    return exists().where(OpenLicenceOffer.patent_id == patent_id, OpenLicenceOffer.status == OfferStatus.PUBLISHED)


async def catalogue_chunk(session: AsyncSession, after_id: int, limit: int = CHUNK) -> list[int]:
    """The next ``limit`` catalogue patents (a published offer) after ``after_id``, by id."""
    rows = await session.scalars(
        select(Patent.id).where(Patent.id > after_id, _in_catalogue(Patent.id)).order_by(Patent.id).limit(limit)
    )
    return list(rows)


@dataclass
class TieringRun:
    patents: int = 0
    changed: int = 0


async def retier_catalogue(
    sessionmaker: async_sessionmaker, rules: TieringRules, *, on: date | None = None, chunk: int = CHUNK
) -> TieringRun:
    """Every catalogue patent, ``chunk`` per transaction. Idempotent: a rerun changes nothing."""
    run, after = TieringRun(), 0
    while True:
        async with sessionmaker() as session, session.begin():
            ids = await catalogue_chunk(session, after, chunk)
            if not ids:
                return run
            run.patents += len(ids)
            run.changed += await retier(session, ids, rules, on=on, trigger="periodic")
        after = ids[-1]


@handler(RETIER_PATENT)
async def _retier_patent(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    """A licence was taken: its patent's licence count (and re-evaluation flag) changed."""
    await retier(session, [int(message.payload["patent_id"])], rules_for(settings), trigger="contract")


@periodic_batches("evaluations.tiering", 24 * 3600)
async def tiering_job(sessionmaker: async_sessionmaker, settings: Settings) -> TieringRun:
    return await retier_catalogue(sessionmaker, rules_for(settings))


# ---------------------------------------------------------------------------------------------
# Reading (licensors' and platform admins' pages; the caller has checked who is asking)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierFilters:
    tier: Tier | None = None
    #: True: only flagged 待重新评价; False: only unflagged; None: both.
    flagged: bool | None = None
    licensor_id: int | None = None

    @property
    def active(self) -> bool:
        return self.tier is not None or self.flagged is not None or self.licensor_id is not None


def parse_filters(tier: str = "", flagged: str = "", licensor: str = "") -> TierFilters:
    """Filters from a page's query string; an unknown value is a field error (422), never ignored."""
    errors: list[FieldError] = []
    chosen = None
    if tier:
        try:
            chosen = Tier(tier)
        except ValueError:
            choices = "、".join(f"{value}（{label}）" for value, label in TIER_OPTIONS)
            errors.append(FieldError("tier", f"未知的分层：应为 {choices}"))
    flag = {"": None, "1": True, "0": False}.get(flagged, "bad")
    if flag == "bad":
        errors.append(FieldError("flagged", "待重新评价筛选应为 1（是）或 0（否）"))
    licensor_id = None
    if licensor:
        if licensor.isascii() and licensor.isdigit() and 0 < int(licensor) < 2**63:
            licensor_id = int(licensor)
        else:
            errors.append(FieldError("licensor", "许可人应为机构编号"))
    if errors:
        raise ValidationFailed(errors)
    return TierFilters(tier=chosen, flagged=flag, licensor_id=licensor_id)  # type: ignore[arg-type]


def conditions(filters: TierFilters) -> list[ColumnElement[bool]]:
    """Conditions on ``PatentTier`` (joined to ``Patent``) for the filters."""
    where: list[ColumnElement[bool]] = []
    if filters.tier is not None:
        where.append(PatentTier.tier == filters.tier)
    if filters.flagged is not None:
        where.append(PatentTier.needs_re_evaluation.is_(filters.flagged))
    if filters.licensor_id is not None:
        where.append(Patent.owner_organisation_id == filters.licensor_id)
    return where


async def tiers_for(session: AsyncSession, patent_ids: Sequence[int]) -> dict[int, PatentTier]:
    if not patent_ids:
        return {}
    rows = await session.scalars(select(PatentTier).where(PatentTier.patent_id.in_(list(patent_ids))))
    return {row.patent_id: row for row in rows}


async def list_tiers(
    session: AsyncSession, filters: TierFilters, *, page: int = 1, per_page: int = PER_PAGE
) -> Page[PatentTier]:
    """Catalogue patents' tiers (platform admins), highest points first."""
    page, per_page = page_bounds(page, per_page)
    query = (
        select(PatentTier)
        .join(Patent, Patent.id == PatentTier.patent_id)
        .where(_in_catalogue(PatentTier.patent_id), *conditions(filters))
    )
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(PatentTier.points.desc(), PatentTier.patent_id).offset((page - 1) * per_page).limit(per_page)
    )
    return Page(items=list(rows.unique()), number=page, per_page=per_page, total=total)


async def licensor_options(session: AsyncSession) -> list[tuple[str, str]]:
    """The organisations whose patents have a tier, for the admin page's filter."""
    rows = await session.execute(
        select(Organisation.id, Organisation.name)
        .where(exists().where(Patent.owner_organisation_id == Organisation.id, PatentTier.patent_id == Patent.id))
        .order_by(Organisation.name)
    )
    return [(str(org_id), name) for org_id, name in rows]
