"""Bulk inventory upload (盘点入库) through HTTP: CSV in every encoding, XLSX, both modes, re-uploads,
another organisation's patents, the API, the templates, bad files and roles."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime

import openpyxl
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.patents import rules, services
from marketplace.patents.models import InventoryUpload, LegalStatus, Patent, PatentType, UploadMode
from tests.catalogue_factories import publish_offer
from tests.factories import add_member, api_token, bearer, csrf_headers, login, make_account
from tests.patent_factories import application_number, csv_bytes, make_patent, row, xlsx_bytes

HEADERS = [column.header for column in rules.COLUMNS]


async def _count(db, model=Patent) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


async def _upload(client, content: bytes, filename: str = "盘点.csv", *, all_or_nothing: bool = False):
    """Post the upload form as a browser does: the CSRF token travels in the multipart body."""
    token = (await csrf_headers(client))["x-csrftoken"]
    data = {"_csrf_token": token} | ({"all_or_nothing": "1"} if all_or_nothing else {})
    return await client.post(
        "/inventory-uploads/new", files={"file": (filename, content, "application/octet-stream")}, data=data
    )


async def _mixed_rows(db):
    """Rows 2–8 of a table mixing good and bad rows, and the report they must produce."""
    stranger = await make_account(db)
    theirs = await make_patent(db, stranger.organisation)
    first, second = application_number(2019), application_number(2020)
    rows = [
        row(application_number=first, title="一种石墨烯导热膜"),  # 2: created
        row(application_number="202310123456.7", title="校验位错误"),  # 3
        row(application_number=second, filing_date="2020/3/5", grant_date="20220110", title="一种电池包"),  # 4: created
        row(application_number="ZL" + first, title="文件内重复"),  # 5
        row(application_number=theirs.application_number, title="别人的专利"),  # 6
        {},  # 7: blank, skipped
        row(application_number=application_number(2021), filing_date="2021-02-30", trl="10", pledged="也许"),  # 8
    ]
    report = [
        (3, "申请号", "校验位应为6"),
        (5, "申请号", "与第2行的申请号重复"),
        (6, "申请号", "该专利已由其他机构登记"),
        (8, "申请日", "日期不存在：2021年2月30日"),
        (8, "已质押", "应填写“是”或“否”"),
        (8, "技术成熟度", "应在1至9之间"),
    ]
    return rows, report, (first, second)


def _report(upload: InventoryUpload) -> list[tuple[int, str, str]]:
    return [(item["row"], item["field"], item["message"]) for item in upload.report]


@pytest.mark.parametrize(
    ("encoding", "label"), [("utf-8-sig", "UTF-8"), ("gbk", "GBK/GB18030"), ("utf-8", "UTF-8"), ("utf-16", "UTF-16")]
)
async def test_csv_upload_imports_valid_rows_and_reports_the_others(client, db, encoding, label):
    account = await make_account(db)
    member = await add_member(db, account)
    rows, report, (first, second) = await _mixed_rows(db)
    await login(client, member)
    response = await _upload(client, csv_bytes(rows, encoding=encoding), "存量专利.csv")
    assert response.status_code in (302, 303), response.text
    upload = (await db.scalars(select(InventoryUpload))).one()
    assert response.headers["location"] == f"/inventory-uploads/{upload.id}"
    assert (upload.rows_total, upload.created_count, upload.updated_count, upload.rejected_count) == (6, 2, 0, 4)
    assert _report(upload) == report
    assert upload.file_format == f"CSV（{label}）" and upload.mode is UploadMode.VALID_ROWS
    assert upload.uploaded_by_user_id == member.user.id

    mine = {p.application_number: p for p in await db.scalars(
        select(Patent).where(Patent.owner_organisation_id == account.organisation.id))}
    assert set(mine) == {first, second}
    battery = mine[second]
    assert (battery.title, battery.filing_date) == ("一种电池包", date(2020, 3, 5))
    assert battery.grant_date == date(2022, 1, 10)
    assert battery.ipc_main == "H01M 4/583" and battery.inventors == ["张三", "李四"]
    assert battery.transfer_intents == ["licence", "assignment"] and battery.government_funded
    assert battery.expiry_date == date(2040, 3, 4) and battery.trl == 6

    page = await client.get(response.headers["location"])
    assert page.status_code == 200
    assert 'id="created">2<' in page.text and 'id="rejected">4<' in page.text
    for line, column, message in report:
        assert f"<tr><td>{line}</td><td>{column}</td><td>{message}</td></tr>" in page.text
    audit = (await db.scalars(select(AuditRecord).where(AuditRecord.entity_type == "inventory_upload"))).one()
    assert audit.details["created"] == 2 and audit.details["rejected"] == 4 and audit.actor_user_id == member.user.id

    errors_csv = await client.get(f"/inventory-uploads/{upload.id}/errors.csv")
    assert errors_csv.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(errors_csv.content.decode("utf-8-sig"))))
    assert lines[0] == ["行号", "列", "原因"]
    assert [tuple(x) for x in lines[1:]] == [(str(a), b, c) for a, b, c in report]


async def test_xlsx_upload_with_real_excel_dates_and_numbers(client, db):
    account = await make_account(db)
    rows, report, (first, _) = await _mixed_rows(db)
    rows[0].update({"申请日": datetime(2019, 4, 2), "授权日": datetime(2021, 7, 16), "技术成熟度": 7,
                    "权利要求数": 12, "年费缴至": 20990401})
    await login(client, account)
    response = await _upload(client, xlsx_bytes(rows), "盘点.xlsx")
    assert response.status_code in (302, 303), response.text
    upload = (await db.scalars(select(InventoryUpload))).one()
    assert upload.file_format == "XLSX"
    assert _report(upload) == report
    film = (await db.scalars(select(Patent).where(Patent.application_number == first))).one()
    assert (film.filing_date, film.grant_date, film.trl, film.claims_count) == (
        date(2019, 4, 2), date(2021, 7, 16), 7, 12
    )
    assert film.annual_fee_paid_until == date(2099, 4, 1)


async def test_all_or_nothing_imports_nothing_when_a_row_is_bad(client, db):
    account = await make_account(db)
    rows, report, _ = await _mixed_rows(db)
    before = await _count(db)
    await login(client, account)
    response = await _upload(client, csv_bytes(rows), all_or_nothing=True)
    assert response.status_code == 422
    assert "4行有错误，未导入任何数据" in response.text
    for line, column, message in report:
        assert f"<tr><td>{line}</td><td>{column}</td><td>{message}</td></tr>" in response.text
    assert await _count(db) == before
    assert await _count(db, InventoryUpload) == 0


async def test_all_or_nothing_imports_everything_when_every_row_is_good(client, db):
    account = await make_account(db)
    await login(client, account)
    rows = [row(), row(), row(application_number=application_number(2018, PatentType.DESIGN), filing_date="2018-01-02",
                            grant_date="2018-06-01", ipc_main="14-03")]
    response = await _upload(client, csv_bytes(rows), all_or_nothing=True)
    assert response.status_code in (302, 303), response.text
    upload = (await db.scalars(select(InventoryUpload))).one()
    assert (upload.mode, upload.created_count, upload.rejected_count) == (UploadMode.ALL_OR_NOTHING, 3, 0)
    design = (await db.scalars(select(Patent).where(Patent.patent_type == PatentType.DESIGN))).one()
    assert design.expiry_date == date(2028, 1, 1)


async def test_reupload_updates_own_patents_and_leaves_missing_columns_alone(client, db):
    account = await make_account(db)
    await login(client, account)
    number = application_number(2017)
    first = row(application_number=number, title="旧名称", abstract="原有摘要", filing_date="2017-05-02",
                grant_date="2019-01-01", expiry_override="2038-01-01")
    assert (await _upload(client, csv_bytes([first]))).status_code in (302, 303)
    patent = (await db.scalars(select(Patent))).one()
    assert patent.expiry_date == date(2038, 1, 1)

    headers = [h for h in HEADERS if h not in ("摘要", "到期日（如有延长）")]
    second = row(application_number="CN " + number, title="新名称", legal_status="失效", filing_date="2017-05-02",
                 grant_date="2019-01-01", implemented="是")
    response = await _upload(client, csv_bytes([second], headers=headers), "第二次.csv")
    assert response.status_code in (302, 303), response.text
    uploads = (await db.scalars(select(InventoryUpload).order_by(InventoryUpload.id))).all()
    assert (uploads[1].created_count, uploads[1].updated_count, uploads[1].rejected_count) == (0, 1, 0)
    await db.refresh(patent)
    assert (patent.title, patent.legal_status, patent.implemented) == ("新名称", LegalStatus.LAPSED, True)
    assert patent.abstract == "原有摘要"
    assert patent.expiry_override == date(2038, 1, 1) and patent.expiry_date == date(2038, 1, 1)
    assert await _count(db) == 1


async def test_bulk_update_keeps_the_catalogue_fresh(client, db):
    account = await make_account(db)
    offer = await publish_offer(db, account.organisation, "目录中的专利")
    patent = await db.get(Patent, offer.patent_id)
    cells = dict(application_number=patent.application_number, filing_date=patent.filing_date.isoformat(),
                 grant_date=patent.grant_date.isoformat(), ipc_main="H01M 4/36")
    await login(client, account)
    assert (await _upload(client, csv_bytes([row(title="改名后的专利", **cells)]))).status_code in (302, 303)
    entry = (await db.scalars(select(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id))).one()
    await db.refresh(entry)
    assert entry.title == "改名后的专利"
    assert (await _upload(client, csv_bytes([row(legal_status="无效", **cells)]))).status_code in (302, 303)
    assert (await db.scalars(select(CatalogueEntry).where(CatalogueEntry.offer_id == offer.id))).first() is None


async def test_api_upload_with_a_token(client, db):
    account = await make_account(db)
    token = await api_token(db, account)
    rows, report, (first, second) = await _mixed_rows(db)
    response = await client.post(
        "/api/v1/inventory-uploads", files={"file": ("inventory.xlsx", xlsx_bytes(rows))},
        data={"mode": "valid_rows"}, headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rows"], body["created"], body["updated"], body["rejected"]) == (6, 2, 0, 4)
    assert [(e["row"], e["field"], e["message"]) for e in body["errors"]] == report
    again = await client.get(f"/api/v1/inventory-uploads/{body['id']}", headers=bearer(token))
    assert again.status_code == 200 and again.json() == body
    assert {p.application_number for p in await db.scalars(
        select(Patent).where(Patent.owner_organisation_id == account.organisation.id))} == {first, second}
    audit = (await db.scalars(select(AuditRecord).where(AuditRecord.entity_type == "inventory_upload"))).one()
    assert audit.via == "api"

    stranger_token = await api_token(db, await make_account(db))
    assert (await client.get(f"/api/v1/inventory-uploads/{body['id']}", headers=bearer(stranger_token))).status_code \
        == 404
    assert (await client.get(f"/api/v1/inventory-uploads/{body['id']}")).status_code == 401


async def test_api_all_or_nothing_answers_422_with_every_row_problem(client, db):
    account = await make_account(db)
    token = await api_token(db, account)
    rows, report, _ = await _mixed_rows(db)
    before = await _count(db)
    response = await client.post(
        "/api/v1/inventory-uploads", files={"file": ("inventory.csv", csv_bytes(rows, encoding="gbk"))},
        data={"mode": "all_or_nothing"}, headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["detail"] == "4行有错误，未导入任何数据；请修改后重新上传"
    assert [(e["row"], e["field"], e["message"]) for e in problem["errors"]] == report
    assert await _count(db) == before and await _count(db, InventoryUpload) == 0


@pytest.mark.parametrize(
    ("files", "data", "status"),
    [({}, {"mode": "valid_rows"}, 400), ({"file": ("a.csv", b"x")}, {"mode": "sometimes"}, 400)],
)
async def test_api_upload_form_mistakes_are_client_errors(client, db, files, data, status):
    token = await api_token(db, await make_account(db))
    response = await client.post("/api/v1/inventory-uploads", files=files or None, data=data, headers=bearer(token))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_templates_download_and_parse_back_with_the_same_headers(client, db):
    account = await make_account(db)
    await login(client, account)
    expected = [column.header + ("*" if column.required else "") for column in rules.COLUMNS]

    csv_response = await client.get("/inventory-uploads/template.csv")
    assert csv_response.status_code == 200
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert csv_response.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
    assert lines[0] == expected and lines[1][0].startswith("#") and len(lines) == 3

    xlsx_response = await client.get("/inventory-uploads/template.xlsx")
    assert xlsx_response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_response.content))
    assert workbook.sheetnames == ["专利盘点", "填写说明"]
    data_rows = list(workbook["专利盘点"].iter_rows(values_only=True))
    assert list(data_rows[0]) == expected and len(data_rows) == 2
    assert isinstance(data_rows[1][HEADERS.index("申请日")], datetime)
    guide = [r[0] for r in workbook["填写说明"].iter_rows(values_only=True)]
    assert set(HEADERS) <= set(guide)

    # Uploaded unchanged, each template yields exactly one refused row: its example.
    for name, content in (("模板.csv", csv_response.content), ("模板.xlsx", xlsx_response.content)):
        response = await _upload(client, content, name)
        assert response.status_code in (302, 303), response.text
    uploads = (await db.scalars(select(InventoryUpload).order_by(InventoryUpload.id))).all()
    assert [_report(u) for u in uploads] == [
        [(3, "专利名称", "这是模板中的示例行，请删除或替换为本机构的专利")],
        [(2, "专利名称", "这是模板中的示例行，请删除或替换为本机构的专利")],
    ]
    assert await _count(db) == 0


_PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("空.csv", b"", "文件为空"),
        ("报告.pdf", _PDF, "仅支持 CSV 或 XLSX 文件"),
        ("旧表.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "不支持旧版 Excel（.xls）文件"),
        ("伪装.xlsx", b"application_number,title\n", "文件内容不是 XLSX 工作簿"),
        ("损坏.xlsx", b"PK\x03\x04" + b"\x00" * 100, "无法读取 XLSX 文件"),
        ("二进制.csv", b"\x00\x01\x02\x03" * 50, "文件不是 CSV 文本"),
        ("乱码.csv", b"\xff\xff\xfd" * 10 + b"\x81\x30", "无法识别文件编码"),
        ("缺列.csv", "申请号,专利名称\n202010566088.9,某专利\n".encode(), "缺少必填列：申请日、法律状态"),
        ("只有表头.csv", (",".join(HEADERS) + "\n").encode(), "文件中没有数据行"),
        ("重复列.csv", (",".join([*HEADERS, "申请号"]) + "\n").encode(), "列“申请号”重复"),
    ],
)
async def test_bad_files_are_refused_clearly_and_write_nothing(client, db, filename, content, message):
    account = await make_account(db)
    await login(client, account)
    response = await _upload(client, content, filename)
    assert response.status_code == 422
    assert message in response.text
    assert 'id="e-file"' in response.text
    assert await _count(db) == 0 and await _count(db, InventoryUpload) == 0


async def test_missing_file_is_refused_beside_the_input(client, db):
    account = await make_account(db)
    await login(client, account)
    response = await client.post("/inventory-uploads/new", data={"all_or_nothing": "1"},
                                 files={"other": ("x.txt", b"x")}, headers=await csrf_headers(client))
    assert response.status_code == 422 and "请选择要上传的文件" in response.text


async def test_too_many_rows_are_refused(client, db, monkeypatch):
    monkeypatch.setattr(services, "MAX_UPLOAD_ROWS", 3)
    account = await make_account(db)
    token = await api_token(db, account)
    response = await client.post(
        "/api/v1/inventory-uploads", files={"file": ("big.csv", csv_bytes([row() for _ in range(4)]))},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "file", "message": "每次最多上传3行，请拆分文件后分批上传", "code": "bad_file"}
    ]
    assert await _count(db) == 0


async def test_a_body_over_the_upload_limit_is_refused(app, db, settings):
    from marketplace.app import create_app

    small = create_app(dataclasses.replace(settings, upload_max_bytes=20_000))
    account = await make_account(db)
    token = await api_token(db, account)
    content = csv_bytes([row(abstract="很长的摘要" * 400) for _ in range(10)])
    assert len(content) > 20_000
    async with AsyncTestClient(app=small, base_url="http://testserver.local") as big_client:
        response = await big_client.post(
            "/api/v1/inventory-uploads", files={"file": ("big.csv", content)}, headers=bearer(token)
        )
    assert response.status_code == 413
    assert await _count(db) == 0


async def test_inventory_pages_for_every_role(client, db):
    owner = await make_account(db)
    member = await add_member(db, owner)
    stranger = await make_account(db, kind=OrganisationKind.INSTITUTE)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    await login(client, owner)
    await _upload(client, csv_bytes([row()]))
    upload = (await db.scalars(select(InventoryUpload))).one()
    client.cookies.clear()
    report, errors = f"/inventory-uploads/{upload.id}", f"/inventory-uploads/{upload.id}/errors.csv"
    templates = ("/inventory-uploads/template.csv", "/inventory-uploads/template.xlsx")
    pages = ("/inventory-uploads/new", report, errors, *templates)

    for path in pages:
        response = await client.get(path)
        assert response.status_code in (302, 303) and response.headers["location"].startswith("/login?next=")

    await login(client, member)
    for path in pages:
        assert (await client.get(path)).status_code == 200, path
    assert "最近的上传" in (await client.get("/inventory-uploads/new")).text
    client.cookies.clear()

    await login(client, stranger)
    assert (await client.get(report)).status_code == 404
    assert (await client.get(errors)).status_code == 404
    assert "最近的上传" not in (await client.get("/inventory-uploads/new")).text
    client.cookies.clear()

    await login(client, admin)
    assert (await client.get(report)).status_code == 200
    assert (await client.get("/inventory-uploads/new")).status_code == 403
    assert (await _upload(client, csv_bytes([row()]))).status_code == 403
    assert await _count(db, InventoryUpload) == 1
