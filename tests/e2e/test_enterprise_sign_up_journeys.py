"""Browser journeys of an enterprise signing up (企业注册): the form with its division lookup and
field errors, confirming the email through the link a platform admin finds in the local mailbox
(本地邮箱), and the platform admin verifying the enterprise (企业核验)."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect

from marketplace.accounts.models import OrganisationKind
from tests.e2e.helpers import (
    another_person,
    arrange_account,
    described_as,
    expect_field_error,
    fill_sign_up,
    header_who,
    labelled,
    login_as,
    table_rows,
)


async def test_an_enterprise_signs_up_confirms_its_email_and_is_verified(page, live_server):
    suffix = uuid.uuid4().hex[:8]
    name = f"北京青禾智能装备有限公司{suffix}"
    email = f"founder-{suffix}@qinghe.example.cn"
    # Arranged first: on SQLite a write from here while the server's worker is delivering the sign-up
    # mail can meet a stale snapshot ("database is locked").
    admin = await arrange_account(live_server, kind=OrganisationKind.PLATFORM)

    await page.goto("/catalogue")
    await header_who(page).get_by_role("link", name="注册企业").click()
    await expect(page).to_have_url(f"{live_server.base_url}/signup")
    await expect(page.locator("h1")).to_have_text("企业注册")

    division = page.get_by_label(labelled("所在地行政区划代码"))
    await division.fill("海淀")
    await expect(page.locator('#division-options option[value="110108"]')).to_have_count(1)
    await expect(page.locator("#division-lookup")).to_contain_text("找到 1 个匹配的行政区划")
    await division.fill("110108")
    await expect(page.locator("#division-name")).to_have_text("110108 · 北京市海淀区")

    await fill_sign_up(page, name=name, email=email)
    await page.get_by_role("button", name="注册", exact=True).click()

    await expect(page).to_have_url(f"{live_server.base_url}/account/confirmation?welcome=1")
    await expect(page.locator("h1")).to_have_text("注册成功")
    await expect(page.locator("#confirm-instructions")).to_contain_text(email)
    await expect(header_who(page)).to_contain_text(f"张三 · {name}")
    await page.goto("/account/organisation")
    banner = page.locator("#email-unconfirmed")
    await expect(banner).to_contain_text("请确认您的邮箱")
    await expect(page.locator("#verification-status")).to_have_text("待核验")
    await expect(page.locator("#filing-hold")).to_have_text("企业信息核验通过前，您签订的许可合同暂不报送备案。")

    async with another_person(page, live_server) as operator:
        await login_as(operator, admin, next_path="/admin/mailbox")
        await expect(operator.locator("h1")).to_have_text("本地邮箱")
        await operator.get_by_label("收件人").fill(email)
        subject = operator.get_by_role("link", name="请确认您的邮箱 · 专利开放许可平台")
        for _ in range(40):  # the in-process worker delivers within a second or two
            await operator.get_by_role("button", name="筛选").click()
            await operator.wait_for_load_state()
            if await subject.count():
                break
            await operator.wait_for_timeout(250)
        await subject.click()
        await expect(operator.locator("#mail-to")).to_have_text(email)
        link = operator.locator("#mail-body").get_by_role("link", name=re.compile("confirm-email"))
        await link.click()
        await expect(operator.locator("h1")).to_have_text("邮箱已确认")
        await expect(operator.locator("#confirmed-email")).to_have_text(email)

        await operator.goto("/admin/enterprises")
        row = table_rows(operator, name)
        await expect(row).to_contain_text("北京市海淀区")
        await expect(row).to_contain_text("C 制造业")
        await row.get_by_role("link", name=name).click()
        await expect(described_as(operator, "联系电话")).to_have_text("010-62345678")
        await operator.get_by_role("button", name="核验通过").click()
        await expect(operator.locator("#verification-status")).to_have_text("已核验")
        await expect(table_rows(operator.locator("#audit"), "核验通过")).to_contain_text("待核验 → 已核验")

    await page.reload()
    await expect(page.locator("#email-unconfirmed")).to_have_count(0)
    await expect(page.locator("#verification-status")).to_have_text("已核验")
    await expect(page.locator("#filing-hold")).to_have_count(0)


async def test_sign_up_reports_every_problem_beside_its_field_and_keeps_what_was_typed(page, live_server):
    await page.goto("/signup")
    await page.get_by_label(labelled("企业名称")).fill("某某有限公司")
    await page.get_by_label(labelled("统一社会信用代码")).fill("91110000802100433C")
    await page.get_by_label(labelled("所在地行政区划代码")).fill("999999")
    await expect(page.locator("#division-lookup")).to_contain_text("没有匹配“999999”的行政区划")
    await page.get_by_label(labelled("联系电话")).fill("12345")
    await page.get_by_label(labelled("密码")).fill("short")
    await page.get_by_label(labelled("确认密码")).fill("other")
    async with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/signup")) as answer:
        await page.get_by_role("button", name="注册", exact=True).click()
    assert (await answer.value).status == 422

    await expect_field_error(page.get_by_label(labelled("统一社会信用代码")), "统一社会信用代码校验位不正确")
    division = page.get_by_label(labelled("所在地行政区划代码"))
    await expect_field_error(division, "行政区划代码“999999”不存在（GB/T 2260）")
    await expect_field_error(page.get_by_label(labelled("企业规模")), "请选择企业规模")
    await expect_field_error(page.get_by_label(labelled("登录邮箱")), "请填写电子邮箱")
    await expect_field_error(page.get_by_label(labelled("密码")), "密码至少需要10个字符")
    await expect_field_error(page.get_by_label(labelled("确认密码")), "两次输入的密码不一致")
    phone = page.get_by_label(labelled("联系电话"))
    await expect(phone).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#e-contact_phone")).to_contain_text("联系电话应为11位手机号")
    await expect(page.get_by_label(labelled("企业名称"))).to_have_value("某某有限公司")
    await expect(page.get_by_label(labelled("密码"))).to_have_value("")
    await expect(header_who(page).get_by_role("link", name="登录")).to_be_visible()
