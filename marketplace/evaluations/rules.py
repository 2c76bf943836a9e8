"""Pure rules of market evaluations (市场评价): who may evaluate which patent, what an evaluation
must contain (field-level Chinese messages), what an edit changed, and the aggregate the
catalogue shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marketplace.accounts.models import OrganisationKind
from marketplace.accounts.rules import Principal
from marketplace.errors import FieldError
from marketplace.evaluations.models import CooperationWillingness

MIN_PROSPECTS = 1
MAX_PROSPECTS = 5
MAX_IMPROVEMENT_NEEDS_LENGTH = 2000
PROSPECT_LABELS = {1: "1 很差", 2: "2 较差", 3: "3 一般", 4: "4 较好", 5: "5 很好"}


@dataclass(frozen=True)
class EvaluationInput:
    """A validated evaluation, as stored."""

    prospects: int
    improvement_needs: str | None
    cooperation: CooperationWillingness
    interested_now: bool

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["cooperation"] = self.cooperation.value
        return values


def evaluator_refusal(actor: Principal, licensor_organisation_id: int) -> str | None:
    """Why ``actor`` may not evaluate a patent of ``licensor_organisation_id``, or None.

    Enterprises' people (any role, and their API tokens) and invited experts evaluate; the licensor's
    own people never evaluate its patents, whatever the organisation's kind.
    """
    if actor.organisation_id == licensor_organisation_id:
        return "不能评价本机构的专利"
    if actor.is_expert:
        return None
    if actor.is_platform_admin:
        return "平台管理员不能评价专利"
    if actor.organisation_kind is not OrganisationKind.ENTERPRISE:
        return "仅企业用户和评审专家可以评价专利"
    if not actor.email_confirmed:
        return "请先确认您的邮箱，再评价专利"
    return None


def _prospects(raw: object, errors: list[FieldError]) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        errors.append(FieldError("prospects", "请选择产业化前景评分（1–5）", "required"))
        return None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        value = None
    if value is None or not MIN_PROSPECTS <= value <= MAX_PROSPECTS:
        errors.append(FieldError("prospects", f"产业化前景评分应为{MIN_PROSPECTS}至{MAX_PROSPECTS}的整数"))
        return None
    return value


def _cooperation(raw: object, errors: list[FieldError]) -> CooperationWillingness | None:
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        errors.append(FieldError("cooperation", "请选择产学研合作意愿", "required"))
        return None
    try:
        return CooperationWillingness(text)
    except ValueError:
        labels = "、".join(c.label for c in CooperationWillingness)
        errors.append(FieldError("cooperation", f"产学研合作意愿应为：{labels}"))
        return None


def _interested(raw: object, errors: list[FieldError]) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if raw is None:
        return False  # an unticked checkbox is not sent
    text = str(raw).strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    errors.append(FieldError("interested_now", "是否有意向立即取得许可应为“是”或“否”"))
    return None


def parse_evaluation(values: Mapping[str, object]) -> tuple[EvaluationInput | None, list[FieldError]]:
    """The evaluation in ``values`` (form fields or API body), or every field's problem at once."""
    errors: list[FieldError] = []
    prospects = _prospects(values.get("prospects"), errors)
    needs_raw = values.get("improvement_needs")
    if needs_raw is not None and not isinstance(needs_raw, str):
        errors.append(FieldError("improvement_needs", "技术改进需求应为文字"))
        needs = None
    else:
        needs = (needs_raw or "").strip() or None
        if needs is not None and len(needs) > MAX_IMPROVEMENT_NEEDS_LENGTH:
            errors.append(
                FieldError("improvement_needs", f"技术改进需求不能超过{MAX_IMPROVEMENT_NEEDS_LENGTH}个字符", "too_long")
            )
    cooperation = _cooperation(values.get("cooperation"), errors)
    interested = _interested(values.get("interested_now"), errors)
    if errors:
        return None, errors
    assert prospects is not None and cooperation is not None and interested is not None
    return EvaluationInput(prospects, needs, cooperation, interested), []


def changes(before: EvaluationInput, after: EvaluationInput) -> dict[str, dict[str, Any]]:
    """The fields an edit changed, as ``{field: {"from": old, "to": new}}`` (empty when nothing did)."""
    old, new = before.as_json(), after.as_json()
    return {name: {"from": old[name], "to": new[name]} for name in old if old[name] != new[name]}


# ---------------------------------------------------------------------------------------------
# Aggregate (what the catalogue shows)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """Evaluations of one patent: how many, the mean prospects score to one decimal, and the share
    (whole percent) interested in a licence now. ``mean_prospects`` and ``interested_percent`` are
    None without evaluations."""

    count: int
    mean_prospects: Decimal | None
    interested_percent: int | None


NO_EVALUATIONS = Aggregate(0, None, None)


def _half_up(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def aggregate_from_sums(count: int, prospects_total: int, interested: int) -> Aggregate:
    """The aggregate from a count, the sum of prospects scores and the number interested now (what
    one GROUP BY reads)."""
    if count <= 0:
        return NO_EVALUATIONS
    mean = _half_up(Decimal(prospects_total) / Decimal(count), "0.1")
    percent = int(_half_up(Decimal(100 * interested) / Decimal(count), "1"))
    return Aggregate(count, mean, percent)


def aggregate(evaluations: Iterable[EvaluationInput]) -> Aggregate:
    items = list(evaluations)
    return aggregate_from_sums(len(items), sum(e.prospects for e in items), sum(1 for e in items if e.interested_now))
