"""The patent registry through HTTP: the form, the detail page, listing, the API, roles, candidates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import today
from marketplace.patents import rules
from marketplace.patents.models import LegalStatus, Patent, PatentType
from tests.catalogue_factories import publish_offer
from tests.factories import add_member, api_token, bearer, csrf_headers, login, make_account
from tests.patent_factories import make_patent


def _form(**overrides):
    data = {
        "application_number": "CN 2019 1 0012345",
        "title": "一种钠离子电池正极材料",
        "patent_type": "",
        "filing_date": "2019-01-08",
        "grant_date": "2021-05-11",
        "legal_status": "granted",
        "annual_fee_paid_until": "2099-01-07",
        "ipc_main": "H01M4/505",
        "ipc_codes": "H01M 10/054；C01G 45/12",
        "inventors": "王五、赵六",
        "exclusive_or_sole_licence": "none",
        "trl": "5",
        "transfer_intents": ["licence", "assignment"],
        "government_funded": "1",
        "claims_count": "8",
    }
    number = rules.canonical_application_number("201910012345")
    data["application_number"] = "CN 2019 1 0012345." + number[-1]
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


async def _count(db, model=Patent) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


async def test_member_registers_a_patent_and_sees_what_the_platform_computed(client, db):
    account = await make_account(db)
    member = await add_member(db, account)
    await login(client, member)
    response = await client.post("/patents/new", data=_form(), headers=await csrf_headers(client))
    assert response.status_code in (302, 303), response.text
    patent = (await db.scalars(select(Patent))).one()
    assert response.headers["location"] == f"/patents/{patent.id}"
    assert patent.application_number == rules.canonical_application_number("201910012345")
    assert patent.patent_type is PatentType.INVENTION
    assert patent.expiry_date == date(2039, 1, 7)
    assert patent.ipc_main == "H01M 4/505" and patent.ipc_codes == ["H01M 10/054", "C01G 45/12"]
    assert sorted(patent.transfer_intents) == ["assignment", "licence"]
    assert patent.owner_organisation_id == account.organisation.id

    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    assert f"ZL{patent.application_number}" in page.text
    assert "2039-01-07" in page.text
    year = rules.patent_year(date(2019, 1, 8), today())
    assert f"当前为第 {year} 年度" in page.text
    fee = rules.next_annual_fee(PatentType.INVENTION, date(2019, 1, 8), today(), patent.expiry_date)
    assert f"可节省 ¥{fee.open_licence_saving_fen // 100:,}.00" in page.text
    audit = (await db.scalars(select(AuditRecord).where(AuditRecord.entity_type == "patent"))).one()
    assert (audit.action, audit.entity_id, audit.actor_user_id) == ("create", patent.id, member.user.id)


async def test_bad_form_rerenders_with_field_messages_and_writes_nothing(client, db):
    account = await make_account(db)
    await login(client, account)
    response = await client.post(
        "/patents/new",
        data=_form(application_number="202310123456.7", filing_date="2019-02-30", title="", trl="99"),
        headers=await csrf_headers(client),
    )
    assert response.status_code == 422
    for message in ("校验位应为6", "日期不存在：2019年2月30日", "必填，不能为空", "应在1至9之间"):
        assert message in response.text
    assert 'value="202310123456.7"' in response.text
    assert await _count(db) == 0
    assert await _count(db, AuditRecord) == 2  # the account's organisation and user only


async def test_a_number_is_registered_once(client, db):
    mine = await make_account(db)
    other = await make_account(db)
    taken = await make_patent(db, other.organisation)
    own = await make_patent(db, mine.organisation)
    await login(client, mine)
    headers = await csrf_headers(client)
    refused = await client.post(
        "/patents/new", data=_form(application_number=taken.application_number), headers=headers
    )
    assert refused.status_code == 422 and "该专利已由其他机构登记" in refused.text
    again = await client.post("/patents/new", data=_form(application_number=own.application_number), headers=headers)
    assert again.status_code == 422 and "本机构已登记该专利" in again.text
    assert await _count(db) == 2


async def test_editing_updates_fields_keeps_the_number_and_is_audited(client, db):
    account = await make_account(db)
    patent = await make_patent(db, account.organisation, filing_date=date(2016, 3, 10))
    registered_number = patent.application_number
    await login(client, account)
    form = (await client.get(f"/patents/{patent.id}/edit")).text
    assert patent.application_number in form and "readonly" in form
    response = await client.post(
        f"/patents/{patent.id}/edit",
        data=_form(application_number="201910012345.0", filing_date="2016-03-10", grant_date="2018-09-04",
                   legal_status="lapsed", title="修改后的名称", expiry_override="2037-01-01"),
        headers=await csrf_headers(client),
    )
    assert response.status_code in (302, 303), response.text
    await db.refresh(patent)
    assert patent.title == "修改后的名称"
    assert patent.legal_status is LegalStatus.LAPSED
    assert patent.application_number == registered_number
    assert patent.expiry_date == date(2037, 1, 1)
    audit = (await db.scalars(select(AuditRecord).where(AuditRecord.action == "update"))).one()
    assert (audit.from_state, audit.to_state) == ("granted", "lapsed")
    assert "title" in audit.details["changed"] and "expiry_date" in audit.details["changed"]


async def test_edit_errors_rerender_the_edit_form(client, db):
    account = await make_account(db)
    patent = await make_patent(db, account.organisation)
    await login(client, account)
    response = await client.post(
        f"/patents/{patent.id}/edit",
        data=_form(filing_date="2016-03-10", grant_date="2015-01-01"),
        headers=await csrf_headers(client),
    )
    assert response.status_code == 422
    assert "授权日不能早于申请日" in response.text
    assert f'action="/patents/{patent.id}/edit"' in response.text
    await db.refresh(patent)
    assert patent.grant_date == date(2018, 9, 4)


async def test_list_filters_searches_and_paginates(client, db):
    account = await make_account(db)
    for n in range(23):
        await make_patent(db, account.organisation, title=f"储能装置{n:02d}")
    lapsed = await make_patent(db, account.organisation, title="失效的专利", legal_status=LegalStatus.LAPSED)
    design = await make_patent(db, account.organisation, title="灯具外观", patent_type=PatentType.DESIGN,
                               filing_date=date(2022, 2, 1), grant_date=date(2022, 8, 1))
    await make_patent(db, (await make_account(db)).organisation, title="别人的储能装置")
    await login(client, account)

    first = await client.get("/patents")
    assert first.status_code == 200
    assert "共 25 件" in first.text and "第 1 / 2 页" in first.text
    assert "别人的储能装置" not in first.text
    assert "储能装置05" in first.text and "储能装置04" not in first.text
    second = await client.get("/patents?page=2")
    assert "第 2 / 2 页" in second.text
    assert all(f"储能装置{n:02d}" in second.text for n in range(5)) and "储能装置05" not in second.text

    by_status = await client.get("/patents?status=lapsed")
    assert "失效的专利" in by_status.text and "储能装置00" not in by_status.text
    by_type = await client.get("/patents?type=design&status=")
    assert "灯具外观" in by_type.text and "共 1 件" in by_type.text
    by_title = await client.get("/patents", params={"q": "储能装置0"})
    assert "共 10 件" in by_title.text
    noisy_number = "ZL " + lapsed.application_number.replace(".", "．")
    by_number = await client.get("/patents", params={"q": noisy_number})
    assert "失效的专利" in by_number.text and "共 1 件" in by_number.text
    assert design.patent_number in by_type.text


@pytest.mark.parametrize("query", ["page=0", "page=99999999999999999999999", "page=abc", "status=bogus", "type=x"])
async def test_bad_list_parameters_are_client_errors(client, db, query):
    account = await make_account(db)
    await login(client, account)
    response = await client.get(f"/patents?{query}")
    assert 400 <= response.status_code < 500


async def test_control_characters_in_a_search_are_harmless(client, db):
    account = await make_account(db)
    await make_patent(db, account.organisation, title="储能装置")
    await login(client, account)
    page = await client.get("/patents", params={"q": "储能\x00装置"})
    assert page.status_code == 200 and "共 1 件" in page.text
    token = await api_token(db, account)
    found = await client.get("/api/v1/patents", params={"q": "储能\x00"}, headers=bearer(token))
    assert found.status_code == 200 and found.json()["total"] == 1


async def test_patent_pages_for_every_role(client, db):
    owner = await make_account(db)
    member = await add_member(db, owner)
    stranger = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    patent = await make_patent(db, owner.organisation, title="角色测试专利")
    detail, edit = f"/patents/{patent.id}", f"/patents/{patent.id}/edit"

    for path in ("/patents", "/patents/new", detail, edit, "/patents/candidates"):
        anonymous = await client.get(path)
        assert anonymous.status_code in (302, 303) and anonymous.headers["location"].startswith("/login?next=")

    for account in (owner, member):
        await login(client, account)
        for path in ("/patents", "/patents/new", detail, edit, "/patents/candidates"):
            assert (await client.get(path)).status_code == 200, (account.user.role, path)
        assert "角色测试专利" in (await client.get("/patents")).text
        client.cookies.clear()

    await login(client, stranger)
    assert "角色测试专利" not in (await client.get("/patents")).text
    assert (await client.get(detail)).status_code == 404
    assert (await client.get(edit)).status_code == 404
    posted = await client.post(edit, data=_form(), headers=await csrf_headers(client))
    assert posted.status_code == 404
    client.cookies.clear()

    await login(client, admin)
    assert (await client.get(detail)).status_code == 200
    everyone = await client.get("/patents")
    assert "角色测试专利" in everyone.text and owner.organisation.name in everyone.text
    for path in ("/patents/new", edit, "/patents/candidates"):
        assert (await client.get(path)).status_code == 403
    created = await client.post("/patents/new", data=_form(), headers=await csrf_headers(client))
    assert created.status_code == 403
    assert await _count(db) == 1


def _api_body(**overrides):
    body = {
        "application_number": "CN" + rules.canonical_application_number("202120345678"),
        "title": "一种光伏组件清洗机器人",
        "filing_date": "2021-04-20",
        "legal_status": "granted",
        "grant_date": "2021-11-02",
        "annual_fee_paid_until": "2099-04-19",
        "ipc_main": "H02S40/10",
        "inventors": ["陈七"],
        "transfer_intents": ["licence"],
        "exclusive_or_sole_licence": "exclusive",
        "trl": 7,
    }
    body.update(overrides)
    return body


async def test_api_creates_reads_replaces_and_lists(client, db):
    account = await make_account(db)
    token = await api_token(db, account)
    created = await client.post("/api/v1/patents", json=_api_body(), headers=bearer(token))
    assert created.status_code == 201, created.text
    body = created.json()
    number = rules.canonical_application_number("202120345678")
    assert body["application_number"] == number and body["patent_number"] == f"ZL{number}"
    assert body["patent_type"] == "utility_model" and body["expiry_date"] == "2031-04-19"
    assert body["exclusive_or_sole_licence"] == "exclusive" and body["ipc_main"] == "H02S 40/10"

    read = await client.get(f"/api/v1/patents/{body['id']}", headers=bearer(token))
    assert read.status_code == 200 and read.json()["title"] == "一种光伏组件清洗机器人"

    replaced = await client.put(
        f"/api/v1/patents/{body['id']}",
        json=_api_body(title="新名称", exclusive_or_sole_licence="none", implemented=True),
        headers=bearer(token),
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["title"] == "新名称" and replaced.json()["implemented"] is True
    assert replaced.json()["exclusive_or_sole_licence"] == "none"

    await make_patent(db, account.organisation, legal_status=LegalStatus.LAPSED, title="已失效")
    listed = await client.get("/api/v1/patents", params={"legal_status": "lapsed"}, headers=bearer(token))
    assert listed.status_code == 200
    assert [item["title"] for item in listed.json()["items"]] == ["已失效"]
    paged = await client.get("/api/v1/patents", params={"per_page": 1, "page": 2}, headers=bearer(token))
    assert paged.json()["total"] == 2 and paged.json()["pages"] == 2 and len(paged.json()["items"]) == 1
    actions = (await db.scalars(select(AuditRecord.via).where(AuditRecord.entity_type == "patent"))).all()
    assert actions == ["api", "api"]


async def test_api_validation_problems_name_the_fields(client, db):
    account = await make_account(db)
    token = await api_token(db, account)
    response = await client.post(
        "/api/v1/patents",
        json=_api_body(application_number="202310123456.7", grant_date="2020-01-01", patent_type="design"),
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert errors == {"application_number": "校验位应为6", "grant_date": "授权日不能早于申请日"}
    mismatch = await client.post("/api/v1/patents", json=_api_body(patent_type="design"), headers=bearer(token))
    assert {e["field"] for e in mismatch.json()["errors"]} == {"patent_type"}
    wrong_types = await client.post("/api/v1/patents", json=_api_body(trl="high", filing_date="soon"),
                                    headers=bearer(token))
    assert wrong_types.status_code == 400
    huge = await client.post("/api/v1/patents", json=_api_body(claims_count=10**30), headers=bearer(token))
    assert huge.status_code in (400, 422)
    created = await client.post("/api/v1/patents", json=_api_body(), headers=bearer(token))
    changed_number = await client.put(
        f"/api/v1/patents/{created.json()['id']}",
        json=_api_body(application_number=rules.canonical_application_number("202120345679")),
        headers=bearer(token),
    )
    assert changed_number.status_code == 422
    assert changed_number.json()["errors"][0]["field"] == "application_number"
    assert await _count(db) == 1


async def test_api_for_every_role(client, db):
    owner = await make_account(db)
    stranger = await make_account(db)
    patent = await make_patent(db, owner.organisation)
    owner_token, stranger_token = await api_token(db, owner), await api_token(db, stranger)
    path = f"/api/v1/patents/{patent.id}"

    assert (await client.get(path)).status_code == 401
    assert (await client.get("/api/v1/patents")).status_code == 401
    assert (await client.post("/api/v1/patents", json=_api_body())).status_code == 401
    assert (await client.get(path, headers=bearer(owner_token))).status_code == 200
    assert (await client.get(path, headers=bearer(stranger_token))).status_code == 404
    put = await client.put(path, json=_api_body(application_number=patent.application_number),
                           headers=bearer(stranger_token))
    assert put.status_code == 404
    assert (await client.get("/api/v1/patents", headers=bearer(stranger_token))).json()["total"] == 0
    assert (await client.get("/api/v1/patents/999999999999999999999", headers=bearer(owner_token))).status_code in (
        400, 404
    )
    await db.refresh(patent)
    assert patent.title == "一种锂电池负极材料的制备方法"


async def test_changing_a_published_patent_refreshes_or_removes_its_catalogue_entry(client, db):
    account = await make_account(db)
    offer = await publish_offer(db, account.organisation, "原名称的专利")
    patent_id = offer.patent_id
    patent = await db.get(Patent, patent_id)
    token = await api_token(db, account)
    body = _api_body(
        application_number=patent.application_number, filing_date=patent.filing_date.isoformat(),
        grant_date=patent.grant_date.isoformat(), title="更新后的名称", exclusive_or_sole_licence="none",
        ipc_main="H01M 4/36",
    )
    renamed = await client.put(f"/api/v1/patents/{patent_id}", json=body, headers=bearer(token))
    assert renamed.status_code == 200, renamed.text
    entry = (await db.scalars(select(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id))).one()
    await db.refresh(entry)
    assert entry.title == "更新后的名称"

    lapsed = await client.put(f"/api/v1/patents/{patent_id}", json=body | {"legal_status": "lapsed"},
                              headers=bearer(token))
    assert lapsed.status_code == 200
    assert (await db.scalars(select(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id))).first() is None


async def test_candidates_show_the_saving_and_the_state_licensable_flag(client, db):
    account = await make_account(db)
    now = today()
    four_years = now - timedelta(days=4 * 366)
    six_years = now - timedelta(days=6 * 366)
    plain = await make_patent(db, account.organisation, title="候选甲", filing_date=four_years - timedelta(days=700),
                              grant_date=four_years)
    funded = await make_patent(db, account.organisation, title="候选乙", filing_date=six_years - timedelta(days=500),
                               grant_date=six_years, government_funded=True, patent_type=PatentType.UTILITY_MODEL)
    await make_patent(db, account.organisation, title="已实施的", filing_date=six_years, grant_date=four_years,
                      implemented=True)
    await make_patent(db, account.organisation, title="新授权的", filing_date=four_years,
                      grant_date=now - timedelta(days=30))
    await make_patent(db, account.organisation, title="已失效的", filing_date=six_years, grant_date=four_years,
                      legal_status=LegalStatus.LAPSED)
    await publish_offer(db, account.organisation, "已声明的", filing_date=six_years)
    await make_patent(db, (await make_account(db)).organisation, title="别家的", filing_date=six_years,
                      grant_date=four_years)
    await login(client, account)
    page = await client.get("/patents/candidates")
    assert page.status_code == 200
    for title in ("已实施的", "新授权的", "已失效的", "已声明的", "别家的"):
        assert title not in page.text
    assert "候选甲" in page.text and "候选乙" in page.text
    savings = 0
    for patent in (plain, funded):
        fee = rules.next_annual_fee(patent.patent_type, patent.filing_date, now, patent.expiry_date)
        savings += fee.open_licence_saving_fen
    assert 'id="candidate-count">2 件' in page.text
    assert 'id="state-count">1 件' in page.text
    assert f'id="total-saving">¥{savings // 100:,}.{savings % 100:02d}' in page.text
    assert page.text.count("可由国家依法许可</span>") == 1



async def test_openapi_documents_the_patent_api(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    paths = doc["paths"]
    assert set(paths["/api/v1/patents"]) == {"get", "post"}
    assert set(paths["/api/v1/patents/{patent_id}"]) == {"get", "put"}
    assert set(paths["/api/v1/inventory-uploads"]) == {"post"}
    assert set(paths["/api/v1/inventory-uploads/{upload_id}"]) == {"get"}
    upload_body = paths["/api/v1/inventory-uploads"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body
    schemas = doc["components"]["schemas"]
    assert {"PatentIn", "PatentOut", "PatentPage", "UploadReport", "RowError"} <= set(schemas)
    assert "application_number" in schemas["PatentIn"]["required"]
    assert not any(path.startswith(("/patents", "/inventory-uploads")) for path in paths)
