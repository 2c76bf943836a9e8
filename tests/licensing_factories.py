"""Arranging licences: a licensor with a published offer, a verified enterprise, and the notice form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from marketplace.accounts.models import OrganisationKind
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.patents.models import Patent
from tests.factories import Account, make_account
from tests.offer_factories import LUMP_SUM, make_offer, make_patent

PAY_AFTER_USE = {
    "mode": "pay_after_use",
    "deferral": "months",
    "deferral_months": 12,
    "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 30},
}
FREE = {"mode": "free"}


@dataclass
class Listing:
    licensor: Account
    patent: Patent
    offer: OpenLicenceOffer


async def published_listing(db, *, fee_terms: dict[str, Any] | None = None, **patent_overrides: Any) -> Listing:
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    patent = await make_patent(db, licensor, **patent_overrides)
    offer = await make_offer(db, licensor, patent, status=OfferStatus.PUBLISHED, fee_terms=fee_terms or LUMP_SUM)
    return Listing(licensor, patent, offer)


async def enterprise(db) -> Account:
    return await make_account(db, kind=OrganisationKind.ENTERPRISE)


def notice_form(**overrides: str) -> dict[str, str]:
    """The written-notice form as a licensee fills it in (start date defaults to today)."""
    form = {
        "intended_field_of_use": "用于本公司储能电池热管理模组的生产",
        "start_date": "",
        "signatory_name": "王经理",
        "signatory_title": "总经理",
        "idempotency_key": uuid.uuid4().hex,
    }
    form.update(overrides)
    return form
