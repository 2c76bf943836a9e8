"""Bad input is answered with field-level Chinese messages (422 / 400) and changes nothing; the
offer form's mode-specific fields; the public cost calculator with and without JavaScript."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import today
from marketplace.files.models import StoredFile
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.patents.models import LegalStatus
from tests.factories import api_token, bearer, csrf_headers, login, make_account
from tests.offer_factories import PDF, ROYALTY, make_offer, make_patent, offer_json, royalty_form


async def _count(db, model) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


def _field_error(html: str, name: str) -> str:
    match = re.search(rf'<p class="error" id="e-{re.escape(name)}">([^<]*)</p>', html)
    assert match, f"no error shown beside {name}"
    return match.group(1)


async def test_bad_offer_form_is_shown_again_with_messages_and_nothing_is_stored(client, db):
    licensor = await make_account(db)
    patent = await make_patent(db, licensor)
    await login(client, licensor)
    audit_before = await _count(db, AuditRecord)
    form = royalty_form(patent.id, **{
        "fee_terms.rate_percent": "25",
        "fee_terms.annual_minimum_yuan": "abc",
        "fee_terms.cap_yuan": "1e400",
        "licence_term_months": "0",
        "territory": "",
        "field_of_use": "电池包液冷板",
    })
    response = await client.post(
        "/offers", data=form, files={"evaluation_report": ("report.pdf", PDF, "application/pdf")},
        headers=await csrf_headers(client),
    )
    assert response.status_code == 422
    assert _field_error(response.text, "fee_terms.rate_percent") == "费率不得超过20%"
    assert _field_error(response.text, "fee_terms.annual_minimum_yuan").startswith("请填写有效的金额")
    assert _field_error(response.text, "fee_terms.cap_yuan").startswith("请填写有效的金额")
    assert _field_error(response.text, "licence_term_months") == "许可期限应在1至360个月之间"
    assert _field_error(response.text, "territory") == "请填写许可地域范围"
    assert 'value="电池包液冷板"' in response.text and 'value="25"' in response.text
    assert await _count(db, OpenLicenceOffer) == 0
    assert await _count(db, StoredFile) == 0
    assert await _count(db, AuditRecord) == audit_before


async def test_form_errors_for_nested_terms_are_shown_beside_their_inputs(client, db):
    licensor = await make_account(db)
    patent = await make_patent(db, licensor)
    await login(client, licensor)
    form = {
        "patent_id": str(patent.id),
        "fee_terms.mode": "pay_after_use",
        "fee_terms.deferral": "months",
        "fee_terms.deferral_months": "12",
        "fee_terms.then.mode": "instalments",
        "fee_terms.then.total_yuan": "90000",
        "fee_terms.then.count": "3",
        "fee_terms.then.month_offsets": "0, 6, 30",
        "licence_term_months": "36",
        "territory": "中国大陆",
    }
    response = await client.post("/offers", data=form, headers=await csrf_headers(client))
    assert response.status_code == 422
    assert _field_error(response.text, "fee_terms.then.month_offsets") == "第3期（第30个月）超出许可期限（24个月）"
    assert 'value="0, 6, 30"' in response.text

    form["fee_terms.then.month_offsets"] = "0, 6, 12"
    created = await client.post("/offers", data=form, headers=await csrf_headers(client))
    assert created.status_code in (302, 303), created.text
    offer = (await db.scalars(select(OpenLicenceOffer))).one()
    assert offer.fee_terms == {
        "mode": "pay_after_use", "deferral": "months", "deferral_months": 12,
        "then": {"mode": "instalments", "total_fen": 9_000_000, "count": 3, "month_offsets": [0, 6, 12]},
    }
    assert offer.pay_after_use and offer.upfront_cost_fen == 0


async def test_entry_fee_with_rising_royalty_from_the_form(client, db):
    licensor = await make_account(db)
    patent = await make_patent(db, licensor)
    await login(client, licensor)
    form = {
        "patent_id": str(patent.id),
        "fee_terms.mode": "entry_fee_royalty",
        "fee_terms.entry_fee_yuan": "10,000.00",
        "fee_terms.entry_due_days": "30",
        "fee_terms.royalty.base": "sales",
        "fee_terms.royalty.rate_schedule": "rising",
        "fee_terms.royalty.yearly_rates_percent": "2, 3, 4",
        "fee_terms.royalty.reporting_period": "quarterly",
        "licence_term_months": "60",
        "territory": "中国大陆",
    }
    created = await client.post("/offers", data=form, headers=await csrf_headers(client))
    assert created.status_code in (302, 303), created.text
    offer = (await db.scalars(select(OpenLicenceOffer))).one()
    assert offer.fee_terms["royalty"]["yearly_rates"] == ["0.02", "0.03", "0.04"]
    assert offer.upfront_cost_fen == 1_000_000
    page = await client.get(f"/offers/{offer.id}")
    assert "第1年2%、第2年3%、第3年及以后4%" in page.text
    edit = await client.get(f"/offers/{offer.id}/edit")
    assert 'value="2, 3, 4"' in edit.text and 'value="10000.00"' in edit.text


async def test_the_form_offers_only_own_granted_patents_and_refuses_others(client, db):
    licensor = await make_account(db)
    other = await make_account(db)
    granted = await make_patent(db, licensor)
    lapsed = await make_patent(db, licensor, legal_status=LegalStatus.LAPSED)
    foreign = await make_patent(db, other)
    await login(client, licensor)
    page = await client.get("/offers/new")
    assert granted.title in page.text
    assert lapsed.title not in page.text and foreign.title not in page.text
    refused = await client.post("/offers", data=royalty_form(foreign.id), headers=await csrf_headers(client))
    assert refused.status_code == 422 and _field_error(refused.text, "patent_id") == "请选择本机构的专利"
    nonsense = await client.post("/offers", data=royalty_form("12abc"), headers=await csrf_headers(client))
    assert nonsense.status_code == 422
    huge = await client.post("/offers", data=royalty_form("9" * 40), headers=await csrf_headers(client))
    assert huge.status_code == 422
    assert await _count(db, OpenLicenceOffer) == 0


async def test_fee_fields_partial_swaps_mode_specific_inputs(client, db):
    licensor = await make_account(db)
    await login(client, licensor)
    royalty = await client.get("/offers/fee-fields", params={"prefix": "fee_terms", "fee_terms.mode": "royalty"})
    assert royalty.status_code == 200 and "<html" not in royalty.text
    assert 'name="fee_terms.rate_percent"' in royalty.text and 'name="fee_terms.amount_yuan"' not in royalty.text
    deferred = await client.get("/offers/fee-fields", params={"prefix": "fee_terms", "fee_terms.mode": "pay_after_use"})
    assert 'name="fee_terms.deferral_months"' in deferred.text
    assert 'hx-get="/offers/fee-fields?prefix=fee_terms.then"' in deferred.text
    assert 'name="fee_terms.then.amount_yuan"' in deferred.text
    then = await client.get("/offers/fee-fields", params={"prefix": "fee_terms.then", "fee_terms.then.mode": "royalty"})
    assert 'name="fee_terms.then.rate_percent"' in then.text
    sneaky = await client.get("/offers/fee-fields", params={"prefix": "<script>", "fee_terms.mode": "lump_sum"})
    assert sneaky.status_code == 200 and 'name="fee_terms.amount_yuan"' in sneaky.text and "<script>" not in sneaky.text
    unknown = await client.get("/offers/fee-fields", params={"fee_terms.mode": "barter"})
    assert unknown.status_code == 200 and "name=" not in unknown.text


async def test_api_bad_input_is_a_problem_response_and_changes_nothing(client, db):
    licensor = await make_account(db)
    patent = await make_patent(db, licensor)
    token = bearer(await api_token(db, licensor))
    audit_before = await _count(db, AuditRecord)
    invalid = await client.post(
        "/api/v1/offers",
        json=offer_json(patent.id, fee_terms={"mode": "royalty", "base": "profit", "rate": "0.5",
                                              "reporting_period": "weekly"}, licence_term_months=0),
        headers=token,
    )
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"]: e["message"] for e in invalid.json()["errors"]}
    assert fields == {
        "licence_term_months": "许可期限应在1至360个月之间",
        "fee_terms.rate": "费率不得超过40%",
        "fee_terms.reporting_period": "报告周期不在可选范围内",
    }
    wrong_type = await client.post("/api/v1/offers", json=offer_json(patent.id, licence_term_months="three"),
                                   headers=token)
    assert wrong_type.status_code == 400 and wrong_type.json()["code"] == "bad_request"
    not_json = await client.post(
        "/api/v1/offers", content=b"\xff\xfe{", headers=token | {"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    huge = await client.post(
        "/api/v1/offers",
        json=offer_json(patent.id, fee_terms={"mode": "lump_sum", "amount_fen": 10**30, "due_days": 30}),
        headers=token,
    )
    assert huge.status_code in (400, 422)
    huge_id = await client.post("/api/v1/offers", json=offer_json(10**18), headers=token)
    assert huge_id.status_code == 422
    assert await _count(db, OpenLicenceOffer) == 0
    assert await _count(db, AuditRecord) == audit_before

    offer_id = (await client.post("/api/v1/offers", json=offer_json(patent.id), headers=token)).json()["id"]
    bad_update = await client.put(
        f"/api/v1/offers/{offer_id}",
        json={"fee_terms": {"mode": "instalments", "total_fen": 100, "count": 3, "interval_months": 12,
                            "first_due_days": 30}, "licence_term_months": 24},
        headers=token,
    )
    assert bad_update.status_code == 422
    assert bad_update.json()["errors"][0]["field"] == "fee_terms.interval_months"
    offer = await db.get(OpenLicenceOffer, offer_id)
    await db.refresh(offer)
    assert offer.fee_terms == offer_json(patent.id)["fee_terms"] and offer.licence_term_months == 36
    bad_status = await client.get("/api/v1/offers?status=everything", headers=token)
    assert bad_status.status_code == 400
    bad_page = await client.get("/api/v1/offers?per_page=100000", headers=token)
    assert bad_page.status_code == 400


async def test_approval_needs_a_valid_announcement_and_changes_nothing_otherwise(client, db):
    licensor = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, licensor)
    taken = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.PUBLISHED,
                             announcement_number="CN-OL-TAKEN")
    offer = await make_offer(db, licensor, patent, status=OfferStatus.SUBMITTED)
    headers = bearer(await api_token(db, admin))
    cases = [
        ({}, {"announcement_number": "请填写公告号", "announcement_date": "请填写公告日期"}),
        ({"announcement_number": "X" * 65, "announcement_date": "2026/01/05"},
         {"announcement_number": "公告号不能超过64个字符", "announcement_date": "公告日期格式应为 YYYY-MM-DD"}),
        ({"announcement_number": "CN-OL-TAKEN", "announcement_date": (today() + timedelta(days=1)).isoformat()},
         {"announcement_number": "该公告号已用于其他声明", "announcement_date": "公告日期不能晚于今天"}),
    ]
    for body, expected in cases:
        response = await client.post(f"/api/v1/offers/{offer.id}/approve", json=body, headers=headers)
        assert response.status_code == 422
        assert {e["field"]: e["message"] for e in response.json()["errors"]} == expected
    await db.refresh(offer)
    assert offer.status is OfferStatus.SUBMITTED and offer.announcement_number is None
    assert await _count(db, CatalogueEntry) == 0
    assert taken.status is OfferStatus.PUBLISHED

    await login(client, admin)
    page = await client.post(f"/admin/offers/{offer.id}/approve", data={"announcement_number": "CN-OL-1"},
                             headers=await csrf_headers(client))
    assert page.status_code == 422
    assert _field_error(page.text, "announcement_date") == "请填写公告日期"
    assert 'value="CN-OL-1"' in page.text


async def test_transitions_from_the_wrong_state_are_conflicts(client, db):
    licensor = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    draft = await make_offer(db, licensor, await make_patent(db, licensor))
    published = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.PUBLISHED)
    token = bearer(await api_token(db, licensor))
    admin_token = bearer(await api_token(db, admin))
    checks = [
        (f"/api/v1/offers/{draft.id}/withdraw", {"reason": "x"}, token),
        (f"/api/v1/offers/{draft.id}/new-version", None, token),
        (f"/api/v1/offers/{published.id}/submit", None, token),
        (f"/api/v1/offers/{draft.id}/approve", {"announcement_number": "A", "announcement_date": "2024-01-01"},
         admin_token),
        (f"/api/v1/offers/{published.id}/reject", {"reason": "x"}, admin_token),
    ]
    for path, body, headers in checks:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 409, path
        assert response.json()["code"] == "invalid_transition"
    await login(client, licensor)
    assert (await client.get(f"/offers/{published.id}/edit")).headers["location"] == f"/offers/{published.id}"
    edit = await client.post(f"/offers/{published.id}/edit", data=royalty_form(), headers=await csrf_headers(client))
    assert edit.status_code == 409 and "请创建新版本" in edit.text
    await db.refresh(published)
    assert published.fee_terms["mode"] == "lump_sum"


async def test_cost_estimate_api_and_its_bad_inputs(client, db):
    licensor = await make_account(db)
    offer = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.PUBLISHED,
                             fee_terms=ROYALTY)
    path = f"/api/v1/offers/{offer.id}/cost-estimate"
    estimate = await client.get(path, params={"annual_base": "100000000", "start": "2026-01-15"})
    assert estimate.status_code == 200
    body = estimate.json()
    assert (body["start"], body["end"], body["total_fen"]) == ("2026-01-15", "2029-01-14", 10_500_000)
    assert len(body["payments"]) == 12 and body["payments"][0] == {
        "due": "2026-04-14", "amount_fen": 875_000,
        "description": "第1合同年度第1季度提成（预计销售额¥250,000.00×3.5%）",
    }
    minimum_only = (await client.get(path, params={"start": "2026-01-15"})).json()
    assert [p["amount_fen"] for p in minimum_only["payments"]] == [2_000_000] * 3
    assert minimum_only["notes"] == []
    late = (await client.get(path, params={"start": "2099-01-01"})).json()
    assert "许可期限将超过专利权届满日" in late["notes"][0]
    for params, field in [
        ({"annual_base": "abc"}, "annual_base"),
        ({"annual_base": "-5"}, "annual_base"),
        ({"annual_base": "1" * 30}, "annual_base"),
        ({"annual_base": "1.5"}, "annual_base"),
        ({"start": "2026-02-30"}, "start"),
        ({"start": "1900-01-01"}, "start"),
        ({"start": "x" * 1000}, "start"),
    ]:
        response = await client.get(path, params=params)
        assert response.status_code == 422, params
        assert response.json()["errors"][0]["field"] == field


async def test_public_calculator_works_with_and_without_javascript(client, db):
    licensor = await make_account(db)
    offer = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.PUBLISHED,
                             fee_terms=ROYALTY)
    page = await client.get(f"/catalogue/{offer.id}")
    assert page.status_code == 200
    assert 'hx-get="/catalogue/' in page.text and "预计每年销售额（元）" in page.text
    assert "请填写预计每年销售额（元）后测算" in page.text

    plain = await client.get(f"/catalogue/{offer.id}", params={"annual_base": "1,000,000", "start": "2026-01-15"})
    assert plain.status_code == 200 and "<html" in plain.text
    assert re.search(r'id="calc-total">¥105,000.00<', plain.text)
    assert "2026-04-14" in plain.text and "2029-01-14" in plain.text

    partial = await client.get(f"/catalogue/{offer.id}/calculator",
                               params={"annual_base": "1000000", "start": "2026-01-15"}, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.text
    assert re.search(r'id="calc-total">¥105,000.00<', partial.text)

    bad = await client.get(f"/catalogue/{offer.id}/calculator", params={"annual_base": "很多", "start": "明天"})
    assert bad.status_code == 422
    assert "请填写有效的金额" in bad.text and "日期格式应为 YYYY-MM-DD" in bad.text
    bad_page = await client.get(f"/catalogue/{offer.id}", params={"annual_base": "很多"})
    assert bad_page.status_code == 422 and "请填写有效的金额" in bad_page.text


async def test_calculator_for_fixed_fees_needs_no_base_and_shows_deferral(client, db):
    licensor = await make_account(db)
    terms = {"mode": "pay_after_use", "deferral": "months", "deferral_months": 12,
             "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 0}}
    offer = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.PUBLISHED,
                             fee_terms=terms)
    page = await client.get(f"/catalogue/{offer.id}", params={"start": "2026-01-15"})
    assert "预计每年" not in page.text
    assert "首笔款项不早于2027-01-15" in page.text
    assert re.search(r'id="calc-total">¥30,000.00<', page.text)
    assert "先用后付：许可生效后12个月内无需付款" in page.text


async def test_admin_queue_filters_by_status(client, db):
    licensor = await make_account(db)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    submitted = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.SUBMITTED)
    published = await make_offer(db, licensor, await make_patent(db, licensor), status=OfferStatus.PUBLISHED)
    await login(client, admin)
    default = await client.get("/admin/offers")
    assert f"/admin/offers/{submitted.id}" in default.text and f"/admin/offers/{published.id}" not in default.text
    only_published = await client.get("/admin/offers?status=published")
    assert f"/admin/offers/{published.id}" in only_published.text
    assert f"/admin/offers/{submitted.id}" not in only_published.text
    everything = await client.get("/admin/offers?status=all")
    assert f"/admin/offers/{published.id}" in everything.text and f"/admin/offers/{submitted.id}" in everything.text
    nonsense = await client.get("/admin/offers?status=%FF%00")
    assert nonsense.status_code == 200 and f"/admin/offers/{submitted.id}" in nonsense.text


async def test_undecodable_form_bytes_do_not_break_the_form(client, db):
    licensor = await make_account(db)
    await make_patent(db, licensor)
    await login(client, licensor)
    response = await client.post(
        "/offers",
        content=b"patent_id=%FF&fee_terms.mode=lump_sum&territory=%C3%28&licence_term_months=%FE",
        headers=await csrf_headers(client) | {"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (400, 422)
    assert await _count(db, OpenLicenceOffer) == 0
