"""The licensee's whole path as a new user walks it: sign up, confirm the email from the link the
platform's local mailbox (本地邮箱) holds, find a patent in the catalogue, take its pay-after-use open
licence with the written notice (书面通知), and open the contract PDF."""

from __future__ import annotations

import io
import re
import uuid

import pypdf
from playwright.async_api import expect

from marketplace.accounts.models import OrganisationKind
from marketplace.clock import today
from tests.e2e.helpers import (
    another_person,
    arrange_account,
    arrange_patent,
    arrange_published_offer,
    described_as,
    expect_field_error,
    fill_sign_up,
    labelled,
    login_as,
    table_rows,
)

PAY_AFTER_USE = {
    "mode": "pay_after_use",
    "deferral": "months",
    "deferral_months": 12,
    "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 30},
}


async def test_a_new_enterprise_signs_up_and_takes_a_pay_after_use_licence(page, live_server):
    suffix = uuid.uuid4().hex[:6]
    licensor = await arrange_account(live_server, name=f"江南冷链测试大学{suffix}")
    title = f"一种用于冷链物流的相变蓄冷箱体{suffix}"
    patent = await arrange_patent(live_server, licensor, title=title, ipc_main="F25D 3/08")
    await arrange_published_offer(live_server, licensor, patent, PAY_AFTER_USE)
    company = f"苏州鲜达冷链科技有限公司{suffix}"
    email = f"boss-{suffix}@xianda.example.cn"
    # Arranged before the sign-up: on SQLite a direct write here could meet the worker's mail write.
    admin = await arrange_account(live_server, kind=OrganisationKind.PLATFORM)

    # Sign up.
    await page.goto("/signup")
    await page.get_by_label(labelled("所在地行政区划代码")).fill("320505")
    # The lookup answers before the form is sent, as a person sees the name appear before going on.
    await expect(page.locator("#division-name")).to_have_text("320505 · 江苏省苏州市虎丘区")
    await fill_sign_up(page, name=company, email=email)
    await page.get_by_role("button", name="注册", exact=True).click()
    await expect(page.locator("h1")).to_have_text("注册成功")

    # The platform's local mailbox holds the confirmation mail; the new user opens its link.
    async with another_person(page, live_server) as operator:
        await login_as(operator, admin, next_path="/admin/mailbox")
        await operator.get_by_label("收件人").fill(email)
        subject = operator.get_by_role("link", name="请确认您的邮箱 · 专利开放许可平台")
        for _ in range(40):  # the in-process worker delivers within a second or two
            await operator.get_by_role("button", name="筛选").click()
            await operator.wait_for_load_state()
            if await subject.count():
                break
            await operator.wait_for_timeout(250)
        await subject.click()
        link = await operator.locator("#mail-body").get_by_role("link", name=re.compile("confirm-email")).get_attribute(
            "href"
        )
    assert link is not None
    await page.goto(link)
    await expect(page.locator("h1")).to_have_text("邮箱已确认")

    # Find the patent in the catalogue.
    await page.goto("/catalogue")
    await page.get_by_role("searchbox").fill("相变蓄冷")
    await page.get_by_role("searchbox").press("Enter")
    await page.get_by_role("link", name=title).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)

    # Take the licence with the written notice; a missing field is reported beside it first.
    await page.get_by_role("link", name="取得该开放许可").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"取得开放许可：{title}")
    await expect(page.locator("#held-notice, .alert.warn").first).to_contain_text("尚待平台核验")
    await page.get_by_label(labelled("签署人职务")).fill("总经理")
    await page.get_by_role("button", name="提交书面通知，取得许可").click()
    field_of_use = page.get_by_label(labelled("拟实施领域（产品或用途）"))
    await expect_field_error(field_of_use, "请填写拟实施的领域（产品或用途）")
    await field_of_use.fill("生鲜配送用保温箱")
    await page.get_by_role("button", name="提交书面通知，取得许可").click()

    number = re.compile(rf"许可合同 OL{today().year}\d{{6}}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(number)
    await expect(page.locator("#contract-status")).to_have_text("生效中")
    await expect(described_as(page, "支付方式")).to_have_text("先用后付")
    await expect(page.locator("#held-notice")).to_contain_text("暂不报送专利实施许可合同备案")
    await expect(table_rows(page.locator("#obligations"), "许可使用费（一次总付）")).to_contain_text("¥30,000.00")
    contract_number = (await page.get_by_role("heading", level=1).inner_text()).split()[1]

    # The contract appears among the enterprise's licences, and its PDF opens with the Chinese text intact.
    await page.get_by_role("link", name="我的许可合同").click()
    await expect(table_rows(page.locator("#contracts"), contract_number)).to_contain_text(title)
    await page.get_by_role("link", name=contract_number).click()
    pdf_href = await page.locator("#contract-pdf").get_attribute("href")
    response = await page.request.get(pdf_href)
    assert response.ok and response.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(await response.body())).pages)
    text = text.replace("\n", "")
    for expected in (contract_number, company, licensor.organisation.name, title, "普通实施许可", "先用后付"):
        assert expected in text, expected
