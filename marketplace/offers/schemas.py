"""Request and response shapes of the offers API, and the HTML form's mapping to fee terms.

The form shows amounts in yuan and rates in percent; the fee-terms JSON (docs/fee-terms.md) holds
fen and decimal fractions. Form fields are named after the JSON path with ``_fen`` → ``_yuan`` and
``rate`` → ``rate_percent``, so an error at ``fee_terms.then.amount_fen`` is shown beside the input
``fee_terms.then.amount_yuan``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from marketplace.errors import FieldError, ValidationFailed
from marketplace.files.services import Upload
from marketplace.money import format_yuan, parse_yuan
from marketplace.offers import rules
from marketplace.offers.models import OpenLicenceOffer
from marketplace.offers.services import OfferInput

# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


class OfferWrite(msgspec.Struct, kw_only=True):
    """The licensor's fields of an offer (PUT). ``fee_terms`` follows docs/fee-terms.md."""

    fee_terms: dict[str, Any]
    licence_term_months: int
    territory: str = "中国大陆"
    field_of_use: str | None = None
    other_terms: str = ""

    def to_input(self) -> OfferInput:
        return OfferInput(
            fee_terms=self.fee_terms,
            licence_term_months=self.licence_term_months,
            territory=self.territory,
            field_of_use=self.field_of_use,
            other_terms=self.other_terms,
        )


class OfferCreate(OfferWrite, kw_only=True):
    """A new draft offer for one of the caller organisation's patents (POST)."""

    patent_id: int


class ReasonBody(msgspec.Struct):
    reason: str = ""


class WithdrawBody(msgspec.Struct):
    reason: str = ""
    co_owners_consented: bool = False


class ApproveBody(msgspec.Struct):
    announcement_number: str = ""
    announcement_date: str = ""


class EligibilityOut(msgspec.Struct):
    code: str
    message: str


class OfferOut(msgspec.Struct):
    id: int
    series_id: str
    version: int
    status: str
    status_label: str
    patent_id: int
    patent_number: str
    patent_title: str
    patent_type: str
    patent_expiry_date: date
    licensor_organisation_id: int
    licensor_name: str
    payment_mode: str
    payment_mode_label: str
    pay_after_use: bool
    upfront_cost_fen: int
    fee_terms: dict[str, Any]
    description: str
    licence_term_months: int
    territory: str
    field_of_use: str | None
    other_terms: str
    evaluation_report_file_id: int | None
    announcement_number: str | None
    announcement_date: date | None
    rejection_reason: str | None
    withdrawal_reason: str | None
    submitted_at: datetime | None
    published_at: datetime | None
    withdrawn_at: datetime | None
    eligibility: list[EligibilityOut] | None = None

    @classmethod
    def of(cls, offer: OpenLicenceOffer, *, eligibility: list[rules.Ineligibility] | None = None) -> OfferOut:
        patent = offer.patent
        return cls(
            id=offer.id,
            series_id=offer.series_id,
            version=offer.version,
            status=offer.status.value,
            status_label=offer.status.label,
            patent_id=patent.id,
            patent_number=patent.patent_number,
            patent_title=patent.title,
            patent_type=patent.patent_type.value,
            patent_expiry_date=patent.expiry_date,
            licensor_organisation_id=offer.licensor_organisation_id,
            licensor_name=offer.licensor.name,
            payment_mode=offer.payment_mode.value,
            payment_mode_label=offer.payment_mode.label,
            pay_after_use=offer.pay_after_use,
            upfront_cost_fen=offer.upfront_cost_fen,
            fee_terms=offer.fee_terms,
            description=rules.describe_terms(rules.terms_from_json(offer.fee_terms)),
            licence_term_months=offer.licence_term_months,
            territory=offer.territory,
            field_of_use=offer.field_of_use,
            other_terms=offer.other_terms,
            evaluation_report_file_id=offer.evaluation_report_file_id,
            announcement_number=offer.announcement_number,
            announcement_date=offer.announcement_date,
            rejection_reason=offer.rejection_reason,
            withdrawal_reason=offer.withdrawal_reason,
            submitted_at=offer.submitted_at,
            published_at=offer.published_at,
            withdrawn_at=offer.withdrawn_at,
            eligibility=None if eligibility is None else [EligibilityOut(p.code, p.message) for p in eligibility],
        )


