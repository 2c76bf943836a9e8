"""Catalogue use cases: keeping the search table in step with published offers, and searching it."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.catalogue.models import CatalogueEntry
from marketplace.catalogue.rules import index_tokens
from marketplace.clock import now_utc
from marketplace.offers.models import OpenLicenceOffer


def _ipc_parts(ipc: str | None) -> tuple[str | None, str | None]:
    code = (ipc or "").replace(" ", "").upper()
    return (code[:1] or None, code[:3] if len(code) >= 3 else None)


async def upsert_entry(session: AsyncSession, offer: OpenLicenceOffer) -> CatalogueEntry:
    """Put a published offer in the catalogue (or refresh its row). Call in the publishing transaction."""
    patent = offer.patent
    licensor = offer.licensor
    section, ipc_class = _ipc_parts(patent.ipc_main)
    entry = await session.scalar(select(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id))
    if entry is None:
        entry = CatalogueEntry(offer_id=offer.id)
        session.add(entry)
    entry.patent_id = patent.id
    entry.licensor_organisation_id = licensor.id
    entry.title = patent.title
    entry.licensor_name = licensor.name
    entry.search_tokens = index_tokens(
        patent.title, patent.abstract, " ".join([patent.application_scenarios or "", offer.field_of_use or ""])
    )
    entry.patent_type = patent.patent_type
    entry.ipc_section = section
    entry.ipc_class = ipc_class
    entry.province_code = licensor.province_code
    entry.payment_mode = offer.payment_mode
    entry.pay_after_use = offer.pay_after_use
    entry.upfront_cost_fen = offer.upfront_cost_fen
    entry.trl = patent.trl
    entry.published_at = offer.published_at or now_utc()
    entry.expiry_date = patent.expiry_date
    await session.flush()
    return entry


async def remove_entry(session: AsyncSession, offer_id: int) -> None:
    """Take an offer out of the catalogue (withdrawn, superseded, patent no longer in force)."""
    await session.execute(delete(CatalogueEntry).where(CatalogueEntry.offer_id == offer_id))
