"""Browser journeys from a licensor's declaration to the public catalogue: drafting a pay-after-use
offer, the platform admin's review and announcement, a visitor's search, offer page and cost
calculator, and a withdrawal taking the offer out of public view."""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.async_api import expect

from marketplace.accounts.models import OrganisationKind
from marketplace.clock import today
from tests.e2e.helpers import (
    another_person,
    arrange_account,
    arrange_patent,
    arrange_published_offer,
    described_as,
    expect_same_document,
    fresh_announcement_number,
    labelled,
    login_as,
    mark_document,
    table_rows,
)

PAY_AFTER_USE_LUMP_SUM = (
    "先用后付：许可生效后12个月内无需付款，期满后按以下标准支付，合同年度自期满之日起算"
    "——许可使用费一次总算、一次总付：¥30,000.00，于先用后付期满时支付。"
)


async def test_pay_after_use_offer_goes_from_draft_through_review_to_a_visitor_costing_it(page, live_server):
    licensor = await arrange_account(live_server, name="华东理工测试大学")
    title = "一种石墨烯复合电极材料的制备方法"
    patent = await arrange_patent(
        live_server, licensor, title=title, ipc_main="H01M 4/583",
        abstract="本发明公开了一种石墨烯复合电极材料，循环稳定性好，适用于动力电池负极。",
    )  # fmt: skip
    # Another licensor's published offer, which a search for 石墨烯 must leave out.
    other = await arrange_account(live_server)
    other_title = "一种海水淡化用反渗透复合膜"
    await arrange_published_offer(
        live_server, other, await arrange_patent(live_server, other, title=other_title), {"mode": "free"}
    )

    # The licensor declares the open licence from the patent's page.
    await login_as(page, licensor, next_path=f"/patents/{patent.id}")
    await page.get_by_role("link", name="声明开放许可").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("新建开放许可声明")
    await expect(page.get_by_label(labelled("专利"))).to_have_value(str(patent.id))
    await mark_document(page)
    await page.get_by_label(labelled("支付方式")).select_option(label="先用后付")
    deferral_months = page.get_by_label("先用后付期限（月）")
    await expect(deferral_months).to_be_visible()
    await expect(page.get_by_label(labelled("期满后的支付方式"))).to_have_value("lump_sum")
    await expect_same_document(page)
    await page.get_by_label(labelled("先用后付方式")).select_option(label="固定期限")
    await deferral_months.fill("12")
    await page.get_by_label(labelled("许可使用费金额（元）")).fill("30000")
    await page.get_by_label("付款期限（天）").fill("0")
    await page.get_by_label(labelled("许可期限（月）")).fill("36")
    await page.get_by_role("button", name="保存草稿").click()

    await expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.base_url)}/offers/\d+$"))
    offer_id = int(page.url.rsplit("/", 1)[1])
    heading = page.get_by_role("heading", level=1)
    await expect(heading).to_contain_text("草稿")
    await expect(described_as(page, "支付方式")).to_contain_text("先用后付")
    await expect(described_as(page, "费用标准")).to_have_text(PAY_AFTER_USE_LUMP_SUM)
    await expect(described_as(page, "起始应付")).to_have_text("¥0.00")
    await page.get_by_role("button", name="提交审核").click()
    await expect(heading).to_contain_text("待审核")
    await expect(page.get_by_role("button", name="提交审核")).to_have_count(0)

    # A platform admin reviews it at another computer and records the announcement.
    admin = await arrange_account(live_server, kind=OrganisationKind.PLATFORM)
    announcement = fresh_announcement_number()
    async with another_person(page, live_server) as reviewer:
        await login_as(reviewer, admin, next_path="/admin/offers")
        await expect(reviewer.get_by_role("heading", level=1)).to_have_text("开放许可声明审核")
        queued = table_rows(reviewer, patent.patent_number)
        await expect(queued).to_contain_text(licensor.organisation.name)
        await expect(queued).to_contain_text("待审核")
        await queued.get_by_role("link").click()
        await expect(reviewer).to_have_url(f"{live_server.base_url}/admin/offers/{offer_id}")
        await expect(described_as(reviewer, "费用标准")).to_have_text(PAY_AFTER_USE_LUMP_SUM)
        await reviewer.get_by_label(labelled("公告号")).fill(announcement)
        await reviewer.get_by_label(labelled("公告日期")).fill(today().isoformat())
        await reviewer.get_by_role("button", name="通过并公告").click()
        await expect(reviewer.get_by_role("heading", level=1)).to_contain_text("已公告")
        await expect(described_as(reviewer, "公告号")).to_have_text(announcement)
        await expect(described_as(reviewer, "公告日期")).to_have_text(today().isoformat())

    await page.reload()
    await expect(heading).to_contain_text("已公告")
    await expect(page.get_by_role("link", name="查看公开页面")).to_have_attribute("href", f"/catalogue/{offer_id}")

    # Anyone finds it in the catalogue, reads the terms and estimates the payments.
    async with another_person(page, live_server) as visitor:
        await visitor.goto("/")
        await visitor.locator("header nav").get_by_role("link", name="许可目录").click()
        await expect(visitor).to_have_url(f"{live_server.base_url}/catalogue")
        await expect(visitor.get_by_role("link", name=other_title)).to_be_visible()
        await mark_document(visitor)
        await visitor.get_by_role("searchbox", name="检索词").fill("石墨烯")
        await visitor.get_by_role("button", name="检索", exact=True).click()
        await expect(visitor).to_have_url(re.compile(rf"[?&]q={re.escape(quote('石墨烯'))}(&|$)"))
        hit = visitor.get_by_role("article").filter(has=visitor.locator(f'a[href="/catalogue/{offer_id}"]'))
        await expect(hit.get_by_role("heading")).to_have_text(title)
        await expect(visitor.get_by_role("link", name=other_title)).to_have_count(0)
        await expect(visitor.get_by_text("按相关度排序")).to_be_visible()
        await expect_same_document(visitor)
        await expect(described_as(hit, "支付方式")).to_have_text("先用后付")
        await expect(described_as(hit, "预付费用")).to_have_text("¥0.00")
        await expect(hit).to_contain_text("华东理工测试大学")

        await hit.get_by_role("link", name=title).click()
        await expect(visitor).to_have_url(f"{live_server.base_url}/catalogue/{offer_id}")
        await expect(visitor.get_by_role("heading", level=1)).to_have_text(title)
        await expect(described_as(visitor, "支付方式")).to_contain_text("先用后付")
        await expect(described_as(visitor, "费用标准")).to_have_text(PAY_AFTER_USE_LUMP_SUM)
        await expect(described_as(visitor, "许可期限")).to_have_text("36 个月")
        await expect(described_as(visitor, "许可类型")).to_have_text("普通实施许可")
        await expect(described_as(visitor, "公告号")).to_have_text(announcement)
        await expect(described_as(visitor, "专利号")).to_have_text(patent.patent_number)

        await mark_document(visitor)
        await visitor.get_by_label("书面通知（许可生效）日期").fill("2026-07-01")
        await visitor.get_by_role("button", name="测算").click()
        await expect(visitor.get_by_text("许可期间：2026-07-01 至 2029-06-30")).to_be_visible()
        await expect(visitor.get_by_text("首笔款项不早于2027-07-01")).to_be_visible()
        payments = visitor.get_by_role("table").get_by_role("row")
        await expect(payments).to_have_count(3)
        await expect(payments.nth(1).get_by_role("cell")).to_have_text(
            ["2027-07-01", "¥30,000.00", re.compile("一次总付")]
        )
        await expect(table_rows(visitor, "合计")).to_contain_text("¥30,000.00")
        await expect_same_document(visitor)


