"""Enterprise sign-up (企业注册) through the page and the JSON API, and email confirmation:
what is created, what is mailed, what bad input says, and that a refused request writes nothing."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from sqlalchemy import func, select

from marketplace.accounts.models import (
    AccountToken,
    AccountTokenPurpose,
    EnterpriseSize,
    Organisation,
    OrganisationKind,
    Role,
    User,
    VerificationStatus,
)
from marketplace.audit.models import AuditRecord
from marketplace.clock import now_utc
from marketplace.outbox.models import OutboxMessage
from tests.factories import (
    add_member,
    csrf_headers,
    delivered_mail,
    link_in,
    login,
    make_account,
    make_uscc,
    sign_up_form,
    sign_up_json,
)


async def _counts(db) -> dict[str, int]:
    tables = {"organisations": Organisation, "users": User, "tokens": AccountToken, "outbox": OutboxMessage,
              "audit": AuditRecord}  # fmt: skip
    return {name: await db.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}


async def _sign_up(client, **overrides: str):
    return await client.post("/signup", data=sign_up_form(**overrides), headers=await csrf_headers(client))


async def _user(db, email: str) -> User:
    db.expire_all()
    return (await db.scalars(select(User).where(User.email == email))).one()


async def test_the_sign_up_page_offers_every_field_and_the_header_links_to_it(client):
    page = await client.get("/signup")
    assert page.status_code == 200
    for label in ("企业名称", "统一社会信用代码", "所在地行政区划代码", "企业规模", "所属行业门类", "企业地址",
                  "联系人", "联系邮箱", "联系电话", "登录邮箱", "确认密码"):  # fmt: skip
        assert label in page.text
    assert 'hx-get="/signup/divisions"' in page.text and 'list="division-options"' in page.text
    assert "C 制造业" in page.text and "T 国际组织" in page.text and ">微型<" in page.text
    # A <select> of every division would be thousands of options long.
    assert page.text.count("<option") < 40
    home = await client.get("/login")
    assert 'href="/signup">注册企业</a>' in home.text


async def test_an_enterprise_signs_up_is_logged_in_and_is_mailed_a_confirmation_link(
    client, db, sessionmaker, settings
):
    form = sign_up_form(name="苏州云帆新材料有限公司", **{"admin.email": " Founder@YunFan.example.cn "})
    response = await client.post("/signup", data=form, headers=await csrf_headers(client))
    assert response.status_code in (302, 303), response.text
    assert response.headers["location"] == "/account/confirmation?welcome=1"

    landing = await client.get("/account/confirmation?welcome=1")
    assert landing.status_code == 200
    assert "注册成功" in landing.text and "founder@yunfan.example.cn" in landing.text and "待核验" in landing.text
    assert "张三 · 苏州云帆新材料有限公司" in landing.text

    organisation = (await db.scalars(select(Organisation).where(Organisation.name == "苏州云帆新材料有限公司"))).one()
    assert organisation.kind is OrganisationKind.ENTERPRISE
    assert organisation.verification_status is VerificationStatus.PENDING and organisation.verified_at is None
    assert (organisation.uscc, organisation.division_code) == (form["uscc"], "110108")
    assert (organisation.enterprise_size, organisation.industry_code) == (EnterpriseSize.SMALL, "C")
    assert (organisation.contact_name, organisation.contact_phone) == ("张经理", "010-62345678")
    user = await _user(db, "founder@yunfan.example.cn")
    assert user.organisation_id == organisation.id and user.role is Role.ORG_ADMIN
    assert user.email_confirmed_at is None

    token = (await db.scalars(select(AccountToken))).one()
    assert token.purpose is AccountTokenPurpose.CONFIRM_EMAIL and token.user_id == user.id
    assert timedelta(hours=71) < token.expires_at - now_utc() <= timedelta(hours=72)
    assert token.used_at is None

    mail = await delivered_mail(db, sessionmaker, settings)
    assert [m.to_address for m in mail] == ["founder@yunfan.example.cn"]
    assert mail[0].subject == "请确认您的邮箱 · 专利开放许可平台"
    assert f"{settings.public_base_url}/confirm-email/" in mail[0].body
    raw = link_in(mail[0].body, "/confirm-email/")
    # Only the SHA-256 of the emailed token is stored.
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest() and raw not in token.token_hash

    audit = (await db.scalars(select(AuditRecord).order_by(AuditRecord.id))).all()
    assert [(a.entity_type, a.action) for a in audit] == [
        ("organisation", "create"), ("user", "create"), ("organisation", "sign_up")
    ]
    assert audit[2].actor_user_id == user.id and audit[2].to_state == "pending"


async def test_an_unconfirmed_user_sees_the_banner_until_the_link_is_followed(client, db, sessionmaker, settings):
    form = sign_up_form()
    await _sign_up(client, **form)
    page = await client.get("/account/organisation")
    assert page.status_code == 200
    assert 'id="email-unconfirmed"' in page.text and "请确认您的邮箱" in page.text
    assert 'action="/account/confirmation/resend"' in page.text

    raw = link_in((await delivered_mail(db, sessionmaker, settings))[0].body, "/confirm-email/")
    confirmed = await client.get(f"/confirm-email/{raw}")
    assert confirmed.status_code == 200
    assert "邮箱已确认" in confirmed.text and form["admin.email"] in confirmed.text
    assert 'id="email-unconfirmed"' not in confirmed.text

    user = await _user(db, form["admin.email"])
    assert user.email_confirmed_at is not None
    token = (await db.scalars(select(AccountToken))).one()
    assert token.used_at is not None
    confirmations = (await db.scalars(select(AuditRecord).where(AuditRecord.action == "confirm_email"))).all()
    assert [(a.entity_id, a.actor_user_id) for a in confirmations] == [(user.id, user.id)]
    assert 'id="email-unconfirmed"' not in (await client.get("/account/organisation")).text


async def test_a_confirmation_link_works_once_and_from_any_browser(client, db, sessionmaker, settings):
    form = sign_up_form()
    await _sign_up(client, **form)
    raw = link_in((await delivered_mail(db, sessionmaker, settings))[0].body, "/confirm-email/")
    client.cookies.clear()  # another browser, nobody logged in
    first = await client.get(f"/confirm-email/{raw}")
    assert first.status_code == 200 and "邮箱已确认" in first.text and 'href="/login"' in first.text
    assert (await _user(db, form["admin.email"])).email_confirmed_at is not None
    again = await client.get(f"/confirm-email/{raw}")
    assert again.status_code == 400
    assert "无法确认邮箱" in again.text and "该确认链接已经使用过" in again.text
    assert await db.scalar(select(func.count()).where(AuditRecord.action == "confirm_email")) == 1


async def test_unknown_and_expired_confirmation_links_change_nothing(client, db, sessionmaker, settings):
    form = sign_up_form()
    await _sign_up(client, **form)
    raw = link_in((await delivered_mail(db, sessionmaker, settings))[0].body, "/confirm-email/")

    unknown = await client.get("/confirm-email/not-a-real-token")
    assert unknown.status_code == 404 and "链接无效" in unknown.text

    token = (await db.scalars(select(AccountToken))).one()
    token_id = token.id
    token.expires_at = now_utc() - timedelta(seconds=1)
    await db.commit()
    before = await _counts(db)
    expired = await client.get(f"/confirm-email/{raw}")
    assert expired.status_code == 400
    assert "该确认链接已过期（有效期72小时）" in expired.text
    assert "重新发送确认邮件" in expired.text
    assert (await _user(db, form["admin.email"])).email_confirmed_at is None
    db.expire_all()
    assert (await db.get(AccountToken, token_id)).used_at is None
    assert await _counts(db) == before


async def test_resending_queues_a_new_link_and_the_old_one_still_works(client, db, sessionmaker, settings):
    form = sign_up_form()
    await _sign_up(client, **form)
    resent = await client.post("/account/confirmation/resend", headers=await csrf_headers(client))
    assert resent.status_code in (302, 303) and resent.headers["location"] == "/account/confirmation?sent=1"
    page = await client.get("/account/confirmation?sent=1")
    assert "已重新发送确认邮件" in page.text and form["admin.email"] in page.text

    mail = await delivered_mail(db, sessionmaker, settings, to=form["admin.email"])
    assert len(mail) == 2
    first, second = (link_in(m.body, "/confirm-email/") for m in mail)
    assert first != second
    assert await db.scalar(select(func.count()).where(AuditRecord.action == "resend_confirmation")) == 1
    assert (await client.get(f"/confirm-email/{first}")).status_code == 200
    # Confirmed now: the second link is still usable once, and resending is refused.
    assert (await client.get(f"/confirm-email/{second}")).status_code == 200
    refused = await client.post("/account/confirmation/resend", headers=await csrf_headers(client))
    assert refused.status_code == 409 and "您的邮箱已确认" in refused.text


async def test_resending_stops_after_a_few_live_links(client, db):
    await _sign_up(client)
    headers = await csrf_headers(client)
    for _ in range(4):
        assert (await client.post("/account/confirmation/resend", headers=headers)).status_code in (302, 303)
    refused = await client.post("/account/confirmation/resend", headers=headers)
    assert refused.status_code == 409 and "确认邮件已多次发送" in refused.text
    assert await db.scalar(select(func.count()).select_from(AccountToken)) == 5


async def test_resending_needs_a_login(client):
    response = await client.post("/account/confirmation/resend", headers=await csrf_headers(client))
    assert response.status_code in (302, 303) and response.headers["location"].startswith("/login?next=")
    assert (await client.get("/account/confirmation")).status_code in (302, 303)


async def test_accounts_made_by_admins_need_no_confirmation(client, db):
    account = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, account)
    page = await client.get("/account/organisation")
    assert page.status_code == 200 and 'id="email-unconfirmed"' not in page.text


async def test_every_problem_is_reported_beside_its_field_and_nothing_is_written(client, db):
    before = await _counts(db)
    response = await client.post(
        "/signup",
        data={
            "name": "", "uscc": "91110000802100433C", "division_code": "999999", "enterprise_size": "huge",
            "industry_code": "Z", "address": "", "contact_name": "", "contact_email": "not-an-email",
            "contact_phone": "12345", "admin.display_name": "", "admin.email": "nobody", "admin.password": "short",
            "admin.password_confirm": "different",
        },
        headers=await csrf_headers(client),
    )  # fmt: skip
    assert response.status_code == 422
    text = response.text
    for message in (
        "请填写企业名称",
        "统一社会信用代码校验位不正确",
        "行政区划代码“999999”不存在（GB/T 2260）",
        "企业规模应为微型、小型、中型或大型",
        "所属行业门类应为 GB/T 4754 的门类字母 A–T",
        "请填写企业地址",
        "请填写联系人",
        "请输入有效的电子邮箱",
        "联系电话应为11位手机号",
        "请填写姓名",
        "密码至少需要10个字符",
        "两次输入的密码不一致",
    ):
        assert message in text, message
    for name in ("name", "uscc", "division_code", "enterprise_size", "industry_code", "address", "contact_name",
                 "contact_email", "contact_phone", "admin.display_name", "admin.email", "admin.password",
                 "admin.password_confirm"):  # fmt: skip
        assert f'id="e-{name}"' in text, name
    # What was typed stays, except the passwords.
    assert 'value="91110000802100433C"' in text and 'value="short"' not in text
    assert await _counts(db) == before
    assert "mp_session" not in client.cookies or (await client.get("/account/confirmation")).status_code != 200


async def test_taken_names_codes_and_emails_are_refused(client, db):
    existing = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    before = await _counts(db)
    response = await _sign_up(
        client, name=existing.organisation.name, uscc=existing.organisation.uscc,
        **{"admin.email": existing.email.upper()},
    )  # fmt: skip
    assert response.status_code == 422
    assert "该机构名称已注册" in response.text
    assert "该统一社会信用代码已注册" in response.text
    assert "该邮箱已注册，请直接登录" in response.text
    assert await _counts(db) == before


async def test_codes_and_phones_are_tidied_before_they_are_stored(client, db):
    uscc = make_uscc("91")
    response = await _sign_up(
        client, uscc=f" {uscc[:9].lower()} {uscc[9:]} ", industry_code="m", contact_phone="(0755) 1234567",
        division_code="440305",
    )  # fmt: skip
    assert response.status_code in (302, 303), response.text
    organisation = (await db.scalars(select(Organisation))).one()
    assert (organisation.uscc, organisation.industry_code, organisation.contact_phone) == (uscc, "M", "0755-1234567")


async def test_logged_in_people_are_sent_away_from_sign_up(client, db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    people = [
        enterprise,
        await add_member(db, enterprise),
        await make_account(db),
        await make_account(db, kind=OrganisationKind.PLATFORM),
    ]
    before = await _counts(db)
    for account in people:
        await login(client, account)
        page = await client.get("/signup")
        assert page.status_code in (302, 303) and page.headers["location"] == "/"
        assert 'href="/signup"' not in (await client.get("/catalogue")).text
        posted = await _sign_up(client)
        assert posted.status_code in (302, 303)
    assert await _counts(db) == before


async def test_sign_up_form_needs_the_csrf_token(client, db):
    await client.get("/signup")
    response = await client.post("/signup", data=sign_up_form())
    assert response.status_code == 403
    assert await db.scalar(select(func.count()).select_from(Organisation)) == 0


async def test_the_division_lookup_names_a_code_and_suggests_codes_for_a_place(client):
    known = await client.get("/signup/divisions?division_code=110108", headers={"HX-Request": "true"})
    assert known.status_code == 200
    assert "110108 · 北京市海淀区" in known.text and "<html" not in known.text
    by_name = await client.get("/signup/divisions", params={"division_code": "海淀"})
    assert '<option value="110108">北京市海淀区</option>' in by_name.text
    by_prefix = await client.get("/signup/divisions?division_code=4403")
    codes = re.findall(r'<option value="(\d{6})">', by_prefix.text)
    assert "440305" in codes and all(code.startswith("4403") for code in codes)
    many = await client.get("/signup/divisions?division_code=1")
    assert many.text.count("<option") == 20
    nothing = await client.get("/signup/divisions", params={"division_code": "火星"})
    assert "没有匹配“火星”的行政区划" in nothing.text and "<option" not in nothing.text


async def test_a_wrong_division_keeps_its_suggestions_on_the_re_rendered_form(client):
    response = await _sign_up(client, division_code="南山")
    assert response.status_code == 422
    assert "行政区划代码应为6位数字" in response.text
    assert '<option value="440305">广东省深圳市南山区</option>' in response.text


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


async def test_the_api_registers_an_enterprise_without_a_token_or_csrf(client, db, sessionmaker, settings):
    body = sign_up_json(name="杭州启航信息技术有限公司", division_code="330106", industry_code="I",
                        enterprise_size="micro")  # fmt: skip
    response = await client.post("/api/v1/enterprises", json=body)
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["email_confirmation"] == "sent"
    expected = {
        "name": "杭州启航信息技术有限公司", "uscc": body["uscc"], "division_code": "330106",
        "division_name": "浙江省杭州市西湖区", "enterprise_size": "micro", "industry_code": "I",
        "verification_status": "pending",
    }  # fmt: skip
    assert {key: out[key] for key in expected} == expected
    organisation = await db.get(Organisation, out["id"])
    assert organisation.kind is OrganisationKind.ENTERPRISE
    user = await _user(db, body["admin"]["email"])
    assert user.role is Role.ORG_ADMIN and user.email_confirmed_at is None
    mail = await delivered_mail(db, sessionmaker, settings, to=body["admin"]["email"])
    assert len(mail) == 1 and "/confirm-email/" in mail[0].body


async def test_api_sign_up_errors_are_problem_details_named_like_the_json(client, db):
    before = await _counts(db)
    body = sign_up_json(uscc="12345", division_code="1101", contact_phone="8888",
                        admin={"display_name": "李四", "email": "bad", "password": "123"})  # fmt: skip
    del body["industry_code"]
    response = await client.post("/api/v1/enterprises", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_failed"
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert fields == {
        "uscc": "统一社会信用代码应为18位",
        "division_code": "行政区划代码应为6位数字（GB/T 2260），例如 110108",
        "industry_code": "请选择所属行业门类",
        "contact_phone": fields["contact_phone"],
        "admin.email": "请输入有效的电子邮箱",
        "admin.password": "密码至少需要10个字符",
    }
    assert fields["contact_phone"].startswith("联系电话应为11位手机号")
    assert await _counts(db) == before


async def test_api_sign_up_with_a_wrong_json_type_is_a_bad_request(client, db):
    response = await client.post("/api/v1/enterprises", json=sign_up_json(name=123))
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    assert await db.scalar(select(func.count()).select_from(Organisation)) == 0


async def test_api_sign_up_refuses_a_taken_admin_email(client, db):
    existing = await make_account(db)
    body = sign_up_json(admin={"display_name": "王五", "email": existing.email, "password": "Another-pass-2026"})
    response = await client.post("/api/v1/enterprises", json=body)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "admin.email", "message": "该邮箱已注册，请直接登录", "code": "duplicate"}
    ]
