"""Tiering (分层) end to end: an evaluation re-tiers its patent and audits the change, the daily job
tiers the whole catalogue and flags the long-listed unlicensed patent (and clears the flag once a
positive evaluation arrives), and only the licensor and platform admins ever see a tier."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from marketplace.app import create_app
from marketplace.audit.models import AuditRecord
from marketplace.clock import now_utc
from marketplace.evaluations import tiers
from marketplace.evaluations.models import PatentTier
from marketplace.evaluations.tiering import DEFAULT_RULES_FILE, TieringRulesError
from marketplace.offers.models import OpenLicenceOffer
from tests.evaluation_factories import evaluation_form, make_expert, make_world
from tests.factories import api_token, bearer, csrf_headers, login

HTMX = {"HX-Request": "true"}
MATRIX_ROLES = ("anonymous", "enterprise_admin", "expert", "licensor", "other_licensor", "platform_admin")


async def _evaluate(client, account, patent_id: int, **form: str) -> None:
    await login(client, account)
    headers = await csrf_headers(client) | HTMX
    response = await client.post(f"/evaluations/patents/{patent_id}", data=evaluation_form(**form), headers=headers)
    assert response.status_code == 200, response.text
    await client.post("/logout", headers=await csrf_headers(client))


async def _tier(db, patent_id: int) -> PatentTier | None:
    db.expunge_all()
    return await db.scalar(select(PatentTier).where(PatentTier.patent_id == patent_id))


async def _tier_audits(db, patent_id: int) -> list[AuditRecord]:
    rows = await db.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity_type == "patent_tier", AuditRecord.entity_id == patent_id)
        .order_by(AuditRecord.id)
    )
    return list(rows)


async def test_saving_evaluations_re_tiers_the_patent_and_audits_only_changes(client, db):
    world = await make_world(db)
    evaluators = [world.account("enterprise_admin"), world.account("expert"), await make_expert(db)]

    await _evaluate(client, evaluators[0], world.patent_id, prospects="5")
    first = await _tier(db, world.patent_id)
    # One evaluation: facts alone (an invention filed 2018, 11 years left) → 一般.
    assert (first.tier.value, first.points) == ("general", 2)
    assert first.reasons["notes"] == ["评价不足3份（现有1份），仅按专利事实分层"]
    assert [a.to_state for a in await _tier_audits(db, world.patent_id)] == ["general"]

    await _evaluate(client, evaluators[1], world.patent_id, prospects="4")
    assert (await _tier(db, world.patent_id)).tier.value == "general"
    assert len(await _tier_audits(db, world.patent_id)) == 1  # same tier, same flag: not audited

    await _evaluate(client, evaluators[2], world.patent_id, prospects="4")
    third = await _tier(db, world.patent_id)
    assert (third.tier.value, third.points) == ("high_value", 9)
    assert third.reasons["lines"][0] == {"text": "评价均分4.3分（3份评价） ≥ 4.0：+3", "points": 3}
    audits = await _tier_audits(db, world.patent_id)
    assert [(a.from_state, a.to_state, a.actor_user_id) for a in audits] == [
        (None, "general", None), ("general", "high_value", None),
    ]  # fmt: skip
    assert audits[1].details["trigger"] == "evaluation" and audits[1].reason.startswith("合计+9分")


async def test_the_job_tiers_the_catalogue_flags_the_old_unlicensed_patent_then_clears_it(
    client, db, sessionmaker, settings
):
    world = await make_world(db)
    await db.execute(
        update(OpenLicenceOffer)
        .where(OpenLicenceOffer.id == world.offer.id)
        .values(published_at=now_utc() - timedelta(days=400))
    )
    await db.commit()
    rules = tiers.rules_for(settings)

    run = await tiers.retier_catalogue(sessionmaker, rules, chunk=1)
    assert (run.patents, run.changed) == (2, 2)
    old, recent = await _tier(db, world.patent_id), await _tier(db, world.other_offer.patent_id)
    assert old.needs_re_evaluation and "列入许可目录已13个月（≥ 12个月），尚无许可合同" in old.re_evaluation_reason
    assert not recent.needs_re_evaluation
    assert (await tiers.retier_catalogue(sessionmaker, rules)).changed == 0  # idempotent

    await _evaluate(client, world.account("expert"), world.patent_id, prospects="2", interested_now="")
    assert (await _tier(db, world.patent_id)).needs_re_evaluation  # not a positive evaluation
    await _evaluate(client, world.account("enterprise_admin"), world.patent_id, prospects="4")
    cleared = await _tier(db, world.patent_id)
    assert not cleared.needs_re_evaluation and cleared.re_evaluation_reason is None
    audits = await _tier_audits(db, world.patent_id)
    assert [a.details["to"]["needs_re_evaluation"] for a in audits] == [True, False]
    assert audits[0].details["trigger"] == "periodic"


async def test_a_bad_rule_file_stops_the_app(settings, tmp_path):
    bad = tmp_path / "tiering.toml"
    bad.write_text(DEFAULT_RULES_FILE.read_text().replace("minimum_count = 3", "minimum_count = -1"))
    with pytest.raises(TieringRulesError, match=r"evaluations\.minimum_count 不能小于1"):
        create_app(replace(settings, tiering_rules_file=bad))


async def _tiered_world(db, sessionmaker, settings):
    world = await make_world(db)
    await tiers.retier_catalogue(sessionmaker, tiers.rules_for(settings))
    return world


@pytest.mark.parametrize("role", MATRIX_ROLES)
async def test_who_sees_tiers_on_the_pages(client, db, sessionmaker, settings, role):
    world = await _tiered_world(db, sessionmaker, settings)
    if role != "anonymous":
        await login(client, world.account(role))
    sees = role in ("licensor", "platform_admin")

    detail = await client.get(f"/patents/{world.patent_id}")
    expected = {"anonymous": (302, 303), "licensor": (200,), "platform_admin": (200,)}.get(role, (404,))
    assert detail.status_code in expected
    assert ("<h2>分层</h2>" in detail.text and "合计+2分" in detail.text) == sees

    listing = await client.get("/patents?tier=general&flagged=0")
    if role == "anonymous":
        assert listing.status_code in (302, 303)
    else:
        assert listing.status_code == 200
        assert (f'href="/patents/{world.patent_id}"' in listing.text) == sees
        assert (f'href="/patents/{world.other_offer.patent_id}"' in listing.text) == (
            role in ("other_licensor", "platform_admin")
        )

    admin = await client.get("/admin/tiers")
    assert admin.status_code in {"anonymous": (302, 303), "platform_admin": (200,)}.get(role, (403,))
    if role == "platform_admin":
        assert world.offer.patent.title in admin.text and world.other_offer.patent.title in admin.text

    catalogue = await client.get(f"/catalogue/{world.offer.id}")
    assert catalogue.status_code == 200
    assert "<h2>分层</h2>" not in catalogue.text and "badge tier-" not in catalogue.text
    assert "合计+" not in catalogue.text


async def test_licensor_filters_its_list_by_tier_and_flag(client, db, sessionmaker, settings):
    world = await _tiered_world(db, sessionmaker, settings)
    await login(client, world.account("licensor"))
    assert world.offer.patent.title in (await client.get("/patents?tier=general")).text
    assert world.offer.patent.title not in (await client.get("/patents?tier=high_value")).text
    assert world.offer.patent.title not in (await client.get("/patents?flagged=1")).text
    bad = await client.get("/patents?tier=gold&flagged=maybe")
    assert bad.status_code == 422
    assert "未知的分层" in bad.text and "待重新评价筛选应为 1（是）或 0（否）" in bad.text


@pytest.mark.parametrize("role", ("anonymous", "enterprise_admin", "licensor", "other_licensor", "platform_admin"))
async def test_who_sees_tiers_in_the_api(client, db, sessionmaker, settings, role):
    """Experts have no API tokens (organisation admins make them); they are covered on the pages."""
    world = await _tiered_world(db, sessionmaker, settings)
    headers = {} if role == "anonymous" else bearer(await api_token(db, world.account(role)))

    read = await client.get(f"/api/v1/patents/{world.patent_id}", headers=headers)
    assert read.status_code == {"anonymous": 401, "licensor": 200, "platform_admin": 200}.get(role, 404)
    if read.status_code == 200:
        tier = read.json()["tier"]
        assert (tier["tier"], tier["tier_label"], tier["points"]) == ("general", "一般", 2)
        assert tier["reasons"] == ["发明专利：+1", "剩余保护期11年 ≥ 10年：+1"] and not tier["needs_re_evaluation"]

    listing = await client.get("/api/v1/patents?tier=general&needs_re_evaluation=false", headers=headers)
    if role == "anonymous":
        assert listing.status_code == 401
    else:
        ids = {item["patent_id"] if "patent_id" in item else item["id"] for item in listing.json()["items"]}
        assert (world.patent_id in ids) == (role in ("licensor", "platform_admin"))
        assert all(item["tier"]["tier"] == "general" for item in listing.json()["items"])

    admin = await client.get(f"/api/v1/tiers?licensor_id={world.account('licensor').organisation.id}", headers=headers)
    assert admin.status_code == {"anonymous": 401, "platform_admin": 200}.get(role, 403)
    if role == "platform_admin":
        body = admin.json()
        assert body["total"] == 1 and body["items"][0]["patent_id"] == world.patent_id
        assert body["items"][0]["tier"]["summary"].startswith("合计+2分")


@pytest.mark.parametrize(
    "query", ["tier=gold", "needs_re_evaluation=maybe", "licensor_id=0", "licensor_id=abc", "page=0", "per_page=1000"]
)
async def test_bad_api_filters_are_problems_not_errors(client, db, query):
    token = await api_token(db, (await make_world(db)).account("platform_admin"))
    for path in ("/api/v1/tiers", "/api/v1/patents"):
        if path == "/api/v1/patents" and query.startswith("licensor_id"):
            continue
        response = await client.get(f"{path}?{query}", headers=bearer(token))
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_new_licence_re_tiers_its_patent_through_the_worker(db, sessionmaker, settings):
    from marketplace.accounts.models import User
    from marketplace.accounts.services import principal_for
    from marketplace.licensing import services as licensing
    from marketplace.outbox.services import drain_once
    from tests.licensing_factories import notice_form

    world = await make_world(db)
    await db.execute(
        update(OpenLicenceOffer)
        .where(OpenLicenceOffer.id == world.offer.id)
        .values(published_at=now_utc() - timedelta(days=400))
    )
    await db.commit()
    await tiers.retier_catalogue(sessionmaker, tiers.rules_for(settings))
    before = await _tier(db, world.patent_id)
    assert before.needs_re_evaluation and not any("许可" in line["text"] for line in before.reasons["lines"])

    async with sessionmaker() as session, session.begin():
        taker = principal_for(await session.get(User, world.account("enterprise_admin").user.id))
        await licensing.accept(
            session, actor=taker, offer_id=world.offer.id, values=notice_form(), client=licensing.ClientInfo()
        )
    while await drain_once(sessionmaker, settings):
        pass

    after = await _tier(db, world.patent_id)
    assert {"text": "已有1份许可 ≥ 1份：+3", "points": 3} in after.reasons["lines"]
    assert after.points == before.points + 3 and not after.needs_re_evaluation
    audits = await _tier_audits(db, world.patent_id)
    assert audits[-1].details["trigger"] == "contract" and audits[-1].details["to"]["needs_re_evaluation"] is False
