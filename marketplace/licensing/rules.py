"""Pure rules of licence contracts (开放许可实施合同): numbering, the acceptance form, the licence
period, the payment obligations the accepted terms create, termination, and the state machine.

No I/O: dates, terms and facts arrive as arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from marketplace.billing.rules import PlanItem, payment_plan
from marketplace.errors import FieldError, ValidationFailed
from marketplace.licensing.models import ContractStatus, EndReason
from marketplace.offers.rules import FeeTerms, FreeTerms, PayAfterUseTerms, licence_end
from marketplace.patents.models import LegalStatus

CONTRACT_NUMBER_PREFIX = "OL"
#: How far ahead a licensee may set the licence's start date.
MAX_START_DELAY_DAYS = 90
MAX_FIELD_OF_USE_LENGTH = 300
MAX_SIGNATORY_LENGTH = 100
MAX_REASON_LENGTH = 2000
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
LICENCE_TYPE = "普通实施许可"
ACCEPTANCE_FIELDS = ("intended_field_of_use", "start_date", "signatory_name", "signatory_title", "idempotency_key")

#: Contracts in these states are live: at most one per licensee and offer.
LIVE_STATUSES = frozenset({ContractStatus.AWAITING_PAYMENT, ContractStatus.ACTIVE})
CONTRACT_TRANSITIONS: dict[ContractStatus, frozenset[ContractStatus]] = {
    ContractStatus.AWAITING_PAYMENT: frozenset({ContractStatus.ACTIVE, ContractStatus.ENDED}),
    ContractStatus.ACTIVE: frozenset({ContractStatus.ENDED}),
    ContractStatus.ENDED: frozenset(),
}
#: A patent in one of these states ends every contract on it.
ENDING_PATENT_STATUSES: dict[LegalStatus, EndReason] = {
    LegalStatus.LAPSED: EndReason.PATENT_LAPSED,
    LegalStatus.INVALIDATED: EndReason.PATENT_INVALIDATED,
    LegalStatus.EXPIRED: EndReason.PATENT_EXPIRED,
}


def contract_number(year: int, sequence: int) -> str:
    """``OL2026000123``: the prefix, the year of signing, then a six-digit sequence within the year."""
    return f"{CONTRACT_NUMBER_PREFIX}{year}{sequence:06d}"


# ---------------------------------------------------------------------------------------------
# The acceptance form (书面通知)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acceptance:
    """What the licensee states when taking the licence."""

    intended_field_of_use: str
    start_date: date
    signatory_name: str
    signatory_title: str
    idempotency_key: str


def _text(raw: Any) -> str:
    return raw.strip() if isinstance(raw, str) else ""


def _date(raw: Any) -> date | None:
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None


def parse_acceptance(raw: dict[str, Any], *, today: date) -> Acceptance:
    """Validate the acceptance form (or API body) and report every problem at once."""
    errors: list[FieldError] = []
    field_of_use = _text(raw.get("intended_field_of_use"))
    if not field_of_use:
        errors.append(FieldError("intended_field_of_use", "请填写拟实施的领域（产品或用途）", "required"))
    elif len(field_of_use) > MAX_FIELD_OF_USE_LENGTH:
        errors.append(FieldError("intended_field_of_use", f"实施领域不能超过{MAX_FIELD_OF_USE_LENGTH}个字符"))
    raw_start = raw.get("start_date")
    start = today if raw_start in (None, "") else _date(raw_start)
    if start is None:
        errors.append(FieldError("start_date", "生效日期格式应为 YYYY-MM-DD"))
    elif start < today:
        errors.append(FieldError("start_date", "生效日期不能早于今天（书面通知不能追溯生效）", "out_of_range"))
    elif start > today + timedelta(days=MAX_START_DELAY_DAYS):
        errors.append(FieldError("start_date", f"生效日期最晚为今天起{MAX_START_DELAY_DAYS}日内", "out_of_range"))
    for key, what in (("signatory_name", "签署人姓名"), ("signatory_title", "签署人职务")):
        value = _text(raw.get(key))
        if not value:
            errors.append(FieldError(key, f"请填写{what}", "required"))
        elif len(value) > MAX_SIGNATORY_LENGTH:
            errors.append(FieldError(key, f"{what}不能超过{MAX_SIGNATORY_LENGTH}个字符"))
    key = _text(raw.get("idempotency_key"))
    if not IDEMPOTENCY_KEY.match(key):
        errors.append(FieldError("idempotency_key", "请求标识无效，请刷新页面后重新提交", "invalid"))
    if errors:
        raise ValidationFailed(errors)
    assert start is not None
    return Acceptance(
        intended_field_of_use=field_of_use,
        start_date=start,
        signatory_name=_text(raw.get("signatory_name")),
        signatory_title=_text(raw.get("signatory_title")),
        idempotency_key=key,
    )


def contract_end(start: date, term_months: int, patent_expiry: date) -> date:
    """The licence ends after the offer's term, but never after the patent expires."""
    return min(licence_end(start, term_months), patent_expiry)


