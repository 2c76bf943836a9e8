"""Shapes of the catalogue's JSON API (``GET /api/v1/catalogue``), documented in the OpenAPI schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from marketplace.catalogue.rules import SortOrder
from marketplace.catalogue.services import CatalogueHit, CatalogueResult, Facets, FacetValue
from marketplace.evaluations.rules import NO_EVALUATIONS, Aggregate
from marketplace.evaluations.schemas import AggregateOut
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType

__all__ = ["CatalogueItem", "CatalogueSearchResponse", "FacetValue", "Facets"]


@dataclass(frozen=True)
class CatalogueItem:
    """A published open-licence offer (开放许可声明) as listed in the catalogue. Money in fen."""

    offer_id: int
    patent_id: int
    url: str
    title: str
    licensor_id: int
    licensor_name: str
    patent_type: PatentType
    patent_type_label: str
    ipc_section: str | None
    ipc_class: str | None
    province_code: str | None
    province_name: str
    payment_mode: PaymentMode
    payment_mode_label: str
    pay_after_use: bool
    upfront_cost_fen: int
    trl: int | None
    published_at: datetime
    expiry_date: date
    #: Market evaluations (市场评价) of the patent.
    evaluations: AggregateOut

    @classmethod
    def from_hit(cls, hit: CatalogueHit, evaluations: Aggregate = NO_EVALUATIONS) -> CatalogueItem:
        return cls(
            offer_id=hit.offer_id,
            patent_id=hit.patent_id,
            url=hit.url,
            title=hit.title,
            licensor_id=hit.licensor_organisation_id,
            licensor_name=hit.licensor_name,
            patent_type=hit.patent_type,
            patent_type_label=hit.patent_type.label,
            ipc_section=hit.ipc_section,
            ipc_class=hit.ipc_class,
            province_code=hit.province_code,
            province_name=hit.province_name,
            payment_mode=hit.payment_mode,
            payment_mode_label=hit.payment_mode.label,
            pay_after_use=hit.pay_after_use,
            upfront_cost_fen=hit.upfront_cost_fen,
            trl=hit.trl,
            published_at=hit.published_at,
            expiry_date=hit.expiry_date,
            evaluations=AggregateOut.of(evaluations),
        )


@dataclass(frozen=True)
class CatalogueSearchResponse:
    """One page of results, the total across pages, and facet counts under the current filters."""

    items: list[CatalogueItem]
    total: int
    page: int
    page_size: int
    sort: SortOrder
    facets: Facets

    @classmethod
    def from_result(cls, result: CatalogueResult) -> CatalogueSearchResponse:
        return cls(
            items=[
                CatalogueItem.from_hit(hit, result.evaluations.get(hit.patent_id, NO_EVALUATIONS))
                for hit in result.items
            ],
            total=result.total,
            page=result.page,
            page_size=result.page_size,
            sort=result.sort,
            facets=result.facets,
        )
