"""The platform admin's filings desk (备案登记) as it is used: the dashboard's deadline figures, an export of
the licence filing (专利实施许可合同备案) prepared in the background and downloaded, the registry's results
imported — a faulty file first, reported row by row and changing nothing, then the right one — and a
reconciliation finding (对账差异) resolved with a note. Licensors and licensees are kept out."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import uuid
from datetime import date, datetime, time, timedelta

import openpyxl
from playwright.async_api import Page, expect

from marketplace.accounts.models import OrganisationKind, User
from marketplace.accounts.services import principal_for
from marketplace.clock import BUSINESS_TZ, today
from marketplace.filings import services as filings
from marketplace.licensing import services as licensing
from marketplace.licensing.models import LicenceContract
from tests.e2e.helpers import (
    LiveServer,
    arrange_account,
    arrange_patent,
    arrange_published_offer,
    described_as,
    expect_same_document,
    labelled,
    login_as,
    logout,
    mark_document,
    table_rows,
)
from tests.factories import Account
from tests.licensing_factories import notice_form

FREE = {"mode": "free"}
PAY_AFTER_USE = {
    "mode": "pay_after_use",
    "deferral": "months",
    "deferral_months": 12,
    "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 30},
}
#: The licence filing's columns, in the order of the registry's form (docs/filings.md).
LICENCE_FILING_HEADERS = [
    "记录类型", "合同编号", "原备案号", "许可人名称", "许可人地址", "许可人统一社会信用代码", "被许可人名称",
    "被许可人地址", "被许可人统一社会信用代码", "专利数量", "专利名称", "专利号", "专利申请日", "授权公告日",
    "许可种类", "许可期限起始日", "许可期限届满日", "实施地域范围", "使用费（元）", "支付方式",
    "使用费及支付方式说明", "合同签订日", "开放许可声明公告号", "注销日期",
]  # fmt: skip
#: Longer than a batch takes to render: the worker's next poll plus the page's own 2-second poll.
READY_TIMEOUT_MS = 20_000


def months_back(on: date, months: int, day: int = 10) -> date:
    """The ``day``-th of the month ``months`` before ``on``'s (a day every month has, so three months
    after it is plainly the same day three months on)."""
    index = on.year * 12 + on.month - 1 - months
    return date(index // 12, index % 12 + 1, day)


async def arrange_licence(
    server: LiveServer, licensor: Account, licensee: Account, fee_terms: dict, *, title: str, took_effect: date
) -> LicenceContract:
    """A licence the licensee took by written notice, in force since ``took_effect``."""
    patent = await arrange_patent(server, licensor, title=title)
    offer = await arrange_published_offer(server, licensor, patent, fee_terms)
    async with server.sessionmaker() as session:
        user = await session.get(User, licensee.user.id)
        contract, _ = await licensing.accept(
            session, actor=principal_for(user), offer_id=offer.id, values=notice_form(),
            client=licensing.ClientInfo(),
        )  # fmt: skip
        await licensing.move_start(session, contract, took_effect)
        contract.activated_at = datetime.combine(took_effect, time(10), BUSINESS_TZ)
        await session.commit()
        return contract


async def hourly_refresh(server: LiveServer) -> None:
    """What the worker's hourly run does: open the new contracts' filings, move them, reconcile."""
    async with server.sessionmaker() as session:
        await filings.refresh(session, server.settings)
        await session.commit()


async def figure(page: Page, element_id: str) -> int:
    return int(await page.locator(f"#{element_id}").inner_text())


def fresh_filing_number() -> str:
    """A filing number (备案号) no other contract holds."""
    return f"{today():%Y}99{secrets.randbelow(10**9):09d}"


def results_csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def results_xlsx(header: list[str], rows: list[list[str | None]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_admin_exports_the_licence_filing_imports_the_results_and_resolves_a_finding(page, live_server):
    suffix = uuid.uuid4().hex[:6]
    licensor = await arrange_account(live_server, name=f"华东储能测试大学{suffix}")
    early = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=f"杭州蓄能科技有限公司{suffix}")
    late = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=f"宁波温控设备有限公司{suffix}")
    # One licence in force for four months (its three-month filing deadline has passed), one for ten weeks.
    overdue_since = months_back(today(), 4)
    overdue = await arrange_licence(live_server, licensor, early, FREE, title=f"一种相变储能墙板{suffix}",
                                    took_effect=overdue_since)  # fmt: skip
    approaching = await arrange_licence(live_server, licensor, late, PAY_AFTER_USE, title=f"一种储能柜液冷板{suffix}",
                                        took_effect=today() - timedelta(days=70))  # fmt: skip
    await hourly_refresh(live_server)
    admin = await arrange_account(live_server, kind=OrganisationKind.PLATFORM)
    overdue_due = months_back(today(), 1)

    # 1. The dashboard: the overdue and the approaching filing are flagged, the overdue first.
    await login_as(page, admin, next_path="/admin/contracts")
    await page.locator("header nav").get_by_role("link", name="备案登记").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("备案登记")
    assert await figure(page, "overdue-count") >= 1
    assert await figure(page, "approaching-count") >= 1
    flags = page.locator("#deadline-flags")
    overdue_flag = table_rows(flags, overdue.number)
    for text in (licensor.organisation.name, early.organisation.name, overdue_since.isoformat(),
                 overdue_due.isoformat(), f"已逾期 {(today() - overdue_due).days} 天", "待导出"):  # fmt: skip
        await expect(overdue_flag).to_contain_text(text)
    await expect(table_rows(flags, approaching.number)).to_contain_text(re.compile(r"剩余 (19|2[0-3]) 天"))
    numbers = await flags.locator("tbody tr td:first-child").all_inner_texts()
    assert numbers.index(overdue.number) < numbers.index(approaching.number)
    due_before = await figure(page, "count-licence_filing-due")
    exported_before = await figure(page, "count-licence_filing-exported")
    await page.locator("#count-licence_filing-due").get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("合同的备案登记情况")
    listed = page.locator("#filing-contracts")
    for contract in (overdue, approaching):
        await expect(table_rows(listed, contract.number, "许可备案")).to_contain_text("待导出")

    # 2. Export the two contracts as CSV; the batch page updates itself once the worker has made the file.
    await page.goto("/admin/filings")
    await page.get_by_role("link", name="导出报送文件").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("报送导出")
    await page.get_by_label(labelled("报送类型")).select_option(label="专利实施许可合同备案")
    await page.get_by_label(labelled("文件格式")).select_option(label="CSV（UTF-8，Excel 可直接打开）")
    await page.get_by_label("只导出以下合同（可选）").fill(f"{overdue.number}\n{approaching.number}")
    await page.get_by_role("button", name="生成导出文件").click()
    await expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.base_url)}/admin/filings/exports/\d+$"))
    await mark_document(page)
    batch_number = (await page.get_by_role("heading", level=1).inner_text()).split()[1]
    assert re.fullmatch(rf"FE{today().year}\d{{6}}", batch_number), batch_number
    await expect(page.locator("#batch-status")).to_have_text("可下载", timeout=READY_TIMEOUT_MS)
    await expect_same_document(page)
    await expect(page.locator("#contract-count")).to_have_text("2 份")
    await expect(page.locator("#held-back-count")).to_have_text("0 份")
    exported_list = page.locator("#exported")
    await expect(table_rows(exported_list, overdue.number)).to_contain_text(early.organisation.name)
    await expect(table_rows(exported_list, approaching.number)).to_contain_text(late.organisation.name)

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="下载文件").click()
    download = await download_info.value
    assert download.suggested_filename == f"{batch_number}-专利实施许可合同备案.csv"
    content = (await download.path()).read_bytes()
    assert hashlib.sha256(content).hexdigest() == await page.locator("#batch-sha256").inner_text()
    assert content.startswith(b"\xef\xbb\xbf") and b"\r\n" in content
    header, *rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert header == LICENCE_FILING_HEADERS
    exported = {cells["合同编号"]: cells for cells in (dict(zip(header, row, strict=True)) for row in rows)}
    assert sorted(exported) == sorted([overdue.number, approaching.number]) and len(rows) == 2
    for contract, licensee, fee, mode in (
        (overdue, early, "0.00", "免费"),
        (approaching, late, "30000.00", "先用后付"),
    ):
        cells = exported[contract.number]
        assert (cells["记录类型"], cells["原备案号"], cells["许可种类"]) == ("新备案", "", "普通实施许可")
        assert (cells["许可人名称"], cells["被许可人名称"]) == (licensor.organisation.name, licensee.organisation.name)
        assert (cells["使用费（元）"], cells["支付方式"]) == (fee, mode)
        assert cells["许可期限起始日"] == contract.start_date.isoformat()
    assert exported[overdue.number]["专利名称"] == f"一种相变储能墙板{suffix}"

    await page.goto("/admin/filings")
    assert await figure(page, "count-licence_filing-due") == due_before - 2
    assert await figure(page, "count-licence_filing-exported") == exported_before + 2

    # 3. A results file with an unknown contract and a filed row without its number: every problem is
    #    listed by row and column, and nothing is imported.
    overdue_number, approaching_number = fresh_filing_number(), fresh_filing_number()
    faulty_name = f"备案结果-有误-{suffix}.csv"
    faulty = results_csv(
        ["合同编号", "办理结果", "备案号", "办理日期"],
        [
            [overdue.number, "备案成功", overdue_number, today().isoformat()],
            ["OL1999000001", "准予备案", fresh_filing_number(), today().isoformat()],
            [approaching.number, "已备案", "", today().isoformat()],
        ],
    )
    await page.get_by_role("link", name="导入办理结果").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("导入办理结果")
    await page.get_by_label(labelled("登记机关")).select_option(label="专利实施许可合同备案")
    await page.get_by_label(labelled("结果文件")).set_input_files(
        {"name": faulty_name, "mimeType": "text/csv", "buffer": faulty}
    )
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="上传并导入").click()
    assert (await posted.value).status == 422
    await expect(page.get_by_role("heading", level=2, name=f"问题清单：{faulty_name}")).to_be_visible()
    await expect(page.get_by_role("alert")).to_have_text("共 2 个问题，未导入任何结果。请修改文件后重新上传。")
    problems = page.locator("#row-errors")
    await expect(table_rows(problems, "OL1999000001").get_by_role("cell")).to_have_text(
        ["3", "合同编号", "合同编号 OL1999000001 不存在"]
    )
    await expect(table_rows(problems, "必须填写").get_by_role("cell")).to_have_text(
        ["4", "备案号", "办理结果为准予时必须填写备案号"]
    )
    past_imports = page.locator("section").filter(has=page.get_by_role("heading", name="导入记录"))
    await expect(past_imports).not_to_contain_text(faulty_name)
    # Row 2 was right, yet nothing was recorded: the contract still waits for its result.
    await page.goto(f"/contracts/{overdue.id}")
    licence_filing = table_rows(page.locator("#filings"), "专利实施许可合同备案")
    await expect(licence_filing.get_by_role("cell")).to_have_text(
        ["专利实施许可合同备案", "已导出，待结果", "—", overdue_due.isoformat()]
    )
    await page.goto("/admin/filings")
    assert await figure(page, "count-licence_filing-exported") == exported_before + 2

    # 4. The registry's answer as an Excel workbook, built from the exported rows: both filed, the
    #    registry having recorded a tenth of the second licence's fee.
    good_name = f"备案结果-{suffix}.xlsx"
    good = results_xlsx(
        ["合同编号", "办理结果", "备案号", "办理日期", "使用费（元）"],
        [
            [overdue.number, "备案成功", overdue_number, today().isoformat(), None],
            [approaching.number, "已备案", approaching_number, today().isoformat(), "3000.00"],
        ],
    )
    await page.get_by_role("link", name="导入办理结果").click()
    await page.get_by_label(labelled("登记机关")).select_option(label="专利实施许可合同备案")
    await page.get_by_label(labelled("结果文件")).set_input_files(
        {"name": good_name, "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "buffer": good}
    )  # fmt: skip
    await page.get_by_role("button", name="上传并导入").click()
    await expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.base_url)}/admin/filings/results/\d+$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text(good_name)
    await expect(described_as(page, "数据行")).to_have_text("2")
    await expect(described_as(page, "办结（含注销）")).to_have_text("2")
    await expect(described_as(page, "退回")).to_have_text("0")
    await expect(described_as(page, "无变化")).to_have_text("0")
    outcomes = page.locator("#outcomes")
    for contract, number in ((overdue, overdue_number), (approaching, approaching_number)):
        await expect(table_rows(outcomes, contract.number)).to_contain_text("已办结")
        await expect(table_rows(outcomes, contract.number)).to_contain_text(number)
    await table_rows(outcomes, overdue.number).get_by_role("link", name=overdue.number).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(overdue.number)
    licence_filing = table_rows(page.locator("#filings"), "专利实施许可合同备案")
    await expect(licence_filing.get_by_role("cell").nth(1)).to_have_text("已办结")
    await expect(licence_filing.get_by_role("cell").nth(2)).to_have_text(overdue_number)
    # Filed, so no longer overdue: the finding about its deadline has gone with it.
    await expect(page.locator("#filings")).not_to_contain_text("逾期未备案")

    # 5. The fee the registry recorded is not the contract's: a finding, resolved with a note.
    await page.goto("/admin/filings")
    await expect(page.locator("#deadlines")).not_to_contain_text(overdue.number)
    await page.get_by_role("link", name="对账差异").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("对账差异")
    await page.get_by_label("差异类型").select_option(label="备案的使用费或期限与合同不一致")
    await page.get_by_role("button", name="筛选").click()
    finding = page.locator("#discrepancies tbody tr").filter(has_text=approaching.number)
    await expect(finding).to_contain_text(f"备案号 {approaching_number}：备案使用费 3000.00 元，合同 30000.00 元")
    await expect(finding.get_by_role("cell").first).to_have_text("高")
    await mark_document(page)
    note = f"已与备案机关核实：系录入错误，{today().isoformat()} 已申请更正为 30000.00 元"
    await finding.get_by_label(labelled("处理说明")).fill(note)
    await finding.get_by_role("button", name="标记为已处理").click()
    await expect(finding).to_contain_text("已处理（附说明）")
    await expect(finding).to_contain_text(f"{admin.user.display_name} · {today().isoformat()}")
    await expect(finding).to_contain_text(note)
    await expect(finding.get_by_role("button", name="标记为已处理")).to_have_count(0)
    await expect_same_document(page)

    await page.get_by_label("处理状态").select_option(label="已处理（附说明）")
    await page.get_by_role("button", name="筛选").click()
    await expect(page.locator("#discrepancies tbody tr").filter(has_text=approaching.number)).to_contain_text(note)
    await page.get_by_label("处理状态").select_option(label="已消除")
    await page.get_by_label("差异类型").select_option(label="逾期未备案")
    await page.get_by_role("button", name="筛选").click()
    await expect(page.locator("#discrepancies tbody tr").filter(has_text=overdue.number)).to_contain_text("已消除")


async def test_licensors_and_licensees_are_refused_the_filings_desk(page, live_server):
    licensor = await arrange_account(live_server)
    licensee = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE)
    for account in (licensor, licensee):
        await login_as(page, account, next_path="/contracts")
        nav = page.locator("header nav")
        await expect(nav.get_by_role("link", name="我的许可合同")).to_be_visible()
        await expect(nav.get_by_role("link", name="备案登记")).to_have_count(0)
        for path in ("/admin/filings", "/admin/filings/exports", "/admin/filings/results"):
            response = await page.goto(path)
            assert response is not None and response.status == 403, path
            await expect(page.get_by_role("heading", level=1)).to_have_text("没有权限")
            await expect(page.get_by_role("alert")).to_have_text("仅平台管理员可以访问")
        await logout(page)