def initial_status(terms: FeeTerms) -> ContractStatus:
    """Free and pay-after-use licences take effect at once; the others once the first payment arrives."""
    if isinstance(terms, FreeTerms | PayAfterUseTerms):
        return ContractStatus.ACTIVE
    return ContractStatus.AWAITING_PAYMENT


# ---------------------------------------------------------------------------------------------
# Payment obligations
# ---------------------------------------------------------------------------------------------


#: A payment obligation stored with the contract is a billing plan item.
Obligation = PlanItem


def obligations(
    terms: FeeTerms, *, start: date, end: date, term_months: int, first_revenue_on: date | None = None
) -> list[Obligation]:
    """Every payment obligation of a licence that runs from ``start`` to ``end`` (inclusive): the
    billing payment plan, stored with the contract (see :func:`marketplace.billing.rules.payment_plan`).

    ``term_months`` is the offer's term; ``end`` may be earlier when the patent expires first, in
    which case royalty periods stop at ``end`` and fixed payments fall due no later than ``end``.
    """
    return payment_plan(terms, start=start, end=end, term_months=term_months, first_revenue_on=first_revenue_on)


# ---------------------------------------------------------------------------------------------
# Termination by agreement (协商解除)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TerminationRequest:
    end_date: date
    reason: str


def parse_termination(raw: dict[str, Any], *, today: date, contract_end_date: date) -> TerminationRequest:
    errors: list[FieldError] = []
    reason = _text(raw.get("reason"))
    if not reason:
        errors.append(FieldError("reason", "请说明解除原因", "required"))
    elif len(reason) > MAX_REASON_LENGTH:
        errors.append(FieldError("reason", f"原因不能超过{MAX_REASON_LENGTH}个字符"))
    raw_end = raw.get("end_date")
    end = today if raw_end in (None, "") else _date(raw_end)
    if end is None:
        errors.append(FieldError("end_date", "解除日期格式应为 YYYY-MM-DD"))
    elif end < today:
        errors.append(FieldError("end_date", "解除日期不能早于今天", "out_of_range"))
    elif end > contract_end_date:
        errors.append(FieldError("end_date", f"解除日期不能晚于合同到期日{contract_end_date:%Y-%m-%d}", "out_of_range"))
    if errors:
        raise ValidationFailed(errors)
    assert end is not None
    return TerminationRequest(end_date=end, reason=reason)


def contract_actions(
    status: ContractStatus,
    *,
    side: str,
    termination_pending: bool,
    requested_by_me: bool,
    end_agreed: bool = False,
) -> tuple[str, ...]:
    """What a party (``side`` is "licensee" or "licensor") may do with a contract in this state."""
    if status not in LIVE_STATUSES or side not in ("licensee", "licensor") or end_agreed:
        return ()
    if not termination_pending:
        return ("request_termination",)
    return ("cancel_termination",) if requested_by_me else ("confirm_termination", "cancel_termination")
