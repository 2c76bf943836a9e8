"""Browser journeys of a licensor's organisation: registering a patent by hand, bulk inventory upload
with its templates and row-level report, and an offer form refusing a royalty rate above the limit."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import openpyxl
from playwright.async_api import expect

from marketplace.clock import today
from tests.e2e.helpers import (
    arrange_account,
    arrange_patent,
    described_as,
    expect_field_error,
    expect_same_document,
    fresh_application_digits,
    labelled,
    login_as,
    mark_document,
    table_rows,
    wrong_check_character,
)


async def test_org_admin_registers_a_patent_typed_with_noise_and_finds_it_in_the_list(page, live_server):
    admin = await arrange_account(live_server)
    digits, check = fresh_application_digits(2016)
    # As copied from a certificate: ZL prefix, spaces between the parts, a full-width dot.
    typed = f"ZL {digits[:4]} {digits[4]} {digits[5:]}．{check}"
    number = f"{digits}.{check}"
    title = "一种耐高温石墨烯导热薄膜的制备方法"
    fee_paid_until = today() + timedelta(days=120)

    await login_as(page, admin, next_path="/patents")
    await expect(page.get_by_role("heading", level=1)).to_have_text("我的专利")
    await page.get_by_role("link", name="登记专利").click()
    await expect(page).to_have_url(f"{live_server.base_url}/patents/new")

    await page.get_by_label(labelled("申请号")).fill(typed)
    await page.get_by_label(labelled("专利名称")).fill(title)
    await page.get_by_label(labelled("申请日")).fill("2016-03-01")
    await page.get_by_label(labelled("授权日")).fill("2019-08-13")
    await page.get_by_label(labelled("法律状态")).select_option(label="有效（已授权）")
    await page.get_by_label(labelled("年费缴至")).fill(fee_paid_until.isoformat())
    await page.get_by_label(labelled("发明人")).fill("王强；李娜")
    await page.get_by_role("button", name="保存").click()

    await expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.base_url)}/patents/\d+$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(described_as(page, "专利号")).to_have_text(f"ZL{number}")
    await expect(described_as(page, "申请号")).to_have_text(number)
    await expect(described_as(page, "专利类型")).to_have_text("发明")
    await expect(described_as(page, "申请日")).to_have_text("2016-03-01")
    # Twenty years from the filing date, less one day: across the leap day of 2036.
    await expect(described_as(page, "到期日")).to_contain_text("2036-02-29")
    await expect(described_as(page, "年费缴至")).to_have_text(fee_paid_until.isoformat())
    await expect(described_as(page, "发明人")).to_have_text("王强、李娜")

    await page.locator("header nav").get_by_role("link", name="我的专利").click()
    await expect(page).to_have_url(f"{live_server.base_url}/patents")
    await expect(page.get_by_text("共 1 件")).to_be_visible()
    row = table_rows(page, f"ZL{number}")
    await expect(row).to_have_count(1)
    for text in (title, "发明", "2016-03-01", "2019-08-13", "2036-02-29", "有效"):
        await expect(row).to_contain_text(text)
    await row.get_by_role("link", name=f"ZL{number}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)


async def test_bulk_upload_from_the_template_reports_the_bad_row_and_all_or_nothing_imports_nothing(page, live_server):
    admin = await arrange_account(live_server)
    await login_as(page, admin, next_path="/patents")
    await page.get_by_role("main").get_by_role("link", name="批量入库").first.click()
    await expect(page).to_have_url(f"{live_server.base_url}/inventory-uploads/new")

    csv_link = page.get_by_role("link", name="下载 CSV 模板")
    answer = await page.request.get(await csv_link.get_attribute("href") or "")
    assert answer.status == 200
    async with page.expect_download() as download_info:
        await csv_link.click()
    download = await download_info.value
    assert download.suggested_filename == "专利盘点模板.csv"
    template = (await download.path()).read_bytes()
    headers = next(csv.reader(io.StringIO(template.decode("utf-8-sig"))))
    assert headers[:4] == ["申请号*", "专利名称*", "专利类型", "申请日*"]
    assert "法律状态*" in headers and "年费缴至" in headers

    async with page.expect_download() as xlsx_info:
        await page.get_by_role("link", name="下载 Excel 模板（.xlsx）").click()
    xlsx = (await (await xlsx_info.value).path()).read_bytes()
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
    assert [cell.value for cell in next(workbook.active.iter_rows(max_row=1))] == headers

    # Fill in the template as a person does: keep its header row, replace the note and example rows.
    fee_paid_until = (today() + timedelta(days=200)).isoformat()
    rows = []
    for title, (digits, check) in (
        ("一种钙钛矿太阳能电池的封装方法", fresh_application_digits(2019)),
        ("一种用于锂电池的硅碳负极材料", fresh_application_digits(2019)),
        ("一种高强度铝合金的热处理工艺", fresh_application_digits(2019)),
    ):
        rows.append({"申请号": f"{digits}.{check}", "专利名称": title, "申请日": "2019-04-02",
                     "授权日": "2021-07-16", "法律状态": "有效", "年费缴至": fee_paid_until})  # fmt: skip
    # Row 3 of the spreadsheet (the header is row 1) gets a mistyped check character.
    right_check = rows[1]["申请号"][-1]
    rows[1]["申请号"] = rows[1]["申请号"][:-1] + wrong_check_character(right_check)
    reported = ["3", "申请号", f"校验位应为{right_check}"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for cells in rows:
        writer.writerow([cells.get(header.rstrip("*"), "") for header in headers])
    upload = {"name": "2024年度专利盘点.csv", "mimeType": "text/csv", "buffer": out.getvalue().encode("utf-8-sig")}

    # All or nothing first: the bad row stops the whole file.
    await page.get_by_label("盘点表文件").set_input_files(upload)
    await page.get_by_label("全部有效才导入").check()
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="上传并导入").click()
    assert (await posted.value).status == 422
    await expect(page.get_by_role("heading", level=1)).to_have_text("入库报告：2024年度专利盘点.csv")
    await expect(page.get_by_role("alert")).to_have_text("1行有错误，未导入任何数据；请修改后重新上传")
    error_row = table_rows(page, "校验位应为")
    await expect(error_row.get_by_role("cell")).to_have_text(reported)
    await page.get_by_role("link", name="查看我的专利").click()
    await expect(page.get_by_text("共 0 件")).to_be_visible()
    await expect(page.get_by_text("尚未登记专利")).to_be_visible()

    # The same file, importing the valid rows: two patents in, row 3 reported.
    await page.goto("/inventory-uploads/new")
    await expect(page.get_by_label("全部有效才导入")).not_to_be_checked()
    await page.get_by_label("盘点表文件").set_input_files(upload)
    await page.get_by_role("button", name="上传并导入").click()
    await expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.base_url)}/inventory-uploads/\d+$"))
    await expect(described_as(page, "导入方式")).to_have_text("导入有效行，报告错误行")
    await expect(described_as(page, "数据行")).to_have_text("3")
    await expect(described_as(page, "新增专利")).to_have_text("2")
    await expect(described_as(page, "拒绝行")).to_have_text("1")
    await expect(page.get_by_role("status")).to_contain_text("1 行未导入")
    error_row = table_rows(page, "校验位应为")
    await expect(error_row.get_by_role("cell")).to_have_text(reported)
    report_link = page.get_by_role("link", name="下载错误报告（CSV）")
    report = await page.request.get(await report_link.get_attribute("href") or "")
    assert report.status == 200
    assert "校验位应为" in (await report.body()).decode("utf-8-sig")

    await page.get_by_role("link", name="查看我的专利").click()
    await expect(page.get_by_text("共 2 件")).to_be_visible()
    await expect(table_rows(page, rows[0]["申请号"])).to_contain_text("一种钙钛矿太阳能电池的封装方法")
    await expect(table_rows(page, rows[2]["申请号"])).to_contain_text("一种高强度铝合金的热处理工艺")
    await expect(page.get_by_text("一种用于锂电池的硅碳负极材料")).to_have_count(0)


async def test_royalty_above_the_limit_is_refused_beside_the_field_and_nothing_is_created(page, live_server):
    admin = await arrange_account(live_server)
    patent = await arrange_patent(live_server, admin, title="一种锂离子电池电解液添加剂")
    await login_as(page, admin, next_path="/offers/new")
    await expect(page.get_by_role("heading", level=1)).to_have_text("新建开放许可声明")

    await page.get_by_label(labelled("专利")).select_option(label=f"{patent.patent_number} {patent.title}")
    await mark_document(page)
    await page.get_by_label(labelled("支付方式")).select_option(label="提成支付")
    rate = page.get_by_label("提成费率（%）")
    await expect(rate).to_be_visible()
    await expect_same_document(page)
    await expect(page.get_by_label(labelled("提成基数"))).to_have_value("sales")
    await rate.fill("50")
    await page.get_by_label(labelled("许可期限（月）")).fill("36")
    await page.get_by_label("实施领域（可选）").fill("动力电池")
    async with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/offers")) as posted:
        await page.get_by_role("button", name="保存草稿").click()
    assert (await posted.value).status == 422

    await expect(page.get_by_role("heading", level=1)).to_have_text("新建开放许可声明")
    await expect(page.get_by_role("alert")).to_contain_text("费率不得超过20%")
    rate = page.get_by_label("提成费率（%）")
    await expect_field_error(rate, "费率不得超过20%")
    await expect(rate).to_have_value("50")
    await expect(page.get_by_label(labelled("专利"))).to_have_value(str(patent.id))
    await expect(page.get_by_label(labelled("支付方式"))).to_have_value("royalty")
    await expect(page.get_by_label(labelled("许可期限（月）"))).to_have_value("36")
    await expect(page.get_by_label("实施领域（可选）")).to_have_value("动力电池")

    await page.locator("header nav").get_by_role("link", name="开放许可声明").click()
    await expect(page).to_have_url(f"{live_server.base_url}/offers")
    await expect(page.get_by_text("尚无开放许可声明")).to_be_visible()
    await expect(page.get_by_text(patent.title)).to_have_count(0)
