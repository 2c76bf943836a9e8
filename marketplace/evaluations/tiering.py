"""Tiering (分层) of catalogue patents: a transparent points table read from a TOML file.

Each criterion of the table that holds for a patent adds (or subtracts) its points and yields one
Chinese reason line; the total decides the tier — 高价值 at or above one threshold, 低 at or below
another, 一般 in between. With fewer evaluations than the file's minimum, the evaluation criteria are
skipped and the patent is tiered on its facts alone. Separately, a patent listed for long enough with
no licence contract and no positive evaluation is flagged 待重新评价 (re-evaluation and re-marking).

Pure: plain values in, plain values out. Patent types and legal statuses are their stored string
values, so this module needs no model (the settings module loads it).
"""

from __future__ import annotations

import enum
import hashlib
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "data" / "tiering.toml"


class Tier(enum.StrEnum):
    HIGH_VALUE = "high_value"
    GENERAL = "general"
    LOW = "low"

    @property
    def label(self) -> str:
        return {"high_value": "高价值", "general": "一般", "low": "低"}[self.value]

    @property
    def rank(self) -> int:
        return {"low": 0, "general": 1, "high_value": 2}[self.value]


PATENT_TYPE_LABELS = {"invention": "发明", "utility_model": "实用新型", "design": "外观设计"}
LEGAL_STATUS_LABELS = {
    "pending": "审中", "granted": "有效", "lapsed": "失效", "invalidated": "已宣告无效", "expired": "期限届满",
}  # fmt: skip
#: Measures compared with numbers; the evaluation ones are skipped below the minimum count.
NUMBER_MEASURES = (
    "years_since_grant", "remaining_years", "licences", "months_listed",
    "evaluation_count", "mean_prospects", "interested_percent", "cooperative_percent",
)  # fmt: skip
EVALUATION_MEASURES = ("evaluation_count", "mean_prospects", "interested_percent", "cooperative_percent")
CHOICE_MEASURES = {"patent_type": PATENT_TYPE_LABELS, "legal_status": LEGAL_STATUS_LABELS}
NUMBER_OPS = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": "="}
CHOICE_OPS = ("==", "in")


class TieringRulesError(ValueError):
    """The rule file cannot be used; the message names the file and every problem."""


@dataclass(frozen=True)
class Criterion:
    measure: str
    op: str
    #: A Decimal for number measures, a tuple of stored values for patent_type / legal_status.
    value: Decimal | tuple[str, ...]
    points: int


@dataclass(frozen=True)
class TieringRules:
    version: str
    #: The first 12 hex digits of the file's SHA-256: which exact table computed a stored tier.
    digest: str
    high_value_at_least: int
    low_at_most: int
    minimum_evaluations: int
    positive_prospects_at_least: int
    positive_if_interested_now: bool
    re_evaluation_months: int
    criteria: tuple[Criterion, ...]

    @property
    def stamp(self) -> str:
        return f"{self.version}@{self.digest}"

    @property
    def positive_definition(self) -> str:
        text = f"产业化前景 ≥ {self.positive_prospects_at_least}分"
        return text + ("或有意向立即许可" if self.positive_if_interested_now else "")


@dataclass(frozen=True)
class PatentFacts:
    patent_type: str
    legal_status: str
    grant_date: date | None
    expiry_date: date
    licences: int
    #: The business date the patent's first offer was published (None: never listed).
    first_listed_on: date | None


@dataclass(frozen=True)
class EvaluationSignals:
    """A patent's evaluations as one GROUP BY reads them."""

    count: int = 0
    prospects_total: int = 0
    interested: int = 0
    #: Evaluators willing or strongly willing to cooperate (产学研合作).
    cooperative: int = 0
    #: Positive evaluations, by the rule file's definition.
    positive: int = 0


@dataclass(frozen=True)
class ReasonLine:
    text: str
    points: int


@dataclass(frozen=True)
class Assessment:
    tier: Tier
    points: int
    lines: tuple[ReasonLine, ...]
    #: Lines that add no points (e.g. "too few evaluations: facts alone").
    notes: tuple[str, ...]
    #: The total and the thresholds, so the tier can be checked by hand.
    summary: str
    needs_re_evaluation: bool
    re_evaluation_reason: str | None
    rules_stamp: str

    def reasons_json(self) -> dict[str, Any]:
        return {
            "lines": [{"text": line.text, "points": line.points} for line in self.lines],
            "notes": list(self.notes),
            "summary": self.summary,
        }


# ---------------------------------------------------------------------------------------------
# The rule file
# ---------------------------------------------------------------------------------------------


def _int(table: dict[str, Any], key: str, where: str, errors: list[str], *, minimum: int | None = None) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{where}.{key} 应为整数")
        return 0
    if minimum is not None and value < minimum:
        errors.append(f"{where}.{key} 不能小于{minimum}")
    return value


def _table(data: dict[str, Any], key: str, errors: list[str]) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        errors.append(f"缺少 [{key}] 表")
        return {}
    return value


