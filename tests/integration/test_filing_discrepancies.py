"""Reconciliation through the hourly refresh: each kind of discrepancy is found, cleared once fixed,
reopened when it comes back or when its facts change after it was resolved; resolving with a note on
the page (HTMX and plain) and through the API; the party nature code set where enterprises are
verified; and who may use which route."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace.accounts.models import Organisation, OrganisationKind, Role
from marketplace.audit.models import AuditRecord
from marketplace.billing.models import Invoice
from marketplace.clock import today
from marketplace.filings.models import (
    ContractFiling,
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    FilingStatus,
    Registry,
    Severity,
)
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.outbox.services import drain_once
from tests.billing_factories import LUMP_SUM, Licence, licence
from tests.factories import Account, api_token, bearer, csrf_headers, login, make_account
from tests.filing_factories import filing_of, recorded_as_filed, refreshed

LICENCE, REGISTRATION = Registry.LICENCE_FILING, Registry.TECH_CONTRACT


async def _coded(db, item: Licence, nature: str | None = "150") -> Licence:
    """The licensee enterprise with a party nature code, so its registration has nothing to report."""
    organisation = await db.get(Organisation, item.licensee.organisation.id)
    organisation.nature_code = nature
    await db.commit()
    return item


async def _free(db) -> Licence:
    return await _coded(db, await licence(db, fee_terms={"mode": "free"}))


async def _paid(db) -> Licence:
    """A lump-sum licence in force (its first payment taken as made), worth 50,000.00 yuan."""
    item = await _coded(db, await licence(db, fee_terms=LUMP_SUM))
    contract = await db.get(LicenceContract, item.contract.id)
    contract.status = ContractStatus.ACTIVE
    await db.commit()
    return item


async def finding(db, contract_id: int, registry: Registry, kind: DiscrepancyKind) -> Discrepancy | None:
    return await db.scalar(
        select(Discrepancy)
        .where(Discrepancy.contract_id == contract_id, Discrepancy.registry == registry, Discrepancy.kind == kind)
        .execution_options(populate_existing=True)
    )


async def trail(db, discrepancy_id: int) -> list[tuple[str, str | None, str | None, int | None, str]]:
    rows = await db.execute(
        select(AuditRecord.action, AuditRecord.from_state, AuditRecord.to_state, AuditRecord.actor_user_id,
               AuditRecord.via)
        .where(AuditRecord.entity_type == "filing_discrepancy", AuditRecord.entity_id == discrepancy_id)
        .order_by(AuditRecord.id)
    )  # fmt: skip
    return [tuple(row) for row in rows]


async def _set_filing(db, contract_id: int, registry: Registry, **values) -> None:
    filing = await filing_of(db, contract_id, registry)
    for name, value in values.items():
        setattr(filing, name, value)
    await db.commit()


# ---------------------------------------------------------------------------------------------
# Each kind: found, cleared, reopened
# ---------------------------------------------------------------------------------------------


async def test_a_filing_past_its_deadline_is_missing_until_it_gets_a_number(db, settings):
    item = await _free(db)
    await refreshed(db, settings)
    due_on = (await filing_of(db, item.contract.id)).due_on
    assert await finding(db, item.contract.id, LICENCE, DiscrepancyKind.MISSING_FILING) is None

    assert (await refreshed(db, settings, on=due_on)).discrepancies == 0  # the last day is still in time
    result = await refreshed(db, settings, on=due_on + timedelta(days=1))
    assert result.discrepancies == 1
    missing = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.MISSING_FILING)
    assert (missing.status, missing.severity) == (DiscrepancyStatus.OPEN, Severity.HIGH)
    assert due_on.isoformat() in missing.detail and "待导出" in missing.detail
    assert (await refreshed(db, settings, on=due_on + timedelta(days=2))).discrepancies == 0

    await recorded_as_filed(db, item.contract.id, "2026990000101")
    await refreshed(db, settings, on=due_on + timedelta(days=3))
    assert (await finding(db, item.contract.id, LICENCE, DiscrepancyKind.MISSING_FILING)).status is (
        DiscrepancyStatus.CLEARED
    )
    assert await trail(db, missing.id) == [
        ("detected", None, "open", None, "system"),
        ("cleared", "open", "cleared", None, "system"),
    ]


async def test_a_fee_filed_other_than_the_contract_is_found_resolved_and_reopened_when_it_changes(client, db, settings):
    item = await _paid(db)
    await refreshed(db, settings)
    await recorded_as_filed(db, item.contract.id, "2026990000102", (LICENCE,), fee_fen=4_000_000)
    await recorded_as_filed(db, item.contract.id, "2026990000102", (REGISTRATION,))
    await refreshed(db, settings)

    terms = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.TERMS_DIFFER)
    assert (terms.status, terms.severity) == (DiscrepancyStatus.OPEN, Severity.HIGH)
    assert "备案使用费 40000.00 元，合同 50000.00 元" in terms.detail
    assert await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.VALUE_DIFFERS) is None

    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    resolved = await client.post(
        f"/api/v1/discrepancies/{terms.id}/resolve",
        json={"note": "登记机关按旧合同金额备案，已提交变更"},
        headers=bearer(await api_token(db, admin)),
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_by"] == admin.user.display_name

    await refreshed(db, settings)  # the same facts: it stays resolved
    assert (await finding(db, item.contract.id, LICENCE, DiscrepancyKind.TERMS_DIFFER)).status is (
        DiscrepancyStatus.RESOLVED
    )

    await _set_filing(db, item.contract.id, LICENCE, recorded={**(await filing_of(db, item.contract.id)).recorded,
                                                               "fee_fen": 3_000_000})  # fmt: skip
    assert (await refreshed(db, settings)).discrepancies == 1
    reopened = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.TERMS_DIFFER)
    assert reopened.status is DiscrepancyStatus.OPEN and reopened.resolution_note is None
    assert "备案使用费 30000.00 元" in reopened.detail

    await recorded_as_filed(db, item.contract.id, "2026990000102", (LICENCE,))
    await refreshed(db, settings)
    assert (await finding(db, item.contract.id, LICENCE, DiscrepancyKind.TERMS_DIFFER)).status is (
        DiscrepancyStatus.CLEARED
    )
    assert [(action, to, actor) for action, _, to, actor, _ in await trail(db, terms.id)] == [
        ("detected", "open", None),
        ("resolved", "resolved", admin.user.id),
        ("reopened", "open", None),
        ("cleared", "cleared", None),
    ]


async def test_a_term_filed_other_than_the_contract_names_both_terms(db, settings):
    item = await _free(db)
    await refreshed(db, settings)
    await recorded_as_filed(db, item.contract.id, "2026990000103", (LICENCE,), end="2027-01-31")
    await refreshed(db, settings)
    terms = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.TERMS_DIFFER)
    contract = item.contract
    assert f"备案许可期限 {contract.start_date.isoformat()} 至 2027-01-31" in terms.detail
    assert f"合同 {contract.start_date.isoformat()} 至 {contract.end_date.isoformat()}" in terms.detail


async def test_a_registered_value_that_differs_is_found_and_cleared_when_corrected(db, settings):
    item = await _paid(db)
    await refreshed(db, settings)
    await recorded_as_filed(
        db, item.contract.id, "2026110000000001", (REGISTRATION,), contract_value_fen=4_000_000,
        transaction_value_fen=4_000_000,
    )  # fmt: skip
    await refreshed(db, settings)
    value = await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.VALUE_DIFFERS)
    assert (value.status, value.severity) == (DiscrepancyStatus.OPEN, Severity.MEDIUM)
    assert "登记合同成交额 40000.00 元，合同 50000.00 元" in value.detail
    assert "登记技术交易额 40000.00 元，合同 50000.00 元" in value.detail

    await recorded_as_filed(db, item.contract.id, "2026110000000001", (REGISTRATION,))
    await refreshed(db, settings)
    assert (await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.VALUE_DIFFERS)).status is (
        DiscrepancyStatus.CLEARED
    )


async def test_payments_received_beyond_the_registered_transaction_value(client, db, sessionmaker, settings):
    item = await _coded(db, await licence(db, fee_terms=LUMP_SUM))
    while await drain_once(sessionmaker, settings):
        pass
    invoice = await db.scalar(select(Invoice).where(Invoice.contract_id == item.contract.id))
    declared = await client.post(
        "/api/v1/payments",
        json={"invoice_id": invoice.id, "amount_fen": 6_000_000, "payer_name": item.licensee.organisation.name,
              "remitted_on": today().isoformat(), "reference": "HX-OVER", "idempotency_key": "overpaid-1"},
        headers=bearer(await api_token(db, item.licensee)),
    )  # fmt: skip
    assert declared.status_code == 201, declared.text
    confirmed = await client.post(
        f"/api/v1/payments/{declared.json()['id']}/confirm", headers=bearer(await api_token(db, item.licensor))
    )
    assert confirmed.status_code == 200, confirmed.text
    await refreshed(db, settings)
    await recorded_as_filed(db, item.contract.id, "2026110000000002", (REGISTRATION,))
    await refreshed(db, settings)

    value = await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.VALUE_DIFFERS)
    assert value.status is DiscrepancyStatus.OPEN
    assert value.detail == "登记编号 2026110000000002：已到账 60000.00 元，超过登记技术交易额 50000.00 元"


async def test_an_enterprise_without_a_nature_code_until_the_admin_sets_one_on_the_verification_page(
    client, db, settings
):
    item = await _coded(db, await licence(db, fee_terms={"mode": "free"}), nature=None)
    await refreshed(db, settings)
    codes = await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.PARTY_CODES)
    assert (codes.status, codes.severity) == (DiscrepancyStatus.OPEN, Severity.MEDIUM)
    assert f"买方“{item.licensee.organisation.name}”没有单位性质代码" in codes.detail
    assert await finding(db, item.contract.id, LICENCE, DiscrepancyKind.PARTY_CODES) is None

    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    await login(client, admin)
    organisation_id = item.licensee.organisation.id
    page = await client.get(f"/admin/enterprises/{organisation_id}")
    assert "未设置（技术合同登记需要）" in page.text and '<option value="150">有限责任公司</option>' in page.text
    assert '<option value="022">' not in page.text  # a university's nature is no choice for an enterprise

    url = f"/admin/enterprises/{organisation_id}/nature"
    for code, message in (
        ("", "请选择单位性质"),
        ("022", "所选单位性质不在企业类代码表中"),
        ("9x", "所选单位性质不在企业类代码表中"),
    ):
        refused = await client.post(url, data={"nature_code": code}, headers=await csrf_headers(client))
        assert refused.status_code == 422 and message in refused.text
    assert (await db.get(Organisation, organisation_id, populate_existing=True)).nature_code is None

    saved = await client.post(url, data={"nature_code": "170"}, headers=await csrf_headers(client))
    assert saved.status_code in (302, 303)
    assert (await db.get(Organisation, organisation_id, populate_existing=True)).nature_code == "170"
    page = await client.get(f"/admin/enterprises/{organisation_id}")
    assert "170 私营企业" in page.text and "设置单位性质" in page.text
    reason = await db.scalar(
        select(AuditRecord.reason).where(
            AuditRecord.entity_type == "organisation",
            AuditRecord.entity_id == organisation_id,
            AuditRecord.action == "set_nature_code",
            AuditRecord.actor_user_id == admin.user.id,
        )
    )
    assert reason == "单位性质：170 私营企业（原：未设置）"

    await refreshed(db, settings)
    assert (await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.PARTY_CODES)).status is (
        DiscrepancyStatus.CLEARED
    )


async def test_a_registered_party_code_that_is_no_longer_ours_and_a_uscc_from_another_province(db, settings):
    item = await _free(db)
    await refreshed(db, settings)
    await recorded_as_filed(db, item.contract.id, "2026110000000003", (REGISTRATION,))
    await _coded(db, item, "160")
    await refreshed(db, settings)
    codes = await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.PARTY_CODES)
    assert codes.severity is Severity.MEDIUM
    assert "登记的买方单位性质代码为 150，现为 160" in codes.detail

    # A licensor registered in Beijing (its USCC says 110000) whose division is now Shanghai: low on its own.
    shanghai = await make_account(db, kind=OrganisationKind.UNIVERSITY, division_code="310115")
    other = await _coded(db, await licence(db, fee_terms={"mode": "free"}))
    contract = await db.get(LicenceContract, other.contract.id)
    contract.licensor_organisation_id = shanghai.organisation.id
    await db.commit()
    await refreshed(db, settings)
    low = await finding(db, other.contract.id, REGISTRATION, DiscrepancyKind.PARTY_CODES)
    assert low.severity is Severity.LOW
    assert "110000（北京市）" in low.detail and "310115（上海市浦东新区）" in low.detail


async def test_a_refusal_not_reexported_is_found_cleared_on_reexport_and_reopened_when_refused_again(db, settings):
    item = await _free(db)
    await refreshed(db, settings)
    refused = {"status": FilingStatus.REFUSED, "refused_on": today(), "refusal_reasons": "专利权人名称与登记不一致"}
    await _set_filing(db, item.contract.id, LICENCE, **refused)
    await refreshed(db, settings)
    found = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)
    assert (found.status, found.severity) == (DiscrepancyStatus.OPEN, Severity.HIGH)
    assert "专利权人名称与登记不一致" in found.detail
    first_detected = found.detected_at

    await _set_filing(db, item.contract.id, LICENCE, status=FilingStatus.EXPORTED)
    await refreshed(db, settings)
    assert (await finding(db, item.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)).status is (
        DiscrepancyStatus.CLEARED
    )
    await _set_filing(db, item.contract.id, LICENCE, **(refused | {"refusal_reasons": "缺少合同附件"}))
    assert (await refreshed(db, settings)).discrepancies == 1
    again = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)
    assert again.status is DiscrepancyStatus.OPEN and "缺少合同附件" in again.detail
    assert again.detected_at >= first_detected
    assert [action for action, *_ in await trail(db, found.id)] == ["detected", "cleared", "reopened"]


async def test_reconciliation_reads_every_chunk(db, settings, monkeypatch):
    from marketplace.filings import reconciliation

    monkeypatch.setattr(reconciliation, "CHUNK", 2)
    items = [await _coded(db, await licence(db, fee_terms={"mode": "free"}), nature=None) for _ in range(5)]
    await refreshed(db, settings)
    for item in items:
        assert (await finding(db, item.contract.id, REGISTRATION, DiscrepancyKind.PARTY_CODES)).status is (
            DiscrepancyStatus.OPEN
        )


# ---------------------------------------------------------------------------------------------
# Resolving on the page and through the API
# ---------------------------------------------------------------------------------------------


async def _open_finding(db, settings) -> tuple[Licence, Discrepancy]:
    item = await _free(db)
    await refreshed(db, settings)
    await _set_filing(db, item.contract.id, LICENCE, status=FilingStatus.REFUSED, refusal_reasons="缺少附件")
    await refreshed(db, settings)
    return item, await finding(db, item.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)


async def test_the_page_lists_open_findings_and_resolves_one_in_place_with_a_note(client, db, settings):
    item, found = await _open_finding(db, settings)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    await login(client, admin)

    page = await client.get("/admin/filings/discrepancies")
    assert page.status_code == 200
    assert f'href="/contracts/{item.contract.id}">{item.contract.number}</a>' in page.text
    assert "缺少附件" in page.text and 'hx-post="/admin/filings/discrepancies/' in page.text

    htmx = {**await csrf_headers(client), "HX-Request": "true"}
    url = f"/admin/filings/discrepancies/{found.id}/resolve"
    missing = await client.post(url, data={"note": "   "}, headers=htmx)
    assert missing.status_code == 422
    assert missing.text.lstrip().startswith(f'<tr id="discrepancy-{found.id}"')
    assert "请填写处理说明" in missing.text
    assert (await finding(db, item.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)).status is (
        DiscrepancyStatus.OPEN
    )

    done = await client.post(url, data={"note": "已补交附件，下批重新报送"}, headers=htmx)
    assert done.status_code == 200
    assert done.text.lstrip().startswith(f'<tr id="discrepancy-{found.id}"')
    assert "已处理" in done.text and "已补交附件，下批重新报送" in done.text and admin.user.display_name in done.text
    resolved = await finding(db, item.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)
    assert (resolved.status, resolved.resolved_by_user_id) == (DiscrepancyStatus.RESOLVED, admin.user.id)
    assert (await trail(db, found.id))[-1] == ("resolved", "open", "resolved", admin.user.id, "web")

    assert item.contract.number not in (await client.get("/admin/filings/discrepancies")).text
    listed = await client.get("/admin/filings/discrepancies?status=resolved")
    assert item.contract.number in listed.text and "已补交附件，下批重新报送" in listed.text
    again = await client.post(url, data={"note": "再次处理"}, headers=htmx)
    assert again.status_code == 409


async def test_without_javascript_the_form_returns_to_the_list(client, db, settings):
    _, found = await _open_finding(db, settings)
    await login(client, await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN))
    url = f"/admin/filings/discrepancies/{found.id}/resolve"
    missing = await client.post(url, data={"note": ""}, headers=await csrf_headers(client))
    assert missing.status_code == 422
    assert "<h1>对账差异</h1>" in missing.text and "请填写处理说明" in missing.text
    too_long = await client.post(url, data={"note": "长" * 2001}, headers=await csrf_headers(client))
    assert too_long.status_code == 422 and "处理说明不能超过2000个字符" in too_long.text

    done = await client.post(url, data={"note": "已核实"}, headers=await csrf_headers(client))
    assert done.status_code in (302, 303)
    assert done.headers["location"] == "/admin/filings/discrepancies?status=resolved"


def _table(page: str) -> str:
    """The findings table of the page (the filters above it name every kind)."""
    return page[page.index('<table id="discrepancies"') :]


async def test_filters_and_order_most_severe_first(client, db, settings):
    missing = await _free(db)
    codes = await _coded(db, await licence(db, fee_terms={"mode": "free"}), nature=None)
    await refreshed(db, settings)
    await recorded_as_filed(db, codes.contract.id, "2026990000104", (LICENCE,))
    await refreshed(db, settings)
    due_on = (await filing_of(db, missing.contract.id)).due_on
    await refreshed(db, settings, on=due_on + timedelta(days=1))
    await login(client, await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN))

    # The party codes were found an hour earlier, but the missing filing is more severe.
    listed = _table((await client.get("/admin/filings/discrepancies")).text)
    assert listed.index(missing.contract.number) < listed.index(codes.contract.number)
    medium = _table((await client.get("/admin/filings/discrepancies?severity=medium")).text)
    assert codes.contract.number in medium and missing.contract.number not in medium
    registration = _table((await client.get("/admin/filings/discrepancies?registry=tech_contract")).text)
    assert codes.contract.number in registration and missing.contract.number not in registration
    kind = _table((await client.get("/admin/filings/discrepancies?kind=missing_filing")).text)
    assert missing.contract.number in kind and codes.contract.number not in kind
    bad = await client.get("/admin/filings/discrepancies?severity=urgent&kind=nothing")
    assert bad.status_code == 422 and "严重程度取值无效" in bad.text and "差异类型取值无效" in bad.text


async def test_the_api_lists_reads_and_resolves(client, db, settings):
    item, found = await _open_finding(db, settings)
    token = await api_token(db, await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN))
    listed = await client.get("/api/v1/discrepancies?severity=high", headers=bearer(token))
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 1 and body["items"][0]["id"] == found.id
    assert body["items"][0]["contract_number"] == item.contract.number
    assert body["items"][0]["kind"] == "refused_not_reexported" and "缺少附件" in body["items"][0]["detail"]
    assert (await client.get("/api/v1/discrepancies?status=resolved", headers=bearer(token))).json()["total"] == 0

    bad = await client.get("/api/v1/discrepancies?kind=nothing", headers=bearer(token))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"
    assert (await client.get("/api/v1/discrepancies/999999", headers=bearer(token))).status_code == 404

    url = f"/api/v1/discrepancies/{found.id}/resolve"
    for body in ({}, {"note": ""}, {"note": " \n "}):
        empty = await client.post(url, json=body, headers=bearer(token))
        assert empty.status_code == 422
        assert empty.headers["content-type"].startswith("application/problem+json")
        assert empty.json()["errors"][0]["field"] == "note"
    assert (await client.get(f"/api/v1/discrepancies/{found.id}", headers=bearer(token))).json()["status"] == "open"

    done = await client.post(url, json={"note": "已与登记机关核实"}, headers=bearer(token))
    assert done.status_code == 200 and done.json()["resolution_note"] == "已与登记机关核实"
    read = (await client.get(f"/api/v1/discrepancies/{found.id}", headers=bearer(token))).json()
    assert read["status"] == "resolved" and read["resolved_at"] is not None
    assert (await client.post(url, json={"note": "再次"}, headers=bearer(token))).status_code == 409
    all_items = (await client.get("/api/v1/discrepancies?status=all", headers=bearer(token))).json()
    assert [entry["id"] for entry in all_items["items"]] == [found.id]


# ---------------------------------------------------------------------------------------------
# Who may use which route
# ---------------------------------------------------------------------------------------------

ROLES = ("anonymous", "enterprise", "university", "platform_admin")


async def _accounts(db) -> dict[str, Account]:
    return {
        "enterprise": await make_account(db, kind=OrganisationKind.ENTERPRISE),
        "university": await make_account(db, kind=OrganisationKind.UNIVERSITY),
        "platform_admin": await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN),
    }


@pytest.mark.parametrize("role", ROLES)
async def test_pages_are_for_platform_admins_only(client, db, settings, role):
    _, found = await _open_finding(db, settings)
    accounts = await _accounts(db)
    if role != "anonymous":
        await login(client, accounts[role])
    listed = await client.get("/admin/filings/discrepancies")
    resolve = await client.post(
        f"/admin/filings/discrepancies/{found.id}/resolve", data={"note": "处理"}, headers=await csrf_headers(client)
    )
    if role == "anonymous":
        assert listed.status_code in (302, 303) and "/login" in listed.headers["location"]
        assert resolve.status_code in (302, 303, 401)
    elif role == "platform_admin":
        assert listed.status_code == 200 and resolve.status_code in (302, 303)
    else:
        assert (listed.status_code, resolve.status_code) == (403, 403)
    expected = DiscrepancyStatus.RESOLVED if role == "platform_admin" else DiscrepancyStatus.OPEN
    assert (await db.get(Discrepancy, found.id, populate_existing=True)).status is expected


@pytest.mark.parametrize("role", ROLES)
async def test_the_api_is_for_platform_admins_and_the_platform_token_only(client, db, settings, role):
    _, found = await _open_finding(db, settings)
    accounts = await _accounts(db)
    headers = bearer(await api_token(db, accounts[role])) if role != "anonymous" else {}
    responses = [
        await client.get("/api/v1/discrepancies", headers=headers),
        await client.get(f"/api/v1/discrepancies/{found.id}", headers=headers),
        await client.post(f"/api/v1/discrepancies/{found.id}/resolve", json={"note": "处理"}, headers=headers),
    ]
    expected = {"anonymous": 401, "enterprise": 403, "university": 403, "platform_admin": 200}[role]
    assert [response.status_code for response in responses] == [expected] * 3


async def test_a_filing_status_change_leaves_other_contracts_untouched(db, settings):
    """Findings belong to their contract: fixing one clears that one only."""
    first, second = await _free(db), await _free(db)
    await refreshed(db, settings)
    for item in (first, second):
        await _set_filing(db, item.contract.id, LICENCE, status=FilingStatus.REFUSED, refusal_reasons="缺页")
    await refreshed(db, settings)
    await _set_filing(db, first.contract.id, LICENCE, status=FilingStatus.EXPORTED)
    await refreshed(db, settings)
    statuses = {
        contract_id: status
        for contract_id, status in await db.execute(
            select(Discrepancy.contract_id, Discrepancy.status).where(
                Discrepancy.kind == DiscrepancyKind.REFUSED_NOT_REEXPORTED
            )
        )
    }
    assert statuses == {first.contract.id: DiscrepancyStatus.CLEARED, second.contract.id: DiscrepancyStatus.OPEN}
    assert await db.scalar(select(ContractFiling.status).where(ContractFiling.contract_id == second.contract.id,
                                                             ContractFiling.registry == LICENCE)) is (
        FilingStatus.REFUSED
    )  # fmt: skip


async def test_after_an_export_the_worker_reconciles_the_exported_contracts_and_only_those(
    client, db, sessionmaker, settings
):
    overdue, refused, untouched = await _free(db), await _free(db), await _free(db)
    await refreshed(db, settings)
    await _set_filing(db, overdue.contract.id, LICENCE, due_on=today() - timedelta(days=3))
    reasons = {"status": FilingStatus.REFUSED, "refused_on": today(), "refusal_reasons": "许可人地址与登记不一致"}
    await _set_filing(db, refused.contract.id, LICENCE, **reasons)
    await _set_filing(db, untouched.contract.id, LICENCE, **reasons)
    await refreshed(db, settings)
    late = await finding(db, overdue.contract.id, LICENCE, DiscrepancyKind.MISSING_FILING)
    assert late.status is DiscrepancyStatus.OPEN and "待导出" in late.detail

    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    numbers = [overdue.contract.number, refused.contract.number]
    created = await client.post(
        "/api/v1/filing-exports",
        json={"registry": "licence_filing", "format": "xlsx", "contract_numbers": numbers},
        headers=bearer(await api_token(db, admin)),
    )
    assert created.status_code == 201, created.text
    while await drain_once(sessionmaker, settings):
        pass

    late = await finding(db, overdue.contract.id, LICENCE, DiscrepancyKind.MISSING_FILING)
    assert late.status is DiscrepancyStatus.OPEN and "已导出" in late.detail and "待导出" not in late.detail
    cleared = await finding(db, refused.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)
    assert cleared.status is DiscrepancyStatus.CLEARED
    # A refused contract the export did not carry keeps its finding.
    waiting = await finding(db, untouched.contract.id, LICENCE, DiscrepancyKind.REFUSED_NOT_REEXPORTED)
    assert waiting.status is DiscrepancyStatus.OPEN
    assert (await filing_of(db, untouched.contract.id, LICENCE)).status is FilingStatus.REFUSED
