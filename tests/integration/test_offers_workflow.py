"""The open-licence offer workflow through HTTP: draft, submit, review, publish, new version,
withdraw — on the HTML pages and on the JSON API — with its audit trail, catalogue and emails."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import today
from marketplace.files.models import StoredFile
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.models import OutboxMessage
from marketplace.patents.models import PatentType
from tests.factories import add_member, api_token, bearer, csrf_headers, login, make_account
from tests.offer_factories import PDF, make_patent, offer_json, royalty_form


async def _offer(db, offer_id: int) -> OpenLicenceOffer:
    offer = await db.get(OpenLicenceOffer, offer_id)
    await db.refresh(offer)
    return offer


async def _audit(db, offer_id: int) -> list[tuple[str, str | None, str | None, str | None, int | None]]:
    rows = await db.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity_type == "open_licence_offer", AuditRecord.entity_id == offer_id)
        .order_by(AuditRecord.id)
    )
    return [(r.action, r.from_state, r.to_state, r.reason, r.actor_user_id) for r in rows]


async def _catalogue_offer_ids(db) -> list[int]:
    return sorted((await db.scalars(select(CatalogueEntry.offer_id))).all())


async def test_licensor_drafts_submits_and_admin_publishes_through_the_pages(client, db):
    licensor = await make_account(db)
    member = await add_member(db, licensor)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor)

    await login(client, member)
    form_page = await client.get(f"/offers/new?patent_id={patent.id}")
    assert form_page.status_code == 200 and patent.title in form_page.text
    created = await client.post("/offers", data=royalty_form(patent.id), headers=await csrf_headers(client))
    assert created.status_code in (302, 303), created.text
    offer_id = int(created.headers["location"].rsplit("/", 1)[1])

    detail = await client.get(f"/offers/{offer_id}")
    assert "许可使用费按销售额的3.5%提成，按季度报告并支付；每个合同年度最低支付¥20,000.00。" in detail.text
    assert "符合开放许可声明的条件" in detail.text and "草稿" in detail.text
    offer = await _offer(db, offer_id)
    assert offer.fee_terms == {
        "mode": "royalty", "base": "sales", "rate": "0.035", "rate_schedule": "fixed",
        "reporting_period": "quarterly", "annual_minimum_fen": 2_000_000, "cap_fen": None,
    }
    assert (offer.payment_mode.value, offer.upfront_cost_fen, offer.pay_after_use) == ("royalty", 0, False)

    submitted = await client.post(f"/offers/{offer_id}/submit", headers=await csrf_headers(client))
    assert submitted.status_code in (302, 303)
    assert (await _offer(db, offer_id)).status is OfferStatus.SUBMITTED

    await login(client, admin)
    queue = await client.get("/admin/offers")
    assert patent.title in queue.text and licensor.organisation.name in queue.text
    review = await client.get(f"/admin/offers/{offer_id}")
    assert review.status_code == 200 and "通过并公告" in review.text
    announced = today() - timedelta(days=1)
    approved = await client.post(
        f"/admin/offers/{offer_id}/approve",
        data={"announcement_number": "CN-OL-2026-000123", "announcement_date": announced.isoformat()},
        headers=await csrf_headers(client),
    )
    assert approved.status_code in (302, 303)
    offer = await _offer(db, offer_id)
    assert offer.status is OfferStatus.PUBLISHED
    assert (offer.announcement_number, offer.announcement_date) == ("CN-OL-2026-000123", announced)
    assert await _catalogue_offer_ids(db) == [offer_id]

    # The organisation's admin (not the member) is told by email.
    mails = (await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email"))).all()
    assert [m.payload["to"] for m in mails] == [licensor.email]
    assert "CN-OL-2026-000123" in mails[0].payload["body"]

    assert await _audit(db, offer_id) == [
        ("create", None, "draft", None, member.user.id),
        ("submit", "draft", "submitted", None, member.user.id),
        ("approve", "submitted", "published", None, admin.user.id),
    ]

    client.cookies.clear()
    public = await client.get(f"/catalogue/{offer_id}")
    assert public.status_code == 200
    for text in (patent.title, licensor.organisation.name, "CN-OL-2026-000123", "按销售额的3.5%提成", "36 个月"):
        assert text in public.text


async def test_rejection_revision_and_resubmission(client, db):
    licensor = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor)
    await login(client, licensor)
    created = await client.post("/offers", data=royalty_form(patent.id), headers=await csrf_headers(client))
    offer_id = int(created.headers["location"].rsplit("/", 1)[1])
    await client.post(f"/offers/{offer_id}/submit", headers=await csrf_headers(client))

    await login(client, admin)
    no_reason = await client.post(f"/admin/offers/{offer_id}/reject", data={"reason": " "},
                                  headers=await csrf_headers(client))
    assert no_reason.status_code == 422 and "请填写驳回理由" in no_reason.text
    assert (await _offer(db, offer_id)).status is OfferStatus.SUBMITTED
    rejected = await client.post(f"/admin/offers/{offer_id}/reject", data={"reason": "年度最低使用费过高"},
                                 headers=await csrf_headers(client))
    assert rejected.status_code in (302, 303)
    assert (await _offer(db, offer_id)).rejection_reason == "年度最低使用费过高"
    mails = (await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email"))).all()
    assert len(mails) == 1 and "年度最低使用费过高" in mails[0].payload["body"]

    await login(client, licensor)
    page = await client.get(f"/offers/{offer_id}")
    assert "驳回理由：年度最低使用费过高" in page.text
    edit = await client.get(f"/offers/{offer_id}/edit")
    assert 'value="20000.00"' in edit.text and 'value="3.5"' in edit.text
    revised = await client.post(
        f"/offers/{offer_id}/edit",
        data=royalty_form(**{"fee_terms.annual_minimum_yuan": "5000"}),
        headers=await csrf_headers(client),
    )
    assert revised.status_code in (302, 303), revised.text
    offer = await _offer(db, offer_id)
    assert offer.status is OfferStatus.DRAFT and offer.fee_terms["annual_minimum_fen"] == 500_000
    assert offer.rejection_reason is None
    await client.post(f"/offers/{offer_id}/submit", headers=await csrf_headers(client))
    assert (await _offer(db, offer_id)).status is OfferStatus.SUBMITTED

    assert [(a, f, t, r) for a, f, t, r, _ in await _audit(db, offer_id)] == [
        ("create", None, "draft", None),
        ("submit", "draft", "submitted", None),
        ("reject", "submitted", "rejected", "年度最低使用费过高"),
        ("revise", "rejected", "draft", None),
        ("update", None, None, None),
        ("submit", "draft", "submitted", None),
    ]


async def test_new_version_supersedes_and_withdrawal_leaves_the_catalogue_via_api(client, db):
    licensor = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor)
    token = bearer(await api_token(db, licensor))
    admin_token = bearer(await api_token(db, admin))
    announced = today().isoformat()

    created = await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)
    assert created.status_code == 201, created.text
    v1 = created.json()
    assert v1["status"] == "draft" and v1["eligibility"] == [] and v1["upfront_cost_fen"] == 5_000_000
    assert v1["description"] == "许可使用费一次总算、一次总付：¥50,000.00，于书面通知后30日内支付。"
    assert (await client.post(f"/api/v1/offers/{v1['id']}/submit", headers=token)).json()["status"] == "submitted"
    published = await client.post(
        f"/api/v1/offers/{v1['id']}/approve",
        json={"announcement_number": "CN-OL-1", "announcement_date": announced},
        headers=admin_token,
    )
    assert published.status_code == 200 and published.json()["status"] == "published"

    # A second series for the same patent is refused while the first one stands.
    again = await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "patent_id"

    made = await client.post(f"/api/v1/offers/{v1['id']}/new-version", headers=token)
    assert made.status_code == 201
    v2 = made.json()
    assert (v2["version"], v2["series_id"], v2["status"]) == (2, v1["series_id"], "draft")
    assert v2["fee_terms"] == v1["fee_terms"]
    second = await client.post(f"/api/v1/offers/{v1['id']}/new-version", headers=token)
    assert second.status_code == 409
    assert await _audit(db, v2["id"]) == [("new_version", None, "draft", None, licensor.user.id)]

    changed = await client.put(
        f"/api/v1/offers/{v2['id']}",
        json={"fee_terms": {"mode": "free"}, "licence_term_months": 24, "territory": "中国大陆"},
        headers=token,
    )
    assert changed.status_code == 200 and changed.json()["payment_mode"] == "free"
    # The published version's terms were not touched.
    assert (await client.get(f"/api/v1/offers/{v1['id']}")).json()["fee_terms"] == v1["fee_terms"]
    cannot_edit = await client.put(
        f"/api/v1/offers/{v1['id']}", json={"fee_terms": {"mode": "free"}, "licence_term_months": 24}, headers=token
    )
    assert cannot_edit.status_code == 409

    await client.post(f"/api/v1/offers/{v2['id']}/submit", headers=token)
    await client.post(
        f"/api/v1/offers/{v2['id']}/approve",
        json={"announcement_number": "CN-OL-2", "announcement_date": announced},
        headers=admin_token,
    )
    old = await _offer(db, v1["id"])
    assert old.status is OfferStatus.WITHDRAWN and old.withdrawal_reason == "被新版本替代"
    assert await _catalogue_offer_ids(db) == [v2["id"]]
    assert ("supersede", "published", "withdrawn", "被新版本替代", admin.user.id) in await _audit(db, v1["id"])
    assert (await client.get(f"/catalogue/{v1['id']}")).status_code == 404

    no_reason = await client.post(f"/api/v1/offers/{v2['id']}/withdraw", json={"reason": ""}, headers=token)
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    withdrawn = await client.post(
        f"/api/v1/offers/{v2['id']}/withdraw", json={"reason": "技术已转让给合作企业"}, headers=token
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawal_reason"] == "技术已转让给合作企业"
    assert await _catalogue_offer_ids(db) == []
    assert (await _audit(db, v2["id"]))[-1] == (
        "withdraw", "published", "withdrawn", "技术已转让给合作企业", licensor.user.id
    )
    assert (await client.get(f"/catalogue/{v2['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/offers/{v2['id']}")).status_code == 404

    # Withdrawn, the patent is free for a new declaration.
    fresh = await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)
    assert fresh.status_code == 201 and fresh.json()["series_id"] != v1["series_id"]


async def test_withdrawal_through_the_page_and_the_owner_still_sees_it(client, db):
    licensor = await make_account(db)
    member = await add_member(db, licensor)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor, co_owners=["某某科技有限公司"], co_owner_consent=True)
    token = bearer(await api_token(db, licensor))
    offer_id = (await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)).json()["id"]
    await client.post(f"/api/v1/offers/{offer_id}/submit", headers=token)
    await client.post(
        f"/api/v1/offers/{offer_id}/approve",
        json={"announcement_number": "CN-OL-9", "announcement_date": today().isoformat()},
        headers=bearer(await api_token(db, admin)),
    )

    await login(client, member)
    assert "撤回开放许可" not in (await client.get(f"/offers/{offer_id}")).text
    refused = await client.post(f"/offers/{offer_id}/withdraw", data={"reason": "不再许可"},
                                headers=await csrf_headers(client))
    assert refused.status_code == 403

    await login(client, licensor)
    page = await client.get(f"/offers/{offer_id}")
    assert "撤回开放许可" in page.text and "全体共有人已书面同意撤回" in page.text
    missing_consent = await client.post(f"/offers/{offer_id}/withdraw", data={"reason": "不再许可"},
                                        headers=await csrf_headers(client))
    assert missing_consent.status_code == 422 and "须经全体共有人同意" in missing_consent.text
    assert (await _offer(db, offer_id)).status is OfferStatus.PUBLISHED
    done = await client.post(
        f"/offers/{offer_id}/withdraw", data={"reason": "不再许可", "co_owners_consented": "1"},
        headers=await csrf_headers(client),
    )
    assert done.status_code in (302, 303)
    assert (await _offer(db, offer_id)).status is OfferStatus.WITHDRAWN
    assert await _catalogue_offer_ids(db) == []
    own_view = await client.get(f"/catalogue/{offer_id}")
    assert own_view.status_code == 200 and "该开放许可已撤回" in own_view.text

    client.cookies.clear()
    assert (await client.get(f"/catalogue/{offer_id}")).status_code == 404


async def test_submission_names_every_unmet_condition_and_changes_nothing(client, db):
    licensor = await make_account(db)
    patent = await make_patent(
        db, licensor, annual_fee_paid_until=today() - timedelta(days=1), pledged=True, exclusive_licence=True
    )
    token = bearer(await api_token(db, licensor))
    body = offer_json(patent.id, other_terms="国内最佳方案")
    offer_id = (await client.post("/api/v1/offers", json=body, headers=token)).json()["id"]
    refused = await client.post(f"/api/v1/offers/{offer_id}/submit", headers=token)
    assert refused.status_code == 422
    problems = {e["code"]: e["message"] for e in refused.json()["errors"]}
    assert set(problems) == {"annual_fee_unpaid", "pledge_without_consent", "exclusive_licence", "advertising_words"}
    assert problems["annual_fee_unpaid"].startswith("年费未缴纳（含滞纳期）")
    assert problems["advertising_words"] == "声明文字含有商业性宣传用语：最佳"
    assert (await _offer(db, offer_id)).status is OfferStatus.DRAFT

    await login(client, licensor)
    page = await client.post(f"/offers/{offer_id}/submit", headers=await csrf_headers(client))
    assert page.status_code == 422
    assert "专利已质押，须取得质权人同意" in page.text and "年费未缴纳（含滞纳期）" in page.text
    assert [a for a, *_ in await _audit(db, offer_id)] == ["create"]


async def test_eligibility_is_checked_again_at_publication(client, db):
    licensor = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor)
    token = bearer(await api_token(db, licensor))
    offer_id = (await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)).json()["id"]
    await client.post(f"/api/v1/offers/{offer_id}/submit", headers=token)
    patent.proceedings_suspended = True
    await db.commit()

    await login(client, admin)
    response = await client.post(
        f"/admin/offers/{offer_id}/approve",
        data={"announcement_number": "CN-OL-77", "announcement_date": today().isoformat()},
        headers=await csrf_headers(client),
    )
    assert response.status_code == 422 and "中止程序" in response.text
    offer = await _offer(db, offer_id)
    assert offer.status is OfferStatus.SUBMITTED and offer.announcement_number is None
    assert await _catalogue_offer_ids(db) == []


async def test_evaluation_report_upload_download_and_eligibility_for_a_utility_model(client, db):
    licensor = await make_account(db)
    other = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor, patent_type=PatentType.UTILITY_MODEL)
    await login(client, licensor)
    created = await client.post("/offers", data=royalty_form(patent.id), headers=await csrf_headers(client))
    offer_id = int(created.headers["location"].rsplit("/", 1)[1])
    assert "实用新型专利须附专利权评价报告" in (await client.get(f"/offers/{offer_id}")).text

    not_pdf = await client.post(
        f"/offers/{offer_id}/edit", data=royalty_form(),
        files={"evaluation_report": ("报告.pdf", b"PK\x03\x04 not a pdf", "application/pdf")},
        headers=await csrf_headers(client),
    )
    assert not_pdf.status_code == 422 and "请上传 PDF 格式的文件" in not_pdf.text
    assert (await _offer(db, offer_id)).evaluation_report_file_id is None

    uploaded = await client.post(
        f"/offers/{offer_id}/edit", data=royalty_form(),
        files={"evaluation_report": ("评价报告.pdf", PDF, "application/pdf")},
        headers=await csrf_headers(client),
    )
    assert uploaded.status_code in (302, 303), uploaded.text
    file_id = (await _offer(db, offer_id)).evaluation_report_file_id
    assert file_id is not None
    download = await client.get(f"/files/{file_id}")
    assert download.status_code == 200 and download.content == PDF
    assert "filename*=utf-8''" in download.headers["content-disposition"]
    assert "符合开放许可声明的条件" in (await client.get(f"/offers/{offer_id}")).text

    await login(client, other)
    assert (await client.get(f"/files/{file_id}")).status_code == 404
    client.cookies.clear()
    assert (await client.get(f"/files/{file_id}")).status_code == 404

    await login(client, licensor)
    await client.post(f"/offers/{offer_id}/submit", headers=await csrf_headers(client))
    await login(client, admin)
    assert (await client.get(f"/files/{file_id}")).status_code == 200
    await client.post(
        f"/admin/offers/{offer_id}/approve",
        data={"announcement_number": "CN-OL-5", "announcement_date": today().isoformat()},
        headers=await csrf_headers(client),
    )
    client.cookies.clear()
    public = await client.get(f"/files/{file_id}")
    assert public.status_code == 200 and public.content == PDF


async def test_api_uploads_the_evaluation_report(client, db, settings):
    licensor = await make_account(db)
    patent = await make_patent(db, licensor)
    token = bearer(await api_token(db, licensor))
    offer_id = (await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)).json()["id"]
    bad = await client.put(f"/api/v1/offers/{offer_id}/evaluation-report",
                           files={"data": ("r.pdf", b"hello", "application/pdf")}, headers=token)
    assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "not_pdf"
    good = await client.put(f"/api/v1/offers/{offer_id}/evaluation-report",
                            files={"data": ("r.pdf", PDF, "application/pdf")}, headers=token)
    assert good.status_code == 200, good.text
    file_id = good.json()["evaluation_report_file_id"]
    stored = await db.get(StoredFile, file_id)
    assert (settings.upload_dir / stored.sha256).read_bytes() == PDF
    assert stored.organisation_id == licensor.organisation.id and stored.purpose == "evaluation_report"
