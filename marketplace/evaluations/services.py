"""Market evaluation use cases: an enterprise's or expert's evaluation of a catalogue patent
(created or edited in place, audited), who may read which evaluations, and the per-patent
aggregates the catalogue shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, case, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.rules import Principal
from marketplace.audit.services import record
from marketplace.errors import Forbidden, NotFound, ValidationFailed
from marketplace.evaluations import rules, tiers
from marketplace.evaluations.models import CooperationWillingness, PatentEvaluation
from marketplace.evaluations.rules import Aggregate, EvaluationInput
from marketplace.evaluations.tiering import TieringRules
from marketplace.matching import services as matching_services
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.patents.models import Patent

ENTITY = "patent_evaluation"
NOT_IN_CATALOGUE = "专利不存在或未在许可目录中公开"


def stored_input(evaluation: PatentEvaluation) -> EvaluationInput:
    return EvaluationInput(
        prospects=evaluation.prospects,
        improvement_needs=evaluation.improvement_needs,
        cooperation=evaluation.cooperation,
        interested_now=evaluation.interested_now,
    )


async def published_offer_id(session: AsyncSession, patent_id: int) -> int | None:
    """The patent's published offer, which makes it a catalogue patent (and so open to evaluation)."""
    return await session.scalar(
        select(OpenLicenceOffer.id)
        .where(OpenLicenceOffer.patent_id == patent_id, OpenLicenceOffer.status == OfferStatus.PUBLISHED)
        .limit(1)
    )


async def evaluable_patent(session: AsyncSession, patent_id: int) -> Patent:
    patent = await session.get(Patent, patent_id) if 0 < patent_id < 2**63 else None
    if patent is None or await published_offer_id(session, patent_id) is None:
        raise NotFound(NOT_IN_CATALOGUE)
    return patent


async def own_evaluation(session: AsyncSession, actor: Principal, patent_id: int) -> PatentEvaluation | None:
    return await session.scalar(
        select(PatentEvaluation).where(
            PatentEvaluation.evaluator_user_id == actor.user_id, PatentEvaluation.patent_id == patent_id
        )
    )


async def save(
    session: AsyncSession, actor: Principal, patent_id: int, values: Mapping[str, object], *, rules: TieringRules
) -> tuple[PatentEvaluation, bool]:
    """Create the caller's evaluation of a catalogue patent, or replace its fields if it exists, and
    re-tier the patent in the same transaction. Returns the evaluation and whether it is new.
    Everything is checked before anything is written."""
    evaluation, created = await _save(session, actor, patent_id, values)
    await tiers.retier(session, [patent_id], rules, trigger="evaluation")
    await matching_services.learn_from_patent(session, actor, patent_id, weight=matching_services.EVALUATION_WEIGHT)
    return evaluation, created


async def _save(
    session: AsyncSession, actor: Principal, patent_id: int, values: Mapping[str, object]
) -> tuple[PatentEvaluation, bool]:
    patent = await evaluable_patent(session, patent_id)
    refusal = rules.evaluator_refusal(actor, patent.owner_organisation_id)
    if refusal:
        raise Forbidden(refusal)
    evaluation_input, errors = rules.parse_evaluation(values)
    if errors:
        raise ValidationFailed(errors)
    assert evaluation_input is not None
    existing = await own_evaluation(session, actor, patent_id)
    if existing is not None:
        await _update(session, actor, existing, evaluation_input)
        return existing, False
    try:
        async with session.begin_nested():
            evaluation = await _create(session, actor, patent, evaluation_input)
    except IntegrityError:
        # The same evaluator's concurrent first submission committed first: this one edits it.
        existing = await own_evaluation(session, actor, patent_id)
        if existing is None:
            raise
        await _update(session, actor, existing, evaluation_input)
        return existing, False
    return evaluation, True


async def _create(session: AsyncSession, actor: Principal, patent: Patent, values: EvaluationInput) -> PatentEvaluation:
    evaluation = PatentEvaluation(
        patent_id=patent.id,
        evaluator_user_id=actor.user_id,
        evaluator_organisation_id=actor.organisation_id,
        prospects=values.prospects,
        improvement_needs=values.improvement_needs,
        cooperation=values.cooperation,
        interested_now=values.interested_now,
    )
    session.add(evaluation)
    await session.flush()
    await session.refresh(evaluation)
    await record(
        session, entity_type=ENTITY, entity_id=evaluation.id, action="create", actor=actor,
        details={"patent_id": patent.id, "to": values.as_json()},
    )  # fmt: skip
    return evaluation