async def test_visitor_enters_expected_sales_and_sees_royalties_start_after_the_deferral(page, live_server):
    licensor = await arrange_account(live_server)
    title = "一种固态电池用复合电解质膜"
    patent = await arrange_patent(live_server, licensor, title=title)
    terms = {
        "mode": "pay_after_use",
        "deferral": "months",
        "deferral_months": 12,
        "then": {"mode": "royalty", "base": "sales", "rate": "0.03", "rate_schedule": "fixed",
                 "reporting_period": "quarterly"},
    }  # fmt: skip
    offer = await arrange_published_offer(live_server, licensor, patent, terms)

    await page.goto(f"/catalogue/{offer.id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(described_as(page, "费用标准")).to_contain_text("许可使用费按销售额的3%提成，按季度报告并支付")
    sales = page.get_by_label("预计每年销售额（元）")
    await expect(page.get_by_text("请填写预计每年销售额（元）后测算。")).to_be_visible()

    await mark_document(page)
    await sales.fill("一百万")
    await page.get_by_label("书面通知（许可生效）日期").fill("2026-07-01")
    async with page.expect_response(lambda r: "/calculator" in r.url) as answered:
        await page.get_by_role("button", name="测算").click()
    assert (await answered.value).status == 422
    await expect(page.get_by_role("alert")).to_have_text("请填写有效的金额")
    await expect(sales).to_have_value("一百万")

    await sales.fill("1,000,000")
    await page.get_by_role("button", name="测算").click()
    await expect(page.get_by_role("alert")).to_have_count(0)
    await expect(page.get_by_text("许可期间：2026-07-01 至 2029-06-30")).to_be_visible()
    rows = page.get_by_role("table").get_by_role("row")
    # Header, eight quarters of the two contract years after the deferral, total.
    await expect(rows).to_have_count(10)
    await expect(rows.nth(1).get_by_role("cell")).to_have_text(
        ["2027-09-30", "¥7,500.00", re.compile("第1合同年度第1季度提成")]
    )
    await expect(rows.nth(8).get_by_role("cell")).to_have_text(
        ["2029-06-30", "¥7,500.00", re.compile("第2合同年度第4季度提成")]
    )
    await expect(table_rows(page, "合计")).to_contain_text("¥60,000.00")
    await expect_same_document(page)


async def test_withdrawn_offer_leaves_the_catalogue_and_its_public_page_is_gone(page, live_server):
    licensor = await arrange_account(live_server)
    title = "一种柔性钙钛矿太阳能电池组件"
    patent = await arrange_patent(live_server, licensor, title=title)
    offer = await arrange_published_offer(
        live_server, licensor, patent, {"mode": "lump_sum", "amount_fen": 5_000_000, "due_days": 30}
    )
    listed = f'a[href="/catalogue/{offer.id}"]'

    async with another_person(page, live_server) as visitor:
        await visitor.goto("/catalogue?q=" + quote("钙钛矿"))
        await expect(visitor.locator(listed)).to_have_text(title)

        await login_as(page, licensor, next_path=f"/offers/{offer.id}")
        heading = page.get_by_role("heading", level=1)
        await expect(heading).to_contain_text("已公告")
        reason = "该专利拟转让给合作企业，停止开放许可"
        await page.get_by_label(labelled("撤回理由")).fill(reason)
        await page.get_by_role("button", name="撤回", exact=True).click()
        await expect(heading).to_contain_text("已撤回")
        await expect(page.get_by_text(f"该开放许可已撤回：{reason}（已取得的许可不受影响）")).to_be_visible()
        await expect(page.get_by_role("button", name="撤回", exact=True)).to_have_count(0)
        await page.locator("header nav").get_by_role("link", name="开放许可声明").click()
        await expect(table_rows(page, patent.patent_number)).to_contain_text("已撤回")

        await visitor.reload()
        await expect(visitor.locator(listed)).to_have_count(0)
        await expect(visitor.get_by_text("没有找到符合条件的开放许可")).to_be_visible()
        await visitor.goto("/")
        await expect(visitor.locator(listed)).to_have_count(0)
        response = await visitor.goto(f"/catalogue/{offer.id}")
        assert response is not None and response.status == 404
        await expect(visitor.get_by_role("heading", level=1)).to_have_text("未找到")
        await expect(visitor.get_by_role("alert")).to_have_text("开放许可声明不存在或已撤回")
        await expect(visitor.get_by_text(title)).to_have_count(0)