def _criterion(raw: object, n: int, errors: list[str]) -> Criterion | None:
    where = f"criteria[{n}]"
    if not isinstance(raw, dict):
        errors.append(f"{where} 应为表")
        return None
    unknown = set(raw) - {"measure", "op", "value", "points"}
    if unknown:
        errors.append(f"{where} 有未知的键：{', '.join(sorted(unknown))}")
    measure, op, value = raw.get("measure"), raw.get("op"), raw.get("value")
    before = len(errors)
    points = _int(raw, "points", where, errors)
    if measure in NUMBER_MEASURES:
        if op not in NUMBER_OPS:
            errors.append(f"{where}.op 对 {measure} 应为 {' '.join(NUMBER_OPS)} 之一")
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{where}.value 对 {measure} 应为数字")
            return None
        if len(errors) > before:
            return None
        return Criterion(measure, str(op), Decimal(str(value)), points)
    if measure in CHOICE_MEASURES:
        choices = CHOICE_MEASURES[measure]
        values = (value,) if op == "==" else value
        if op not in CHOICE_OPS:
            errors.append(f"{where}.op 对 {measure} 应为 == 或 in")
        elif not isinstance(values, list | tuple) or not values or any(v not in choices for v in values):
            errors.append(f"{where}.value 对 {measure} 应取自：{', '.join(choices)}")
        if len(errors) > before:
            return None
        return Criterion(measure, str(op), tuple(values), points)  # type: ignore[arg-type]
    errors.append(f"{where}.measure 未知：{measure!r}（可用：{', '.join((*NUMBER_MEASURES, *CHOICE_MEASURES))}）")
    return None


def parse_rules(content: bytes, *, source: str = "tiering.toml") -> TieringRules:
    """The rules in ``content``, or :class:`TieringRulesError` listing every problem."""
    try:
        data = tomllib.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TieringRulesError(f"分层规则文件 {source} 无法读取：{exc}") from exc
    errors: list[str] = []
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        errors.append("version 应为非空字符串")
    tiers = _table(data, "tiers", errors)
    high = _int(tiers, "high_value_at_least", "tiers", errors)
    low = _int(tiers, "low_at_most", "tiers", errors)
    if not errors and low >= high:
        errors.append("tiers.low_at_most 应小于 tiers.high_value_at_least")
    minimum = _int(_table(data, "evaluations", errors), "minimum_count", "evaluations", errors, minimum=1)
    positive = _table(data, "positive", errors)
    positive_prospects = _int(positive, "prospects_at_least", "positive", errors, minimum=1)
    interested = positive.get("interested_now")
    if not isinstance(interested, bool):
        errors.append("positive.interested_now 应为 true 或 false")
    months = _int(_table(data, "re_evaluation", errors), "listed_months_at_least", "re_evaluation", errors, minimum=1)
    raw_criteria = data.get("criteria")
    criteria: list[Criterion] = []
    if not isinstance(raw_criteria, list) or not raw_criteria:
        errors.append("至少需要一条 [[criteria]]")
    else:
        criteria = [c for n, raw in enumerate(raw_criteria, 1) if (c := _criterion(raw, n, errors))]
    if errors:
        raise TieringRulesError(f"分层规则文件 {source} 有误：" + "；".join(errors))
    return TieringRules(
        version=str(version).strip(),
        digest=hashlib.sha256(content).hexdigest()[:12],
        high_value_at_least=high,
        low_at_most=low,
        minimum_evaluations=minimum,
        positive_prospects_at_least=positive_prospects,
        positive_if_interested_now=bool(interested),
        re_evaluation_months=months,
        criteria=tuple(criteria),
    )


@lru_cache(maxsize=8)
def load_rules(path: Path) -> TieringRules:
    """The rule file at ``path`` (read once per path; the app reads it at start-up, so a bad file
    stops the start with the message)."""
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise TieringRulesError(f"分层规则文件 {path} 无法读取：{exc.strerror}") from exc
    return parse_rules(content, source=str(path))


# ---------------------------------------------------------------------------------------------
# The assessment
# ---------------------------------------------------------------------------------------------


def full_years(start: date, end: date) -> int:
    """Whole years from ``start`` to ``end`` (0 when ``end`` is not after ``start``)."""
    if end <= start:
        return 0
    years = end.year - start.year
    return years - 1 if (end.month, end.day) < (start.month, start.day) else years


def full_months(start: date, end: date) -> int:
    if end <= start:
        return 0
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if end.day < start.day else months


def _signed(points: int) -> str:
    return f"+{points}" if points >= 0 else f"−{-points}"


#: How a threshold is written after the comparison sign (the mean keeps one decimal, as shown).
UNITS = {
    "years_since_grant": "年", "remaining_years": "年", "licences": "份", "months_listed": "个月",
    "evaluation_count": "份", "mean_prospects": "", "interested_percent": "%", "cooperative_percent": "%",
}  # fmt: skip


def _number(value: Decimal, measure: str) -> str:
    if measure == "mean_prospects":
        return str(value.quantize(Decimal("0.1"), ROUND_HALF_UP))
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")


