"""Stored recommendation lists (``matching.lists``), on SQLite and PostgreSQL: after offers are
published, withdrawn, re-tiered and re-priced, and licences are taken and end, the list brought up
to date shows exactly what ranking the whole catalogue shows, mostly without ranking it again; a
profile edit computes the list in the worker; the API serves what changed since the last visit."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from marketplace.accounts.models import OrganisationKind
from marketplace.accounts.services import principal_for
from marketplace.catalogue.models import CatalogueEntry
from marketplace.catalogue.services import remove_entry, upsert_entry
from marketplace.evaluations.tiering import Tier
from marketplace.licensing import services as licensing
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.matching import list_rules, lists, rules, services
from marketplace.matching.models import RecommendationList
from marketplace.offers.models import OpenLicenceOffer, PaymentMode
from marketplace.outbox.models import OutboxMessage
from tests.catalogue_factories import make_licensor, publish_offer
from tests.factories import api_token, bearer, delivered_mail, make_account, sign_up_json
from tests.licensing_factories import notice_form

TITLES = (
    "石墨烯复合负极材料",
    "锂电池热管理装置",
    "石墨烯导热薄膜",
    "污水处理系统",
    "锂电池隔膜涂层",
    "电池包散热结构",
)
IPC = ("H01M 4/36", "H01M 10/613", "C02F 9/00", None, "H01L 23/373")
MODES = (PaymentMode.LUMP_SUM, PaymentMode.FREE, PaymentMode.PAY_AFTER_USE, PaymentMode.ROYALTY)
PROFILE = rules.Profile(
    keywords=("石墨烯", "锂电池"), ipc_codes=("H01M",), provinces=("33",), max_upfront_fen=3_000_000
)
SHOWN, SIZE = 4, 6


async def _offer(db, rng: random.Random, licensors: list) -> OpenLicenceOffer:
    return await publish_offer(
        db,
        rng.choice(licensors),
        f"一种{rng.choice(TITLES)}",
        f"本发明涉及{rng.choice(TITLES)}。",
        ipc_main=rng.choice(IPC),
        mode=rng.choice(MODES),
        amount_fen=rng.choice((1_000_000, 5_000_000)),
        filing_date=date(2017 + rng.randrange(6), 3, 1),
    )


#: Ranking the whole catalogue, uncounted: what a served list must equal.
RANKED_ROWS = services.ranked_rows


@pytest.fixture
def full_rankings(monkeypatch) -> list:
    """Each time the lists rank the whole catalogue (``services.ranked_rows``), its arguments."""
    calls = []

    async def counted(*args, **kwargs):
        calls.append(args)
        return await RANKED_ROWS(*args, **kwargs)

    monkeypatch.setattr(services, "ranked_rows", counted)
    return calls


async def test_a_stored_list_stays_exact_through_catalogue_and_licence_changes(db, monkeypatch, full_rankings):
    # Only rows changed after the list was made are scored again (no settling time in a test).
    monkeypatch.setattr(list_rules, "SETTLE", timedelta(0))
    rng = random.Random(11)
    licensors = [
        await make_licensor(db, "浙江列表测试大学", division_code="330106"),
        await make_licensor(db, "北京列表测试研究院", division_code="110108", kind=OrganisationKind.INSTITUTE),
    ]
    offers = [await _offer(db, rng, licensors) for _ in range(18)]
    buyer = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    organisation_id = buyer.organisation.id
    held: list[LicenceContract] = []
    done: Counter[str] = Counter()
    rounds = 20
    for round_ in range(rounds):
        served = await lists.up_to_date(db, PROFILE, organisation_id, limit=SHOWN, size=SIZE)
        await db.commit()
        expected = await RANKED_ROWS(db, PROFILE, organisation_id, limit=SHOWN)
        assert [(e.id, e.total) for e in served.entries[:SHOWN]] == [(r.id, r.total) for r in expected], round_
        await db.commit()
        for _ in range(rng.randint(1, 3)):
            shown = {row.id for row in expected}
            done[await _change(db, rng, offers, licensors, buyer, held, shown)] += 1
    assert set(done) >= {"publish", "withdraw", "retier", "reprice", "retitle", "licence", "licence_ends"}, done
    # Most visits only scored the rows that changed since the one before.
    assert len(full_rankings) <= rounds // 2, len(full_rankings)


async def _offer_of(db, offer_id: int) -> OpenLicenceOffer:
    options = [selectinload(OpenLicenceOffer.patent), selectinload(OpenLicenceOffer.licensor)]
    return await db.get(OpenLicenceOffer, offer_id, options=options)


async def _change(db, rng: random.Random, offers: list, licensors: list, buyer, held: list, shown: set[int]) -> str:
    """One change to the catalogue or to the enterprise's licences; returns which. A licence and a
    new text take one of the rows shown last (elsewhere they seldom change what is shown)."""
    entries = list(await db.scalars(select(CatalogueEntry)))
    kind = rng.choice(("publish", "withdraw", "retier", "reprice", "retitle", "licence", "licence_ends"))
    if kind in ("licence", "retitle"):
        entries = [entry for entry in entries if entry.id in shown] or entries
    entry = rng.choice(entries)
    if kind == "publish":
        offers.append(await _offer(db, rng, licensors))
    elif kind == "withdraw":
        await remove_entry(db, entry.offer_id)
    elif kind == "retier":
        # As the tiering writes the catalogue's copy (evaluations.tiers): a Core UPDATE.
        tier = rng.choice((Tier.HIGH_VALUE, Tier.GENERAL, Tier.LOW))
        await db.execute(update(CatalogueEntry).where(CatalogueEntry.id == entry.id).values(tier=tier))
    elif kind == "retitle":
        # The patent's text and IPC corrected: no longer relevant to the profile at all.
        offer = await _offer_of(db, entry.offer_id)
        patent = offer.patent
        patent.title, patent.abstract, patent.ipc_main = "一种污水处理系统", "生物膜反应器。", "C02F 9/00"
        await upsert_entry(db, offer)
    elif kind == "reprice":
        offer = await _offer_of(db, entry.offer_id)
        offer.upfront_cost_fen = rng.choice((0, 1_000_000, 9_000_000))
        await upsert_entry(db, offer)
    elif kind == "licence":
        # A licence on a catalogue offer, by written notice: its row is not written, yet the
        # enterprise must no longer be shown it (and must again once the licence ends).
        contract, _ = await licensing.accept(
            db,
            actor=principal_for(buyer.user),
            offer_id=entry.offer_id,
            values=notice_form(),
            client=licensing.ClientInfo(),
        )
        held.append(contract)
    elif kind == "licence_ends" and held:
        contract = await db.get(LicenceContract, held.pop(rng.randrange(len(held))).id)
        contract.status = ContractStatus.ENDED
    else:
        return "nothing"
    await db.commit()
    return kind


def _profile_body(**overrides) -> dict:
    body = {"industries": [], "keywords": ["石墨烯"], "ipc_codes": [], "province_codes": [], "max_upfront_fen": None}
    return body | {"prefers_pay_after_use": False, "digest_enabled": True, "push_enabled": True} | overrides


async def test_a_profile_edit_computes_the_list_in_the_worker(client, db, sessionmaker, settings):
    licensor = await make_licensor(db, "浙江预算测试大学", division_code="330106")
    await publish_offer(db, licensor, "一种石墨烯导热薄膜", ipc_main="H01L 23/373")
    buyer = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    headers = bearer(await api_token(db, buyer))
    body = _profile_body(ipc_codes=[])
    assert (await client.put("/api/v1/profile", json=body, headers=headers)).status_code == 200
    queued = await db.scalar(select(OutboxMessage).where(OutboxMessage.kind == services.WARM_LIST))
    assert queued is not None and queued.payload == {"organisation_id": buyer.organisation.id}
    await delivered_mail(db, sessionmaker, settings)
    stored = await db.scalar(
        select(RecommendationList).where(RecommendationList.organisation_id == buyer.organisation.id)
    )
    profile = await services.profile_for(db, buyer.organisation.id)
    assert stored is not None and stored.fingerprint == list_rules.fingerprint(services.as_rules(profile))
    assert len(stored.entries) == 1 and stored.boundary is None
    # Saving the same profile again changes nothing, and queues nothing.
    assert (await client.put("/api/v1/profile", json=body, headers=headers)).status_code == 200
    warm = select(OutboxMessage).where(OutboxMessage.kind == services.WARM_LIST)
    assert len((await db.scalars(warm)).all()) == 1


async def test_the_api_shows_what_changed_since_the_last_visit(client, db):
    licensor = await make_licensor(db, "浙江接口测试大学", division_code="330106")
    first = await publish_offer(db, licensor, "一种石墨烯复合负极材料", ipc_main="H01M 4/36")
    second = await publish_offer(db, licensor, "一种石墨烯导热薄膜", ipc_main="H01L 23/373")
    buyer = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    headers = bearer(await api_token(db, buyer))
    body = _profile_body(ipc_codes=["H01M"])
    assert (await client.put("/api/v1/profile", json=body, headers=headers)).status_code == 200

    async def shown() -> list[int]:
        response = await client.get("/api/v1/recommendations", headers=headers)
        assert response.status_code == 200
        return [item["offer_id"] for item in response.json()["items"]]

    assert await shown() == [first.id, second.id]
    newest = await publish_offer(db, licensor, "一种石墨烯锂电池负极", ipc_main="H01M 4/36", mode=PaymentMode.FREE)
    assert await shown() == [newest.id, first.id, second.id]
    await remove_entry(db, first.id)
    await db.commit()
    assert await shown() == [newest.id, second.id]
    stored = await db.scalar(
        select(RecommendationList).where(RecommendationList.organisation_id == buyer.organisation.id)
    )
    assert [values[0] for values in stored.entries] == [
        (await db.scalar(select(CatalogueEntry.id).where(CatalogueEntry.offer_id == offer_id)))
        for offer_id in (newest.id, second.id)
    ]


async def test_a_new_enterprise_finds_its_list_computed_from_its_sign_up(client, db, sessionmaker, settings):
    licensor = await make_licensor(db, "浙江注册测试大学", division_code="330106")
    battery = await publish_offer(db, licensor, "一种锂电池负极材料", ipc_main="H01M 4/36")
    sewage = await publish_offer(db, licensor, "一种污水处理系统", ipc_main="C02F 9/00")
    response = await client.post("/api/v1/enterprises", json=sign_up_json(industry_code="C", division_code="330106"))
    assert response.status_code == 201, response.text
    organisation_id = response.json()["id"]
    await delivered_mail(db, sessionmaker, settings)
    stored = await db.scalar(select(RecommendationList).where(RecommendationList.organisation_id == organisation_id))
    # Sign-up said manufacturing (C) in Zhejiang: both offers are relevant through the concordance.
    expected = await services.ranked_rows(
        db, rules.Profile(industries=("C",), provinces=("33",)), organisation_id, limit=list_rules.LIST_SIZE
    )
    assert stored is not None and [values[0] for values in stored.entries] == [row.id for row in expected]
    assert {row.offer_id for row in expected} == {battery.id, sewage.id}


async def test_a_list_left_for_weeks_is_ranked_again_rather_than_caught_up(db, full_rankings):
    licensor = await make_licensor(db, "浙江过期测试大学", division_code="330106")
    await publish_offer(db, licensor, "一种石墨烯复合负极材料", ipc_main="H01M 4/36")
    buyer = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    organisation_id = buyer.organisation.id
    await lists.up_to_date(db, PROFILE, organisation_id)
    await lists.up_to_date(db, PROFILE, organisation_id)
    assert len(full_rankings) == 1
    stale = datetime.now(UTC) - list_rules.MAX_AGE - timedelta(minutes=1)
    await db.execute(update(RecommendationList).values(fresh_through=stale))
    ranked = await lists.up_to_date(db, PROFILE, organisation_id)
    assert len(full_rankings) == 2 and len(ranked.entries) == 1
    await db.commit()


async def test_the_worker_keeps_the_lists_of_recent_visitors_current(client, db, sessionmaker, settings):
    licensor = await make_licensor(db, "浙江刷新测试大学", division_code="330106")
    await publish_offer(db, licensor, "一种石墨烯复合负极材料", ipc_main="H01M 4/36")
    visitor = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    idle = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    for account in (visitor, idle):
        body = _profile_body(ipc_codes=["H01M"])
        assert (await client.put("/api/v1/profile", json=body, headers=bearer(await api_token(db, account)))).is_success
    assert (await client.get("/api/v1/recommendations", headers=bearer(await api_token(db, visitor)))).is_success
    await lists.up_to_date(db, PROFILE, idle.organisation.id)  # the worker's computation: not a visit
    day_ago = datetime.now(UTC) - timedelta(days=1)
    await db.execute(update(RecommendationList).values(fresh_through=day_ago))
    # Made 40 days ago and never visited: the worker no longer keeps it.
    month_ago = datetime.now(UTC) - timedelta(days=40)
    idle_list = RecommendationList.organisation_id == idle.organisation.id
    await db.execute(update(RecommendationList).where(idle_list).values(created_at=month_ago))
    await db.commit()
    newest = await publish_offer(db, licensor, "一种石墨烯锂电池负极", ipc_main="H01M 4/36", mode=PaymentMode.FREE)

    assert await lists.refresh_lists(sessionmaker, settings) == 1
    db.expunge_all()
    stored = {
        row.organisation_id: row for row in await db.scalars(select(RecommendationList).order_by(RecommendationList.id))
    }
    refreshed = stored[visitor.organisation.id]
    assert refreshed.fresh_through > day_ago + timedelta(hours=20) and refreshed.visited_at is not None
    newest_row = await db.scalar(select(CatalogueEntry.id).where(CatalogueEntry.offer_id == newest.id))
    assert refreshed.entries[0][0] == newest_row
    profile = services.as_rules(await services.profile_for(db, visitor.organisation.id))
    full = await services.ranked_rows(db, profile, visitor.organisation.id, limit=list_rules.LIST_SIZE)
    assert [values[0] for values in refreshed.entries] == [row.id for row in full]
    # Left as it was (a visit would catch up, or rank afresh once it is older than MAX_AGE).
    assert stored[idle.organisation.id].visited_at is None
    assert stored[idle.organisation.id].fresh_through < day_ago + timedelta(seconds=1)
    assert await lists.refresh_lists(sessionmaker, settings) == 0
