"""``/api/v1/evaluations``: the upsert, who may list and read which evaluations, and problem details
on bad input (which changes nothing). Experts have no API tokens (only organisation admins make
them), so the evaluators here are enterprises' tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.evaluations.models import PatentEvaluation
from tests.evaluation_factories import make_world
from tests.factories import add_member, api_token, bearer, csrf_headers, login, make_account

API = "/api/v1/evaluations"


def body(patent_id: int, **overrides) -> dict:
    return {"patent_id": patent_id, "prospects": 4, "cooperation": "strong", "interested_now": True,
            "improvement_needs": "需要适配本公司产线"} | overrides  # fmt: skip


async def _count(db) -> int:
    return await db.scalar(select(func.count()).select_from(PatentEvaluation))


async def test_post_creates_then_updates_the_callers_evaluation(client, db):
    world = await make_world(db)
    enterprise = world.account("enterprise_admin")
    headers = bearer(await api_token(db, enterprise))
    created = await client.post(API, json=body(world.patent_id), headers=headers)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["patent_id"] == world.patent_id and out["evaluator_user_id"] == enterprise.user.id
    assert out["evaluator_organisation_name"] == enterprise.organisation.name and not out["evaluator_is_expert"]
    assert (out["prospects"], out["cooperation"], out["cooperation_label"], out["interested_now"]) == (
        4, "strong", "强烈", True,
    )  # fmt: skip

    updated = await client.post(API, json=body(world.patent_id, prospects=3, interested_now=False), headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == out["id"] and updated.json()["prospects"] == 3
    assert await _count(db) == 1
    updates = select(AuditRecord).where(AuditRecord.action == "update", AuditRecord.entity_type == "patent_evaluation")
    update = (await db.scalars(updates)).one()
    assert update.details["from"] == {"prospects": 4, "interested_now": True}
    assert update.details["to"] == {"prospects": 3, "interested_now": False}
    assert update.via == "api"

    read = await client.get(f"{API}/{out['id']}", headers=headers)
    assert read.status_code == 200 and read.json()["prospects"] == 3


@pytest.mark.parametrize(
    ("overrides", "status", "field"),
    [
        ({"prospects": 0}, 422, "prospects"),
        ({"prospects": 6}, 422, "prospects"),
        ({"cooperation": "maybe"}, 422, "cooperation"),
        ({"improvement_needs": "长" * 2001}, 422, "improvement_needs"),
        ({"prospects": "four"}, 400, None),
        ({"interested_now": "yes please"}, 400, None),
    ],
)
async def test_bad_input_is_a_problem_and_writes_nothing(client, db, overrides, status, field):
    world = await make_world(db)
    headers = bearer(await api_token(db, world.account("enterprise_admin")))
    response = await client.post(API, json=body(world.patent_id, **overrides), headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if field:
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await _count(db) == 0


async def test_missing_fields_are_a_400(client, db):
    world = await make_world(db)
    headers = bearer(await api_token(db, world.account("enterprise_admin")))
    response = await client.post(API, json={"patent_id": world.patent_id}, headers=headers)
    assert response.status_code == 400
    assert await _count(db) == 0


async def test_who_may_post(client, db):
    world = await make_world(db)
    assert (await client.post(API, json=body(world.patent_id))).status_code == 401
    for role, status in [("licensor", 403), ("other_licensor", 403), ("platform_admin", 403)]:
        headers = bearer(await api_token(db, world.account(role)))
        response = await client.post(API, json=body(world.patent_id), headers=headers)
        assert response.status_code == status, (role, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    enterprise = bearer(await api_token(db, world.account("enterprise_admin")))
    assert (await client.post(API, json=body(999_999), headers=enterprise)).status_code == 404
    assert await _count(db) == 0


async def _evaluate_on_page(client, world, role: str) -> None:
    client.cookies.clear()
    await login(client, world.account(role))
    form = {"prospects": "5", "cooperation": "willing", "interested_now": "1"}
    response = await client.post(
        f"/evaluations/patents/{world.patent_id}",
        data=form,
        headers=await csrf_headers(client) | {"HX-Request": "true"},
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()


async def test_who_sees_which_evaluations(client, db):
    world = await make_world(db)
    await _evaluate_on_page(client, world, "enterprise_member")
    await _evaluate_on_page(client, world, "expert")
    other_enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    colleague = await add_member(db, other_enterprise)
    headers = bearer(await api_token(db, other_enterprise))
    other_patent = world.other_offer.patent_id
    mine = await client.post(API, json=body(other_patent), headers=headers)
    assert mine.status_code == 201
    ids = {row.evaluator_user_id: row.id for row in await db.scalars(select(PatentEvaluation))}
    member_id, expert_id = ids[world.account("enterprise_member").user.id], ids[world.account("expert").user.id]
    other_id = mine.json()["id"]

    async def listed(role_headers, **params) -> set[int]:
        response = await client.get(API, params=params, headers=role_headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(page["items"]) and page["page"] == 1 and page["per_page"] == 20
        return {item["id"] for item in page["items"]}

    enterprise = bearer(await api_token(db, world.account("enterprise_admin")))  # the member's organisation
    licensor = bearer(await api_token(db, world.account("licensor")))
    other_licensor = bearer(await api_token(db, world.account("other_licensor")))
    platform = bearer(await api_token(db, world.account("platform_admin")))
    assert await listed(enterprise) == {member_id}
    assert await listed(headers) == {other_id}
    assert await listed(licensor) == {member_id, expert_id}
    assert await listed(licensor, patent_id=other_patent) == set()
    assert await listed(other_licensor) == {other_id}
    assert await listed(platform) == {member_id, expert_id, other_id}
    assert await listed(platform, patent_id=world.patent_id) == {member_id, expert_id}

    for role_headers, visible in [
        (enterprise, {member_id}), (licensor, {member_id, expert_id}), (other_licensor, {other_id}),
        (platform, {member_id, expert_id, other_id}), (headers, {other_id}),
    ]:  # fmt: skip
        for evaluation_id in (member_id, expert_id, other_id):
            response = await client.get(f"{API}/{evaluation_id}", headers=role_headers)
            assert response.status_code == (200 if evaluation_id in visible else 404)
    assert (await client.get(API)).status_code == 401
    assert (await client.get(f"{API}/{member_id}")).status_code == 401

    # On the pages an expert or a member sees their own only; a colleague's evaluations stay hidden.
    await login(client, colleague)
    assert "高温合金叶片激光修复方法" not in (await client.get("/evaluations")).text
    client.cookies.clear()
    await login(client, world.account("expert"))
    text = (await client.get("/evaluations")).text
    assert "一种石墨烯改性锂电池负极材料" in text and "高温合金叶片激光修复方法" not in text


async def test_paging_bounds(client, db):
    world = await make_world(db)
    headers = bearer(await api_token(db, world.account("platform_admin")))
    assert (await client.get(API, params={"per_page": 101}, headers=headers)).status_code == 400
    assert (await client.get(API, params={"page": 0}, headers=headers)).status_code == 400
    page = (await client.get(API, params={"per_page": 1, "page": 2}, headers=headers)).json()
    assert page == {"items": [], "total": 0, "page": 2, "per_page": 1}
