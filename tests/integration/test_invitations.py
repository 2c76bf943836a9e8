"""Invitations (邀请成员) replace "the admin sets a member's password": the organisation admin
invites by email, the invitee follows the link, sets a password and is logged in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from marketplace.accounts.models import AccountToken, AccountTokenPurpose, OrganisationKind, Role, User
from marketplace.audit.models import AuditRecord
from marketplace.clock import now_utc
from marketplace.outbox.models import OutboxMessage
from tests.factories import add_member, csrf_headers, delivered_mail, link_in, login, make_account

INVITEE = {"display_name": "王小明", "email": "Wang.XM@Example.cn", "role": "org_member"}


async def _counts(db) -> tuple[int, int, int]:
    return (
        await db.scalar(select(func.count()).select_from(User)),
        await db.scalar(select(func.count()).select_from(AccountToken)),
        await db.scalar(select(func.count()).select_from(OutboxMessage)),
    )


async def _invite(client, **overrides: str):
    return await client.post(
        "/account/invitations", data=INVITEE | overrides, headers=await csrf_headers(client)
    )


async def _invitation_link(db, sessionmaker, settings, to: str = "wang.xm@example.cn") -> str:
    mail = await delivered_mail(db, sessionmaker, settings, to=to)
    assert len(mail) == 1
    return link_in(mail[0].body, "/invitations/")


async def test_admin_invites_a_colleague_who_sets_a_password_and_is_logged_in(client, db, sessionmaker, settings):
    admin = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, admin)
    form_page = await client.get("/account/users")
    assert "邀请成员" in form_page.text and "初始密码" not in form_page.text

    sent = await _invite(client)
    assert sent.status_code in (302, 303), sent.text
    page = await client.get(sent.headers["location"])
    assert "已向 wang.xm@example.cn 发送邀请" in page.text
    pending = page.text.split('id="invitations"')[1]
    assert "王小明" in pending and "wang.xm@example.cn" in pending and "机构成员" in pending

    token = (await db.scalars(select(AccountToken))).one()
    assert token.purpose is AccountTokenPurpose.INVITATION and token.role is Role.ORG_MEMBER
    assert token.organisation_id == admin.organisation.id and token.created_by_user_id == admin.user.id
    assert timedelta(days=6, hours=23) < token.expires_at - now_utc() <= timedelta(days=7)
    mail = (await delivered_mail(db, sessionmaker, settings, to="wang.xm@example.cn"))[0]
    assert admin.organisation.name in mail.subject and admin.user.display_name in mail.subject
    assert f"{settings.public_base_url}/invitations/" in mail.body
    raw = link_in(mail.body, "/invitations/")

    client.cookies.clear()  # the invitee, at their own computer
    opened = await client.get(f"/invitations/{raw}")
    assert opened.status_code == 200
    assert admin.organisation.name in opened.text and 'value="wang.xm@example.cn"' in opened.text
    assert 'value="王小明"' in opened.text
    accepted = await client.post(
        f"/invitations/{raw}",
        data={"display_name": "王晓明", "password": "Member-pass-2026", "password_confirm": "Member-pass-2026"},
        headers=await csrf_headers(client),
    )
    assert accepted.status_code in (302, 303), accepted.text
    assert accepted.headers["location"] == "/account/welcome"
    welcome = await client.get("/account/welcome")
    assert welcome.status_code == 200
    assert f"王晓明 · {admin.organisation.name}" in welcome.text and "机构成员" in welcome.text
    assert 'id="email-unconfirmed"' not in welcome.text
    assert (await client.get("/account/users")).status_code == 403

    user = (await db.scalars(select(User).where(User.email == "wang.xm@example.cn"))).one()
    assert (user.organisation_id, user.role, user.display_name) == (admin.organisation.id, Role.ORG_MEMBER, "王晓明")
    assert user.email_confirmed_at is not None
    user_id = user.id
    db.expire_all()
    token = (await db.scalars(select(AccountToken))).one()
    assert token.used_at is not None and token.user_id == user_id
    actions = (await db.scalars(select(AuditRecord.action).where(AuditRecord.entity_type == "account_invitation")
                                .order_by(AuditRecord.id))).all()  # fmt: skip
    assert actions == ["create", "accept"]
    await login(client, admin)
    members = await client.get("/account/users")
    assert "王晓明" in members.text.split('id="members"')[1].split("</table>")[0]
    assert "没有待接受的邀请" in members.text


async def test_an_admin_invitation_makes_an_organisation_admin(client, db, sessionmaker, settings):
    admin = await make_account(db)
    await login(client, admin)
    await _invite(client, role="org_admin", email="dean@example.cn")
    raw = await _invitation_link(db, sessionmaker, settings, to="dean@example.cn")
    client.cookies.clear()
    response = await client.post(
        f"/invitations/{raw}",
        data={"display_name": "院长", "password": "Dean-pass-2026", "password_confirm": "Dean-pass-2026"},
        headers=await csrf_headers(client),
    )
    assert response.status_code in (302, 303)
    assert (await client.get("/account/users")).status_code == 200


async def test_bad_invitations_are_refused_beside_their_fields_and_nothing_is_sent(client, db):
    admin = await make_account(db)
    other = await make_account(db)
    await login(client, admin)
    before = await _counts(db)
    bad = await _invite(client, email="not-an-email", display_name="", role="platform_admin")
    assert bad.status_code == 422
    assert "请输入有效的电子邮箱" in bad.text and "请填写姓名" in bad.text
    assert "请选择角色：机构成员或机构管理员" in bad.text
    taken = await _invite(client, email=other.email.upper())
    assert taken.status_code == 422 and "该邮箱已注册为平台用户，无法再次邀请" in taken.text
    assert 'value="王小明"' in taken.text
    assert await _counts(db) == before


async def test_a_pending_invitation_is_not_sent_twice_until_it_is_revoked(client, db):
    admin = await make_account(db)
    await login(client, admin)
    assert (await _invite(client)).status_code in (302, 303)
    before = await _counts(db)
    again = await _invite(client)
    assert again.status_code == 422 and "已向该邮箱发出邀请且尚未接受" in again.text
    assert await _counts(db) == before

    invitation_id = (await db.scalars(select(AccountToken.id))).one()
    revoked = await client.post(f"/account/invitations/{invitation_id}/revoke", headers=await csrf_headers(client))
    assert revoked.status_code in (302, 303)
    assert "没有待接受的邀请" in (await client.get("/account/users")).text
    assert (await _invite(client)).status_code in (302, 303)
    actions = (await db.scalars(select(AuditRecord.action).where(AuditRecord.entity_type == "account_invitation")
                                .order_by(AuditRecord.id))).all()  # fmt: skip
    assert actions == ["create", "revoke", "create"]


async def test_a_revoked_or_expired_invitation_cannot_be_accepted(client, db, sessionmaker, settings):
    admin = await make_account(db)
    await login(client, admin)
    await _invite(client)
    raw = await _invitation_link(db, sessionmaker, settings)
    invitation_id = (await db.scalars(select(AccountToken.id))).one()
    await client.post(f"/account/invitations/{invitation_id}/revoke", headers=await csrf_headers(client))

    client.cookies.clear()
    opened = await client.get(f"/invitations/{raw}")
    assert opened.status_code == 400
    assert "无法接受邀请" in opened.text and "该邀请已过期或已被撤销" in opened.text
    before = await _counts(db)
    posted = await client.post(
        f"/invitations/{raw}",
        data={"display_name": "王小明", "password": "Member-pass-2026", "password_confirm": "Member-pass-2026"},
        headers=await csrf_headers(client),
    )
    assert posted.status_code == 400
    assert await _counts(db) == before


async def test_an_invitation_expires_after_seven_days(client, db, sessionmaker, settings):
    admin = await make_account(db)
    await login(client, admin)
    await _invite(client)
    raw = await _invitation_link(db, sessionmaker, settings)
    token = (await db.scalars(select(AccountToken))).one()
    token.expires_at = now_utc() - timedelta(minutes=1)
    await db.commit()
    response = await client.get(f"/invitations/{raw}")
    assert response.status_code == 400 and "该邀请已过期" in response.text
    assert "没有待接受的邀请" in (await client.get("/account/users")).text


async def test_an_invitation_is_used_once_and_unknown_ones_do_not_exist(client, db, sessionmaker, settings):
    admin = await make_account(db)
    await login(client, admin)
    await _invite(client)
    raw = await _invitation_link(db, sessionmaker, settings)
    client.cookies.clear()
    data = {"display_name": "王小明", "password": "Member-pass-2026", "password_confirm": "Member-pass-2026"}
    first = await client.post(f"/invitations/{raw}", data=data, headers=await csrf_headers(client))
    assert first.status_code in (302, 303)
    client.cookies.clear()
    again = await client.get(f"/invitations/{raw}")
    assert again.status_code == 400 and "该邀请已被接受，请直接登录" in again.text
    unknown = await client.get("/invitations/no-such-invitation")
    assert unknown.status_code == 404 and "链接无效" in unknown.text


async def test_accepting_with_bad_passwords_creates_nobody(client, db, sessionmaker, settings):
    admin = await make_account(db)
    await login(client, admin)
    await _invite(client)
    raw = await _invitation_link(db, sessionmaker, settings)
    client.cookies.clear()
    before = await _counts(db)
    response = await client.post(
        f"/invitations/{raw}",
        data={"display_name": "", "password": "short", "password_confirm": "other"},
        headers=await csrf_headers(client),
    )
    assert response.status_code == 422
    for message in ("请填写姓名", "密码至少需要10个字符", "两次输入的密码不一致"):
        assert message in response.text
    assert 'value="short"' not in response.text
    assert await _counts(db) == before
    assert (await db.scalars(select(AccountToken.used_at))).one() is None


async def test_an_email_registered_meanwhile_cannot_accept(client, db, sessionmaker, settings):
    admin = await make_account(db)
    await login(client, admin)
    await _invite(client, email="late@example.cn")
    raw = await _invitation_link(db, sessionmaker, settings, to="late@example.cn")
    other = await make_account(db)
    other.user.email = "late@example.cn"
    db.add(other.user)
    await db.commit()
    client.cookies.clear()
    response = await client.post(
        f"/invitations/{raw}",
        data={"display_name": "迟到者", "password": "Late-pass-2026", "password_confirm": "Late-pass-2026"},
        headers=await csrf_headers(client),
    )
    assert response.status_code == 409 and "该邮箱已注册，请直接登录" in response.text


async def test_only_organisation_admins_invite_and_revoke_their_own(client, db):
    admin = await make_account(db)
    member = await add_member(db, admin)
    foreign_admin = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    platform = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    await _invite(client)
    invitation_id = (await db.scalars(select(AccountToken.id))).one()

    for account in (member, platform):
        await login(client, account)
        assert (await _invite(client, email="x@example.cn")).status_code == 403
        revoke = await client.post(f"/account/invitations/{invitation_id}/revoke", headers=await csrf_headers(client))
        assert revoke.status_code == 403
    await login(client, foreign_admin)
    foreign = await client.post(f"/account/invitations/{invitation_id}/revoke", headers=await csrf_headers(client))
    assert foreign.status_code == 404
    assert "wang.xm@example.cn" not in (await client.get("/account/users")).text

    client.cookies.clear()
    anonymous = await client.post("/account/invitations", data=INVITEE, headers=await csrf_headers(client))
    assert anonymous.status_code in (302, 303) and anonymous.headers["location"].startswith("/login")
    db.expire_all()
    token = await db.get(AccountToken, invitation_id)
    assert token.expires_at > now_utc()
    assert await db.scalar(select(func.count()).select_from(AccountToken)) == 1


async def test_the_old_add_member_form_is_gone(client, db):
    admin = await make_account(db)
    await login(client, admin)
    response = await client.post(
        "/account/users",
        data={"display_name": "李老师", "email": "li@example.cn", "password": "abc-12345678", "role": "org_member"},
        headers=await csrf_headers(client),
    )
    assert response.status_code == 405
    assert await db.scalar(select(func.count()).where(User.email == "li@example.cn")) == 0
