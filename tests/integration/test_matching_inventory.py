"""Stock patents (库存专利) in matching: which patents are in the stock table and how it follows
offers, their ranking for an enterprise, the public page, and an enterprise's stated interest
(表达许可意向) reaching the holder — each role against each route, pages and API."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select, update

from marketplace.audit.models import AuditRecord
from marketplace.catalogue.services import remove_entry
from marketplace.matching import inventory, rules
from marketplace.matching.models import InventoryEntry, InventoryInterest
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.services import drain_once
from marketplace.patents.models import LegalStatus, Patent
from tests.evaluation_factories import make_world
from tests.factories import api_token, bearer, csrf_headers, delivered_mail, login
from tests.patent_factories import make_patent

ROLES = ("anonymous", "enterprise_admin", "enterprise_member", "expert", "licensor", "other_licensor", "platform_admin")


async def _stock_world(db, sessionmaker, settings):
    world = await make_world(db)
    university = world.account("licensor").organisation
    patents = {
        "open": await make_patent(
            db, university, title="一种固态锂电池电解质膜及其制备方法", ipc_main="H01M 10/0562",
            abstract="采用硫化物电解质，提高锂电池安全性。", transfer_intents=["licence"],
        ),
        "for_sale": await make_patent(
            db, university, title="污水生物脱氮装置", ipc_main="C02F 3/30", transfer_intents=["assignment", "equity"],
        ),
        "own_use": await make_patent(db, university, title="一种锂电池极片辊压机", transfer_intents=["own_use"]),
        "lapsed": await make_patent(
            db, university, title="一种锂电池隔膜", legal_status=LegalStatus.LAPSED, transfer_intents=["licence"],
        ),
        "exploited": await make_patent(
            db, university, title="锂电池回收工艺", implemented=True, transfer_intents=["licence"],
        ),
        "expired": await make_patent(
            db, university, title="锂电池外壳", filing_date=date(2004, 1, 5), grant_date=date(2006, 1, 5),
            transfer_intents=["licence"],
        ),
        "enterprise_owned": await make_patent(
            db, world.account("enterprise_admin").organisation, title="锂电池化成设备", transfer_intents=["licence"],
        ),
    }  # fmt: skip
    await inventory.inventory_job(sessionmaker, settings)
    return world, patents


async def _stock_ids(db) -> set[int]:
    return set(await db.scalars(select(InventoryEntry.patent_id)))


async def test_only_granted_unexploited_unoffered_university_patents_open_to_licence_or_sale(
    db, sessionmaker, settings
):
    world, patents = await _stock_world(db, sessionmaker, settings)
    assert await _stock_ids(db) == {patents["open"].id, patents["for_sale"].id}
    entry = await db.scalar(select(InventoryEntry).where(InventoryEntry.patent_id == patents["open"].id))
    assert (entry.ipc_class, entry.ipc_subclass, entry.province_code) == ("H01", "H01M", "11")
    assert "硫化物" in entry.search_tokens.split()

    # The catalogue patent becomes a stock patent once its offer leaves the catalogue (the worker
    # re-checks it), and leaves the stock table as soon as an offer is published again.
    offered = world.offer.patent_id
    await db.execute(update(Patent).where(Patent.id == offered).values(transfer_intents=["licence"]))
    await db.commit()
    await inventory.inventory_job(sessionmaker, settings)
    assert offered not in await _stock_ids(db)
    await db.execute(update(OpenLicenceOffer).where(OpenLicenceOffer.id == world.offer.id).values(
        status=OfferStatus.WITHDRAWN))  # fmt: skip
    await remove_entry(db, world.offer.id)
    await db.commit()
    while await drain_once(sessionmaker, settings):
        pass
    assert offered in await _stock_ids(db)


async def test_stock_patents_rank_with_reasons_but_no_cost_lines(db, sessionmaker, settings):
    world, patents = await _stock_world(db, sessionmaker, settings)
    enterprise = world.account("enterprise_admin").organisation
    profile = rules.Profile(industries=("C384",), keywords=("电解质",), provinces=("11",))
    ranked = await inventory.rank(db, profile, enterprise.id)
    assert [item.patent_id for item in ranked] == [patents["open"].id]
    [first] = ranked
    assert [(r.text, r.points) for r in first.match.reasons] == [
        ("IPC H01M ↔ 电池制造", 30), ("关键词 电解质", 15), ("同在北京市", 6),
    ]  # fmt: skip
    assert first.intents_label == "许可" and first.url == f"/inventory/{patents['open'].id}"
    # Its own patents are never recommended to the holder.
    assert await inventory.rank(db, profile, world.account("licensor").organisation.id) == []


@pytest.mark.parametrize("role", ROLES)
async def test_the_stock_page_and_the_interest_button_by_role(client, db, sessionmaker, settings, role):
    world, patents = await _stock_world(db, sessionmaker, settings)
    patent = patents["open"]
    account = world.account(role) if role != "anonymous" else None
    if account:
        await login(client, account)
    page = await client.get(f"/inventory/{patent.id}")
    assert page.status_code == 200 and patent.title in page.text
    assert ("表达许可意向</button>" in page.text) == role.startswith("enterprise")
    assert (await client.get(f"/inventory/{patents['own_use'].id}")).status_code == 404

    headers = await csrf_headers(client)
    response = await client.post(f"/inventory/{patent.id}/interest", data={"note": "希望了解实施条件"}, headers=headers)
    count = await db.scalar(select(func.count()).select_from(InventoryInterest))
    if role.startswith("enterprise"):
        assert response.status_code in (302, 303) and response.headers["location"] == f"/inventory/{patent.id}?sent=1"
        assert count == 1
        again = await client.post(f"/inventory/{patent.id}/interest", data={"note": ""}, headers=headers)
        assert again.status_code == 409 and "已对该专利表达过许可意向" in again.text
    else:
        assert response.status_code == {"anonymous": 302}.get(role, 403)
        assert role != "anonymous" or response.headers["location"].startswith("/login")
        assert count == 0


async def test_interest_is_audited_mailed_to_the_holder_and_listed_on_its_patent_page(
    client, db, sessionmaker, settings
):
    world, patents = await _stock_world(db, sessionmaker, settings)
    patent = patents["for_sale"]
    enterprise = world.account("enterprise_member")
    await login(client, enterprise)
    headers = await csrf_headers(client)
    too_long = await client.post(f"/inventory/{patent.id}/interest", data={"note": "长" * 501}, headers=headers)
    assert too_long.status_code == 422 and "留言不超过 500 字" in too_long.text
    assert await db.scalar(select(func.count()).select_from(InventoryInterest)) == 0

    await client.post(f"/inventory/{patent.id}/interest", data={"note": "拟用于园区污水站改造"}, headers=headers)
    [audit] = (await db.scalars(select(AuditRecord).where(AuditRecord.entity_type == "inventory_interest"))).all()
    assert (audit.actor_user_id, audit.to_state, audit.reason) == (
        enterprise.user.id,
        "interested",
        "拟用于园区污水站改造",
    )
    holder = world.account("licensor")
    [mail] = await delivered_mail(db, sessionmaker, settings, to=holder.email)
    assert mail.subject == "企业许可意向：污水生物脱氮装置"
    assert enterprise.organisation.name in mail.body and "拟用于园区污水站改造" in mail.body
    sent = await client.get(f"/inventory/{patent.id}?sent=1")
    assert "已向专利权人发送许可意向" in sent.text and "贵企业已于" in sent.text

    await login(client, holder)
    detail = await client.get(f"/patents/{patent.id}")
    assert "企业许可意向" in detail.text and enterprise.organisation.name in detail.text
    assert "拟用于园区污水站改造" in detail.text


@pytest.mark.parametrize("role", ("anonymous", "enterprise_admin", "licensor", "other_licensor", "platform_admin"))
async def test_the_inventory_api_by_role(client, db, sessionmaker, settings, role):
    """Experts and members have no API tokens (organisation admins make them); pages cover them."""
    world, patents = await _stock_world(db, sessionmaker, settings)
    patent = patents["open"]
    headers = {} if role == "anonymous" else bearer(await api_token(db, world.account(role)))
    read = await client.get(f"/api/v1/inventory/{patent.id}", headers=headers)
    assert read.status_code == 200
    assert read.json()["title"] == patent.title and read.json()["transfer_intents"] == ["licence"]
    assert (await client.get(f"/api/v1/inventory/{patents['lapsed'].id}", headers=headers)).status_code == 404

    created = await client.post(f"/api/v1/inventory/{patent.id}/interest", json={"note": "API 意向"}, headers=headers)
    assert created.status_code == {"anonymous": 401, "enterprise_admin": 201}.get(role, 403), created.text
    if role == "enterprise_admin":
        assert created.json()["note"] == "API 意向"
        again = await client.post(f"/api/v1/inventory/{patent.id}/interest", json={}, headers=headers)
        assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
        assert (await client.get(f"/api/v1/inventory/{patent.id}", headers=headers)).json()["interested"] is True
        bad = await client.post(f"/api/v1/inventory/{patents['for_sale'].id}/interest", json={"note": "长" * 501},
                                headers=headers)  # fmt: skip
        assert bad.status_code == 422
    assert await db.scalar(select(func.count()).select_from(InventoryInterest)) == (role == "enterprise_admin")


async def test_stock_patents_are_listed_on_the_recommendations_page_and_in_the_api(client, db, sessionmaker, settings):
    world, patents = await _stock_world(db, sessionmaker, settings)
    enterprise = world.account("enterprise_admin")
    await login(client, enterprise)
    headers = await csrf_headers(client)
    form = {"industries": "N772", "keywords": "电解质", "ipc_codes": "", "provinces": "11", "max_upfront": ""}
    saved = await client.post("/profile", data=form, headers=headers)
    assert saved.status_code in (302, 303), saved.text
    page = await client.get("/recommendations")
    assert "库存专利推荐" in page.text
    assert patents["open"].title in page.text and patents["for_sale"].title in page.text
    assert "IPC C02F ↔ " in page.text and f'href="/inventory/{patents["open"].id}"' in page.text

    body = (await client.get("/api/v1/recommendations", headers=bearer(await api_token(db, enterprise)))).json()
    stock = {item["patent_id"]: item for item in body["inventory"]}
    assert set(stock) == {patents["open"].id, patents["for_sale"].id}
    assert stock[patents["for_sale"].id]["transfer_intents"] == ["assignment", "equity"]
    assert stock[patents["open"].id]["points"] == sum(r["points"] for r in stock[patents["open"].id]["reasons"])
    assert all(r["kind"] != "cost" for item in body["inventory"] for r in item["reasons"])
