"""Ranking in the database agrees with the reference scoring, on SQLite and PostgreSQL: the order,
the points and the reasons of recommendations over a small catalogue."""

from __future__ import annotations

from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.catalogue.models import CatalogueEntry
from marketplace.matching import rules, services
from tests.catalogue_factories import small_catalogue
from tests.factories import make_account


async def _scores_agree(db, profile: rules.Profile, organisation_id: int) -> list:
    dialect = db.get_bind().dialect.name
    query = services.ranking_query(dialect, profile, organisation_id, limit=50)
    rows = list(await db.execute(query))
    for row in rows:
        match = rules.score(profile, services.item_of(row))
        assert match.relevant, row.title
        assert row.total == match.points, (row.title, row.total, match.why)
    return rows


async def test_industry_keyword_and_boosters_rank_and_explain(db):
    offers = await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    profile = rules.Profile(industries=("C384",), keywords=("石墨烯",), provinces=("33",))
    rows = await _scores_agree(db, profile, enterprise.organisation.id)
    titles = [row.title for row in rows]
    # Both H01M patents are 电池制造; the sewage plant is neither in the industry nor has the keyword.
    assert offers["sewage"].patent.title not in titles
    recommended = await services.rank(db, profile, enterprise.organisation.id)
    first = recommended[0]
    assert first.title == "锂电池热管理装置"  # 电池制造 + 石墨烯 + pay after use + same province (浙江)
    assert [reason.text for reason in first.match.reasons] == [
        "IPC H01M ↔ 电池制造", "关键词 石墨烯", "无需预付费用", "先用后付", "同在浙江省",
    ]  # fmt: skip
    assert first.match.points == 30 + 15 + 6 + 4 + 6
    # The design patent has no IPC: only its keyword makes it relevant.
    film = next(item for item in recommended if item.title == "石墨烯导热薄膜")
    assert film.match.reasons[0].kind == "keyword"


async def test_a_profile_without_signals_gets_nothing_and_own_offers_are_left_out(db):
    offers = await small_catalogue(db)
    owner_id = offers["graphene_film"].licensor_organisation_id
    assert await services.rank(db, rules.Profile(provinces=("44",)), owner_id) == []
    profile = rules.Profile(keywords=("石墨烯",), ipc_codes=("C02F",))
    rows = await _scores_agree(db, profile, owner_id)
    licensors = {row.licensor_organisation_id for row in rows}
    assert owner_id not in licensors and rows


async def test_learned_and_class_signals_and_budget(db):
    await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    profile = rules.Profile(
        ipc_codes=("H01",), learned_ipc={"C02F": 3}, learned_keywords={"负极": 2}, max_upfront_fen=1_000_000
    )
    rows = await _scores_agree(db, profile, enterprise.organisation.id)
    entries = {row.title: row for row in rows}
    assert "一种污水处理系统" in entries
    over = rules.score(profile, services.item_of(entries["一种石墨烯复合负极材料及其制备方法"]))
    assert "首付 ¥50,000.00 超出预算" in over.why
    total = await db.scalar(select(CatalogueEntry.id).limit(1))
    assert total is not None


async def test_each_keyword_matches_on_its_own(db):
    """Several keywords, explicit and learned: each branch searches its own word (a shared query
    parameter once made every branch search the last keyword)."""
    offers = await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    profile = rules.Profile(keywords=("污水", "石墨烯", "锂电池"), learned_keywords={"负极": 1, "导热": 1})
    rows = await _scores_agree(db, profile, enterprise.organisation.id)
    by_title = {row.title: rules.score(profile, services.item_of(row)) for row in rows}
    assert "关键词 污水" in by_title[offers["sewage"].patent.title].why
    assert "关键词 石墨烯" in by_title["石墨烯导热薄膜"].why and "您关注过 导热" in by_title["石墨烯导热薄膜"].why
    assert len(rows) == 5


async def test_a_patent_the_enterprise_holds_a_live_licence_for_is_left_out(db):
    from sqlalchemy.orm import selectinload

    from marketplace.catalogue.services import upsert_entry
    from marketplace.offers.models import OpenLicenceOffer
    from tests.billing_factories import LUMP_SUM, licence

    taken = await licence(db, fee_terms=LUMP_SUM, ipc_main="H01M 4/36")
    offer = await db.get(
        OpenLicenceOffer,
        taken.listing.offer.id,
        options=[selectinload(OpenLicenceOffer.patent), selectinload(OpenLicenceOffer.licensor)],
    )
    await upsert_entry(db, offer)
    await db.commit()
    other = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    profile = rules.Profile(ipc_codes=("H01M",))
    assert [item.offer_id for item in await services.rank(db, profile, other.organisation.id)] == [offer.id]
    assert await services.rank(db, profile, taken.licensee.organisation.id) == []