class OfferPage(msgspec.Struct):
    items: list[OfferOut]
    total: int
    page: int
    per_page: int


class PaymentOut(msgspec.Struct):
    due: date
    amount_fen: int
    description: str


class CostEstimateOut(msgspec.Struct):
    offer_id: int
    start: date
    end: date
    annual_base: int
    payments: list[PaymentOut]
    total_fen: int
    notes: list[str]
    first_due_not_before: date | None

    @classmethod
    def of(cls, offer_id: int, annual_base: int, timeline: rules.Timeline) -> CostEstimateOut:
        return cls(
            offer_id=offer_id,
            start=timeline.start,
            end=timeline.end,
            annual_base=annual_base,
            payments=[PaymentOut(p.due, p.amount_fen, p.what) for p in timeline.payments],
            total_fen=timeline.total_fen,
            notes=list(timeline.notes),
            first_due_not_before=timeline.first_due_not_before,
        )


# ---------------------------------------------------------------------------------------------
# HTML form
# ---------------------------------------------------------------------------------------------

FEE_PREFIX = "fee_terms"
THEN_PREFIX = "fee_terms.then"
#: Prefixes whose mode select swaps its fields (hx-get /offers/fee-fields?prefix=…).
SWAPPABLE_PREFIXES = (FEE_PREFIX, THEN_PREFIX)

_ROYALTY_FIELDS: tuple[tuple[str, str], ...] = (
    ("base", "text"),
    ("rate", "percent"),
    ("unit_amount_fen", "yuan"),
    ("rate_schedule", "text"),
    ("yearly_rates", "percent_list"),
    ("reporting_period", "text"),
    ("annual_minimum_fen", "yuan"),
    ("cap_fen", "yuan"),
)
_MODE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "free": (),
    "lump_sum": (("amount_fen", "yuan"), ("due_days", "int")),
    "instalments": (
        ("total_fen", "yuan"),
        ("count", "int"),
        ("interval_months", "int"),
        ("first_due_days", "int"),
        ("month_offsets", "int_list"),
    ),
    "royalty": _ROYALTY_FIELDS,
    "entry_fee_royalty": (("entry_fee_fen", "yuan"), ("entry_due_days", "int"), ("royalty", "royalty")),
    "pay_after_use": (("deferral", "text"), ("deferral_months", "int"), ("then", "then")),
}
_LIST_SPLIT = re.compile(r"[\s,，、;；]+")
_MAX_NUMBER_TEXT = 24


def form_field(path: str) -> str:
    """The form input that shows an error reported at a fee-terms JSON path."""
    path = re.sub(r"\[\d+\]$", "", path)
    head, dot, last = path.rpartition(".")
    if last.endswith("_fen"):
        last = last[: -len("_fen")] + "_yuan"
    elif last in ("rate", "yearly_rates"):
        last += "_percent"
    return f"{head}{dot}{last}"


def for_form(exc: ValidationFailed) -> ValidationFailed:
    """The same errors, keyed by form input names."""
    return ValidationFailed([FieldError(form_field(e.field), e.message, e.code) for e in exc.errors], exc.message)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _read_value(kind: str, text: str, path: str, errors: list[FieldError]) -> Any:
    if kind == "text":
        return text
    if kind == "int":
        try:
            return int(text) if len(text) <= _MAX_NUMBER_TEXT else text
        except ValueError:
            return text
    if kind == "yuan":
        try:
            if len(text) > _MAX_NUMBER_TEXT:
                raise ValueError
            return parse_yuan(text)
        except (ValueError, ArithmeticError):
            errors.append(FieldError(path, "请填写有效的金额（元），例如 50000 或 50,000.00"))
            return None
    if kind == "percent":
        return _percent(text, path, errors)
    items = [item for item in _LIST_SPLIT.split(text) if item]
    if kind == "int_list":
        if not all(item.isdigit() and len(item) <= _MAX_NUMBER_TEXT for item in items):
            errors.append(FieldError(path, "请填写以逗号分隔的整数，例如 0, 6, 12"))
            return None
        return [int(item) for item in items]
    rates = [_percent(item, path, errors) for item in items]
    return None if any(r is None for r in rates) else rates


