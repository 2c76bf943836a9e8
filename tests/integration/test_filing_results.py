"""Importing the registries' results: exported records become filed (with the registry's number and
what it recorded), refused (with the reasons, ready for the next export) or cancelled; a bad file is
reported row by row and changes nothing; the same file twice changes nothing the second time.

Exported filings are arranged with ``tests.filing_factories.exported`` (no export renderer involved)."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import timedelta
from html import unescape

import openpyxl
import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.accounts.services import principal_for
from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.filings import results, rules
from marketplace.filings.models import (
    ContractFiling,
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    FilingBatch,
    FilingBatchItem,
    FilingImport,
    FilingStatus,
    RecordKind,
    Registry,
)
from marketplace.licensing import services as licensing
from marketplace.offers.rules import add_months
from marketplace.outbox.models import OutboxMessage
from tests.billing_factories import Licence, licence
from tests.factories import Account, api_token, bearer, csrf_headers, delivered_mail, login, make_account
from tests.filing_factories import exported, filing_of, refreshed

LICENCE, TECH = Registry.LICENCE_FILING, Registry.TECH_CONTRACT
FREE = {"mode": "free"}
HEAD = ["合同编号", "办理结果", "备案号", "退回原因", "办理日期"]
TECH_HEAD = ["合同编号", "办理结果", "登记编号", "退回原因"]


@dataclass
class Books:
    admin: Account
    a: Licence  # exported to both registries
    b: Licence  # exported to both registries
    c: Licence  # due with both, not exported
    batch: FilingBatch

    @property
    def numbers(self) -> tuple[str, str, str]:
        return self.a.contract.number, self.b.contract.number, self.c.contract.number


async def _books(db, settings) -> Books:
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    a, b, c = [await licence(db, fee_terms=FREE) for _ in range(3)]
    batch = await exported(db, settings, [a.contract, b.contract], LICENCE)
    await exported(db, settings, [a.contract, b.contract], TECH)
    return Books(admin, a, b, c, batch)


def csv_file(rows: list[list[object]], *, encoding: str = "utf-8") -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return (codecs.BOM_UTF8 if encoding == "utf-8" else b"") + out.getvalue().encode(encoding)


def xlsx_file(rows: list[list[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def _post_page(client, registry: Registry | str, filename: str, content: bytes):
    """The upload form as a browser sends it (the CSRF token travels in the multipart body)."""
    token = (await csrf_headers(client))["x-csrftoken"]
    value = registry.value if isinstance(registry, Registry) else registry
    return await client.post(
        "/admin/filings/results",
        files={"file": (filename, content, "application/octet-stream")},
        data={"_csrf_token": token, "registry": value},
    )


async def _post_api(client, token: str, registry: Registry, filename: str, content: bytes):
    return await client.post(
        "/api/v1/filing-results",
        files={"file": (filename, content, "application/octet-stream")},
        data={"registry": registry.value},
        headers=bearer(token),
    )


def _report_rows(html: str) -> list[tuple[int, str, str]]:
    table = html.split('id="row-errors"', 1)[1].split("</table>", 1)[0]
    return [
        (int(row), unescape(column), unescape(message))
        for row, column, message in re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>", table)
    ]


async def _filings(db) -> list[tuple]:
    """Every filing as a user would compare it before and after an import."""
    await db.commit()
    rows = await db.execute(
        select(
            ContractFiling.id,
            ContractFiling.status,
            ContractFiling.record_kind,
            ContractFiling.number,
            ContractFiling.filed_on,
            ContractFiling.refused_on,
            ContractFiling.refusal_reasons,
            ContractFiling.recorded,
            ContractFiling.batch_id,
        ).order_by(ContractFiling.id)
    )
    return [tuple(row) for row in rows]


async def _count(db, model, *where) -> int:
    await db.commit()
    return int(await db.scalar(select(func.count()).select_from(model).where(*where)))


async def _item_values(db, batch_id: int, contract_id: int) -> dict:
    return await db.scalar(
        select(FilingBatchItem.values).where(
            FilingBatchItem.batch_id == batch_id, FilingBatchItem.contract_id == contract_id
        )
    )


# ---------------------------------------------------------------------------------------------
# Applying a good file
# ---------------------------------------------------------------------------------------------


async def test_a_csv_files_and_refuses_exported_records_and_keeps_what_the_registry_recorded(client, db, settings):
    books = await _books(db, settings)
    a, b, _ = books.numbers
    on = today()
    content = csv_file(
        [
            [*HEAD, "使用费（元）", "备注"],
            [a, "准予备案", "2026110000001", "", on.isoformat(), "1,234.50", "已寄送"],
            [b, "不予备案", "", "专利处于年费滞纳期", on.strftime("%Y/%m/%d"), "", ""],
        ]
    )
    await login(client, books.admin)
    response = await _post_page(client, LICENCE, "备案结果.csv", content)

    assert response.status_code in (302, 303), response.text
    filing_import = await db.scalar(select(FilingImport))
    assert response.headers["location"] == f"/admin/filings/results/{filing_import.id}"
    assert (filing_import.registry, filing_import.filename, filing_import.sha256) == (
        LICENCE,
        "备案结果.csv",
        hashlib.sha256(content).hexdigest(),
    )
    assert filing_import.created_by_user_id == books.admin.user.id
    counts = filing_import.rows_total, filing_import.filed_count, filing_import.refused_count
    assert (*counts, filing_import.unchanged_count) == (2, 1, 1, 0)

    filed = await filing_of(db, books.a.contract.id)
    assert (filed.status, filed.number, filed.filed_on, filed.refusal_reasons) == (
        FilingStatus.FILED,
        "2026110000001",
        on,
        None,
    )
    exported_values = await _item_values(db, books.batch.id, books.a.contract.id)
    assert exported_values["fee_fen"] == 0
    assert filed.recorded == exported_values | {"fee_fen": 123_450}
    refused = await filing_of(db, books.b.contract.id)
    assert (refused.status, refused.refused_on, refused.refusal_reasons, refused.number) == (
        FilingStatus.REFUSED,
        on,
        "专利处于年费滞纳期",
        None,
    )
    assert refused.status in rules.EXPORTABLE
    assert (await filing_of(db, books.c.contract.id)).status is FilingStatus.DUE
    # The other registry's records wait for their own results.
    assert (await filing_of(db, books.a.contract.id, TECH)).status is FilingStatus.EXPORTED

    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    assert re.search(r'id="filed">1<', page.text) and re.search(r'id="refused">1<', page.text)
    assert f'<a href="/contracts/{books.a.contract.id}">{a}</a>' in page.text
    assert "2026110000001" in page.text and "专利处于年费滞纳期" in page.text and "被退回" in page.text
    listing = await client.get("/admin/filings/results")
    assert listing.status_code == 200 and "备案结果.csv" in listing.text
    download = await client.get(response.headers["location"] + "/report.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(download.content.decode("utf-8-sig")))) == [
        ["行号", "合同编号", "记录类型", "结果", "编号", "办理日期", "退回原因"],
        ["2", a, "新备案", "已办结", "2026110000001", on.isoformat(), ""],
        ["3", b, "新备案", "被退回", "", on.isoformat(), "专利处于年费滞纳期"],
    ]


async def test_the_findings_are_current_as_soon_as_the_results_are_in(client, db, settings):
    """No waiting for the hourly refresh: a contract filed by the import is no longer overdue, and a fee
    the registry recorded otherwise is a finding at once (both on the pages the admin goes to next)."""
    books = await _books(db, settings)
    a, b, _ = books.numbers
    overdue = await filing_of(db, books.a.contract.id)
    overdue.due_on = today() - timedelta(days=5)
    await db.commit()
    await refreshed(db, settings)
    missing = await db.scalar(select(Discrepancy).where(Discrepancy.kind == DiscrepancyKind.MISSING_FILING))
    assert (missing.contract_id, missing.status) == (books.a.contract.id, DiscrepancyStatus.OPEN)

    token = await api_token(db, books.admin)
    content = csv_file([[*HEAD, "使用费（元）"], [a, "准予备案", "2026110000001", "", "", ""],
                        [b, "准予备案", "2026110000002", "", "", "800.00"]])  # fmt: skip
    assert (await _post_api(client, token, LICENCE, "备案结果.csv", content)).status_code == 201

    await db.commit()
    findings = {
        (d.contract_id, d.kind): (d.status, d.detail)
        for d in await db.scalars(
            select(Discrepancy).where(Discrepancy.registry == LICENCE).execution_options(populate_existing=True)
        )
    }
    assert findings == {
        (books.a.contract.id, DiscrepancyKind.MISSING_FILING): (DiscrepancyStatus.CLEARED, missing.detail),
        (books.b.contract.id, DiscrepancyKind.TERMS_DIFFER): (
            DiscrepancyStatus.OPEN,
            "备案号 2026110000002：备案使用费 800.00 元，合同 0.00 元",
        ),
    }
    await login(client, books.admin)
    page = (await client.get(f"/contracts/{books.a.contract.id}")).text
    assert "2026110000001" in page and "逾期未备案" not in page


async def test_an_xlsx_registration_result_through_the_api(client, db, settings):
    books = await _books(db, settings)
    a, b, _ = books.numbers
    on, end = today(), add_months(today(), 24)
    content = xlsx_file(
        [
            ["登记编号", "合同编号", "办理结果", "办理日期", "合同成交额（元）", "有效期止", "退回原因"],
            ["2026110100000001", a, "登记成功", on, 5000, end, None],
            [None, b, "不予登记", on, None, None, "技术交易额填写有误"],
        ]
    )
    token = await api_token(db, books.admin)
    response = await _post_api(client, token, TECH, "登记结果.xlsx", content)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["registry"], body["rows_total"], body["filed"], body["refused"], body["unchanged"]) == (
        "tech_contract",
        2,
        1,
        1,
        0,
    )
    assert [(r["row"], r["contract_number"], r["result"], r["number"]) for r in body["rows"]] == [
        (2, a, "filed", "2026110100000001"),
        (3, b, "refused", None),
    ]
    assert body["url"] == f"/admin/filings/results/{body['id']}"
    filed = await filing_of(db, books.a.contract.id, TECH)
    assert (filed.status, filed.number, filed.filed_on) == (FilingStatus.FILED, "2026110100000001", on)
    assert filed.recorded["contract_value_fen"] == 500_000 and filed.recorded["end"] == end.isoformat()
    assert filed.recorded["seller"]["name"] == books.a.licensor.organisation.name
    assert (await filing_of(db, books.b.contract.id, TECH)).refusal_reasons == "技术交易额填写有误"
    # The licence filing of the same contracts is untouched.
    assert (await filing_of(db, books.a.contract.id)).status is FilingStatus.EXPORTED

    read = await client.get(f"/api/v1/filing-results/{body['id']}", headers=bearer(token))
    assert read.status_code == 200 and read.json()["rows"] == body["rows"]
    listed = await client.get("/api/v1/filing-results", headers=bearer(token))
    assert listed.status_code == 200
    assert (listed.json()["total"], [item["id"] for item in listed.json()["items"]]) == (1, [body["id"]])
    missing = await client.get(f"/api/v1/filing-results/{body['id'] + 1}", headers=bearer(token))
    assert missing.status_code == 404


async def test_importing_the_same_file_again_changes_nothing_and_reports_unchanged(client, db, settings):
    books = await _books(db, settings)
    a, b, _ = books.numbers
    content = csv_file([HEAD, [a, "准予备案", "2026110000001", "", ""], [b, "退回", "", "材料不全", ""]])
    await login(client, books.admin)
    assert (await _post_page(client, LICENCE, "结果.csv", content)).status_code in (302, 303)
    before = await _filings(db)
    audits = await _count(db, AuditRecord, AuditRecord.entity_type == "contract_filing")
    mails = await _count(db, OutboxMessage)

    again = await _post_page(client, LICENCE, "结果.csv", content)

    assert again.status_code in (302, 303), again.text
    second = await db.scalar(select(FilingImport).order_by(FilingImport.id.desc()))
    counts = second.rows_total, second.filed_count, second.refused_count, second.unchanged_count
    assert counts == (2, 0, 0, 2)
    assert [row["result"] for row in second.report] == ["unchanged", "unchanged"]
    assert await _filings(db) == before
    assert await _count(db, AuditRecord, AuditRecord.entity_type == "contract_filing") == audits
    assert await _count(db, OutboxMessage) == mails
    page = await client.get(again.headers["location"])
    assert "文件中的结果此前均已导入，没有改动任何合同。" in page.text


async def test_a_refused_record_is_exported_again_and_its_refusal_cleared_once_filed(client, db, settings):
    books = await _books(db, settings)
    _, b, _ = books.numbers
    token = await api_token(db, books.admin)
    refusal = csv_file([HEAD, [b, "不予受理", "", "许可人与专利权人不一致", ""]])
    assert (await _post_api(client, token, LICENCE, "第一次.csv", refusal)).status_code == 201
    assert (await filing_of(db, books.b.contract.id)).status is FilingStatus.REFUSED

    second_batch = await exported(db, settings, [books.b.contract], LICENCE)
    again = await filing_of(db, books.b.contract.id)
    assert (again.status, again.batch_id) == (FilingStatus.EXPORTED, second_batch.id)
    filing = csv_file([HEAD, [b, "已备案", "2026110000002", "", ""]])
    assert (await _post_api(client, token, LICENCE, "第二次.csv", filing)).status_code == 201

    filed = await filing_of(db, books.b.contract.id)
    assert (filed.status, filed.number, filed.refused_on, filed.refusal_reasons) == (
        FilingStatus.FILED,
        "2026110000002",
        None,
        None,
    )
    assert filed.recorded == await _item_values(db, second_batch.id, books.b.contract.id)


async def test_a_cancellation_result_cancels_the_filing_under_its_first_number(client, db, settings, sessionmaker):
    books = await _books(db, settings)
    a, _, _ = books.numbers
    token = await api_token(db, books.admin)
    first = csv_file([HEAD, [a, "准予备案", "2026110000001", "", ""]])
    assert (await _post_api(client, token, LICENCE, "备案.csv", first)).status_code == 201
    item = books.a
    await licensing.request_termination(
        db,
        actor=principal_for(item.licensee.user),
        contract_id=item.contract.id,
        values={"end_date": today().isoformat(), "reason": "项目终止"},
    )
    await licensing.confirm_termination(db, actor=principal_for(item.licensor.user), contract_id=item.contract.id)
    await db.commit()
    await refreshed(db, settings)
    due = await filing_of(db, item.contract.id)
    assert (due.status, due.record_kind) == (FilingStatus.DUE, RecordKind.CANCELLATION)
    await exported(db, settings, [item.contract], LICENCE)

    head = [*HEAD, "记录类型"]
    other_number = csv_file([head, [a, "准予备案", "2026110000999", "", "", "注销"]])
    refused = await _post_api(client, token, LICENCE, "注销.csv", other_number)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "备案号",
            "message": "备案号 2026110000999 与该合同已记录的 2026110000001 不一致（变更、注销记录沿用首次办理的编号）",
            "code": "number_mismatch",
            "row": 2,
        }
    ]
    good = csv_file([head, [a, "准予备案", "2026110000001", "", "", "注销"]])
    response = await _post_api(client, token, LICENCE, "注销.csv", good)

    assert response.status_code == 201, response.text
    assert [(r["result"], r["record_kind"]) for r in response.json()["rows"]] == [("cancelled", "cancellation")]
    cancelled = await filing_of(db, item.contract.id)
    assert (cancelled.status, cancelled.number) == (FilingStatus.CANCELLED, "2026110000001")
    subjects = [m.subject for m in await delivered_mail(db, sessionmaker, settings, to=item.licensor.user.email)]
    assert f"许可合同 {a} 的专利实施许可合同备案已注销" in subjects


# ---------------------------------------------------------------------------------------------
# Bad files: every problem reported, nothing changed
# ---------------------------------------------------------------------------------------------


async def _case(name: str, books: Books, client, monkeypatch) -> tuple[Registry, str, bytes, object]:
    """A bad file (with a good row for contract A where it can have one) and what the page reports:
    the problem rows (row, column, message), or the message beside the file input."""
    a, b, c = books.numbers
    ok = [a, "准予备案", "2026110000001", "", ""]
    on = today()
    match name:
        case "gbk":
            return LICENCE, "结果.csv", csv_file([HEAD, ok], encoding="gbk"), results.NOT_UTF8
        case "unreadable_xlsx":
            return LICENCE, "结果.xlsx", b"PK\x03\x04 broken", "无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿"
        case "empty":
            return LICENCE, "结果.csv", b"", "文件为空"
        case "missing_columns":
            content = csv_file([["合同编号", "编号"], [a, "2026110000001"]])
            return (
                LICENCE,
                "结果.csv",
                content,
                [(1, "表头", "缺少必填列：办理结果（第1行应为表头；文件中的列：合同编号、编号）")],
            )
        case "other_registrys_columns":
            content = csv_file([TECH_HEAD, [a, "准予登记", "2026110100000001", ""]])
            message = (
                "列“登记编号”属于技术合同认定登记的结果，与所选的“专利实施许可合同备案”不符，请确认登记机关是否选对"
            )
            return LICENCE, "结果.csv", content, [(1, "表头", message)]
        case "unknown_contract":
            content = csv_file([HEAD, ok, ["OL2099000001", "准予备案", "2026110000002", "", ""]])
            return LICENCE, "结果.csv", content, [(3, "合同编号", "合同编号 OL2099000001 不存在")]
        case "duplicate_rows":
            content = csv_file([HEAD, ok, [a, "退回", "", "材料不全", ""]])
            return LICENCE, "结果.csv", content, [(3, "合同编号", f"合同 {a} 在第2行已出现，每个合同只能有一行结果")]
        case "not_awaiting":
            content = csv_file([HEAD, ok, [c, "准予备案", "2026110000003", "", ""]])
            message = f"合同 {c} 的许可备案当前为“待导出”，不在等待办理结果（只有“已导出，待结果”的记录可以导入结果）"
            return LICENCE, "结果.csv", content, [(3, "合同编号", message)]
        case "registration_number":
            content = csv_file([TECH_HEAD, [a, "准予登记", "2026110100000001", ""], [b, "准予登记", "20261101", ""]])
            return TECH, "结果.csv", content, [(3, "登记编号", "登记编号应为16位数字（现为“20261101”，8位）")]
        case "number_taken":
            first = csv_file([HEAD, [b, "准予备案", "2026110000777", "", ""]])
            assert (await _post_page(client, LICENCE, "先导入.csv", first)).status_code in (302, 303)
            content = csv_file([HEAD, [a, "准予备案", "2026110000777", "", ""]])
            return LICENCE, "结果.csv", content, [(2, "备案号", f"备案号 2026110000777 已属于合同 {b}")]
        case "number_twice":
            content = csv_file(
                [HEAD, [a, "准予备案", "2026110000777", "", ""], [b, "准予备案", "2026110000777", "", ""]]
            )
            return LICENCE, "结果.csv", content, [(3, "备案号", f"备案号 2026110000777 与第2行（合同 {a}）重复")]
        case "dates":
            tomorrow = (on + timedelta(days=1)).isoformat()
            content = csv_file(
                [HEAD, [a, "准予备案", "2026110000001", "", "2026-13-01"], [b, "退回", "", "材料不全", tomorrow]]
            )
            return (
                LICENCE,
                "结果.csv",
                content,
                [
                    (2, "办理日期", "日期不存在：2026-13-01"),
                    (3, "办理日期", f"办理日期不能晚于今天（{on.isoformat()}）"),
                ],
            )
        case "amount":
            content = csv_file([[*HEAD, "使用费（元）"], [*ok, "12.345"]])
            return LICENCE, "结果.csv", content, [(2, "使用费（元）", "金额最多保留两位小数（现为“12.345”）")]
        case "missing_number_and_reasons":
            content = csv_file([HEAD, [a, "准予备案", "", "", ""], [b, "退回", "", "", ""]])
            return (
                LICENCE,
                "结果.csv",
                content,
                [
                    (2, "备案号", "办理结果为准予时必须填写备案号"),
                    (3, "退回原因", "办理结果为退回时必须填写退回原因"),
                ],
            )
        case "record_kind":
            content = csv_file([[*HEAD, "记录类型"], [*ok, "新备案"], [b, "准予备案", "2026110000002", "", "", "变更"]])
            return LICENCE, "结果.csv", content, [(3, "记录类型", "记录类型为“变更”，但导出的是“新备案”记录")]
        case "too_many_rows":
            monkeypatch.setattr(results, "MAX_ROWS", 1)
            content = csv_file([HEAD, ok, [b, "退回", "", "材料不全", ""]])
            return LICENCE, "结果.csv", content, "文件超过1行数据，每次最多导入1行，请拆分后分批导入"
    raise AssertionError(name)


BAD_FILES = [
    "gbk",
    "unreadable_xlsx",
    "empty",
    "missing_columns",
    "other_registrys_columns",
    "unknown_contract",
    "duplicate_rows",
    "not_awaiting",
    "registration_number",
    "number_taken",
    "number_twice",
    "dates",
    "amount",
    "missing_number_and_reasons",
    "record_kind",
    "too_many_rows",
]


@pytest.mark.parametrize("name", BAD_FILES)
async def test_a_bad_file_is_reported_on_the_form_and_changes_nothing(client, db, settings, monkeypatch, name):
    books = await _books(db, settings)
    await login(client, books.admin)
    registry, filename, content, expected = await _case(name, books, client, monkeypatch)
    before = await _filings(db)
    imports = await _count(db, FilingImport)
    audits = await _count(db, AuditRecord)
    mails = await _count(db, OutboxMessage)

    response = await _post_page(client, registry, filename, content)

    assert response.status_code == 422
    assert "导入办理结果" in response.text and 'name="file"' in response.text
    if isinstance(expected, str):
        assert f'<p class="error" id="e-file">{expected}</p>' in response.text
    else:
        assert _report_rows(response.text) == expected
        assert "未导入任何结果" in response.text
    assert await _filings(db) == before
    assert await _count(db, FilingImport) == imports
    assert await _count(db, AuditRecord) == audits
    assert await _count(db, OutboxMessage) == mails


async def test_the_api_reports_every_problem_with_row_field_message_and_code(client, db, settings):
    books = await _books(db, settings)
    a, b, c = books.numbers
    token = await api_token(db, books.admin)
    content = csv_file(
        [HEAD, [a, "准予备案", "2026110000001", "", ""], [c, "准予备案", "2026110000003", "", ""],
         ["OL2099000001", "通过", "2026110000009", "", ""], [b, "驳回", "", "", "2026/2/30"]]
    )  # fmt: skip
    before = await _filings(db)

    response = await _post_api(client, token, LICENCE, "结果.csv", content)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["detail"] == "3行有问题，未导入任何结果；请修改文件后重新上传"
    assert [(e["row"], e["field"], e["code"]) for e in body["errors"]] == [
        (3, "合同编号", "not_awaiting"),
        (4, "合同编号", "unknown_contract"),
        (5, "退回原因", "required"),
        (5, "办理日期", "invalid"),
    ]
    assert await _filings(db) == before
    assert await _count(db, FilingImport) == 0


@pytest.mark.parametrize(
    ("registry", "file", "errors"),
    [
        ("", True, [("registry", "required")]),
        ("patent_office", True, [("registry", "invalid")]),
        ("licence_filing", False, [("file", "required")]),
        ("", False, [("registry", "required"), ("file", "required")]),
    ],
)
async def test_the_api_needs_a_registry_and_a_file(client, db, settings, registry, file, errors):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    files = {"file": ("结果.csv", csv_file([HEAD]), "text/csv")} if file else {"other": ("x.txt", b"x", "text/plain")}
    response = await client.post(
        "/api/v1/filing-results", files=files, data={"registry": registry}, headers=bearer(await api_token(db, admin))
    )
    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == errors


async def test_a_page_upload_without_a_registry_or_file_is_shown_beside_the_fields(client, db, settings):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    await login(client, admin)
    token = (await csrf_headers(client))["x-csrftoken"]
    response = await client.post(
        "/admin/filings/results", files={"other": ("x.txt", b"x")}, data={"_csrf_token": token, "registry": ""}
    )
    assert response.status_code == 422
    assert '<p class="error" id="e-file">请选择要上传的结果文件</p>' in response.text
    assert 'id="e-registry">请选择登记机关：' in response.text


# ---------------------------------------------------------------------------------------------
# Mail and audit
# ---------------------------------------------------------------------------------------------


async def test_the_licensors_are_mailed_the_number_or_the_reasons(client, db, settings, sessionmaker):
    books = await _books(db, settings)
    a, b, _ = books.numbers
    token = await api_token(db, books.admin)
    content = csv_file([HEAD, [a, "备案成功", "2026110000001", "", ""], [b, "不予备案", "", "合同缺少签字页", ""]])
    assert (await _post_api(client, token, LICENCE, "结果.csv", content)).status_code == 201

    to_a = await delivered_mail(db, sessionmaker, settings, to=books.a.licensor.user.email)
    filed = [m for m in to_a if "备案" in m.subject]
    assert [m.subject for m in filed] == [f"许可合同 {a} 的专利实施许可合同备案已完成，备案号 2026110000001"]
    assert "备案号：2026110000001" in filed[0].body
    to_b = await delivered_mail(db, sessionmaker, settings, to=books.b.licensor.user.email)
    refused = [m for m in to_b if "备案" in m.subject]
    assert [m.subject for m in refused] == [f"许可合同 {b} 的专利实施许可合同备案被退回"]
    assert "退回原因：合同缺少签字页" in refused[0].body
    # The licensees are not the filing party here.
    assert not [m for m in await delivered_mail(db, sessionmaker, settings, to=books.a.licensee.user.email)
                if "备案" in m.subject]  # fmt: skip


async def test_every_change_is_audited_with_who_from_to_and_why(client, db, settings):
    books = await _books(db, settings)
    a, b, _ = books.numbers
    await login(client, books.admin)
    content = csv_file([HEAD, [a, "准予备案", "2026110000001", "", ""], [b, "退回", "", "材料不全", ""]])
    response = await _post_page(client, LICENCE, "备案结果.csv", content)
    import_id = int(response.headers["location"].rsplit("/", 1)[1])

    filings = {
        f.contract_id: f.id for f in await db.scalars(select(ContractFiling).where(ContractFiling.registry == LICENCE))
    }
    records = (
        await db.scalars(
            select(AuditRecord)
            .where(AuditRecord.entity_type == "contract_filing", AuditRecord.action == "result_imported")
            .order_by(AuditRecord.entity_id)
        )
    ).all()
    assert [(r.entity_id, r.actor_user_id, r.via, r.from_state, r.to_state, r.reason) for r in records] == [
        (filings[books.a.contract.id], books.admin.user.id, "web", "exported", "filed",
         f"导入办理结果 #{import_id}（备案结果.csv 第2行）：新备案已办结，备案号 2026110000001"),
        (filings[books.b.contract.id], books.admin.user.id, "web", "exported", "refused",
         f"导入办理结果 #{import_id}（备案结果.csv 第3行）：退回：材料不全"),
    ]  # fmt: skip
    assert records[0].details["import_id"] == import_id
    the_import = await db.scalar(
        select(AuditRecord).where(AuditRecord.entity_type == "filing_import", AuditRecord.entity_id == import_id)
    )
    assert (the_import.action, the_import.actor_user_id, the_import.details["filed"]) == (
        "import",
        books.admin.user.id,
        1,
    )


# ---------------------------------------------------------------------------------------------
# Who may
# ---------------------------------------------------------------------------------------------

ROLES = ["anonymous", "enterprise", "university", "platform_admin"]


async def test_only_platform_admins_reach_the_result_pages(client, db, settings):
    books = await _books(db, settings)
    a, _, _ = books.numbers
    accounts = {"enterprise": books.a.licensee, "university": books.a.licensor, "platform_admin": books.admin}
    content = csv_file([HEAD, [a, "准予备案", "2026110000001", "", ""]])
    await login(client, books.admin)
    first = await _post_page(client, LICENCE, "结果.csv", content)
    detail = first.headers["location"]

    for role in ROLES:
        client.cookies.clear()
        if role != "anonymous":
            await login(client, accounts[role])
        imports = await _count(db, FilingImport)
        routes = [("GET", "/admin/filings/results"), ("GET", detail), ("GET", f"{detail}/report.csv"),
                  ("POST", "/admin/filings/results")]  # fmt: skip
        for method, url in routes:
            if method == "GET":
                response = await client.get(url)
            else:
                response = await _post_page(client, LICENCE, "结果.csv", content)
            if role == "anonymous":
                assert response.status_code in (302, 303) and "/login" in response.headers["location"], (role, url)
            elif role == "platform_admin":
                assert response.status_code == (302 if method == "POST" else 200), (role, url)
            else:
                assert response.status_code == 403, (role, method, url)
                assert "仅平台管理员可以访问" in response.text
        assert await _count(db, FilingImport) == imports + (1 if role == "platform_admin" else 0)


async def test_only_platform_admin_tokens_reach_the_results_api(client, db, settings):
    books = await _books(db, settings)
    a, _, _ = books.numbers
    tokens = {
        "enterprise": await api_token(db, books.a.licensee),
        "university": await api_token(db, books.a.licensor),
        "platform_admin": await api_token(db, books.admin),
    }
    content = csv_file([HEAD, [a, "准予备案", "2026110000001", "", ""]])
    created = await _post_api(client, tokens["platform_admin"], LICENCE, "结果.csv", content)
    import_id = created.json()["id"]

    for role in ROLES:
        headers = bearer(tokens[role]) if role in tokens else {}
        imports = await _count(db, FilingImport)
        calls = [
            await client.get("/api/v1/filing-results", headers=headers),
            await client.get(f"/api/v1/filing-results/{import_id}", headers=headers),
            await client.post(
                "/api/v1/filing-results",
                files={"file": ("结果.csv", content, "text/csv")},
                data={"registry": LICENCE.value},
                headers=headers,
            ),
        ]
        expected = {"anonymous": [401] * 3, "platform_admin": [200, 200, 201]}.get(role, [403] * 3)
        assert [response.status_code for response in calls] == expected, role
        if role in ("enterprise", "university"):
            assert all(response.json()["detail"] == "仅平台管理员可以访问" for response in calls)
        assert await _count(db, FilingImport) == imports + (1 if role == "platform_admin" else 0)
    assert (await filing_of(db, books.a.contract.id)).number == "2026110000001"
