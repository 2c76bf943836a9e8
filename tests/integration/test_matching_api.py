"""``/api/v1/recommendations`` and ``/api/v1/profile``: enterprises' tokens only, the items and their
reasons, ``shown`` events on the API channel, the profile's prefill and its audited replacement, and
problem details on bad input (which changes nothing). Experts have no API tokens (only organisation
admins make them); the pages' tests cover them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.matching.models import Channel, FunnelStage, InterestProfile, MatchEvent
from tests.catalogue_factories import small_catalogue
from tests.evaluation_factories import make_world
from tests.factories import api_token, bearer, make_account

RECOMMENDATIONS = "/api/v1/recommendations"
PROFILE = "/api/v1/profile"
API_ROLES = ("anonymous", "enterprise_admin", "licensor", "other_licensor", "platform_admin")


def profile_body(**overrides) -> dict:
    body = {
        "industries": ["C384"],
        "keywords": ["石墨烯"],
        "ipc_codes": [],
        "province_codes": ["33"],
        "max_upfront_fen": None,
        "prefers_pay_after_use": False,
        "digest_enabled": True,
        "push_enabled": False,
    }
    return body | overrides


async def _profile(db, organisation_id: int) -> InterestProfile | None:
    db.expunge_all()
    return await db.scalar(select(InterestProfile).where(InterestProfile.organisation_id == organisation_id))


async def _audits(db) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.entity_type == "interest_profile").order_by(AuditRecord.id)
    return list((await db.scalars(query)).all())


async def _enterprise_headers(db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    return enterprise, bearer(await api_token(db, enterprise))


@pytest.mark.parametrize("role", API_ROLES)
async def test_each_role_on_each_route(client, db, role):
    world = await make_world(db)
    headers = bearer(await api_token(db, world.account(role))) if role != "anonymous" else {}
    calls = [
        await client.get(RECOMMENDATIONS, headers=headers),
        await client.get(PROFILE, headers=headers),
        await client.put(PROFILE, json=profile_body(), headers=headers),
    ]
    for response in calls:
        if role == "anonymous":
            assert response.status_code == 401
        elif role == "enterprise_admin":
            assert response.status_code == 200, response.text
            continue
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["detail"] == "匹配推荐面向企业用户"
        assert response.headers["content-type"].startswith("application/problem+json")
    owners = set((await db.scalars(select(InterestProfile.organisation_id))).all())
    enterprise_id = world.account("enterprise_admin").organisation.id
    assert owners == ({enterprise_id} if role == "enterprise_admin" else set())
    if role == "enterprise_admin":
        # The sign-up profile (section C, Beijing) finds both battery patents; equal points, newest first.
        listed = calls[0].json()["items"]
        assert [item["offer_id"] for item in listed] == [world.other_offer.id, world.offer.id]
        assert calls[1].json()["industries"] == ["C"] and calls[2].json()["industries"] == ["C384"]


async def test_recommendations_carry_points_reasons_and_the_profile_and_are_shown_on_the_api_channel(client, db):
    offers = await small_catalogue(db)
    enterprise, headers = await _enterprise_headers(db)
    assert (await client.put(PROFILE, json=profile_body(), headers=headers)).status_code == 200

    response = await client.get(RECOMMENDATIONS, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    cooling = offers["battery_cooling"]
    first = body["items"][0]
    assert first == {
        "offer_id": cooling.id,
        "patent_id": cooling.patent_id,
        "title": "锂电池热管理装置",
        "licensor_name": "江南测试研究院",
        "ipc_subclass": "H01M",
        "payment_mode": "pay_after_use",
        "payment_mode_label": "先用后付",
        "pay_after_use": True,
        "upfront_cost_fen": 0,
        "province_code": "33",
        "province_name": "浙江省",
        "points": 61,
        "reasons": [
            {"kind": "industry", "text": "IPC H01M ↔ 电池制造", "points": 30},
            {"kind": "keyword", "text": "关键词 石墨烯", "points": 15},
            {"kind": "cost", "text": "无需预付费用", "points": 6},
            {"kind": "cost", "text": "先用后付", "points": 4},
            {"kind": "region", "text": "同在浙江省", "points": 6},
        ],
        "url": f"/catalogue/{cooling.id}?via=api",
    }
    ids = [item["offer_id"] for item in body["items"]]
    assert offers["sewage"].id not in ids and len(ids) == 4
    assert all(item["points"] == sum(r["points"] for r in item["reasons"]) for item in body["items"])
    points = [item["points"] for item in body["items"]]
    assert points == sorted(points, reverse=True)
    profile = body["profile"]
    assert profile["industries"] == ["C384"] and profile["industry_labels"] == ["C384 电池制造"]
    assert profile["has_signals"] is True and profile["learned_ipc"] == {}

    events = await db.execute(
        select(MatchEvent.patent_id, MatchEvent.channel).where(
            MatchEvent.organisation_id == enterprise.organisation.id, MatchEvent.stage == FunnelStage.SHOWN
        )
    )
    assert dict(events.all()) == {item["patent_id"]: Channel.API for item in body["items"]}

    limited = (await client.get(RECOMMENDATIONS, params={"limit": 2}, headers=headers)).json()
    assert [item["offer_id"] for item in limited["items"]] == ids[:2]


@pytest.mark.parametrize("limit", ["0", "51", "-1", "ten"])
async def test_a_limit_out_of_range_is_a_problem(client, db, limit):
    await small_catalogue(db)
    _, headers = await _enterprise_headers(db)
    response = await client.get(RECOMMENDATIONS, params={"limit": limit}, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await db.scalar(select(MatchEvent.id).limit(1)) is None


async def test_profile_is_prefilled_then_replaced_and_audited(client, db):
    enterprise, headers = await _enterprise_headers(db)
    first = await client.get(PROFILE, headers=headers)
    assert first.status_code == 200
    prefilled = first.json()
    assert prefilled["industries"] == ["C"] and prefilled["industry_labels"] == ["C 制造业"]
    assert prefilled["province_codes"] == ["11"] and prefilled["keywords"] == [] and prefilled["edited_at"] is None
    assert (prefilled["digest_enabled"], prefilled["push_enabled"], prefilled["has_signals"]) == (True, True, True)
    assert await _audits(db) == []

    body = profile_body(industries=["c38", "C384"], keywords=["锂电池", "储能"], ipc_codes=["h01m"],
                        max_upfront_fen=3_000_000, prefers_pay_after_use=True)  # fmt: skip
    saved = await client.put(PROFILE, json=body, headers=headers)
    assert saved.status_code == 200, saved.text
    out = saved.json()
    assert (out["industries"], out["ipc_codes"], out["keywords"]) == (["C38", "C384"], ["H01M"], ["锂电池", "储能"])
    assert (out["max_upfront_fen"], out["prefers_pay_after_use"], out["push_enabled"]) == (3_000_000, True, False)
    assert out["edited_at"] is not None
    [audit] = await _audits(db)
    assert audit.via == "api" and audit.actor_organisation_id == enterprise.organisation.id
    changes = audit.details["changes"]
    assert changes["industries"] == {"from": ["C"], "to": ["C38", "C384"]}
    assert changes["province_codes"] == {"from": ["11"], "to": ["33"]}
    assert changes["push_enabled"] == {"from": True, "to": False}
    assert "digest_enabled" not in changes

    # Subscriptions left out stay as they are; the lists left out are emptied (PUT replaces).
    again = await client.put(PROFILE, json={"keywords": ["光伏"]}, headers=headers)
    assert again.status_code == 200
    row = await _profile(db, enterprise.organisation.id)
    assert (row.industries, row.keywords, row.province_codes, row.max_upfront_fen) == ([], ["光伏"], [], None)
    assert (row.digest_enabled, row.push_enabled) == (True, False)
    assert len(await _audits(db)) == 2


async def test_clear_learned_through_the_api(client, db):
    offers = await small_catalogue(db)
    enterprise, headers = await _enterprise_headers(db)
    await client.get(PROFILE, headers=headers)
    row = await _profile(db, enterprise.organisation.id)
    row.learned_ipc, row.learned_keywords = {"C02F": 4}, {"污水": 4}
    await db.commit()
    assert (await client.get(PROFILE, headers=headers)).json()["learned_ipc"] == {"C02F": 4}
    listed = (await client.get(RECOMMENDATIONS, params={"limit": 50}, headers=headers)).json()["items"]
    sewage = next(item for item in listed if item["offer_id"] == offers["sewage"].id)
    assert {"kind": "ipc", "text": "IPC C02F（您浏览或评价过同类专利）", "points": 12} in sewage["reasons"]

    current = (await client.get(PROFILE, headers=headers)).json()
    cleared = await client.put(PROFILE, json=current | {"clear_learned": True}, headers=headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["learned_ipc"] == {} and cleared.json()["learned_keywords"] == {}
    [audit] = await _audits(db)
    assert audit.details["changes"] == {
        "learned_ipc": {"from": {"C02F": 4}, "to": {}}, "learned_keywords": {"from": {"污水": 4}, "to": {}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"ipc_codes": ["H1M"]}, ["ipc_codes"]),
        ({"industries": ["Z99"]}, ["industries"]),
        ({"province_codes": ["99"]}, ["province_codes"]),
        ({"max_upfront_fen": -1}, ["max_upfront_fen"]),
        ({"keywords": ["超" * 21]}, ["keywords"]),
        (
            {"ipc_codes": ["H1M"], "province_codes": ["99"], "max_upfront_fen": -1},
            ["ipc_codes", "province_codes", "max_upfront_fen"],
        ),
    ],
)
async def test_bad_values_are_422_with_field_errors_and_write_nothing(client, db, overrides, fields):
    enterprise, headers = await _enterprise_headers(db)
    await client.get(PROFILE, headers=headers)
    response = await client.put(PROFILE, json=profile_body(**overrides), headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [error["field"] for error in problem["errors"]] == fields
    assert all(error["message"] for error in problem["errors"])
    row = await _profile(db, enterprise.organisation.id)
    assert (row.industries, row.province_codes, row.edited_at) == (["C"], ["11"], None)
    assert await _audits(db) == []


@pytest.mark.parametrize(
    "body",
    [
        {"industries": "C384"},
        {"keywords": [1, 2]},
        {"max_upfront_fen": "五万"},
        {"prefers_pay_after_use": "yes"},
        {"digest_enabled": 3},
    ],
)
async def test_wrong_types_are_400(client, db, body):
    enterprise, headers = await _enterprise_headers(db)
    response = await client.put(PROFILE, json=profile_body(**body), headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _profile(db, enterprise.organisation.id) is None and await _audits(db) == []


async def test_openapi_documents_the_matching_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths["/api/v1/recommendations"]) == {"get"} and set(paths["/api/v1/profile"]) == {"get", "put"}
    limit = next(p for p in paths["/api/v1/recommendations"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"], limit["schema"]["default"]) == (1, 50, 20)
    assert not any(path.startswith(("/recommendations", "/profile")) for path in paths)
    components = schema["components"]["schemas"]
    assert {"ProfileWrite", "ProfileOut", "RecommendationsOut"} <= {name.split("_")[-1] for name in components}


async def test_subscribing_again_starts_the_digest_from_now(client, db):
    enterprise, headers = await _enterprise_headers(db)
    await client.get(PROFILE, headers=headers)
    subscribed_at = (await _profile(db, enterprise.organisation.id)).digest_through
    assert (await client.put(PROFILE, json=profile_body(digest_enabled=False), headers=headers)).status_code == 200
    row = await _profile(db, enterprise.organisation.id)
    assert not row.digest_enabled and row.digest_through == subscribed_at
    assert (await client.put(PROFILE, json=profile_body(digest_enabled=True), headers=headers)).status_code == 200
    row = await _profile(db, enterprise.organisation.id)
    # What was published while unsubscribed is not sent as a backlog.
    assert row.digest_enabled and row.digest_through > subscribed_at
    changes = [audit.details["changes"].get("digest_enabled") for audit in await _audits(db)]
    assert changes == [{"from": True, "to": False}, {"from": False, "to": True}]