def _percent(text: str, path: str, errors: list[FieldError]) -> str | None:
    cleaned = text.removesuffix("%").removesuffix("％").strip()
    try:
        if len(cleaned) > _MAX_NUMBER_TEXT:
            raise InvalidOperation
        value = Decimal(cleaned)
        if not value.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        errors.append(FieldError(path, "费率请填写百分数，例如 3.5 表示 3.5%"))
        return None
    return f"{(value / 100).normalize():f}"


def _terms_from_form(data: dict[str, Any], prefix: str, errors: list[FieldError], mode: str | None) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if mode is not None:
        raw["mode"] = mode
    fields = _ROYALTY_FIELDS if mode is None else _MODE_FIELDS.get(mode, ())
    for key, kind in fields:
        path = f"{prefix}.{key}"
        if kind == "royalty":
            raw[key] = _terms_from_form(data, path, errors, None)
            continue
        if kind == "then":
            then_mode = _text(data.get(f"{path}.mode"))
            raw[key] = _terms_from_form(data, path, errors, then_mode or None) if then_mode else None
            continue
        text = _text(data.get(form_field(path)))
        if text:
            value = _read_value(kind, text, path, errors)
            if value is not None:
                raw[key] = value
    return raw


async def _upload(value: Any) -> Upload | None:
    """An uploaded file from the form, or None when no file was chosen."""
    filename = getattr(value, "filename", None)
    if not filename:
        return None
    return Upload(filename=filename, content=await value.read())


async def offer_input_from_form(data: dict[str, Any]) -> tuple[Any, OfferInput]:
    """(patent_id, OfferInput) from the offer form; unreadable values become ``parse_errors``."""
    errors: list[FieldError] = []
    patent_text = _text(data.get("patent_id"))
    patent_id: Any = None
    if patent_text.isdigit() and len(patent_text) <= 18:
        patent_id = int(patent_text)
    elif patent_text:
        errors.append(FieldError("patent_id", "请选择本机构的专利"))
    mode = _text(data.get(f"{FEE_PREFIX}.mode"))
    fee_terms = _terms_from_form(data, FEE_PREFIX, errors, mode or None) if mode else None
    term_text = _text(data.get("licence_term_months"))
    term: Any = term_text
    if term_text.isdigit() and len(term_text) <= 6:
        term = int(term_text)
    return patent_id, OfferInput(
        fee_terms=fee_terms,
        licence_term_months=term,
        territory=_text(data.get("territory")),
        field_of_use=_text(data.get("field_of_use")) or None,
        other_terms=_text(data.get("other_terms")),
        evaluation_report=await _upload(data.get("evaluation_report")),
        parse_errors=tuple(errors),
    )


def _show(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "yuan":
        return format_yuan(int(value)).replace(",", "")
    if kind == "percent":
        return f"{(Decimal(str(value)) * 100).normalize():f}"
    if kind == "int_list":
        return ", ".join(str(v) for v in value)
    if kind == "percent_list":
        return ", ".join(f"{(Decimal(str(v)) * 100).normalize():f}" for v in value)
    return str(value)


def _values_of(raw: dict[str, Any], prefix: str, values: dict[str, str], royalty_only: bool = False) -> None:
    mode = raw.get("mode")
    if mode is not None:
        values[f"{prefix}.mode"] = str(mode)
    fields = _ROYALTY_FIELDS if royalty_only else _MODE_FIELDS.get(str(mode), ())
    for key, kind in fields:
        path = f"{prefix}.{key}"
        nested = raw.get(key)
        if kind == "royalty" and isinstance(nested, dict):
            _values_of(nested, path, values, royalty_only=True)
        elif kind == "then" and isinstance(nested, dict):
            _values_of(nested, path, values)
        elif kind not in ("royalty", "then"):
            values[form_field(path)] = _show(kind, nested)


def form_values(offer: OpenLicenceOffer) -> dict[str, str]:
    """The offer as the form's input values (yuan, percent)."""
    values: dict[str, str] = {
        "patent_id": str(offer.patent_id),
        "licence_term_months": str(offer.licence_term_months),
        "territory": offer.territory,
        "field_of_use": offer.field_of_use or "",
        "other_terms": offer.other_terms,
    }
    _values_of(offer.fee_terms, FEE_PREFIX, values)
    return values


def submitted_values(data: dict[str, Any]) -> dict[str, str]:
    """What the person typed, to put back into the form after an error."""
    return {key: value for key, value in data.items() if isinstance(value, str)}
