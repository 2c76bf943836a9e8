"""Paying for a licence as people do it: the licensee takes a lump-sum licence, finds the payment
request (付款通知书) the platform issued, declares a bank transfer (对公转账) — with a field error on
the way — and the university's admin confirms the money arrived, which puts the licence in force."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect

from marketplace.accounts.models import OrganisationKind
from marketplace.clock import today
from tests.e2e.helpers import (
    another_person,
    arrange_account,
    arrange_patent,
    arrange_published_offer,
    expect_field_error,
    labelled,
    login_as,
    table_rows,
)

LUMP_SUM = {"mode": "lump_sum", "amount_fen": 8_800_000, "due_days": 30}


async def test_licensee_pays_by_bank_transfer_and_the_licensor_confirms_it(page, live_server):
    suffix = uuid.uuid4().hex[:6]
    licensor = await arrange_account(live_server, name=f"东湖光电测试大学{suffix}")
    title = f"一种微透镜阵列的热压成型方法{suffix}"
    patent = await arrange_patent(live_server, licensor, title=title)
    await arrange_published_offer(live_server, licensor, patent, LUMP_SUM)
    company = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=f"武汉镜界光学有限公司{suffix}")

    await login_as(page, company, next_path="/catalogue")
    await page.get_by_role("searchbox").fill("微透镜阵列")
    await page.get_by_role("searchbox").press("Enter")
    await page.get_by_role("link", name=title).click()
    await page.get_by_role("link", name="取得该开放许可").click()
    await page.get_by_label(labelled("拟实施领域（产品或用途）")).fill("车载摄像头镜头模组")
    await page.get_by_label(labelled("签署人职务")).fill("总经理")
    await page.get_by_role("button", name="提交书面通知，取得许可").click()
    await expect(page.locator("#contract-status")).to_have_text("待首付款")
    contract_number = (await page.get_by_role("heading", level=1).inner_text()).split()[1]

    # The worker issues the payment request within seconds.
    await page.get_by_role("link", name="付款通知书").click()
    invoice_link = page.get_by_role("link", name=re.compile(rf"PN{today().year}\d{{6}}"))
    for _ in range(40):
        if await invoice_link.count():
            break
        await page.wait_for_timeout(250)
        await page.reload()
    await expect(table_rows(page.locator("#invoice-list"), contract_number)).to_contain_text("88,000.00")
    await invoice_link.first.click()
    await expect(page.locator("#invoice-status")).to_have_text("待支付")
    await expect(page.locator("#invoice-total")).to_have_text("¥88,000.00")

    # Declare the transfer; the account number is mistyped at first and the server says so beside it.
    await page.get_by_label(labelled("汇款金额（元）")).fill("88,000.00")
    await page.get_by_label(labelled("银行流水号 / 回单编号")).fill(f"HX{suffix}")
    account = page.get_by_label(labelled("付款账号"))
    await account.fill("6222 0202 O011")
    await page.get_by_role("button", name="申报转账").click()
    await expect_field_error(page.get_by_label(labelled("付款账号")), "付款账号应为数字，最多40位")
    await page.get_by_label(labelled("付款账号")).fill("6222 0202 0011 2233")
    await page.get_by_role("button", name="申报转账").click()
    await expect(page.locator("#payment-state")).to_have_text("待确认到账")

    # The university's admin checks the bank account and confirms.
    async with another_person(page, live_server) as bursar:
        await login_as(bursar, licensor, next_path="/invoices")
        await expect(table_rows(bursar.locator("#invoice-list"), contract_number)).to_contain_text(
            company.organisation.name
        )
        await table_rows(bursar.locator("#invoice-list"), contract_number).get_by_role("link").first.click()
        await bursar.get_by_role("link", name="详情").click()
        await expect(bursar.locator("body")).to_contain_text(f"HX{suffix}")
        await bursar.get_by_role("button", name="确认已到账").click()
        await expect(bursar.locator("#payment-state")).to_have_text("已确认到账")

    # The licensee sees the invoice paid and the licence in force.
    await page.reload()
    await expect(page.locator("#payment-state")).to_have_text("已确认到账")
    await page.get_by_role("link", name=re.compile(rf"PN{today().year}")).click()
    await expect(page.locator("#invoice-status")).to_have_text("已支付")
    await page.get_by_role("link", name=contract_number).click()
    await expect(page.locator("#outstanding")).to_have_text("¥0.00")
    await page.get_by_role("link", name=contract_number).click()
    await expect(page.locator("#contract-status")).to_have_text("生效中")