async def _update(
    session: AsyncSession, actor: Principal, evaluation: PatentEvaluation, values: EvaluationInput
) -> None:
    changed = rules.changes(stored_input(evaluation), values)
    if not changed:
        return
    evaluation.prospects = values.prospects
    evaluation.improvement_needs = values.improvement_needs
    evaluation.cooperation = values.cooperation
    evaluation.interested_now = values.interested_now
    await session.flush()
    await record(
        session, entity_type=ENTITY, entity_id=evaluation.id, action="update", actor=actor,
        details={
            "patent_id": evaluation.patent_id,
            "from": {name: change["from"] for name, change in changed.items()},
            "to": {name: change["to"] for name, change in changed.items()},
        },
    )  # fmt: skip
    await session.refresh(evaluation)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _visible_to(actor: Principal) -> ColumnElement[bool]:
    """An evaluator reads its own evaluations (an organisation admin and the organisation's API
    tokens: the organisation's); a licensor those of its patents; a platform admin all."""
    if actor.is_platform_admin:
        return true()
    conditions = [
        PatentEvaluation.evaluator_user_id == actor.user_id,
        Patent.owner_organisation_id == actor.organisation_id,
    ]
    if actor.is_org_admin:
        conditions.append(PatentEvaluation.evaluator_organisation_id == actor.organisation_id)
    return or_(*conditions)


def _visible_query(actor: Principal):
    return select(PatentEvaluation).join(Patent, Patent.id == PatentEvaluation.patent_id).where(_visible_to(actor))


async def get_visible(session: AsyncSession, actor: Principal, evaluation_id: int) -> PatentEvaluation:
    """One evaluation; to anyone who may not read it, it does not exist."""
    if not 0 < evaluation_id < 2**63:
        raise NotFound("评价不存在")
    evaluation = await session.scalar(_visible_query(actor).where(PatentEvaluation.id == evaluation_id))
    if evaluation is None:
        raise NotFound("评价不存在")
    return evaluation


async def list_visible(
    session: AsyncSession,
    actor: Principal,
    *,
    patent_id: int | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page[PatentEvaluation]:
    """The evaluations the caller may read, most recently changed first."""
    page, per_page = page_bounds(page, per_page)
    query = _visible_query(actor)
    if patent_id is not None:
        query = query.where(PatentEvaluation.patent_id == patent_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(PatentEvaluation.updated_at.desc(), PatentEvaluation.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return Page(items=list(rows.unique()), number=page, per_page=per_page, total=int(total))


async def for_patent(session: AsyncSession, patent_id: int) -> list[PatentEvaluation]:
    """Every evaluation of a patent, for its licensor's page (the caller has checked who is asking)."""
    rows = await session.scalars(
        select(PatentEvaluation)
        .where(PatentEvaluation.patent_id == patent_id)
        .order_by(PatentEvaluation.updated_at.desc(), PatentEvaluation.id.desc())
    )
    return list(rows.unique())


async def aggregates(session: AsyncSession, patent_ids: Iterable[int]) -> dict[int, Aggregate]:
    """Each patent's aggregate (patents without evaluations get ``NO_EVALUATIONS``), in one query."""
    ids = sorted(set(patent_ids))
    result = dict.fromkeys(ids, rules.NO_EVALUATIONS)
    if not ids:
        return result
    rows = await session.execute(
        select(
            PatentEvaluation.patent_id,
            func.count(),
            func.sum(PatentEvaluation.prospects),
            func.sum(case((PatentEvaluation.interested_now.is_(True), 1), else_=0)),
        )
        .where(PatentEvaluation.patent_id.in_(ids))
        .group_by(PatentEvaluation.patent_id)
    )
    for patent_id, count, prospects_total, interested in rows:
        result[patent_id] = rules.aggregate_from_sums(int(count), int(prospects_total), int(interested))
    return result


@dataclass(frozen=True)
class Panel:
    """What the catalogue's patent page shows about evaluations to the person looking at it."""

    patent_id: int
    aggregate: Aggregate
    #: Why the viewer cannot evaluate (None: they can; anonymous visitors are asked to log in).
    refusal: str | None
    own: PatentEvaluation | None

    @property
    def form(self) -> dict[str, Any]:
        """The form's fields, pre-filled with the viewer's evaluation (empty for a first one)."""
        own = self.own
        if own is None:
            return {"prospects": "", "cooperation": "", "improvement_needs": "", "interested_now": False}
        return {
            "prospects": str(own.prospects),
            "cooperation": own.cooperation.value,
            "improvement_needs": own.improvement_needs or "",
            "interested_now": own.interested_now,
        }

    prospect_options: ClassVar[list[tuple[str, str]]] = [
        ("", "请选择"),
        *((str(n), label) for n, label in rules.PROSPECT_LABELS.items()),
    ]
    cooperation_options: ClassVar[list[tuple[str, str]]] = [
        ("", "请选择"),
        *((c.value, c.label) for c in CooperationWillingness),
    ]


async def panel(session: AsyncSession, actor: Principal | None, patent: Patent) -> Panel:
    aggregate = (await aggregates(session, [patent.id]))[patent.id]
    if actor is None:
        return Panel(patent.id, aggregate, "登录企业账号后可评价该专利", None)
    refusal = rules.evaluator_refusal(actor, patent.owner_organisation_id)
    own = None if refusal else await own_evaluation(session, actor, patent.id)
    return Panel(patent.id, aggregate, refusal, own)
