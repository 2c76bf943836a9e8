"""Request and response shapes of ``/api/v1/recommendations`` and ``/api/v1/profile``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import msgspec

from marketplace.errors import ValidationFailed
from marketplace.matching import rules
from marketplace.matching.inventory import StockRecommendation
from marketplace.matching.models import InterestProfile
from marketplace.matching.services import Recommendation, as_rules

#: ``rules.check_profile`` names two fields as the page's form does; the API's names differ.
_API_FIELDS = {"provinces": "province_codes", "max_upfront": "max_upfront_fen"}


def api_errors(exc: ValidationFailed) -> ValidationFailed:
    """The same problems, against the API's field names."""
    return ValidationFailed([replace(e, field=_API_FIELDS.get(e.field, e.field)) for e in exc.errors], exc.message)


class ProfileWrite(msgspec.Struct, kw_only=True):
    """An enterprise's interest profile (企业兴趣画像). PUT replaces the profile's own fields: a list
    left out is emptied, ``max_upfront_fen`` left out means no budget. ``digest_enabled`` and
    ``push_enabled`` left out (or null) stay as they are; ``clear_learned`` forgets what the
    enterprise viewed and evaluated.

    ``industries``: GB/T 4754 sections, divisions or groups (``C``, ``C38``, ``C384``), at most 10;
    ``keywords``: at most 10, each ≤ 20 characters; ``ipc_codes``: IPC classes or subclasses
    (``H01``, ``H01M``), at most 10; ``province_codes``: two-digit GB/T 2260 codes (``32``);
    ``max_upfront_fen``: the most the enterprise would pay upfront, in fen."""

    industries: list[str] = []
    keywords: list[str] = []
    ipc_codes: list[str] = []
    province_codes: list[str] = []
    max_upfront_fen: int | None = None
    prefers_pay_after_use: bool = False
    digest_enabled: bool | None = None
    push_enabled: bool | None = None
    clear_learned: bool = False

    def profile_input(self) -> rules.ProfileInput:
        return rules.ProfileInput(
            industries=self.industries,
            keywords=self.keywords,
            ipc_codes=self.ipc_codes,
            provinces=self.province_codes,
            max_upfront_fen=self.max_upfront_fen,
            prefers_pay_after_use=self.prefers_pay_after_use,
        )


class ProfileOut(msgspec.Struct):
    """The profile as stored. ``industry_labels`` names each industry code; ``learned_ipc`` and
    ``learned_keywords`` count the IPC subclasses and title terms of the catalogue patents the
    enterprise opened (1 each) and evaluated (3 each). ``has_signals`` is false when nothing in the
    profile (industries, keywords, IPC codes, what was learned) can make a patent relevant: then
    there are no recommendations."""

    industries: list[str]
    industry_labels: list[str]
    keywords: list[str]
    ipc_codes: list[str]
    province_codes: list[str]
    max_upfront_fen: int | None
    prefers_pay_after_use: bool
    digest_enabled: bool
    push_enabled: bool
    learned_ipc: dict[str, int]
    learned_keywords: dict[str, int]
    has_signals: bool
    edited_at: datetime | None

    @classmethod
    def of(cls, profile: InterestProfile) -> ProfileOut:
        return cls(
            industries=list(profile.industries),
            industry_labels=[rules.industry_label(code) for code in profile.industries],
            keywords=list(profile.keywords),
            ipc_codes=list(profile.ipc_codes),
            province_codes=list(profile.province_codes),
            max_upfront_fen=profile.max_upfront_fen,
            prefers_pay_after_use=profile.prefers_pay_after_use,
            digest_enabled=profile.digest_enabled,
            push_enabled=profile.push_enabled,
            learned_ipc=dict(profile.learned_ipc or {}),
            learned_keywords=dict(profile.learned_keywords or {}),
            has_signals=not as_rules(profile).is_empty,
            edited_at=profile.edited_at,
        )


class ReasonOut(msgspec.Struct):
    """One line of why: ``kind`` is industry, ipc, keyword, tier, cost or region."""

    kind: str
    text: str
    points: int


class RecommendationOut(msgspec.Struct):
    """A recommended published offer. ``points`` is the sum of the ``reasons``' points; ``url`` is the
    catalogue page (opened by an enterprise user, it counts as viewed from the API). Money in fen."""

    offer_id: int
    patent_id: int
    title: str
    licensor_name: str
    ipc_subclass: str | None
    payment_mode: str
    payment_mode_label: str
    pay_after_use: bool
    upfront_cost_fen: int
    province_code: str | None
    province_name: str
    points: int
    reasons: list[ReasonOut]
    url: str

    @classmethod
    def of(cls, item: Recommendation) -> RecommendationOut:
        return cls(
            offer_id=item.offer_id,
            patent_id=item.patent_id,
            title=item.title,
            licensor_name=item.licensor_name,
            ipc_subclass=item.ipc_subclass,
            payment_mode=item.payment_mode.value,
            payment_mode_label=item.payment_mode.label,
            pay_after_use=item.pay_after_use,
            upfront_cost_fen=item.upfront_cost_fen,
            province_code=item.province_code,
            province_name=item.province_name,
            points=item.match.points,
            reasons=[ReasonOut(r.kind, r.text, r.points) for r in item.match.reasons],
            url=f"{item.url}?via=api",
        )


class StockRecommendationOut(msgspec.Struct):
    """A recommended stock patent (库存专利): granted, not offered, its holder open to a licence or an
    assignment (``transfer_intents``). No terms are announced, so no cost line; ``url`` is its public
    page, where an enterprise user can state an interest (or ``POST /api/v1/inventory/{patent_id}/interest``)."""

    patent_id: int
    title: str
    licensor_name: str
    ipc_subclass: str | None
    transfer_intents: list[str]
    province_code: str | None
    province_name: str
    points: int
    reasons: list[ReasonOut]
    url: str

    @classmethod
    def of(cls, item: StockRecommendation) -> StockRecommendationOut:
        return cls(
            patent_id=item.patent_id,
            title=item.title,
            licensor_name=item.licensor_name,
            ipc_subclass=item.ipc_subclass,
            transfer_intents=item.transfer_intents,
            province_code=item.province_code,
            province_name=item.province_name,
            points=item.match.points,
            reasons=[ReasonOut(r.kind, r.text, r.points) for r in item.match.reasons],
            url=item.url,
        )


class RecommendationsOut(msgspec.Struct):
    """The calling enterprise's recommendations, best first: published offers (``items``), stock
    patents not yet offered (``inventory``, at most 10), and the profile they come from."""

    items: list[RecommendationOut]
    inventory: list[StockRecommendationOut]
    profile: ProfileOut
