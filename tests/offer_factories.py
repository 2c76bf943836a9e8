"""Arranging patents and open-licence offers for offer tests, directly through the models."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from typing import Any

from marketplace.clock import now_utc, today
from marketplace.offers import rules
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.patents.models import LegalStatus, Patent, PatentType
from tests.factories import Account

_serial = itertools.count(1)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
LUMP_SUM = {"mode": "lump_sum", "amount_fen": 5_000_000, "due_days": 30}
ROYALTY = {
    "mode": "royalty",
    "base": "sales",
    "rate": "0.035",
    "rate_schedule": "fixed",
    "reporting_period": "quarterly",
    "annual_minimum_fen": 2_000_000,
    "cap_fen": None,
}
_TYPE_DIGIT = {PatentType.INVENTION: "1", PatentType.UTILITY_MODEL: "2", PatentType.DESIGN: "3"}
_TERM_YEARS = {PatentType.INVENTION: 20, PatentType.UTILITY_MODEL: 10, PatentType.DESIGN: 15}


def application_number(year: int, patent_type: PatentType, serial: int) -> str:
    """A canonical application number with a correct check character."""
    digits = f"{year}{_TYPE_DIGIT[patent_type]}{serial:07d}"
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return f"{digits}.{'X' if check == 10 else check}"


async def make_patent(session, owner: Account, **overrides: Any) -> Patent:
    """A granted patent in force with its annual fee paid, owned by the account's organisation."""
    n = next(_serial)
    patent_type = overrides.pop("patent_type", PatentType.INVENTION)
    filing = overrides.pop("filing_date", date(today().year - 4, 3, 10))
    expiry = date(filing.year + _TERM_YEARS[patent_type], filing.month, filing.day) - timedelta(days=1)
    values: dict[str, Any] = {
        "application_number": application_number(filing.year, patent_type, n),
        "patent_type": patent_type,
        "title": f"一种高导热复合相变储能材料及其制备方法{n}",
        "abstract": "本发明公开了一种复合相变储能材料，导热系数高，适用于电池热管理。",
        "owner_organisation_id": owner.organisation.id,
        "filing_date": filing,
        "grant_date": date(filing.year + 2, 6, 1),
        "expiry_date": expiry,
        "legal_status": LegalStatus.GRANTED,
        "annual_fee_paid_until": today() + timedelta(days=200),
        "ipc_main": "C09K5/06",
        "trl": 6,
    }
    values.update(overrides)
    patent = Patent(**values)
    session.add(patent)
    await session.commit()
    return patent


async def make_offer(
    session,
    owner: Account,
    patent: Patent,
    *,
    status: OfferStatus = OfferStatus.DRAFT,
    fee_terms: dict[str, Any] | None = None,
    licence_term_months: int = 36,
    **overrides: Any,
) -> OpenLicenceOffer:
    """An offer row in any state, bypassing the workflow (for access and listing tests)."""
    terms = rules.terms_from_json(fee_terms or LUMP_SUM)
    published = status in (OfferStatus.PUBLISHED, OfferStatus.WITHDRAWN)
    values: dict[str, Any] = {
        "series_id": str(uuid.uuid4()),
        "version": 1,
        "patent_id": patent.id,
        "licensor_organisation_id": owner.organisation.id,
        "status": status,
        "payment_mode": terms.mode,
        "pay_after_use": rules.is_pay_after_use(terms),
        "fee_terms": terms.to_json(),
        "upfront_cost_fen": rules.upfront_cost_fen(terms),
        "licence_term_months": licence_term_months,
        "territory": "中国大陆",
        "created_by_user_id": owner.user.id,
        "announcement_number": f"CN-OL-{next(_serial):06d}" if published else None,
        "announcement_date": today() if published else None,
        "published_at": now_utc() if published else None,
        "submitted_at": now_utc() if status is not OfferStatus.DRAFT else None,
    }
    values.update(overrides)
    offer = OpenLicenceOffer(**values)
    session.add(offer)
    await session.commit()
    return offer


def royalty_form(patent_id: int | str = "", **overrides: str) -> dict[str, str]:
    """The offer form as a licensor fills it in for a 3.5 % sales royalty with a yearly minimum."""
    form = {
        "patent_id": str(patent_id),
        "fee_terms.mode": "royalty",
        "fee_terms.base": "sales",
        "fee_terms.rate_schedule": "fixed",
        "fee_terms.rate_percent": "3.5",
        "fee_terms.reporting_period": "quarterly",
        "fee_terms.annual_minimum_yuan": "20,000",
        "licence_term_months": "36",
        "territory": "中国大陆",
        "field_of_use": "电池热管理",
        "other_terms": "被许可人应在每个报告期结束后15日内提交销售报告。",
    }
    form.update(overrides)
    return form


def offer_json(patent_id: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patent_id": patent_id,
        "fee_terms": dict(LUMP_SUM),
        "licence_term_months": 36,
        "territory": "中国大陆",
        "field_of_use": "储能设备",
        "other_terms": "",
    }
    body.update(overrides)
    return body
