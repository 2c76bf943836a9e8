"""The whole loop an admin runs: export both registries, hand the files in, import the registries'
results, and reconciliation has nothing to say — then a party moves, and the next export carries a
change record whose result brings the books back in line."""

from __future__ import annotations

import csv
import io

import openpyxl
from sqlalchemy import select

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.filings.models import FilingStatus, RecordKind, Registry
from tests.billing_factories import ENTRY_FEE, INSTALMENTS, LUMP_SUM, ROYALTY
from tests.factories import api_token, bearer, make_account
from tests.filing_factories import filing_of, refreshed
from tests.integration.test_filing_exports import _drain, _in_force

MODES = ({"mode": "free"}, LUMP_SUM, INSTALMENTS, ROYALTY, ENTRY_FEE)


async def _export(client, token, sessionmaker, settings, registry: str, file_format: str) -> list[dict[str, str]]:
    created = await client.post("/api/v1/filing-exports", json={"registry": registry, "format": file_format},
                                headers=token)  # fmt: skip
    assert created.status_code == 201, created.text
    await _drain(sessionmaker, settings)
    batch = (await client.get(f"/api/v1/filing-exports/{created.json()['id']}", headers=token)).json()
    body = (await client.get(batch["download_url"], headers=token)).content
    if file_format == "csv":
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).active
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    return [dict(zip(header, row, strict=True)) for row in rows]


def _results_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["合同编号", "办理结果", "编号", "退回原因"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def _results_xlsx(rows: list[list[str]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["合同编号", "办理结果", "登记编号", "退回原因"])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _import(client, token, registry: str, name: str, content: bytes) -> dict:
    answer = await client.post(
        "/api/v1/filing-results", data={"registry": registry}, files={"file": (name, content)}, headers=token
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _open_findings(client, token) -> list[dict]:
    answer = await client.get("/api/v1/discrepancies", params={"status": "open"}, headers=token)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_export_results_import_and_reconciliation_come_out_clean(client, db, sessionmaker, settings):
    licences = [await _in_force(db, terms) for terms in MODES]
    for item in licences:
        (await db.get(Organisation, item.licensee.organisation.id)).nature_code = "150"
    await db.commit()
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    token = bearer(await api_token(db, admin))
    numbers = {item.contract.number: f"2026{index:09d}X" for index, item in enumerate(licences)}
    registrations = {number: f"2026110000{index:06d}" for index, number in enumerate(numbers)}

    exported = await _export(client, token, sessionmaker, settings, "licence_filing", "csv")
    assert sorted(row["合同编号"] for row in exported) == sorted(numbers)
    results = [[row["合同编号"], "准予备案", numbers[row["合同编号"]], ""] for row in exported]
    summary = await _import(client, token, "licence_filing", "备案结果.csv", _results_csv(results))
    assert (summary["filed"], summary["refused"]) == (len(numbers), 0)

    registered = await _export(client, token, sessionmaker, settings, "tech_contract", "xlsx")
    assert {row["专利实施许可合同备案号"] for row in registered} == set(numbers.values())
    rows = [[row["合同编号"], "准予登记", registrations[row["合同编号"]], ""] for row in registered]
    await _import(client, token, "tech_contract", "登记结果.xlsx", _results_xlsx(rows))

    await refreshed(db, settings)
    assert await _open_findings(client, token) == []
    for item in licences:
        for registry, expected in ((Registry.LICENCE_FILING, numbers), (Registry.TECH_CONTRACT, registrations)):
            filing = await filing_of(db, item.contract.id, registry)
            assert (filing.status, filing.number) == (FilingStatus.FILED, expected[item.contract.number])

    # A licensee moves: its licence filing needs a change record; the registry's answer closes the loop.
    moved = licences[1]
    licensee = await db.get(Organisation, moved.licensee.organisation.id)
    licensee.address = "江苏省苏州市工业园区星湖街 328 号"
    await db.commit()
    await refreshed(db, settings)
    filing = await filing_of(db, moved.contract.id)
    assert (filing.status, filing.record_kind) == (FilingStatus.DUE, RecordKind.CHANGE)

    [change] = await _export(client, token, sessionmaker, settings, "licence_filing", "csv")
    assert (change["合同编号"], change["记录类型"], change["原备案号"]) == (
        moved.contract.number,
        "变更",
        numbers[moved.contract.number],
    )
    assert change["被许可人地址"] == "江苏省苏州市工业园区星湖街 328 号"
    await _import(client, token, "licence_filing", "变更结果.csv",
                  _results_csv([[moved.contract.number, "准予备案", numbers[moved.contract.number], ""]]))  # fmt: skip
    await refreshed(db, settings)
    filing = await filing_of(db, moved.contract.id)
    assert (filing.status, filing.recorded["licensee"]["address"]) == (FilingStatus.FILED, licensee.address)
    assert await _open_findings(client, token) == []
    assert await db.scalar(select(Organisation.address).where(Organisation.id == licensee.id)) == licensee.address