def mean_prospects(signals: EvaluationSignals) -> Decimal | None:
    """The mean prospects score half-up to one decimal, as the catalogue shows it (``rules.aggregate``)."""
    if signals.count <= 0:
        return None
    return (Decimal(signals.prospects_total) / Decimal(signals.count)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _percent(part: int, whole: int) -> Decimal:
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("1"), ROUND_HALF_UP)


def measures(facts: PatentFacts, signals: EvaluationSignals, on: date) -> dict[str, Any]:
    """Every measure a criterion may test (None: not known, e.g. no grant date or no evaluations)."""
    count = signals.count
    return {
        "patent_type": facts.patent_type,
        "legal_status": facts.legal_status,
        "years_since_grant": Decimal(full_years(facts.grant_date, on)) if facts.grant_date else None,
        "remaining_years": Decimal(full_years(on, facts.expiry_date)),
        "licences": Decimal(facts.licences),
        "months_listed": Decimal(full_months(facts.first_listed_on, on)) if facts.first_listed_on else None,
        "evaluation_count": Decimal(count),
        "mean_prospects": mean_prospects(signals),
        "interested_percent": _percent(signals.interested, count) if count else None,
        "cooperative_percent": _percent(signals.cooperative, count) if count else None,
    }


def _describe(measure: str, value: Any, count: int) -> str:
    if measure in CHOICE_MEASURES:
        label = CHOICE_MEASURES[measure][value]
        return f"{label}专利" if measure == "patent_type" else f"法律状态：{label}"
    shown = _number(value, measure)
    return {
        "years_since_grant": f"授权{shown}年",
        "remaining_years": f"剩余保护期{shown}年",
        "licences": f"已有{shown}份许可",
        "months_listed": f"在目录中{shown}个月",
        "evaluation_count": f"评价{shown}份",
        "mean_prospects": f"评价均分{shown}分（{count}份评价）",
        "interested_percent": f"有意向立即许可{shown}%（{count}份评价）",
        "cooperative_percent": f"愿意或强烈愿意合作{shown}%（{count}份评价）",
    }[measure]


def _holds(criterion: Criterion, value: Any) -> bool:
    if value is None:
        return False
    if criterion.measure in CHOICE_MEASURES:
        return value in criterion.value  # type: ignore[operator]
    target = criterion.value
    return {
        ">=": value >= target, ">": value > target, "<=": value <= target, "<": value < target, "==": value == target,
    }[criterion.op]  # fmt: skip


def _line(criterion: Criterion, value: Any, count: int) -> ReasonLine:
    described = _describe(criterion.measure, value, count)
    if criterion.measure in CHOICE_MEASURES:
        return ReasonLine(f"{described}：{_signed(criterion.points)}", criterion.points)
    threshold = _number(criterion.value, criterion.measure) + UNITS[criterion.measure]  # type: ignore[arg-type]
    return ReasonLine(
        f"{described} {NUMBER_OPS[criterion.op]} {threshold}：{_signed(criterion.points)}", criterion.points
    )


def tier_of(points: int, rules: TieringRules) -> Tier:
    if points >= rules.high_value_at_least:
        return Tier.HIGH_VALUE
    if points <= rules.low_at_most:
        return Tier.LOW
    return Tier.GENERAL


def assess(facts: PatentFacts, signals: EvaluationSignals, rules: TieringRules, on: date) -> Assessment:
    """The patent's tier on ``on``, with the lines that produced it, and the re-evaluation flag."""
    values = measures(facts, signals, on)
    facts_alone = signals.count < rules.minimum_evaluations
    notes: list[str] = []
    if facts_alone:
        notes.append(f"评价不足{rules.minimum_evaluations}份（现有{signals.count}份），仅按专利事实分层")
    lines = [
        _line(criterion, values[criterion.measure], signals.count)
        for criterion in rules.criteria
        if not (facts_alone and criterion.measure in EVALUATION_MEASURES)
        and _holds(criterion, values[criterion.measure])
    ]
    points = sum(line.points for line in lines)
    tier = tier_of(points, rules)
    summary = (
        f"合计{_signed(points)}分：≥ {rules.high_value_at_least}分为高价值，"
        f"≤ {_signed(rules.low_at_most)}分为低，其间为一般 → {tier.label}"
    )
    flag_reason = re_evaluation_reason(facts, signals, rules, on)
    return Assessment(
        tier=tier,
        points=points,
        lines=tuple(lines),
        notes=tuple(notes),
        summary=summary,
        needs_re_evaluation=flag_reason is not None,
        re_evaluation_reason=flag_reason,
        rules_stamp=rules.stamp,
    )


def re_evaluation_reason(facts: PatentFacts, signals: EvaluationSignals, rules: TieringRules, on: date) -> str | None:
    """Why the patent is flagged 待重新评价, or None: listed long enough, never licensed, and no
    positive evaluation."""
    if facts.first_listed_on is None or facts.licences > 0 or signals.positive > 0:
        return None
    months = full_months(facts.first_listed_on, on)
    if months < rules.re_evaluation_months:
        return None
    return (
        f"自{facts.first_listed_on.isoformat()}列入许可目录已{months}个月（≥ {rules.re_evaluation_months}个月），"
        f"尚无许可合同，也无积极评价（{rules.positive_definition}），请重新评价并重新标注"
    )
