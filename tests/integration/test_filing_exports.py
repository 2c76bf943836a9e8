"""Exports to the registries through the API and the pages: real licences of every payment mode, the
worker renders the batch, the download is parsed and checked against the contracts, and the filings
move to ``exported`` exactly once. Contracts of unverified enterprises are held back until verified."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import timedelta

import openpyxl
import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import Organisation, OrganisationKind, Role, VerificationStatus
from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.filings import rules
from marketplace.filings.models import ContractFiling, FilingBatch, FilingStatus, RecordKind, Registry
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import drain_once
from tests.billing_factories import ENTRY_FEE, FIRST_REVENUE, INSTALMENTS, LUMP_SUM, ROYALTY, Licence, licence
from tests.factories import Account, api_token, bearer, csrf_headers, login, make_account
from tests.filing_factories import filing_of, refreshed
from tests.licensing_factories import PAY_AFTER_USE

MODES = {
    "free": {"mode": "free"},
    "lump_sum": LUMP_SUM,
    "instalments": INSTALMENTS,
    "royalty": ROYALTY,
    "entry_fee_royalty": ENTRY_FEE,
    "pay_after_use_months": PAY_AFTER_USE,
    "pay_after_use_first_revenue": FIRST_REVENUE,
}


async def _in_force(db, fee_terms: dict, **kwargs) -> Licence:
    """A licence that took effect (a first payment, where the terms ask for one, is taken as made)."""
    item = await licence(db, fee_terms=fee_terms, **kwargs)
    if item.contract.status is not ContractStatus.ACTIVE:
        item.contract.status = ContractStatus.ACTIVE
        db.add(item.contract)
        await db.commit()
    return item


async def _platform_admin(db) -> Account:
    return await make_account(db, kind=OrganisationKind.PLATFORM)


async def _drain(sessionmaker, settings) -> None:
    while await drain_once(sessionmaker, settings):
        pass


def _csv_rows(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _by_number(rows: list[list[str]], registry: Registry) -> dict[str, dict[str, str]]:
    headers = list(rules.headers(registry))
    assert rows[0] == headers
    key = "合同编号"
    return {cells[key]: cells for cells in (dict(zip(headers, row, strict=True)) for row in rows[1:])}


async def _batch_count(db) -> int:
    return await db.scalar(select(func.count()).select_from(FilingBatch))


# ---------------------------------------------------------------------------------------------
# The API, the licence filing, CSV
# ---------------------------------------------------------------------------------------------


async def test_an_api_export_carries_every_due_contract_once_and_moves_it_to_exported(
    client, db, sessionmaker, settings
):
    licences = {mode: await _in_force(db, terms) for mode, terms in MODES.items()}
    admin = await _platform_admin(db)
    token = bearer(await api_token(db, admin))

    created = await client.post("/api/v1/filing-exports", json={"registry": "licence_filing", "format": "csv"},
                                headers=token)  # fmt: skip
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["status"] == "preparing" and batch["download_url"] is None
    assert re.fullmatch(rf"FE{today().year}000001", batch["number"])
    preparing = await client.get(f"/api/v1/filing-exports/{batch['id']}/download", headers=token)
    assert preparing.status_code == 409 and preparing.json()["code"] == "batch_preparing"

    await _drain(sessionmaker, settings)
    ready = (await client.get(f"/api/v1/filing-exports/{batch['id']}", headers=token)).json()
    assert (ready["status"], ready["contract_count"], ready["held_back_count"], ready["held_back"]) == (
        "ready",
        len(MODES),
        0,
        [],
    )
    download = await client.get(ready["download_url"], headers=token)
    assert download.status_code == 200
    assert download.headers["x-checksum-sha256"] == hashlib.sha256(download.content).hexdigest() == ready["sha256"]
    assert ready["size_bytes"] == len(download.content)
    disposition = download.headers["content-disposition"]
    assert f'filename="{batch["number"]}-licence_filing.csv"' in disposition and "filename*=UTF-8''" in disposition

    rows = _by_number(_csv_rows(download.content), Registry.LICENCE_FILING)
    assert set(rows) == {item.contract.number for item in licences.values()}
    for item in licences.values():
        row, contract = rows[item.contract.number], item.contract
        filing = await filing_of(db, contract.id)
        assert row["记录类型"] == "新备案"
        assert row["许可人名称"] == item.licensor.organisation.name
        assert row["许可人统一社会信用代码"] == item.licensor.organisation.uscc
        assert row["被许可人名称"] == item.licensee.organisation.name
        assert row["被许可人地址"] == item.licensee.organisation.address
        assert row["专利号"] == f"ZL{item.listing.patent.application_number}"
        assert row["专利名称"] == item.listing.patent.title
        assert row["许可期限起始日"] == contract.start_date.isoformat()
        assert row["许可期限届满日"] == contract.end_date.isoformat()
        assert row["使用费（元）"] == rules.yuan_plain(filing.contract_value_fen)
        assert (filing.status, filing.batch_id) == (FilingStatus.EXPORTED, batch["id"])
        # The registration is a registry of its own: still due.
        assert (await filing_of(db, contract.id, Registry.TECH_CONTRACT)).status is FilingStatus.DUE
    assert rows[licences["lump_sum"].contract.number]["使用费（元）"] == "50000.00"
    assert rows[licences["instalments"].contract.number]["使用费（元）"] == "100000.00"
    assert rows[licences["free"].contract.number]["使用费（元）"] == "0.00"

    moved = (
        await db.execute(
            select(
                AuditRecord.entity_id,
                AuditRecord.from_state,
                AuditRecord.to_state,
                AuditRecord.actor_user_id,
                AuditRecord.actor_organisation_id,
                AuditRecord.via,
                AuditRecord.reason,
                AuditRecord.details,
                AuditRecord.occurred_at,
            ).where(AuditRecord.entity_type == "contract_filing", AuditRecord.action == "exported")
        )
    ).all()
    assert len(moved) == len(MODES)
    number = batch["number"]
    for filing_id, *who, reason, details, occurred_at in moved:
        filing = await db.get(ContractFiling, filing_id)
        assert (filing.status, filing.batch_id) == (FilingStatus.EXPORTED, batch["id"])
        assert who == ["due", "exported", admin.user.id, admin.user.organisation_id, "web"]
        assert reason == f"导出批次 {number}"
        assert details == {"batch_id": batch["id"], "batch_number": number, "record_kind": "new"}
        assert occurred_at.tzinfo is not None and abs((occurred_at - filing.updated_at).total_seconds()) < 1
    created_audit = await db.scalar(
        select(AuditRecord).where(AuditRecord.entity_type == "filing_batch", AuditRecord.action == "created")
    )
    assert (created_audit.entity_id, created_audit.actor_user_id) == (batch["id"], admin.user.id)

    again = await client.post("/api/v1/filing-exports", json={"registry": "licence_filing", "format": "csv"},
                              headers=token)  # fmt: skip
    await _drain(sessionmaker, settings)
    second = (await client.get(f"/api/v1/filing-exports/{again.json()['id']}", headers=token)).json()
    assert second["number"].endswith("000002") and second["contract_count"] == 0
    assert _csv_rows((await client.get(second["download_url"], headers=token)).content) == [
        list(rules.LICENCE_FILING_HEADERS)
    ]
    # The first batch's file is immutable: the same bytes, whatever happened since.
    assert (await client.get(ready["download_url"], headers=token)).content == download.content

    listing = (await client.get("/api/v1/filing-exports", headers=token)).json()
    assert [b["number"] for b in listing["items"]] == [second["number"], batch["number"]]
    assert listing["total"] == 2


# ---------------------------------------------------------------------------------------------
# The pages, the registration, XLSX
# ---------------------------------------------------------------------------------------------


async def test_a_page_export_of_registrations_polls_until_ready_and_downloads_an_xlsx(
    client, db, sessionmaker, settings
):
    free = await _in_force(db, {"mode": "free"})
    royalty = await _in_force(db, ROYALTY)
    await refreshed(db, settings)
    licence_filing = await filing_of(db, free.contract.id)
    licence_filing.status, licence_filing.number = FilingStatus.FILED, "2026110000045"
    await db.commit()
    admin = await _platform_admin(db)
    await login(client, admin)
    headers = await csrf_headers(client)

    page = await client.get("/admin/filings/exports")
    assert page.status_code == 200 and 'name="contract_numbers"' in page.text
    response = await client.post(
        "/admin/filings/exports",
        data={
            "registry": "tech_contract",
            "format": "xlsx",
            "period_from": "",
            "period_to": "",
            "contract_numbers": "",
        },
        headers=headers,
    )
    assert response.status_code in (302, 303), response.text
    detail_url = response.headers["location"]
    batch = await db.scalar(select(FilingBatch))
    assert detail_url == f"/admin/filings/exports/{batch.id}"
    preparing = await client.get(detail_url)
    assert "生成中" in preparing.text and 'hx-trigger="every 2s"' in preparing.text
    assert (await client.get(f"{detail_url}/download")).status_code == 409
    assert 'hx-trigger="every 2s"' in (await client.get(f"{detail_url}/status")).text

    await _drain(sessionmaker, settings)
    status = await client.get(f"{detail_url}/status")
    assert "hx-trigger" not in status.text and 'id="contract-count">2 份' in status.text
    detail = await client.get(detail_url)
    assert free.contract.number in detail.text and f'href="/contracts/{royalty.contract.id}"' in detail.text
    await db.refresh(batch)
    assert batch.sha256 in detail.text

    download = await client.get(f"{detail_url}/download")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert download.headers["x-checksum-sha256"] == hashlib.sha256(download.content).hexdigest() == batch.sha256
    sheet = openpyxl.load_workbook(io.BytesIO(download.content)).active
    values = [[cell.value if cell.value is not None else "" for cell in row] for row in sheet.iter_rows()]
    assert all(cell.data_type == "s" for row in sheet.iter_rows() for cell in row if cell.value is not None)
    rows = _by_number(values, Registry.TECH_CONTRACT)
    assert set(rows) == {free.contract.number, royalty.contract.number}
    row = rows[free.contract.number]
    assert row["卖方名称"] == free.licensor.organisation.name and row["卖方单位性质代码"] == "022"
    assert row["买方统一社会信用代码"] == free.licensee.organisation.uscc
    assert row["卖方行政区划代码"] == "110108" and row["卖方国别代码"] == "156"
    assert (row["支付方式代码"], row["合同成交额（元）"]) == ("05", "0.00")
    assert row["专利实施许可合同备案号"] == "2026110000045"
    assert row["知识产权类型代码"] == "01"
    royalty_row = rows[royalty.contract.number]
    value = (await filing_of(db, royalty.contract.id)).contract_value_fen
    assert royalty_row["合同成交额（元）"] == royalty_row["技术交易额（元）"] == rules.yuan_plain(value)
    assert royalty_row["支付方式代码"] == "03" and royalty_row["专利实施许可合同备案号"] == ""
    for item in (free, royalty):
        filing = await filing_of(db, item.contract.id, Registry.TECH_CONTRACT)
        assert (filing.status, filing.batch_id) == (FilingStatus.EXPORTED, batch.id)

    listing = await client.get("/admin/filings/exports")
    assert batch.number in listing.text and batch.sha256[:12] in listing.text


async def test_a_refused_record_is_exported_again_with_its_record_kind(client, db, sessionmaker, settings):
    item = await _in_force(db, {"mode": "free"})
    await refreshed(db, settings)
    filing = await filing_of(db, item.contract.id)
    filing.status, filing.record_kind, filing.number = FilingStatus.REFUSED, RecordKind.CHANGE, "2026110000046"
    await db.commit()
    token = bearer(await api_token(db, await _platform_admin(db)))
    created = await client.post("/api/v1/filing-exports", json={"registry": "licence_filing", "format": "csv"},
                                headers=token)  # fmt: skip
    await _drain(sessionmaker, settings)
    rows = _by_number(_csv_rows((await client.get(f"/api/v1/filing-exports/{created.json()['id']}/download",
                                                  headers=token)).content), Registry.LICENCE_FILING)  # fmt: skip
    assert (rows[item.contract.number]["记录类型"], rows[item.contract.number]["原备案号"]) == ("变更", "2026110000046")
    assert (await filing_of(db, item.contract.id)).status is FilingStatus.EXPORTED


# ---------------------------------------------------------------------------------------------
# Held back until the enterprise is verified
# ---------------------------------------------------------------------------------------------


async def test_an_unverified_licensee_is_held_back_and_included_once_verified(client, db, sessionmaker, settings):
    pending = await make_account(db, kind=OrganisationKind.ENTERPRISE, verification_status=VerificationStatus.PENDING)
    held = await _in_force(db, {"mode": "free"}, licensee=pending)
    fine = await _in_force(db, {"mode": "free"})
    admin = await _platform_admin(db)
    token = bearer(await api_token(db, admin))

    first = await client.post("/api/v1/filing-exports", json={"registry": "licence_filing", "format": "csv"},
                              headers=token)  # fmt: skip
    await _drain(sessionmaker, settings)
    batch = (await client.get(f"/api/v1/filing-exports/{first.json()['id']}", headers=token)).json()
    assert (batch["contract_count"], batch["held_back_count"]) == (1, 1)
    [entry] = batch["held_back"]
    assert entry["contract_number"] == held.contract.number and pending.organisation.name in entry["reason"]
    rows = _by_number(_csv_rows((await client.get(batch["download_url"], headers=token)).content),
                      Registry.LICENCE_FILING)  # fmt: skip
    assert set(rows) == {fine.contract.number}
    filing = await filing_of(db, held.contract.id)
    assert (filing.status, filing.batch_id) == (FilingStatus.DUE, None)

    await login(client, admin)
    page = await client.get(f"/admin/filings/exports/{batch['id']}")
    held_table = page.text.split('id="held-back"')[1]
    assert held.contract.number in held_table and "尚未通过企业核验" in held_table
    assert fine.contract.number not in held_table

    organisation = await db.get(Organisation, pending.organisation.id)
    organisation.verification_status = VerificationStatus.VERIFIED
    await db.commit()
    second = await client.post("/api/v1/filing-exports", json={"registry": "licence_filing", "format": "csv"},
                               headers=token)  # fmt: skip
    await _drain(sessionmaker, settings)
    after = (await client.get(f"/api/v1/filing-exports/{second.json()['id']}", headers=token)).json()
    assert (after["contract_count"], after["held_back"]) == (1, [])
    rows = _by_number(_csv_rows((await client.get(after["download_url"], headers=token)).content),
                      Registry.LICENCE_FILING)  # fmt: skip
    assert set(rows) == {held.contract.number}
    assert (await filing_of(db, held.contract.id)).batch_id == after["id"]


# ---------------------------------------------------------------------------------------------
# Choosing contracts
# ---------------------------------------------------------------------------------------------


async def test_an_export_can_be_limited_to_contract_numbers_and_a_period(client, db, sessionmaker, settings):
    first, second, third = [await _in_force(db, {"mode": "free"}) for _ in range(3)]
    token = bearer(await api_token(db, await _platform_admin(db)))

    async def exported(body: dict) -> set[str]:
        created = await client.post("/api/v1/filing-exports", json={"registry": "licence_filing", "format": "csv"}
                                    | body, headers=token)  # fmt: skip
        assert created.status_code == 201, created.text
        await _drain(sessionmaker, settings)
        batch = (await client.get(f"/api/v1/filing-exports/{created.json()['id']}", headers=token)).json()
        return set(_by_number(_csv_rows((await client.get(batch["download_url"], headers=token)).content),
                              Registry.LICENCE_FILING))  # fmt: skip

    tomorrow = (today() + timedelta(days=1)).isoformat()
    assert await exported({"period_from": tomorrow}) == set()
    numbers = [second.contract.number, third.contract.number.lower()]
    assert await exported({"contract_numbers": numbers}) == {second.contract.number, third.contract.number}
    batch = await db.scalar(select(FilingBatch).order_by(FilingBatch.id.desc()))
    assert batch.selection["contract_numbers"] == [second.contract.number, third.contract.number]
    assert await exported({"period_from": today().isoformat(), "period_to": today().isoformat()}) == {
        first.contract.number
    }


# ---------------------------------------------------------------------------------------------
# Bad input: field errors, nothing written
# ---------------------------------------------------------------------------------------------


async def _nothing_written(db) -> None:
    assert await _batch_count(db) == 0
    queued = await db.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "filings.render_batch")
    )
    assert queued == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"registry": "patent_office", "format": "csv"}, {"registry"}),
        ({"registry": "licence_filing", "format": "pdf"}, {"format"}),
        ({"format": "csv"}, {"registry"}),
        ({"registry": "licence_filing", "format": "csv", "period_from": "2026-05-01", "period_to": "2026-04-30"},
         {"period_to"}),
        ({"registry": "licence_filing", "format": "csv", "period_from": "2026-13-01"}, {"period_from"}),
        ({"registry": "x", "format": "y", "contract_numbers": ["OL2099999999"]}, {"registry", "format",
                                                                                  "contract_numbers"}),
    ],
)  # fmt: skip
async def test_bad_api_input_gets_field_errors_and_creates_no_batch(client, db, body, fields):
    token = bearer(await api_token(db, await _platform_admin(db)))
    response = await client.post("/api/v1/filing-exports", json=body, headers=token)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {error["field"] for error in response.json()["errors"]} == fields
    await _nothing_written(db)


async def test_unknown_contract_numbers_are_named_in_the_error(client, db):
    known = await _in_force(db, {"mode": "free"})
    token = bearer(await api_token(db, await _platform_admin(db)))
    body = {"registry": "licence_filing", "format": "csv",
            "contract_numbers": [known.contract.number, "OL2099000001", "OL2099000002"]}  # fmt: skip
    response = await client.post("/api/v1/filing-exports", json=body, headers=token)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("contract_numbers", "unknown")
    assert "OL2099000001" in error["message"] and "OL2099000002" in error["message"]
    assert known.contract.number not in error["message"]
    await _nothing_written(db)


async def test_the_page_form_rerenders_with_field_errors_and_creates_no_batch(client, db):
    admin = await _platform_admin(db)
    await login(client, admin)
    response = await client.post(
        "/admin/filings/exports",
        data={"registry": "", "format": "csv", "period_from": "2026-05-01", "period_to": "2026-04-30",
              "contract_numbers": "OL2099000001\nOL2099000002"},
        headers=await csrf_headers(client),
    )  # fmt: skip
    assert response.status_code == 422
    assert "请选择报送类型" in response.text and "不能早于" in response.text
    assert "以下合同编号不存在：OL2099000001、OL2099000002" in response.text
    assert "OL2099000001\nOL2099000002</textarea>" in response.text  # what was typed is kept
    await _nothing_written(db)


async def test_an_unknown_batch_is_not_found(client, db):
    admin = await _platform_admin(db)
    token = bearer(await api_token(db, admin))
    assert (await client.get("/api/v1/filing-exports/999999", headers=token)).status_code == 404
    assert (await client.get("/api/v1/filing-exports/999999/download", headers=token)).status_code == 404
    await login(client, admin)
    assert (await client.get("/admin/filings/exports/999999")).status_code == 404


async def test_the_page_download_says_clearly_that_the_batch_is_still_being_prepared(client, db):
    admin = await _platform_admin(db)
    await login(client, admin)
    await client.post("/admin/filings/exports", data={"registry": "licence_filing", "format": "csv"},
                      headers=await csrf_headers(client))  # fmt: skip
    batch = await db.scalar(select(FilingBatch))
    response = await client.get(f"/admin/filings/exports/{batch.id}/download")
    assert response.status_code == 409
    assert f"导出批次 {batch.number} 仍在生成中" in response.text


# ---------------------------------------------------------------------------------------------
# Who may use each route
# ---------------------------------------------------------------------------------------------


async def _ready_batch(db, sessionmaker, settings, admin: Account) -> int:
    from marketplace.accounts.services import principal_for
    from marketplace.filings.exports import export_now

    batch = await export_now(sessionmaker, settings, principal_for(admin.user), registry="licence_filing",
                             file_format="csv")  # fmt: skip
    return batch.id


def _page_routes(batch_id: int) -> list[tuple[str, str, int]]:
    """(method, path, what a platform admin gets)."""
    base = "/admin/filings/exports"
    return [
        ("GET", base, 200),
        ("POST", base, 302),
        ("GET", f"{base}/{batch_id}", 200),
        ("GET", f"{base}/{batch_id}/status", 200),
        ("GET", f"{base}/{batch_id}/download", 200),
    ]


def _api_routes(batch_id: int) -> list[tuple[str, str, int]]:
    base = "/api/v1/filing-exports"
    return [
        ("POST", base, 201),
        ("GET", base, 200),
        ("GET", f"{base}/{batch_id}", 200),
        ("GET", f"{base}/{batch_id}/download", 200),
    ]


async def _call(client, method: str, path: str, headers: dict[str, str]):
    if method == "GET":
        return await client.get(path, headers=headers)
    if path.startswith("/api/"):
        return await client.post(path, json={"registry": "licence_filing", "format": "csv"}, headers=headers)
    return await client.post(path, data={"registry": "licence_filing", "format": "csv"}, headers=headers)


async def test_only_platform_admins_reach_export_pages(client, db, sessionmaker, settings):
    admin = await _platform_admin(db)
    batch_id = await _ready_batch(db, sessionmaker, settings, admin)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    university = await make_account(db, kind=OrganisationKind.UNIVERSITY, role=Role.ORG_ADMIN)
    routes = _page_routes(batch_id)

    headers = await csrf_headers(client)
    for method, path, _ in routes:
        response = await _call(client, method, path, headers)
        assert response.status_code in (302, 303) and response.headers["location"].startswith("/login"), path
    for account in (enterprise, university):
        client.cookies.clear()
        await login(client, account)
        headers = await csrf_headers(client)
        for method, path, _ in routes:
            assert (await _call(client, method, path, headers)).status_code == 403, (account.email, path)
    client.cookies.clear()
    await login(client, admin)
    headers = await csrf_headers(client)
    for method, path, expected in routes:
        assert (await _call(client, method, path, headers)).status_code == expected, path
    assert await _batch_count(db) == 2


async def test_only_platform_admin_tokens_reach_the_export_api(client, db, sessionmaker, settings):
    admin = await _platform_admin(db)
    batch_id = await _ready_batch(db, sessionmaker, settings, admin)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    university = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    routes = _api_routes(batch_id)

    for method, path, _ in routes:
        response = await _call(client, method, path, {})
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("application/problem+json")
    for account in (enterprise, university):
        token = bearer(await api_token(db, account))
        for method, path, _ in routes:
            assert (await _call(client, method, path, token)).status_code == 403, (account.email, path)
    token = bearer(await api_token(db, admin))
    for method, path, expected in routes:
        assert (await _call(client, method, path, token)).status_code == expected, path
    assert await _batch_count(db) == 2


async def test_rendering_again_leaves_a_ready_batch_alone(db, sessionmaker, settings):
    from marketplace.filings.exports import render_batch

    item = await _in_force(db, {"mode": "free"})
    admin = await _platform_admin(db)
    batch_id = await _ready_batch(db, sessionmaker, settings, admin)
    before = await db.get(FilingBatch, batch_id)
    sha, ready_at = before.sha256, before.ready_at
    await _in_force(db, {"mode": "free"})  # due now, but not part of the batch already made
    async with sessionmaker() as session, session.begin():
        await render_batch(session, settings, batch_id)
    after = await db.get(FilingBatch, batch_id, populate_existing=True)
    assert (after.sha256, after.ready_at, after.contract_count) == (sha, ready_at, 1)
    assert (await filing_of(db, item.contract.id)).batch_id == batch_id
    exported = await db.scalar(
        select(func.count()).select_from(ContractFiling).where(ContractFiling.status == FilingStatus.EXPORTED)
    )
    assert exported == 1
    assert await db.scalar(select(func.count()).select_from(LicenceContract)) == 2
