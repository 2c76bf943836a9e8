"""Market evaluations on the pages: the form on the catalogue's patent page (HTMX, field errors in
Chinese, edits pre-filled and audited), the licensor's view on its patent page, and the aggregate
on the catalogue for everyone. Each role is tried against each route."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.audit.models import AuditRecord
from marketplace.evaluations.models import CooperationWillingness, PatentEvaluation
from marketplace.offers.models import OfferStatus
from tests.evaluation_factories import EVALUATORS, ROLES, evaluation_form, make_world
from tests.factories import csrf_headers, login

HTMX = {"HX-Request": "true"}


async def _counts(db) -> tuple[int, int]:
    evaluations = await db.scalar(select(func.count()).select_from(PatentEvaluation))
    audits = await db.scalar(
        select(func.count()).select_from(AuditRecord).where(AuditRecord.entity_type == "patent_evaluation")
    )
    return evaluations, audits


async def _post(client, patent_id: int, form: dict[str, str], *, htmx: bool = True):
    headers = await csrf_headers(client) | (HTMX if htmx else {})
    return await client.post(f"/evaluations/patents/{patent_id}", data=form, headers=headers)


async def test_an_enterprise_member_evaluates_then_edits_with_the_form_pre_filled(client, db):
    world = await make_world(db)
    member = world.account("enterprise_member")
    await login(client, member)
    page = await client.get(f"/catalogue/{world.offer.id}")
    assert page.status_code == 200
    assert "评价该专利" in page.text and 'id="evaluation-form"' in page.text and "暂无市场评价" in page.text

    saved = await _post(client, world.patent_id, evaluation_form())
    assert saved.status_code == 200, saved.text
    assert "评价已保存" in saved.text and "市场评价 1 条 · 产业化前景均分 4.0 · 有意向立即许可 100%" in saved.text
    evaluation = (await db.scalars(select(PatentEvaluation))).one()
    assert (evaluation.evaluator_user_id, evaluation.evaluator_organisation_id, evaluation.patent_id) == (
        member.user.id, member.organisation.id, world.patent_id,
    )  # fmt: skip
    assert (evaluation.prospects, evaluation.cooperation, evaluation.interested_now) == (
        4, CooperationWillingness.WILLING, True,
    )  # fmt: skip
    assert evaluation.improvement_needs == "需要中试放大，提高循环寿命"
    evaluation_id = evaluation.id

    again = await client.get(f"/catalogue/{world.offer.id}")
    assert '<option value="4" selected>' in again.text and '<option value="willing" selected>' in again.text
    assert "需要中试放大，提高循环寿命</textarea>" in again.text
    assert 'name="interested_now" value="1" checked' in again.text and "保存修改" in again.text

    edited = await _post(client, world.patent_id, {"prospects": "2", "cooperation": "neutral", "improvement_needs": ""})
    assert edited.status_code == 200, edited.text
    assert "产业化前景均分 2.0 · 有意向立即许可 0%" in edited.text
    db.expunge_all()
    row = (await db.scalars(select(PatentEvaluation))).one()
    assert (row.id, row.prospects, row.cooperation, row.improvement_needs, row.interested_now) == (
        evaluation_id, 2, CooperationWillingness.NEUTRAL, None, False,
    )  # fmt: skip
    audits = list(await db.scalars(select(AuditRecord).where(AuditRecord.entity_type == "patent_evaluation")
                                  .order_by(AuditRecord.id)))  # fmt: skip
    assert [(a.action, a.entity_id, a.actor_user_id) for a in audits] == [
        ("create", evaluation_id, member.user.id), ("update", evaluation_id, member.user.id),
    ]  # fmt: skip
    assert audits[1].details["from"] == {
        "prospects": 4,
        "cooperation": "willing",
        "improvement_needs": "需要中试放大，提高循环寿命",
        "interested_now": True,
    }
    assert audits[1].details["to"] == {
        "prospects": 2, "cooperation": "neutral", "improvement_needs": None, "interested_now": False,
    }  # fmt: skip

    # Submitting the same values again is not a change: no new audit record.
    same = await _post(client, world.patent_id, {"prospects": "2", "cooperation": "neutral"})
    assert same.status_code == 200
    assert await _counts(db) == (1, 2)


async def test_bad_input_shows_chinese_field_errors_and_changes_nothing(client, db):
    world = await make_world(db)
    await login(client, world.account("enterprise_admin"))
    refused = await _post(
        client, world.patent_id, {"prospects": "9", "cooperation": "", "improvement_needs": "长" * 2001}
    )
    assert refused.status_code == 422
    assert "产业化前景评分应为1至5的整数" in refused.text and "请选择产学研合作意愿" in refused.text
    assert "技术改进需求不能超过2000个字符" in refused.text and 'id="evaluation-form"' in refused.text
    assert await _counts(db) == (0, 0)

    assert (await _post(client, world.patent_id, evaluation_form())).status_code == 200
    refused_edit = await _post(client, world.patent_id, evaluation_form(prospects="0"))
    assert refused_edit.status_code == 422
    assert '<option value="willing" selected>' in refused_edit.text  # what was typed stays in the form
    db.expunge_all()
    assert (await db.scalars(select(PatentEvaluation))).one().prospects == 4
    assert await _counts(db) == (1, 1)


async def test_without_htmx_the_form_redirects_back_to_the_catalogue_page(client, db):
    world = await make_world(db)
    await login(client, world.account("expert"))
    saved = await _post(client, world.patent_id, evaluation_form(), htmx=False)
    assert saved.status_code in (302, 303)
    assert saved.headers["location"] == f"/catalogue/{world.offer.id}?evaluated=1#evaluation"
    page = await client.get(saved.headers["location"])
    assert "评价已保存" in page.text and "市场评价 1 条" in page.text

    refused = await _post(client, world.patent_id, evaluation_form(cooperation="maybe"), htmx=False)
    assert refused.status_code == 422
    assert "产学研合作意愿应为：强烈、愿意、一般、不愿意" in refused.text and "<h1>评价该专利</h1>" in refused.text


@pytest.mark.parametrize("role", ROLES)
async def test_who_sees_the_form_on_the_catalogue_page(client, db, role):
    world = await make_world(db)
    if role != "anonymous":
        await login(client, world.account(role))
    page = await client.get(f"/catalogue/{world.offer.id}")
    assert page.status_code == 200
    assert "暂无市场评价" in page.text  # the aggregate is for everyone
    assert ('id="evaluation-form"' in page.text) == (role in EVALUATORS)
    assert ("登录</a>企业账号或评审专家账号后可评价该专利" in page.text) == (role == "anonymous")
    assert ('id="take-licence"' in page.text) == (role != "expert")


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_submit_an_evaluation(client, db, role):
    world = await make_world(db)
    if role != "anonymous":
        await login(client, world.account(role))
    response = await _post(client, world.patent_id, evaluation_form())
    expected = {"anonymous": 401}.get(role, 200 if role in EVALUATORS else 403)
    if role == "anonymous":
        assert response.status_code in (302, 303) and response.headers["location"].startswith("/login")
    else:
        assert response.status_code == expected, response.text
    assert await _counts(db) == ((1, 1) if role in EVALUATORS else (0, 0))
    if expected == 403:
        page = await client.post(
            f"/evaluations/patents/{world.patent_id}", data=evaluation_form(), headers=await csrf_headers(client)
        )
        assert page.status_code == 403
        assert any(
            m in page.text
            for m in ("不能评价本机构的专利", "仅企业用户和评审专家可以评价专利", "平台管理员不能评价专利")
        )


async def test_patents_outside_the_catalogue_cannot_be_evaluated(client, db):
    world = await make_world(db)
    world.offer.status = OfferStatus.WITHDRAWN
    db.add(world.offer)
    await db.commit()
    await login(client, world.account("enterprise_admin"))
    assert (await _post(client, world.patent_id, evaluation_form())).status_code == 404
    assert (await _post(client, 987654, evaluation_form())).status_code == 404
    assert (await client.get(f"/evaluations/patents/{world.patent_id}")).status_code == 404
    assert await _counts(db) == (0, 0)


async def _evaluate_as(client, world, role: str, **form: str) -> None:
    client.cookies.clear()
    await login(client, world.account(role))
    response = await _post(client, world.patent_id, evaluation_form(**form))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("role", ROLES)
async def test_the_licensor_sees_the_evaluations_on_its_patent_page(client, db, role):
    world = await make_world(db)
    await _evaluate_as(client, world, "enterprise_member", prospects="5", improvement_needs="希望提供中试数据")
    await _evaluate_as(client, world, "expert", prospects="4", cooperation="strong", interested_now="")
    client.cookies.clear()
    if role != "anonymous":
        await login(client, world.account(role))
    page = await client.get(f"/patents/{world.patent_id}")
    if role == "anonymous":
        assert page.status_code in (302, 303)
        return
    if role not in ("licensor", "licensor_member", "platform_admin"):
        assert page.status_code == 404
        return
    assert page.status_code == 200
    section = page.text.split('id="evaluations"')[1]
    assert "市场评价 2 条 · 产业化前景均分 4.5 · 有意向立即许可 50%" in section
    member, expert = world.account("enterprise_member"), world.account("expert")
    assert member.user.display_name in section and member.organisation.name in section
    assert "希望提供中试数据" in section and "5 / 5" in section and "愿意" in section
    assert f"{expert.user.display_name}（评审专家）" in section and "强烈" in section


async def test_the_catalogue_and_home_page_show_the_aggregate_to_everyone(client, db):
    world = await make_world(db)
    await _evaluate_as(client, world, "enterprise_admin", prospects="5")
    await _evaluate_as(client, world, "enterprise_member", prospects="4", interested_now="")
    await _evaluate_as(client, world, "expert", prospects="4", interested_now="")
    client.cookies.clear()
    summary = "市场评价 3 条 · 产业化前景均分 4.3 · 有意向立即许可 33%"
    listing = await client.get("/catalogue")
    card = listing.text.split(f'data-offer-id="{world.offer.id}"')[1].split("</article>")[0]
    assert summary in card
    other_card = listing.text.split(f'data-offer-id="{world.other_offer.id}"')[1].split("</article>")[0]
    assert "暂无市场评价" in other_card
    assert summary in (await client.get("/")).text
    assert summary in (await client.get(f"/catalogue/{world.offer.id}")).text
    api = (await client.get("/api/v1/catalogue")).json()
    by_offer = {item["offer_id"]: item for item in api["items"]}
    assert by_offer[world.offer.id]["evaluations"] == {"count": 3, "mean_prospects": 4.3, "interested_percent": 33}
    assert by_offer[world.other_offer.id]["evaluations"] == {
        "count": 0, "mean_prospects": None, "interested_percent": None,
    }  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
async def test_my_evaluations_page(client, db, role):
    world = await make_world(db)
    await _evaluate_as(client, world, "enterprise_member")
    client.cookies.clear()
    if role != "anonymous":
        await login(client, world.account(role))
    page = await client.get("/evaluations")
    if role == "anonymous":
        assert page.status_code in (302, 303)
        return
    assert page.status_code == 200
    sees = role in ("enterprise_member", "enterprise_admin", "licensor", "licensor_member", "platform_admin")
    assert ("一种石墨烯改性锂电池负极材料" in page.text) == sees
