"""Request and response shapes of ``/api/v1/evaluations``."""

from __future__ import annotations

from datetime import datetime

import msgspec

from marketplace.accounts.models import Role
from marketplace.evaluations.models import PatentEvaluation, PatentTier
from marketplace.evaluations.rules import Aggregate
from marketplace.paging import Page


class EvaluationWrite(msgspec.Struct, kw_only=True):
    """The caller's evaluation of a catalogue patent. ``cooperation`` is one of strong (强烈),
    willing (愿意), neutral (一般), unwilling (不愿意)."""

    patent_id: int
    prospects: int
    cooperation: str
    interested_now: bool = False
    improvement_needs: str | None = None

    def values(self) -> dict[str, object]:
        return {
            "prospects": self.prospects,
            "cooperation": self.cooperation,
            "interested_now": self.interested_now,
            "improvement_needs": self.improvement_needs,
        }


class EvaluationOut(msgspec.Struct):
    id: int
    patent_id: int
    patent_number: str
    patent_title: str
    evaluator_user_id: int
    evaluator_name: str
    evaluator_organisation_id: int
    evaluator_organisation_name: str
    evaluator_is_expert: bool
    prospects: int
    improvement_needs: str | None
    cooperation: str
    cooperation_label: str
    interested_now: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, evaluation: PatentEvaluation) -> EvaluationOut:
        return cls(
            id=evaluation.id,
            patent_id=evaluation.patent_id,
            patent_number=evaluation.patent.patent_number,
            patent_title=evaluation.patent.title,
            evaluator_user_id=evaluation.evaluator_user_id,
            evaluator_name=evaluation.evaluator.display_name,
            evaluator_organisation_id=evaluation.evaluator_organisation_id,
            evaluator_organisation_name=evaluation.evaluator_organisation.name,
            evaluator_is_expert=evaluation.evaluator.role is Role.EXPERT,
            prospects=evaluation.prospects,
            improvement_needs=evaluation.improvement_needs,
            cooperation=evaluation.cooperation.value,
            cooperation_label=evaluation.cooperation.label,
            interested_now=evaluation.interested_now,
            created_at=evaluation.created_at,
            updated_at=evaluation.updated_at,
        )


class EvaluationPage(msgspec.Struct):
    items: list[EvaluationOut]
    total: int
    page: int
    per_page: int

    @classmethod
    def of(cls, page: Page[PatentEvaluation]) -> EvaluationPage:
        return cls(
            items=[EvaluationOut.of(e) for e in page.items], total=page.total, page=page.number, per_page=page.per_page
        )


class AggregateOut(msgspec.Struct):
    """Evaluations of a patent: how many, mean industrialisation prospects (one decimal), and the
    percentage of evaluators interested in a licence now (null without evaluations)."""

    count: int
    mean_prospects: float | None
    interested_percent: int | None

    @classmethod
    def of(cls, aggregate: Aggregate) -> AggregateOut:
        mean = float(aggregate.mean_prospects) if aggregate.mean_prospects is not None else None
        return cls(aggregate.count, mean, aggregate.interested_percent)


class TierOut(msgspec.Struct):
    """A catalogue patent's tier (分层): high_value (高价值), general (一般) or low (低), the points
    and the reason lines that add up to them (``summary`` states the total and the thresholds), and
    the re-evaluation flag (待重新评价) with its reason. ``rules`` names the rule file version used."""

    tier: str
    tier_label: str
    points: int
    reasons: list[str]
    notes: list[str]
    summary: str
    needs_re_evaluation: bool
    re_evaluation_reason: str | None
    computed_at: datetime
    rules: str

    @classmethod
    def of(cls, row: PatentTier) -> TierOut:
        return cls(
            tier=row.tier.value,
            tier_label=row.tier.label,
            points=row.points,
            reasons=[line["text"] for line in row.reasons.get("lines", [])],
            notes=list(row.reasons.get("notes", [])),
            summary=row.reasons.get("summary", ""),
            needs_re_evaluation=row.needs_re_evaluation,
            re_evaluation_reason=row.re_evaluation_reason,
            computed_at=row.computed_at,
            rules=row.rules_stamp,
        )


class TieredPatentOut(msgspec.Struct):
    patent_id: int
    patent_number: str
    patent_title: str
    licensor_id: int
    licensor_name: str
    tier: TierOut

    @classmethod
    def of(cls, row: PatentTier) -> TieredPatentOut:
        patent = row.patent
        return cls(patent.id, patent.patent_number, patent.title, patent.owner_organisation_id, patent.owner.name,
                   TierOut.of(row))  # fmt: skip


class TierPage(msgspec.Struct):
    items: list[TieredPatentOut]
    total: int
    page: int
    per_page: int

    @classmethod
    def of(cls, page: Page[PatentTier]) -> TierPage:
        return cls([TieredPatentOut.of(row) for row in page.items], page.total, page.number, page.per_page)
