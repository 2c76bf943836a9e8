"""Experts (评审专家): a platform admin invites them by email like any colleague; they set a password,
evaluate patents, and can do nothing else."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import AccountToken, OrganisationKind, Role, User
from marketplace.files.services import store_file_from_path
from tests.evaluation_factories import evaluation_form, make_expert, make_world
from tests.factories import csrf_headers, delivered_mail, link_in, login, make_account
from tests.licensing_factories import notice_form


async def test_a_platform_admin_invites_an_expert_who_then_evaluates(client, db, sessionmaker, settings):
    world = await make_world(db)
    admin = world.account("platform_admin")
    await login(client, admin)
    assert "评审专家" in (await client.get("/")).text
    sent = await client.post(
        "/admin/experts/invitations", data={"display_name": "李教授", "email": "Li.Prof@Example.cn"},
        headers=await csrf_headers(client),
    )  # fmt: skip
    assert sent.status_code in (302, 303), sent.text
    page = await client.get(sent.headers["location"])
    assert "已向 li.prof@example.cn 发送邀请" in page.text
    assert "李教授" in page.text.split('id="invitations"')[1]
    token = (await db.scalars(select(AccountToken))).one()
    assert (token.role, token.organisation_id) == (Role.EXPERT, admin.organisation.id)

    mail = (await delivered_mail(db, sessionmaker, settings, to="li.prof@example.cn"))[0]
    assert "评审专家" in mail.body
    raw = link_in(mail.body, "/invitations/")
    client.cookies.clear()
    accepted = await client.post(
        f"/invitations/{raw}", data={"display_name": "李教授", "password": "Expert-pass-2026",
                                      "password_confirm": "Expert-pass-2026"},
        headers=await csrf_headers(client),
    )  # fmt: skip
    assert accepted.status_code in (302, 303), accepted.text
    welcome = await client.get("/account/welcome")
    assert "身份为评审专家" in welcome.text
    assert 'href="/evaluations"' in welcome.text and 'href="/contracts"' not in welcome.text
    expert = (await db.scalars(select(User).where(User.email == "li.prof@example.cn"))).one()
    assert (expert.role, expert.organisation_id) == (Role.EXPERT, admin.organisation.id)

    saved = await client.post(
        f"/evaluations/patents/{world.patent_id}", data=evaluation_form(), headers=await csrf_headers(client)
    )
    assert saved.status_code in (302, 303), saved.text

    client.cookies.clear()
    await login(client, admin)
    listing = await client.get("/admin/experts")
    assert "李教授" in listing.text.split('id="experts"')[1] and "没有待接受的邀请" in listing.text


async def test_only_platform_admins_invite_experts_and_only_experts(client, db, settings):
    from marketplace.accounts import services
    from marketplace.accounts.services import principal_for
    from marketplace.errors import ValidationFailed

    world = await make_world(db)
    for role in ("enterprise_admin", "licensor", "expert"):
        client.cookies.clear()
        await login(client, world.account(role))
        assert (await client.get("/admin/experts")).status_code == 403
        refused = await client.post(
            "/admin/experts/invitations", data={"display_name": "某人", "email": "x@example.cn"},
            headers=await csrf_headers(client),
        )  # fmt: skip
        assert refused.status_code == 403
    client.cookies.clear()
    await login(client, world.account("enterprise_admin"))
    refused = await client.post(
        "/account/invitations", data={"display_name": "某人", "email": "x@example.cn", "role": "expert"},
        headers=await csrf_headers(client),
    )  # fmt: skip
    assert refused.status_code == 422 and "请选择角色：机构成员或机构管理员" in refused.text
    with pytest.raises(ValidationFailed) as problem:
        await services.invite(db, settings=settings, actor=principal_for(world.account("platform_admin").user),
                              email="y@example.cn", display_name="某人", role="org_member")  # fmt: skip
    assert problem.value.by_field() == {"role": "平台管理员只能邀请评审专家"}
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(AccountToken)) == 0


async def test_experts_belong_to_the_platform_only(db):
    from marketplace.accounts.services import create_user
    from marketplace.errors import ValidationFailed

    university = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    with pytest.raises(ValidationFailed) as problem:
        await create_user(db, organisation=university.organisation, email="z@example.cn", display_name="某人",
                          password="Expert-pass-2026", role=Role.EXPERT)  # fmt: skip
    assert problem.value.by_field() == {"role": "只有平台运营方的用户可以是平台管理员或评审专家"}
    await db.rollback()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/contracts"),
        ("get", "/catalogue/{offer}/accept"),
        ("post", "/catalogue/{offer}/accept"),
        ("get", "/offers/"),
        ("get", "/patents/new"),
        ("get", "/inventory-uploads/new"),
        ("get", "/account/users"),
        ("get", "/account/tokens"),
        ("get", "/admin/offers"),
        ("get", "/admin/contracts"),
        ("get", "/admin/enterprises"),
        ("get", "/admin/mailbox"),
    ],
)
async def test_an_expert_can_do_nothing_but_evaluate(client, db, method, path):
    world = await make_world(db)
    await login(client, world.account("expert"))
    url = path.format(offer=world.offer.id)
    headers = await csrf_headers(client)
    response = await (client.post(url, data=notice_form(), headers=headers) if method == "post" else client.get(url))
    assert response.status_code == 403, (url, response.status_code)


async def test_an_expert_cannot_take_a_licence_even_through_the_service(db):
    from marketplace.accounts.services import principal_for
    from marketplace.errors import Forbidden
    from marketplace.licensing import services

    world = await make_world(db)
    with pytest.raises(Forbidden, match="评审专家不能取得许可"):
        await services.accept(db, actor=principal_for(world.account("expert").user), offer_id=world.offer.id,
                              values=notice_form())  # fmt: skip
    await db.rollback()


async def test_an_expert_cannot_read_the_platform_organisations_files(client, db, settings, tmp_path):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    expert = await make_expert(db)
    source = tmp_path / "export.csv"
    source.write_text("合同编号\nOL2026000001\n", encoding="utf-8")
    stored = await store_file_from_path(
        db, settings=settings, organisation_id=admin.organisation.id, user_id=admin.user.id, purpose="filing_export",
        filename="export.csv", content_type="text/csv", path=source,
    )  # fmt: skip
    await db.commit()
    await login(client, expert)
    assert (await client.get(f"/files/{stored.id}")).status_code == 404
    client.cookies.clear()
    await login(client, admin)
    assert (await client.get(f"/files/{stored.id}")).status_code == 200
