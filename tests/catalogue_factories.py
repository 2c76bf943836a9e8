"""Arranging catalogue data: licensors, granted patents and published offers, indexed with upsert_entry.

Rows are created directly through the models (not through the patents or offers services), with
fee terms shaped as docs/fee-terms.md describes.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from marketplace.accounts.models import Organisation, OrganisationKind, VerificationStatus
from marketplace.catalogue.services import upsert_entry
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.patents.models import LegalStatus, Patent, PatentType
from tests.factories import make_uscc

_serial = itertools.count(1)
_TYPE_DIGIT = {PatentType.INVENTION: "1", PatentType.UTILITY_MODEL: "2", PatentType.DESIGN: "3"}
_TERM_YEARS = {PatentType.INVENTION: 20, PatentType.UTILITY_MODEL: 10, PatentType.DESIGN: 15}
BASE_TIME = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def application_number(year: int, patent_type: PatentType, serial: int) -> str:
    """A canonical application number with a correct check character."""
    digits = f"{year}{_TYPE_DIGIT[patent_type]}{serial:07d}"
    total = sum(int(d) * w for d, w in zip(digits, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    check = total % 11
    return f"{digits}.{'X' if check == 10 else check}"


def fee_terms(mode: PaymentMode, amount_fen: int = 0) -> tuple[dict[str, Any], int]:
    """Fee terms for ``mode`` and the upfront cost the offer row stores for them."""
    if mode is PaymentMode.FREE:
        return {"mode": "free"}, 0
    if mode is PaymentMode.LUMP_SUM:
        return {"mode": "lump_sum", "amount_fen": amount_fen, "due_days": 30}, amount_fen
    if mode is PaymentMode.INSTALMENTS:
        terms = {
            "mode": "instalments",
            "total_fen": amount_fen * 3,
            "count": 3,
            "interval_months": 6,
            "first_due_days": 30,
        }
        return terms, amount_fen
    royalty = {"base": "sales", "rate": "0.03", "rate_schedule": "fixed", "reporting_period": "quarterly"}
    if mode is PaymentMode.ROYALTY:
        return {"mode": "royalty", **royalty}, 0
    if mode is PaymentMode.ENTRY_FEE_ROYALTY:
        return {
            "mode": "entry_fee_royalty",
            "entry_fee_fen": amount_fen,
            "entry_due_days": 30,
            "royalty": royalty,
        }, amount_fen
    then = {"mode": "lump_sum", "amount_fen": amount_fen or 3000000, "due_days": 30}
    return {"mode": "pay_after_use", "deferral": "months", "deferral_months": 12, "then": then}, 0


async def make_licensor(
    db,
    name: str | None = None,
    *,
    division_code: str | None = "110108",
    kind: OrganisationKind = OrganisationKind.UNIVERSITY,
) -> Organisation:
    n = next(_serial)
    organisation = Organisation(
        name=name or f"目录测试{kind.label}{n}",
        kind=kind,
        uscc=make_uscc("91" if kind is OrganisationKind.ENTERPRISE else "12"),
        division_code=division_code,
        verification_status=VerificationStatus.VERIFIED,
    )
    db.add(organisation)
    await db.commit()
    return organisation


async def publish_offer(
    db,
    licensor: Organisation,
    title: str,
    abstract: str = "",
    *,
    patent_type: PatentType = PatentType.INVENTION,
    ipc_main: str | None = "H01M 4/36",
    mode: PaymentMode = PaymentMode.LUMP_SUM,
    amount_fen: int = 5_000_000,
    trl: int | None = 5,
    filing_date: date = date(2018, 5, 10),
    published_at: datetime | None = None,
) -> OpenLicenceOffer:
    """A granted patent with a published open-licence offer, already in the catalogue."""
    serial = next(_serial)
    expiry = filing_date.replace(year=filing_date.year + _TERM_YEARS[patent_type]) - timedelta(days=1)
    patent = Patent(
        application_number=application_number(filing_date.year, patent_type, serial),
        patent_type=patent_type,
        title=title,
        abstract=abstract,
        owner_organisation_id=licensor.id,
        filing_date=filing_date,
        grant_date=filing_date + timedelta(days=700),
        expiry_date=expiry,
        legal_status=LegalStatus.GRANTED,
        annual_fee_paid_until=date(2027, 5, 9),
        ipc_main=ipc_main,
        ipc_codes=[ipc_main] if ipc_main else [],
        trl=trl,
        owner=licensor,
    )
    terms, upfront = fee_terms(mode, amount_fen)
    published = published_at or BASE_TIME + timedelta(hours=serial)
    offer = OpenLicenceOffer(
        series_id=str(uuid.uuid4()),
        version=1,
        patent=patent,
        licensor=licensor,
        status=OfferStatus.PUBLISHED,
        payment_mode=mode,
        pay_after_use=mode is PaymentMode.PAY_AFTER_USE,
        fee_terms=terms,
        upfront_cost_fen=upfront,
        licence_term_months=36,
        announcement_number=f"KF{serial:08d}",
        announcement_date=published.date(),
        submitted_at=published - timedelta(days=3),
        published_at=published,
    )
    db.add_all([patent, offer])
    await db.flush()
    await upsert_entry(db, offer)
    await db.commit()
    return offer


async def small_catalogue(db) -> dict[str, OpenLicenceOffer]:
    """Five offers from three licensors in three provinces, published in this order (oldest first).

    石墨烯 is in two titles (graphene_anode, graphene_film) and two abstracts only
    (battery_cooling, anode_method); 锂电池 is in one title (battery_cooling) and one abstract
    (graphene_anode).
    """
    north = await make_licensor(db, "北方测试大学", division_code="110108")
    south_lake = await make_licensor(db, "江南测试研究院", division_code="330106", kind=OrganisationKind.INSTITUTE)
    south_sea = await make_licensor(
        db, "南海测试科技有限公司", division_code="440305", kind=OrganisationKind.ENTERPRISE
    )
    offers = {}
    offers["graphene_anode"] = await publish_offer(
        db,
        north,
        "一种石墨烯复合负极材料及其制备方法",
        "本发明公开一种锂电池负极材料，以硅颗粒为核、导电碳层为壳，提高循环寿命。",
        ipc_main="H01M 4/36",
        mode=PaymentMode.LUMP_SUM,
        amount_fen=5_000_000,
        trl=6,
        filing_date=date(2018, 5, 10),
    )
    offers["battery_cooling"] = await publish_offer(
        db,
        south_lake,
        "锂电池热管理装置",
        "一种采用石墨烯导热膜的电池包散热结构，适用于新能源汽车。",
        patent_type=PatentType.UTILITY_MODEL,
        ipc_main="H01M 10/613",
        mode=PaymentMode.PAY_AFTER_USE,
        trl=5,
        filing_date=date(2021, 3, 2),
    )
    offers["sewage"] = await publish_offer(
        db,
        south_sea,
        "一种污水处理系统",
        "通过生物膜反应器去除氨氮，出水稳定达标。",
        ipc_main="C02F 9/00",
        mode=PaymentMode.FREE,
        trl=7,
        filing_date=date(2016, 8, 1),
    )
    offers["graphene_film"] = await publish_offer(
        db,
        south_sea,
        "石墨烯导热薄膜",
        "用于芯片散热的柔性薄膜外观。",
        patent_type=PatentType.DESIGN,
        ipc_main=None,
        mode=PaymentMode.ROYALTY,
        trl=None,
        filing_date=date(2022, 1, 5),
    )
    offers["anode_method"] = await publish_offer(
        db,
        north,
        "一种负极材料的制备方法",
        "以石墨烯为导电剂制备锂离子电池负极，降低内阻。",
        ipc_main="H01M 4/04",
        mode=PaymentMode.ENTRY_FEE_ROYALTY,
        amount_fen=1_000_000,
        trl=4,
        filing_date=date(2019, 11, 20),
    )
    return offers
