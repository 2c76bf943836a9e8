"""Pure rules of open-licence offers (开放许可声明): fee terms and their validation, plain-Chinese
descriptions, the licensee's payment timeline (cost calculator), eligibility to declare an open
licence, and the offer state machine. No I/O: settings arrive as :class:`FeeLimits`, dates as
arguments.

The fee-terms JSON contract is docs/fee-terms.md.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any, ClassVar

from marketplace.errors import FieldError, ValidationFailed
from marketplace.money import format_yuan, round_fen
from marketplace.offers.models import OfferStatus, PaymentMode
from marketplace.patents.models import LegalStatus, PatentType

MAX_DUE_DAYS = 365
MAX_INSTALMENTS = 60
MIN_INSTALMENTS = 2
MAX_INTERVAL_MONTHS = 60
MAX_DEFERRAL_MONTHS = 60
MAX_LICENCE_TERM_MONTHS = 360
MAX_YEARLY_RATES = 30
MAX_RATE_DECIMALS = 6
MAX_TERRITORY_LENGTH = 100
MAX_FIELD_OF_USE_LENGTH = 300
MAX_OTHER_TERMS_LENGTH = 5000
#: A calendar month is at least 28 days long, so "d days after month n" is inside a term of T months
#: for every start date when d < 28 × (T − n). Checks that cannot know the start date use this bound.
SHORTEST_MONTH_DAYS = 28


class RoyaltyBase(enum.StrEnum):
    SALES = "sales"
    PROFIT = "profit"
    UNITS = "units"
    ADDED_OUTPUT = "added_output"

    @property
    def label(self) -> str:
        return {"sales": "销售额", "profit": "利润", "units": "数量", "added_output": "新增产值"}[self.value]


class RateSchedule(enum.StrEnum):
    FIXED = "fixed"
    RISING = "rising"
    FALLING = "falling"

    @property
    def label(self) -> str:
        return {"fixed": "固定费率", "rising": "逐年递增", "falling": "逐年递减"}[self.value]


class ReportingPeriod(enum.StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    SEMIANNUAL = "semiannual"
    ANNUAL = "annual"

    @property
    def label(self) -> str:
        return {"monthly": "按月", "quarterly": "按季度", "semiannual": "按半年", "annual": "按年"}[self.value]

    @property
    def months(self) -> int:
        return {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}[self.value]


class Deferral(enum.StrEnum):
    MONTHS = "months"
    FIRST_REVENUE = "first_revenue"

    @property
    def label(self) -> str:
        return {"months": "固定期限", "first_revenue": "取得首笔收入后"}[self.value]


@dataclass(frozen=True)
class FeeLimits:
    """Sanity limits on fee terms (settings MAX_ROYALTY_RATE_* and MAX_FIXED_FEE_FEN)."""

    max_rate_sales: Decimal = Decimal("0.20")
    max_rate_profit: Decimal = Decimal("0.40")
    max_rate_added_output: Decimal = Decimal("0.20")
    max_fixed_fee_fen: int = 2_000_000_000

    def max_rate(self, base: RoyaltyBase) -> Decimal:
        return {
            RoyaltyBase.SALES: self.max_rate_sales,
            RoyaltyBase.PROFIT: self.max_rate_profit,
            RoyaltyBase.ADDED_OUTPUT: self.max_rate_added_output,
        }[base]


# ---------------------------------------------------------------------------------------------
# Fee terms
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeTerms:
    mode: ClassVar[PaymentMode] = PaymentMode.FREE

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value}


@dataclass(frozen=True)
class LumpSumTerms:
    amount_fen: int
    due_days: int
    mode: ClassVar[PaymentMode] = PaymentMode.LUMP_SUM

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "amount_fen": self.amount_fen, "due_days": self.due_days}


@dataclass(frozen=True)
class InstalmentTerms:
    """Instalment k (0-based) is due ``first_due_days`` days after month ``k × interval_months``,
    or at month ``month_offsets[k]``, counted from the day the licence takes effect."""

    total_fen: int
    count: int
    interval_months: int | None = None
    first_due_days: int | None = None
    month_offsets: tuple[int, ...] | None = None
    mode: ClassVar[PaymentMode] = PaymentMode.INSTALMENTS

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode.value, "total_fen": self.total_fen, "count": self.count}
        if self.month_offsets is not None:
            data["month_offsets"] = list(self.month_offsets)
        else:
            data["interval_months"] = self.interval_months
            data["first_due_days"] = self.first_due_days
        return data


@dataclass(frozen=True)
class RoyaltyTerms:
    base: RoyaltyBase
    rate_schedule: RateSchedule = RateSchedule.FIXED
    reporting_period: ReportingPeriod = ReportingPeriod.QUARTERLY
    rate: Decimal | None = None
    unit_amount_fen: int | None = None
    yearly_rates: tuple[Decimal, ...] = ()
    annual_minimum_fen: int | None = None
    cap_fen: int | None = None
    mode: ClassVar[PaymentMode] = PaymentMode.ROYALTY

    def rate_for_year(self, contract_year: int) -> Decimal:
        """Rate of contract year 1, 2, …; the last yearly rate holds after the list ends."""
        if self.rate_schedule is RateSchedule.FIXED:
            assert self.rate is not None
            return self.rate
        return self.yearly_rates[min(contract_year, len(self.yearly_rates)) - 1]

    def to_json(self, *, with_mode: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode.value} if with_mode else {}
        data["base"] = self.base.value
        if self.base is RoyaltyBase.UNITS:
            data["unit_amount_fen"] = self.unit_amount_fen
        elif self.rate_schedule is RateSchedule.FIXED:
            data["rate"] = str(self.rate)
        else:
            data["yearly_rates"] = [str(r) for r in self.yearly_rates]
        data["rate_schedule"] = self.rate_schedule.value
        data["reporting_period"] = self.reporting_period.value
        data["annual_minimum_fen"] = self.annual_minimum_fen
        data["cap_fen"] = self.cap_fen
        return data


@dataclass(frozen=True)
class EntryFeeRoyaltyTerms:
    entry_fee_fen: int
    entry_due_days: int
    royalty: RoyaltyTerms
    mode: ClassVar[PaymentMode] = PaymentMode.ENTRY_FEE_ROYALTY

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "entry_fee_fen": self.entry_fee_fen,
            "entry_due_days": self.entry_due_days,
            "royalty": self.royalty.to_json(with_mode=False),
        }


DeferredTerms = LumpSumTerms | InstalmentTerms | RoyaltyTerms | EntryFeeRoyaltyTerms


@dataclass(frozen=True)
class PayAfterUseTerms:
    deferral: Deferral
    then: DeferredTerms
    deferral_months: int | None = None
    mode: ClassVar[PaymentMode] = PaymentMode.PAY_AFTER_USE

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode.value, "deferral": self.deferral.value}
        if self.deferral is Deferral.MONTHS:
            data["deferral_months"] = self.deferral_months
        data["then"] = self.then.to_json()
        return data


FeeTerms = FreeTerms | LumpSumTerms | InstalmentTerms | RoyaltyTerms | EntryFeeRoyaltyTerms | PayAfterUseTerms

#: The modes a pay-after-use deferral may lead into.
DEFERRABLE_MODES = (PaymentMode.LUMP_SUM, PaymentMode.INSTALMENTS, PaymentMode.ROYALTY, PaymentMode.ENTRY_FEE_ROYALTY)


class _Reader:
    """Reads one JSON object of fee terms, collecting every problem with its field path."""

    def __init__(self, raw: dict[str, Any], path: str, errors: list[FieldError], limits: FeeLimits) -> None:
        self.raw = raw
        self.path = path
        self.errors = errors
        self.limits = limits

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def error(self, key: str, message: str, code: str = "invalid") -> None:
        self.errors.append(FieldError(self.at(key), message, code))

    def present(self, key: str) -> bool:
        value = self.raw.get(key)
        return value is not None and value != [] and value != ""

    def reject_unknown(self, allowed: Iterable[str]) -> None:
        for key in self.raw:
            if key not in allowed:
                self.error(key, "不支持的字段", "unknown_field")

    def reject_present(self, key: str, message: str) -> None:
        if self.present(key):
            self.error(key, message, "not_applicable")

    def integer(self, key: str, low: int, high: int, what: str) -> int | None:
        value = self.raw.get(key)
        if value is None or value == "":
            self.error(key, f"请填写{what}", "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"{what}应为整数")
            return None
        if not low <= value <= high:
            self.error(key, f"{what}应在{low}至{high}之间", "out_of_range")
            return None
        return value

    def amount(self, key: str, what: str, *, required: bool = True) -> int | None:
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.error(key, f"请填写{what}", "required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"{what}应为以分计的整数")
            return None
        if value <= 0:
            self.error(key, f"{what}应大于零", "out_of_range")
            return None
        if value > self.limits.max_fixed_fee_fen:
            self.error(key, f"{what}不得超过¥{format_yuan(self.limits.max_fixed_fee_fen)}", "out_of_range")
            return None
        return value

    def choice(self, key: str, enum_cls: type[enum.StrEnum], what: str, default: Any = None) -> Any:
        value = self.raw.get(key)
        if value is None or value == "":
            if default is None:
                self.error(key, f"请选择{what}", "required")
            return default
        try:
            return enum_cls(value)
        except (ValueError, TypeError):
            self.error(key, f"{what}不在可选范围内")
            return None

    def rate_value(self, value: Any, path: str, limit: Decimal) -> Decimal | None:
        rate = _decimal(value)
        if rate is None:
            self.errors.append(FieldError(path, "费率应为小数，例如 0.035 表示 3.5%"))
            return None
        if rate <= 0:
            self.errors.append(FieldError(path, "费率应大于零", "out_of_range"))
            return None
        if rate > limit:
            self.errors.append(FieldError(path, f"费率不得超过{format_rate(limit)}", "out_of_range"))
            return None
        rate = rate.normalize()
        if -rate.as_tuple().exponent > MAX_RATE_DECIMALS:  # type: ignore[operator]
            self.errors.append(FieldError(path, "费率最多保留小数点后六位（即百分比四位小数）"))
            return None
        return rate

    def obj(self, key: str, what: str) -> dict[str, Any] | None:
        value = self.raw.get(key)
        if value is None:
            self.error(key, f"请填写{what}", "required")
            return None
        if not isinstance(value, dict):
            self.error(key, f"{what}应为对象")
            return None
        return value


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    if not text or len(text) > 20:
        return None
    try:
        result = Decimal(text)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _fits_days(days: int, months_before: int, term_months: int) -> bool:
    """Is a date ``days`` after month ``months_before`` inside a term of ``term_months`` for any start?"""
    return days < SHORTEST_MONTH_DAYS * (term_months - months_before)


def parse_fee_terms(raw: Any, *, term_months: int | None, limits: FeeLimits) -> FeeTerms:
    """Validate fee terms JSON (docs/fee-terms.md) into frozen dataclasses, or raise ValidationFailed.

    ``term_months`` is the licence term; pass None when it is itself invalid, and the checks that
    every payment falls inside the term are skipped (the term's own error is reported elsewhere).
    """
    errors: list[FieldError] = []
    terms = _parse_top(raw, "fee_terms", errors, term_months, limits)
    if errors or terms is None:
        raise ValidationFailed(errors or [FieldError("fee_terms", "请填写许可使用费条款", "required")])
    return terms


def _parse_top(
    raw: Any, path: str, errors: list[FieldError], term_months: int | None, limits: FeeLimits
) -> FeeTerms | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(path, "许可使用费条款应为对象"))
        return None
    reader = _Reader(raw, path, errors, limits)
    mode = reader.choice("mode", PaymentMode, "支付方式")
    if mode is None:
        return None
    parser = {
        PaymentMode.FREE: _parse_free,
        PaymentMode.LUMP_SUM: _parse_lump_sum,
        PaymentMode.INSTALMENTS: _parse_instalments,
        PaymentMode.ROYALTY: _parse_royalty_mode,
        PaymentMode.ENTRY_FEE_ROYALTY: _parse_entry_fee_royalty,
        PaymentMode.PAY_AFTER_USE: _parse_pay_after_use,
    }[mode]
    return parser(reader, term_months)


def _parse_free(reader: _Reader, term_months: int | None) -> FreeTerms:
    reader.reject_unknown({"mode"})
    return FreeTerms()


def _parse_lump_sum(reader: _Reader, term_months: int | None) -> LumpSumTerms | None:
    reader.reject_unknown({"mode", "amount_fen", "due_days"})
    amount = reader.amount("amount_fen", "许可使用费金额")
    due_days = reader.integer("due_days", 0, MAX_DUE_DAYS, "付款期限（天）")
    if due_days is not None and term_months is not None and not _fits_days(due_days, 0, term_months):
        reader.error("due_days", f"付款期限超出许可期限（{term_months}个月）", "outside_term")
        due_days = None
    if amount is None or due_days is None:
        return None
    return LumpSumTerms(amount_fen=amount, due_days=due_days)


def _parse_instalments(reader: _Reader, term_months: int | None) -> InstalmentTerms | None:
    reader.reject_unknown({"mode", "total_fen", "count", "interval_months", "first_due_days", "month_offsets"})
    total = reader.amount("total_fen", "许可使用费总额")
    count = reader.integer("count", MIN_INSTALMENTS, MAX_INSTALMENTS, "分期数")
    if total is not None and count is not None and total < count:
        reader.error("total_fen", f"总额不足以分为{count}期（每期至少¥0.01）", "out_of_range")
        total = None
    if reader.present("month_offsets"):
        if reader.present("interval_months") or reader.present("first_due_days"):
            reader.error("month_offsets", "请在“固定间隔”和“指定月份”中选择一种分期方式", "ambiguous")
            return None
        offsets = _parse_month_offsets(reader, count, term_months)
        if total is None or count is None or offsets is None:
            return None
        return InstalmentTerms(total_fen=total, count=count, month_offsets=offsets)
    interval = reader.integer("interval_months", 1, MAX_INTERVAL_MONTHS, "分期间隔（月）")
    first_due = reader.integer("first_due_days", 0, MAX_DUE_DAYS, "首期付款期限（天）")
    if None in (total, count, interval, first_due):
        return None
    assert count is not None and interval is not None and first_due is not None and total is not None
    last_month = (count - 1) * interval
    if term_months is not None and not _fits_days(first_due, last_month, term_months):
        reader.error(
            "interval_months",
            f"最后一期（第{last_month}个月后{first_due}天）超出许可期限（{term_months}个月）",
            "outside_term",
        )
        return None
    return InstalmentTerms(total_fen=total, count=count, interval_months=interval, first_due_days=first_due)


def _parse_month_offsets(reader: _Reader, count: int | None, term_months: int | None) -> tuple[int, ...] | None:
    raw = reader.raw.get("month_offsets")
    if not isinstance(raw, list):
        reader.error("month_offsets", "各期付款月份应为整数列表")
        return None
    if count is not None and len(raw) != count:
        reader.error("month_offsets", f"应为每一期指定付款月份（共{count}期，已填{len(raw)}个）")
        return None
    offsets: list[int] = []
    ok = True
    for i, value in enumerate(raw):
        path = reader.at(f"month_offsets[{i}]")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            reader.errors.append(FieldError(path, f"第{i + 1}期的付款月份应为非负整数"))
            ok = False
            continue
        if offsets and value <= offsets[-1]:
            reader.errors.append(FieldError(path, "各期付款月份应逐期递增"))
            ok = False
        elif term_months is not None and value >= term_months:
            reader.errors.append(
                FieldError(path, f"第{i + 1}期（第{value}个月）超出许可期限（{term_months}个月）", "outside_term")
            )
            ok = False
        offsets.append(value)
    return tuple(offsets) if ok else None


def _parse_royalty_mode(reader: _Reader, term_months: int | None) -> RoyaltyTerms | None:
    return _parse_royalty(reader, with_mode=True)


def _parse_royalty(reader: _Reader, *, with_mode: bool) -> RoyaltyTerms | None:
    keys = {"base", "rate", "unit_amount_fen", "rate_schedule", "yearly_rates", "reporting_period",
            "annual_minimum_fen", "cap_fen"}
    reader.reject_unknown(keys | ({"mode"} if with_mode else set()))
    base = reader.choice("base", RoyaltyBase, "提成基数")
    schedule = reader.choice("rate_schedule", RateSchedule, "费率方式", RateSchedule.FIXED)
    period = reader.choice("reporting_period", ReportingPeriod, "报告周期", ReportingPeriod.QUARTERLY)
    minimum = reader.amount("annual_minimum_fen", "年度最低使用费", required=False)
    cap = reader.amount("cap_fen", "提成总额上限", required=False)
    if minimum is not None and cap is not None and cap < minimum:
        reader.error("cap_fen", "提成总额上限不得低于年度最低使用费", "out_of_range")
        cap = None
    rate: Decimal | None = None
    unit_amount: int | None = None
    yearly: tuple[Decimal, ...] | None = ()
    if base is RoyaltyBase.UNITS:
        reader.reject_present("rate", "按数量提成时请填写每件金额（unit_amount_fen），不填费率")
        reader.reject_present("yearly_rates", "按数量提成时仅支持固定单价")
        if schedule is not None and schedule is not RateSchedule.FIXED:
            reader.error("rate_schedule", "按数量提成时仅支持固定单价")
        unit_amount = reader.amount("unit_amount_fen", "每件提成金额")
        ok = unit_amount is not None
    elif base is not None:
        reader.reject_present("unit_amount_fen", "按金额提成时请填写费率，不填每件金额")
        limit = reader.limits.max_rate(base)
        if schedule is RateSchedule.FIXED:
            reader.reject_present("yearly_rates", "固定费率无需填写各年度费率")
            if reader.raw.get("rate") in (None, ""):
                reader.error("rate", "请填写提成费率", "required")
            else:
                rate = reader.rate_value(reader.raw["rate"], reader.at("rate"), limit)
            ok = rate is not None
        else:
            reader.reject_present("rate", "逐年变化的费率请填写各年度费率（yearly_rates）")
            yearly = _parse_yearly_rates(reader, schedule, limit) if schedule is not None else None
            ok = yearly is not None
    else:
        ok = False
    if not ok or base is None or schedule is None or period is None or yearly is None:
        return None
    return RoyaltyTerms(
        base=base,
        rate_schedule=schedule,
        reporting_period=period,
        rate=rate,
        unit_amount_fen=unit_amount,
        yearly_rates=yearly,
        annual_minimum_fen=minimum,
        cap_fen=cap,
    )


def _parse_yearly_rates(reader: _Reader, schedule: RateSchedule, limit: Decimal) -> tuple[Decimal, ...] | None:
    raw = reader.raw.get("yearly_rates")
    if raw is None or raw == []:
        reader.error("yearly_rates", "逐年递增或递减的费率须填写各合同年度的费率", "required")
        return None
    if not isinstance(raw, list):
        reader.error("yearly_rates", "各年度费率应为列表")
        return None
    if not 2 <= len(raw) <= MAX_YEARLY_RATES:
        reader.error("yearly_rates", f"请填写2至{MAX_YEARLY_RATES}个年度费率")
        return None
    rates = [reader.rate_value(value, reader.at(f"yearly_rates[{i}]"), limit) for i, value in enumerate(raw)]
    if any(r is None for r in rates):
        return None
    steps = list(pairwise(rates))
    if schedule is RateSchedule.RISING:
        monotonic = all(b >= a for a, b in steps) and rates[-1] > rates[0]  # type: ignore[operator]
        message = "逐年递增的费率应逐年不降低，且末年高于首年"
    else:
        monotonic = all(b <= a for a, b in steps) and rates[-1] < rates[0]  # type: ignore[operator]
        message = "逐年递减的费率应逐年不升高，且末年低于首年"
    if not monotonic:
        reader.error("yearly_rates", message, "not_monotonic")
        return None
    return tuple(rates)  # type: ignore[arg-type]


def _parse_entry_fee_royalty(reader: _Reader, term_months: int | None) -> EntryFeeRoyaltyTerms | None:
    reader.reject_unknown({"mode", "entry_fee_fen", "entry_due_days", "royalty"})
    entry_fee = reader.amount("entry_fee_fen", "入门费")
    due_days = reader.integer("entry_due_days", 0, MAX_DUE_DAYS, "入门费付款期限（天）")
    if due_days is not None and term_months is not None and not _fits_days(due_days, 0, term_months):
        reader.error("entry_due_days", f"入门费付款期限超出许可期限（{term_months}个月）", "outside_term")
        due_days = None
    raw_royalty = reader.obj("royalty", "提成条款")
    royalty = None
    if raw_royalty is not None:
        royalty = _parse_royalty(_Reader(raw_royalty, reader.at("royalty"), reader.errors, reader.limits),
                                 with_mode=False)
    if entry_fee is None or due_days is None or royalty is None:
        return None
    return EntryFeeRoyaltyTerms(entry_fee_fen=entry_fee, entry_due_days=due_days, royalty=royalty)


def _parse_pay_after_use(reader: _Reader, term_months: int | None) -> PayAfterUseTerms | None:
    reader.reject_unknown({"mode", "deferral", "deferral_months", "then"})
    deferral = reader.choice("deferral", Deferral, "先用后付方式")
    months: int | None = None
    remaining = term_months
    if deferral is Deferral.MONTHS:
        months = reader.integer("deferral_months", 1, MAX_DEFERRAL_MONTHS, "先用后付期限（月）")
        if months is not None and term_months is not None:
            if months >= term_months:
                reader.error("deferral_months", f"先用后付期限应短于许可期限（{term_months}个月）", "outside_term")
                months = None
            else:
                remaining = term_months - months
        if months is None:
            remaining = None
    elif deferral is Deferral.FIRST_REVENUE:
        reader.reject_present("deferral_months", "按首笔收入起付时无需填写期限")
    raw_then = reader.obj("then", "先用后付期满后的支付方式")
    then: FeeTerms | None = None
    if raw_then is not None:
        then_mode = raw_then.get("mode")
        if then_mode not in [m.value for m in DEFERRABLE_MODES]:
            reader.error("then.mode", "先用后付之后的支付方式应为一次总付、分期支付、提成支付或入门费加提成")
        else:
            then = _parse_top(raw_then, reader.at("then"), reader.errors, remaining, reader.limits)
    if deferral is None or then is None or (deferral is Deferral.MONTHS and months is None):
        return None
    assert isinstance(then, LumpSumTerms | InstalmentTerms | RoyaltyTerms | EntryFeeRoyaltyTerms)
    return PayAfterUseTerms(deferral=deferral, deferral_months=months, then=then)


def terms_from_json(raw: dict[str, Any], *, limits: FeeLimits | None = None) -> FeeTerms:
    """Read fee terms that were validated when stored (no licence-term checks)."""
    return parse_fee_terms(raw, term_months=None, limits=limits or _LENIENT)


# Stored terms passed validation under the limits of their day; reading them must not fail if the
# limits have been tightened since.
_LENIENT = FeeLimits(Decimal(1), Decimal(1), Decimal(1), 10**15)


# ---------------------------------------------------------------------------------------------
# Facets and descriptions
# ---------------------------------------------------------------------------------------------


def instalment_amounts(total_fen: int, count: int) -> tuple[int, ...]:
    """Equal instalments summing exactly to the total; leftover fen go to the earliest ones."""
    share, leftover = divmod(total_fen, count)
    return tuple(share + (1 if i < leftover else 0) for i in range(count))


def upfront_cost_fen(terms: FeeTerms) -> int:
    """What a licensee pays at or near the start (the catalogue's "upfront cost" facet)."""
    if isinstance(terms, LumpSumTerms):
        return terms.amount_fen
    if isinstance(terms, InstalmentTerms):
        return instalment_amounts(terms.total_fen, terms.count)[0]
    if isinstance(terms, EntryFeeRoyaltyTerms):
        return terms.entry_fee_fen
    return 0


def is_pay_after_use(terms: FeeTerms) -> bool:
    return isinstance(terms, PayAfterUseTerms)


def royalty_of(terms: FeeTerms) -> RoyaltyTerms | None:
    """The running-royalty part of the terms, if any (decides whether the calculator needs a base)."""
    if isinstance(terms, PayAfterUseTerms):
        return royalty_of(terms.then)
    if isinstance(terms, EntryFeeRoyaltyTerms):
        return terms.royalty
    return terms if isinstance(terms, RoyaltyTerms) else None


def format_rate(rate: Decimal) -> str:
    """``Decimal("0.035")`` → ``3.5%``."""
    return f"{(rate * 100).normalize():f}%"


def _yuan(fen: int) -> str:
    return f"¥{format_yuan(fen)}"


def _due(days: int, after: str) -> str:
    return f"于{after}时支付" if days == 0 else f"于{after}后{days}日内支付"


def describe_terms(terms: FeeTerms) -> str:
    """The fee standard in plain Chinese sentences, as a licensee reads it."""
    return _describe(terms, anchor=None)


def _describe(terms: FeeTerms, anchor: str | None) -> str:
    # Due dates count from the written notice (= the licence taking effect), or from the end of a
    # pay-after-use deferral when the terms are what follows one.
    if isinstance(terms, FreeTerms):
        return "免费许可，无需支付许可使用费。"
    if isinstance(terms, LumpSumTerms):
        due = _due(terms.due_days, anchor or "书面通知")
        return f"许可使用费一次总算、一次总付：{_yuan(terms.amount_fen)}，{due}。"
    if isinstance(terms, InstalmentTerms):
        return _describe_instalments(terms, anchor or "许可生效")
    if isinstance(terms, RoyaltyTerms):
        return _describe_royalty(terms) + "。"
    if isinstance(terms, EntryFeeRoyaltyTerms):
        entry = f"预付入门费{_yuan(terms.entry_fee_fen)}，{_due(terms.entry_due_days, anchor or '书面通知')}"
        return f"{entry}；此外，{_describe_royalty(terms.royalty)}。"
    if terms.deferral is Deferral.MONTHS:
        lead = (
            f"先用后付：许可生效后{terms.deferral_months}个月内无需付款，"
            "期满后按以下标准支付，合同年度自期满之日起算"
        )
        after = "先用后付期满"
    else:
        lead = "先用后付：实施该专利取得首笔收入之前无需付款，此后按以下标准支付，合同年度自取得首笔收入之日起算"
        after = "取得首笔收入"
    return f"{lead}——{_describe(terms.then, after)}"


def _describe_instalments(terms: InstalmentTerms, anchor: str) -> str:
    amounts = instalment_amounts(terms.total_fen, terms.count)
    larger = amounts.count(amounts[0])
    if larger == len(amounts):
        each = f"每期{_yuan(amounts[0])}"
    elif larger == 1:
        each = f"首期{_yuan(amounts[0])}，其余每期{_yuan(amounts[-1])}"
    else:
        each = f"前{larger}期每期{_yuan(amounts[0])}，其余每期{_yuan(amounts[-1])}"
    head = f"许可使用费一次总算、分期支付：总额{_yuan(terms.total_fen)}，分{terms.count}期支付（{each}）"
    if terms.month_offsets is not None:
        months = "、".join(str(m) for m in terms.month_offsets)
        return f"{head}，分别于{anchor}后第{months}个月支付。"
    first = _due(terms.first_due_days or 0, anchor)
    return f"{head}，首期{first}，其后每隔{terms.interval_months}个月支付一期。"


def _describe_royalty(terms: RoyaltyTerms) -> str:
    if terms.base is RoyaltyBase.UNITS:
        text = f"许可使用费按实施数量提成，每件{_yuan(terms.unit_amount_fen or 0)}"
    elif terms.rate_schedule is RateSchedule.FIXED:
        text = f"许可使用费按{terms.base.label}的{format_rate(terms.rate or Decimal(0))}提成"
    else:
        last = len(terms.yearly_rates)
        years = [f"第{i}年{format_rate(r)}" for i, r in enumerate(terms.yearly_rates[:-1], start=1)]
        years.append(f"第{last}年及以后{format_rate(terms.yearly_rates[-1])}")
        text = f"许可使用费按{terms.base.label}提成，费率{terms.rate_schedule.label}：{'、'.join(years)}"
    text += f"，{terms.reporting_period.label}报告并支付"
    if terms.annual_minimum_fen:
        text += f"；每个合同年度最低支付{_yuan(terms.annual_minimum_fen)}"
    if terms.cap_fen:
        text += f"；提成总额以{_yuan(terms.cap_fen)}为上限"
    return text


# ---------------------------------------------------------------------------------------------
# Payment timeline (the licensee's cost calculator)
# ---------------------------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later; the 31st becomes the month's last day where needed."""
    index = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def licence_end(start: date, term_months: int) -> date:
    """Last day of a licence of ``term_months`` taking effect on ``start``."""
    return add_months(start, term_months) - timedelta(days=1)


@dataclass(frozen=True)
class Payment:
    due: date
    amount_fen: int
    what: str


@dataclass(frozen=True)
class Timeline:
    start: date
    end: date
    payments: tuple[Payment, ...]
    notes: tuple[str, ...] = ()
    first_due_not_before: date | None = None

    @property
    def total_fen(self) -> int:
        return sum(p.amount_fen for p in self.payments)


@dataclass
class _Plan:
    payments: list[Payment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def payment_timeline(terms: FeeTerms, *, term_months: int, start: date, annual_base: int = 0) -> Timeline:
    """Every payment a licensee should expect over the licence term, and the total.

    ``annual_base`` is the licensee's expected yearly royalty base: fen of sales, profit or added
    output, or units per year. It is spread evenly over the months. Each line is rounded once.
    """
    plan = _Plan()
    first_due_not_before = None
    if isinstance(terms, PayAfterUseTerms):
        if terms.deferral is Deferral.MONTHS:
            months = terms.deferral_months or 0
            first_due_not_before = add_months(start, months)
            plan.notes.append(
                f"先用后付：前{months}个月无需付款，首笔款项不早于{first_due_not_before:%Y-%m-%d}；"
                f"其后的付款标准自该日起算。"
            )
            _plan(terms.then, plan, start, term_months - months, annual_base, skip=months)
        else:
            plan.notes.append("先用后付：取得首笔收入后才开始付款；本测算假设自许可生效之日起即有收入。")
            _plan(terms.then, plan, start, term_months, annual_base)
    else:
        _plan(terms, plan, start, term_months, annual_base)
    payments = sorted(plan.payments, key=lambda p: p.due)
    return Timeline(
        start=start,
        end=licence_end(start, term_months),
        payments=tuple(payments),
        notes=tuple(plan.notes),
        first_due_not_before=first_due_not_before,
    )


def instalment_due(terms: InstalmentTerms, k: int, start: date, skip: int = 0) -> date:
    """Due date of instalment ``k`` (0-based); months count from ``start`` after ``skip`` months."""
    if terms.month_offsets is not None:
        return add_months(start, skip + terms.month_offsets[k])
    return add_months(start, skip + k * (terms.interval_months or 0)) + timedelta(days=terms.first_due_days or 0)


def _plan(terms: FeeTerms, plan: _Plan, start: date, term_months: int, annual_base: int, skip: int = 0) -> None:
    """Plan ``terms`` over ``term_months`` that begin ``skip`` months after ``start`` (a pay-after-use
    deferral). Months are always counted from ``start``, so a month-end start keeps its day."""
    begin = add_months(start, skip)
    if isinstance(terms, FreeTerms):
        plan.notes.append("免费许可，无需付款。")
    elif isinstance(terms, LumpSumTerms):
        plan.payments.append(
            Payment(begin + timedelta(days=terms.due_days), terms.amount_fen, "许可使用费（一次总付）")
        )
    elif isinstance(terms, InstalmentTerms):
        amounts = instalment_amounts(terms.total_fen, terms.count)
        for k, amount in enumerate(amounts):
            due = instalment_due(terms, k, start, skip)
            plan.payments.append(Payment(due, amount, f"第{k + 1}期许可使用费（共{terms.count}期）"))
    elif isinstance(terms, RoyaltyTerms):
        _plan_royalty(terms, plan, start, term_months, annual_base, skip)
    elif isinstance(terms, EntryFeeRoyaltyTerms):
        plan.payments.append(Payment(begin + timedelta(days=terms.entry_due_days), terms.entry_fee_fen, "入门费"))
        _plan_royalty(terms.royalty, plan, start, term_months, annual_base, skip)


def period_name(period: ReportingPeriod, index_in_year: int) -> str:
    if period is ReportingPeriod.MONTHLY:
        return f"第{index_in_year}个月"
    if period is ReportingPeriod.QUARTERLY:
        return f"第{index_in_year}季度"
    if period is ReportingPeriod.SEMIANNUAL:
        return "上半年" if index_in_year == 1 else "下半年"
    return "全年"


def annual_minimum_true_up(minimum_fen: int, royalties_fen: Iterable[int]) -> int:
    """What tops a contract year's royalties up to its minimum (never negative)."""
    return max(0, minimum_fen - sum(royalties_fen))


@dataclass(frozen=True)
class RoyaltyPeriod:
    """One reporting period of a running royalty, counted from the day the royalty terms start."""

    year: int
    index_in_year: int
    months: int
    start: date
    end: date
    year_months: int
    last_in_year: bool


def royalty_periods(period: ReportingPeriod, start: date, term_months: int, skip: int = 0) -> list[RoyaltyPeriod]:
    """The reporting periods over ``term_months`` beginning ``skip`` months after ``start``. Periods
    of 1, 3, 6 or 12 months divide a year, so none straddles two contract years; a last, shorter
    period covers the rest of the term."""
    step = period.months
    periods: list[RoyaltyPeriod] = []
    for year in range(1, (term_months + 11) // 12 + 1):
        year_first = (year - 1) * 12
        year_months = min(12, term_months - year_first)
        offsets = range(year_first, year_first + year_months, step)
        for offset in offsets:
            months = min(step, year_first + year_months - offset)
            periods.append(
                RoyaltyPeriod(
                    year=year,
                    index_in_year=(offset - year_first) // step + 1,
                    months=months,
                    start=add_months(start, skip + offset),
                    end=add_months(start, skip + offset + months) - timedelta(days=1),
                    year_months=year_months,
                    last_in_year=offset == offsets[-1],
                )
            )
    return periods


def _plan_royalty(
    terms: RoyaltyTerms, plan: _Plan, start: date, term_months: int, annual_base: int, skip: int = 0
) -> None:
    lines: list[Payment] = []
    base_label = "数量" if terms.base is RoyaltyBase.UNITS else terms.base.label
    year_royalties: list[int] = []
    for period in royalty_periods(terms.reporting_period, start, term_months, skip):
        if period.index_in_year == 1:
            year_royalties = []
        period_base = Decimal(annual_base) * period.months / 12
        if terms.base is RoyaltyBase.UNITS:
            amount = round_fen(period_base * (terms.unit_amount_fen or 0))
            basis = f"预计{_number(period_base)}件×{_yuan(terms.unit_amount_fen or 0)}"
        else:
            rate = terms.rate_for_year(period.year)
            amount = round_fen(period_base * rate)
            basis = f"预计{base_label}¥{format_yuan(round_fen(period_base))}×{format_rate(rate)}"
        name = period_name(terms.reporting_period, period.index_in_year)
        lines.append(Payment(period.end, amount, f"第{period.year}合同年度{name}提成（{basis}）"))
        year_royalties.append(amount)
        if period.last_in_year and terms.annual_minimum_fen:
            minimum = terms.annual_minimum_fen
            if period.year_months < 12:
                minimum = round_fen(Decimal(minimum) * period.year_months / 12)
            true_up = annual_minimum_true_up(minimum, year_royalties)
            if true_up:
                note = (
                    f"（本年度不足12个月，最低额按{period.year_months}个月折算）" if period.year_months < 12 else ""
                )
                lines.append(Payment(period.end, true_up, f"第{period.year}合同年度最低使用费补足{note}"))
    if terms.cap_fen is not None:
        lines = _apply_cap(lines, terms.cap_fen, plan)
    plan.payments.extend(line for line in lines if line.amount_fen > 0)


def _apply_cap(lines: list[Payment], cap_fen: int, plan: _Plan) -> list[Payment]:
    paid = 0
    reached_on: date | None = None
    truncated = False
    capped: list[Payment] = []
    for line in lines:
        amount = min(line.amount_fen, cap_fen - paid)
        paid += amount
        if reached_on is None and paid == cap_fen:
            reached_on = line.due
        if amount < line.amount_fen:
            truncated = True
            line = Payment(line.due, amount, f"{line.what}（已达提成上限）")
        capped.append(line)
    if truncated and reached_on is not None:
        plan.notes.append(f"提成累计于{reached_on:%Y-%m-%d}达到上限{_yuan(cap_fen)}，此后无需再支付提成。")
    return capped


def _number(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')).normalize():f}"


# ---------------------------------------------------------------------------------------------
# Offer fields, eligibility (Implementing Regulations arts. 85–86) and the state machine
# ---------------------------------------------------------------------------------------------


def offer_field_errors(
    *, term_months: Any, territory: str, field_of_use: str | None, other_terms: str
) -> list[FieldError]:
    """Problems with the offer's non-fee fields."""
    errors: list[FieldError] = []
    if isinstance(term_months, bool) or not isinstance(term_months, int):
        errors.append(FieldError("licence_term_months", "许可期限应为整数（月）"))
    elif not 1 <= term_months <= MAX_LICENCE_TERM_MONTHS:
        errors.append(
            FieldError("licence_term_months", f"许可期限应在1至{MAX_LICENCE_TERM_MONTHS}个月之间", "out_of_range")
        )
    if not territory.strip():
        errors.append(FieldError("territory", "请填写许可地域范围", "required"))
    elif len(territory) > MAX_TERRITORY_LENGTH:
        errors.append(FieldError("territory", f"许可地域不能超过{MAX_TERRITORY_LENGTH}个字符"))
    if field_of_use and len(field_of_use) > MAX_FIELD_OF_USE_LENGTH:
        errors.append(FieldError("field_of_use", f"实施领域不能超过{MAX_FIELD_OF_USE_LENGTH}个字符"))
    if len(other_terms) > MAX_OTHER_TERMS_LENGTH:
        errors.append(FieldError("other_terms", f"其他事项不能超过{MAX_OTHER_TERMS_LENGTH}个字符"))
    return errors


def advertising_words_in(texts: Iterable[str | None], words: Iterable[str]) -> list[str]:
    """The advertising words (商业性宣传用语) found in the texts, in the configured order."""
    joined = "\n".join(t for t in texts if t).lower()
    return [word for word in words if word and word.lower() in joined]


@dataclass(frozen=True)
class PatentFacts:
    """What eligibility needs to know about the patent."""

    patent_type: PatentType
    legal_status: LegalStatus
    expiry_date: date
    annual_fee_paid_until: date | None
    exclusive_licence: bool = False
    sole_licence: bool = False
    proceedings_suspended: bool = False
    pledged: bool = False
    pledgee_consent: bool = False
    has_co_owners: bool = False
    co_owner_consent: bool = False


@dataclass(frozen=True)
class OfferFacts:
    licence_term_months: int
    has_evaluation_report: bool
    territory: str = ""
    field_of_use: str | None = None
    other_terms: str = ""


@dataclass(frozen=True)
class Ineligibility:
    """One condition of Implementing Regulations art. 86 (or §3 of the rulebook) that fails."""

    code: str
    message: str


_NOT_IN_FORCE = {
    LegalStatus.PENDING: "专利尚未授权，授权后才能声明开放许可",
    LegalStatus.LAPSED: "专利权已终止（未缴年费），不能声明开放许可",
    LegalStatus.INVALIDATED: "专利权已被宣告无效，不能声明开放许可",
    LegalStatus.EXPIRED: "专利权期限已届满，不能声明开放许可",
}


def check_eligibility(
    patent: PatentFacts, offer: OfferFacts, *, today: date, advertising_words: Iterable[str]
) -> list[Ineligibility]:
    """Every reason the patent may not (yet) be declared for open licence under these terms."""
    problems: list[Ineligibility] = []
    if patent.legal_status is not LegalStatus.GRANTED:
        problems.append(Ineligibility("not_in_force", _NOT_IN_FORCE[patent.legal_status]))
    elif patent.expiry_date < today:
        problems.append(Ineligibility("not_in_force", f"专利权已于{patent.expiry_date:%Y-%m-%d}期满"))
    if patent.annual_fee_paid_until is None or patent.annual_fee_paid_until < today:
        problems.append(Ineligibility("annual_fee_unpaid", "年费未缴纳（含滞纳期），缴清后才能声明开放许可"))
    if patent.exclusive_licence or patent.sole_licence:
        kind = "独占" if patent.exclusive_licence else "排他"
        problems.append(Ineligibility("exclusive_licence", f"专利存在有效的{kind}实施许可，不能声明开放许可"))
    if patent.proceedings_suspended:
        problems.append(
            Ineligibility("proceedings_suspended", "专利因权属纠纷或财产保全处于中止程序，不能声明开放许可")
        )
    if patent.pledged and not patent.pledgee_consent:
        problems.append(Ineligibility("pledge_without_consent", "专利已质押，须取得质权人同意"))
    if patent.has_co_owners and not patent.co_owner_consent:
        problems.append(Ineligibility("co_owner_consent_missing", "共有专利须取得全体共有人的书面同意"))
    if patent.patent_type is not PatentType.INVENTION and not offer.has_evaluation_report:
        problems.append(
            Ineligibility("evaluation_report_missing", f"{patent.patent_type.label}专利须附专利权评价报告")
        )
    if 1 <= offer.licence_term_months <= MAX_LICENCE_TERM_MONTHS:
        end = licence_end(today, offer.licence_term_months)
        if end > patent.expiry_date:
            problems.append(
                Ineligibility(
                    "term_exceeds_patent",
                    f"许可期限（{offer.licence_term_months}个月，至{end:%Y-%m-%d}）"
                    f"超过专利剩余保护期（至{patent.expiry_date:%Y-%m-%d}）",
                )
            )
    found = advertising_words_in([offer.territory, offer.field_of_use, offer.other_terms], advertising_words)
    if found:
        problems.append(Ineligibility("advertising_words", f"声明文字含有商业性宣传用语：{'、'.join(found)}"))
    return problems


#: The offer's state machine. A rejected offer goes back to draft when the licensor revises it.
OFFER_TRANSITIONS: dict[OfferStatus, frozenset[OfferStatus]] = {
    OfferStatus.DRAFT: frozenset({OfferStatus.SUBMITTED}),
    OfferStatus.SUBMITTED: frozenset({OfferStatus.PUBLISHED, OfferStatus.REJECTED}),
    OfferStatus.REJECTED: frozenset({OfferStatus.DRAFT}),
    OfferStatus.PUBLISHED: frozenset({OfferStatus.WITHDRAWN}),
    OfferStatus.WITHDRAWN: frozenset(),
}
#: At most one series per patent may hold an offer in these states.
LIVE_STATUSES = frozenset({OfferStatus.DRAFT, OfferStatus.SUBMITTED, OfferStatus.PUBLISHED})
EDITABLE_STATUSES = frozenset({OfferStatus.DRAFT, OfferStatus.REJECTED})


def licensor_actions(status: OfferStatus, *, is_org_admin: bool) -> tuple[str, ...]:
    """What the licensor's people may do with an offer in this state (buttons on its page)."""
    actions: list[str] = []
    if status in EDITABLE_STATUSES:
        actions.append("edit")
    if status is OfferStatus.DRAFT:
        actions.append("submit")
    if status is OfferStatus.PUBLISHED:
        actions.append("new_version")
        if is_org_admin:
            actions.append("withdraw")
    return tuple(actions)
