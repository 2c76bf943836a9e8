"""The platform admin's enterprise verification (企业核验) on the pages and the API, the
organisation admin's view of it (机构信息), and who may see what."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from marketplace.accounts.models import Organisation, OrganisationKind, Role, VerificationStatus
from marketplace.audit.models import AuditRecord
from marketplace.outbox.models import OutboxMessage
from tests.factories import (
    add_member,
    api_token,
    bearer,
    csrf_headers,
    delivered_mail,
    login,
    make_account,
    sign_up_json,
)

PENDING = VerificationStatus.PENDING


async def _pending_enterprise(db, name: str | None = None):
    return await make_account(db, kind=OrganisationKind.ENTERPRISE, name=name, verification_status=PENDING)


async def _organisation(db, organisation_id: int) -> Organisation:
    query = select(Organisation).where(Organisation.id == organisation_id).execution_options(populate_existing=True)
    return (await db.scalars(query)).one()


async def _audit(db, organisation_id: int) -> list[tuple[str, str | None, str | None, str | None]]:
    rows = await db.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity_type == "organisation", AuditRecord.entity_id == organisation_id)
        .order_by(AuditRecord.id)
    )
    return [(r.action, r.from_state, r.to_state, r.reason) for r in rows]


async def test_the_queue_lists_pending_enterprises_with_their_particulars(client, db):
    pending = await _pending_enterprise(db, "北京青松环保科技有限公司")
    verified = await make_account(db, kind=OrganisationKind.ENTERPRISE, name="已核验企业有限公司")
    university = await make_account(db, name="待核验大学", verification_status=PENDING)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)

    queue = await client.get("/admin/enterprises")
    assert queue.status_code == 200
    row = queue.text.split(pending.organisation.name)[1].split("</tr>")[0]
    for text in (pending.organisation.uscc, "北京市海淀区", "小型", "C 制造业", "测试联系人", "010-62345678"):
        assert text in row, text
    assert verified.organisation.name not in queue.text
    assert university.organisation.name not in queue.text

    verified_tab = await client.get("/admin/enterprises?status=verified")
    assert verified.organisation.name in verified_tab.text and pending.organisation.name not in verified_tab.text
    assert "没有未通过核验的企业" in (await client.get("/admin/enterprises?status=rejected")).text
    # An unknown status shows the default queue rather than failing.
    assert pending.organisation.name in (await client.get("/admin/enterprises?status=bogus")).text


async def test_the_queue_is_paged_oldest_first(client, db):
    first = await _pending_enterprise(db, "排队企业00")
    for n in range(1, 22):
        await _pending_enterprise(db, f"排队企业{n:02d}")
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    page_one = await client.get("/admin/enterprises")
    assert first.organisation.name in page_one.text and "第 1 / 2 页，共 22 条" in page_one.text
    assert page_one.text.index("排队企业00") < page_one.text.index("排队企业19")
    page_two = await client.get("/admin/enterprises?status=pending&page=2")
    assert "排队企业21" in page_two.text and "排队企业00" not in page_two.text


async def test_admin_verifies_an_enterprise_and_its_admins_are_told(client, db, sessionmaker, settings):
    enterprise = await _pending_enterprise(db)
    colleague = await add_member(db, enterprise, Role.ORG_ADMIN)
    staff = await add_member(db, enterprise)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    detail = await client.get(f"/admin/enterprises/{enterprise.organisation.id}")
    assert detail.status_code == 200
    assert enterprise.user.display_name in detail.text and staff.user.display_name in detail.text
    assert "核验通过" in detail.text and "核验不通过" in detail.text and "创建机构记录" in detail.text

    response = await client.post(
        f"/admin/enterprises/{enterprise.organisation.id}/verify",
        data={"note": "已对照国家企业信用信息公示系统"}, headers=await csrf_headers(client),
    )  # fmt: skip
    assert response.status_code in (302, 303)
    organisation = await _organisation(db, enterprise.organisation.id)
    assert organisation.verification_status is VerificationStatus.VERIFIED
    assert organisation.verified_at is not None and organisation.verification_note == "已对照国家企业信用信息公示系统"
    note = "已对照国家企业信用信息公示系统"
    assert (await _audit(db, organisation.id))[-1] == ("verify", "pending", "verified", note)
    record = (await db.scalars(select(AuditRecord).where(AuditRecord.action == "verify"))).one()
    assert record.actor_user_id == admin.user.id

    mail = await delivered_mail(db, sessionmaker, settings)
    assert sorted(m.to_address for m in mail) == sorted([enterprise.email, colleague.email])
    assert all(m.subject == f"企业信息核验通过：{organisation.name}" for m in mail)
    assert f"{settings.public_base_url}/account/organisation" in mail[0].body

    page = await client.get(f"/admin/enterprises/{organisation.id}")
    assert "已核验" in page.text and "撤销核验" in page.text
    assert f'action="/admin/enterprises/{organisation.id}/verify"' not in page.text


async def test_rejection_needs_a_reason_and_a_rejected_enterprise_can_be_re_checked(client, db, sessionmaker, settings):
    enterprise = await _pending_enterprise(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    path = f"/admin/enterprises/{enterprise.organisation.id}"
    headers = await csrf_headers(client)

    missing = await client.post(f"{path}/reject", data={"reason": "  "}, headers=headers)
    assert missing.status_code == 422 and "请填写不通过的原因" in missing.text
    assert re.search(r'<textarea id="f-reason"[^>]*\srequired\s+aria-invalid="true"', missing.text)
    assert (await _organisation(db, enterprise.organisation.id)).verification_status is PENDING
    assert await db.scalar(select(func.count()).select_from(OutboxMessage)) == 0

    rejected = await client.post(f"{path}/reject", data={"reason": "企业名称与公示系统不符"}, headers=headers)
    assert rejected.status_code in (302, 303)
    organisation = await _organisation(db, enterprise.organisation.id)
    assert organisation.verification_status is VerificationStatus.REJECTED
    assert organisation.verification_note == "企业名称与公示系统不符" and organisation.verified_at is None
    mail = await delivered_mail(db, sessionmaker, settings, to=enterprise.email)
    assert "企业名称与公示系统不符" in mail[0].body and mail[0].subject.startswith("企业信息未通过核验")

    rejected_again = await client.post(f"{path}/reject", data={"reason": "再次驳回"}, headers=headers)
    assert rejected_again.status_code == 409 and "当前状态“未通过核验”不能变更为“未通过核验”" in rejected_again.text

    rechecked = await client.post(f"{path}/verify", data={}, headers=headers)
    assert rechecked.status_code in (302, 303)
    revoked = await client.post(f"{path}/reject", data={"reason": "营业执照已吊销"}, headers=headers)
    assert revoked.status_code in (302, 303)
    transitions = [(a, f, t) for a, f, t, _ in await _audit(db, enterprise.organisation.id) if a != "create"]
    assert transitions == [
        ("reject", "pending", "rejected"), ("verify", "rejected", "verified"), ("reject", "verified", "rejected")
    ]


async def test_verifying_twice_is_a_conflict(client, db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    response = await client.post(
        f"/admin/enterprises/{enterprise.organisation.id}/verify", headers=await csrf_headers(client)
    )
    assert response.status_code == 409 and "当前状态“已核验”不能变更为“已核验”" in response.text


async def test_only_enterprises_are_in_the_queue(client, db):
    university = await make_account(db, verification_status=PENDING)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, admin)
    assert (await client.get(f"/admin/enterprises/{university.organisation.id}")).status_code == 404
    response = await client.post(
        f"/admin/enterprises/{university.organisation.id}/verify", headers=await csrf_headers(client)
    )
    assert response.status_code == 404
    assert (await _organisation(db, university.organisation.id)).verification_status is PENDING
    assert (await client.get("/admin/enterprises/999999")).status_code == 404


async def test_nobody_but_platform_admins_reaches_the_verification_pages(client, db):
    enterprise = await _pending_enterprise(db)
    member = await add_member(db, enterprise)
    university = await make_account(db)
    path = f"/admin/enterprises/{enterprise.organisation.id}"
    for account in (enterprise, member, university):
        await login(client, account)
        assert (await client.get("/admin/enterprises")).status_code == 403
        assert (await client.get(path)).status_code == 403
        verify = await client.post(f"{path}/verify", headers=await csrf_headers(client))
        assert verify.status_code == 403
    client.cookies.clear()
    anonymous = await client.get("/admin/enterprises")
    assert anonymous.status_code in (302, 303) and anonymous.headers["location"].startswith("/login?next=")
    assert (await _organisation(db, enterprise.organisation.id)).verification_status is PENDING


# ---------------------------------------------------------------------------------------------
# The organisation's own view (机构信息)
# ---------------------------------------------------------------------------------------------


async def test_an_enterprise_admin_sees_the_status_and_the_filing_hold(client, db):
    enterprise = await _pending_enterprise(db)
    await login(client, enterprise)
    page = await client.get("/account/organisation")
    assert page.status_code == 200
    assert "待核验" in page.text and "企业信息核验通过前，您签订的许可合同暂不报送备案" in page.text
    assert enterprise.organisation.uscc in page.text and "北京市海淀区" in page.text and "C 制造业" in page.text
    assert 'href="/account/organisation">机构信息</a>' in page.text

    organisation = await db.get(Organisation, enterprise.organisation.id)
    organisation.verification_status = VerificationStatus.REJECTED
    organisation.verification_note = "地址与营业执照不符"
    await db.commit()
    rejected = await client.get("/account/organisation")
    assert "未通过核验" in rejected.text and "地址与营业执照不符" in rejected.text

    organisation.verification_status = VerificationStatus.VERIFIED
    await db.commit()
    verified = await client.get("/account/organisation")
    assert "已核验" in verified.text and "暂不报送备案" not in verified.text


async def test_the_organisation_page_is_for_organisation_admins(client, db):
    enterprise = await _pending_enterprise(db)
    member = await add_member(db, enterprise)
    university = await make_account(db, name="华东测试大学")
    await login(client, university)
    own = await client.get("/account/organisation")
    assert own.status_code == 200 and "华东测试大学" in own.text and "高等院校" in own.text
    assert enterprise.organisation.name not in own.text
    await login(client, member)
    assert (await client.get("/account/organisation")).status_code == 403
    client.cookies.clear()
    assert (await client.get("/account/organisation")).status_code in (302, 303)


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


async def test_an_enterprise_reads_itself_and_nobody_else_through_the_api(client, db):
    enterprise = await _pending_enterprise(db)
    other = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    university = await make_account(db)
    platform = await make_account(db, kind=OrganisationKind.PLATFORM)
    path = f"/api/v1/enterprises/{enterprise.organisation.id}"

    own = await client.get(path, headers=bearer(await api_token(db, enterprise)))
    assert own.status_code == 200
    body = own.json()
    assert (body["verification_status"], body["division_name"], body["industry_name"]) == (
        "pending", "北京市海淀区", "制造业"
    )
    assert "email_confirmation" not in body
    for stranger in (other, university):
        refused = await client.get(path, headers=bearer(await api_token(db, stranger)))
        assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    admin_view = await client.get(path, headers=bearer(await api_token(db, platform)))
    assert admin_view.status_code == 200 and admin_view.json()["id"] == enterprise.organisation.id
    assert (await client.get(path)).status_code == 401
    university_self = f"/api/v1/enterprises/{university.organisation.id}"
    assert (await client.get(university_self, headers=bearer(await api_token(db, university)))).status_code == 404


async def test_platform_admin_lists_and_decides_through_the_api(client, db, sessionmaker, settings):
    platform = await make_account(db, kind=OrganisationKind.PLATFORM)
    token = bearer(await api_token(db, platform))
    created = await client.post("/api/v1/enterprises", json=sign_up_json(name="接口注册企业有限公司"))
    enterprise_id = created.json()["id"]
    await make_account(db, kind=OrganisationKind.ENTERPRISE, name="已核验的企业有限公司")

    listing = await client.get("/api/v1/enterprises?status=pending", headers=token)
    assert listing.status_code == 200
    assert [item["name"] for item in listing.json()["items"]] == ["接口注册企业有限公司"]
    everything = await client.get("/api/v1/enterprises", headers=token)
    assert everything.json()["total"] == 2 and everything.json()["pages"] == 1
    assert (await client.get("/api/v1/enterprises?status=unknown", headers=token)).status_code == 400

    no_reason = await client.post(f"/api/v1/enterprises/{enterprise_id}/reject", json={}, headers=token)
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"] == [{"field": "reason", "message": "请填写不通过的原因", "code": "required"}]
    rejected = await client.post(
        f"/api/v1/enterprises/{enterprise_id}/reject", json={"reason": "代码与名称不符"}, headers=token
    )
    assert rejected.status_code == 200
    out = rejected.json()
    assert (out["verification_status"], out["verification_note"]) == ("rejected", "代码与名称不符")
    verified = await client.post(f"/api/v1/enterprises/{enterprise_id}/verify", json={}, headers=token)
    assert verified.status_code == 200 and verified.json()["verified_at"] is not None
    twice = await client.post(f"/api/v1/enterprises/{enterprise_id}/verify", json={}, headers=token)
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_transition"
    via = (await db.scalars(select(AuditRecord.via).where(AuditRecord.action.in_(["verify", "reject"])))).all()
    assert via == ["api", "api"]
    subjects = [m.subject for m in await delivered_mail(db, sessionmaker, settings)]
    assert "企业信息未通过核验：接口注册企业有限公司" in subjects
    assert "企业信息核验通过：接口注册企业有限公司" in subjects


async def test_only_platform_admins_list_or_decide_through_the_api(client, db):
    enterprise = await _pending_enterprise(db)
    university = await make_account(db)
    path = f"/api/v1/enterprises/{enterprise.organisation.id}"
    for account in (enterprise, university):
        token = bearer(await api_token(db, account))
        assert (await client.get("/api/v1/enterprises", headers=token)).status_code == 403
        assert (await client.post(f"{path}/verify", json={}, headers=token)).status_code == 403
        assert (await client.post(f"{path}/reject", json={"reason": "x"}, headers=token)).status_code == 403
    assert (await client.get("/api/v1/enterprises")).status_code == 401
    assert (await client.post(f"{path}/verify", json={})).status_code == 401
    assert (await _organisation(db, enterprise.organisation.id)).verification_status is PENDING
