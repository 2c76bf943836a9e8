"""Browser journeys of accounts: logging in and out, API tokens, inviting organisation members, access refused."""

from __future__ import annotations

import uuid

from playwright.async_api import expect

from marketplace.accounts.services import TOKEN_PREFIX
from tests.e2e.helpers import (
    another_person,
    arrange_account,
    assert_png,
    expect_field_error,
    fill_login_form,
    header_who,
    labelled,
    login,
    login_as,
    logout,
    mailed_link,
    table_rows,
)


async def test_org_admin_creates_a_token_sees_it_once_and_revokes_it(page, live_server, tmp_path):
    admin = await arrange_account(live_server)
    await page.goto("/account/tokens")
    await expect(page).to_have_url(f"{live_server.base_url}/login?next=/account/tokens")
    await fill_login_form(page, admin.email, admin.password)

    await expect(page).to_have_url(f"{live_server.base_url}/account/tokens")
    await expect(header_who(page)).to_contain_text(f"{admin.user.display_name} · {admin.organisation.name}")
    assert await page.title() == "API 令牌 · 专利开放许可平台"

    await page.get_by_label("令牌名称").fill("科研管理系统对接")
    await page.get_by_role("button", name="生成令牌").click()
    new_token = page.locator("#new-token")
    await expect(new_token).to_be_visible()
    raw = (await new_token.text_content() or "").strip()
    assert raw.startswith(TOKEN_PREFIX) and len(raw) > 30
    row = page.get_by_role("row").filter(has_text="科研管理系统对接")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("有效")

    shot = tmp_path / "tokens.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert_png(shot)

    me = await page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status == 200
    assert (await me.json())["organisation_name"] == admin.organisation.name

    await page.goto("/account/tokens")
    await expect(page.locator("#new-token")).to_have_count(0)
    assert raw not in await page.content()
    await expect(row).to_contain_text(raw[: len(TOKEN_PREFIX) + 6])

    await row.get_by_role("button", name="吊销").click()
    await expect(page).to_have_url(f"{live_server.base_url}/account/tokens")
    await expect(row).to_contain_text("已吊销")
    await expect(row.get_by_role("button", name="吊销")).to_have_count(0)
    refused = await page.request.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status == 401


async def test_wrong_password_is_refused_beside_the_form_and_stays_on_login(page, live_server):
    account = await arrange_account(live_server)
    await page.goto("/login")
    async with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as answer:
        await fill_login_form(page, account.email, "wrong-password-1")
    assert (await answer.value).status == 422

    await expect(page).to_have_url(f"{live_server.base_url}/login")
    await expect(page.locator("h1")).to_have_text("登录")
    password = page.get_by_label("密码")
    await expect(password).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#e-password")).to_have_text("邮箱或密码不正确")
    await expect(page.get_by_label("电子邮箱")).to_have_value(account.email)
    await expect(password).to_have_value("")
    await expect(header_who(page).get_by_role("link", name="登录")).to_be_visible()

    await page.goto("/account/tokens")
    await expect(page).to_have_url(f"{live_server.base_url}/login?next=/account/tokens")


async def test_member_invited_by_the_admin_sets_a_password_and_cannot_manage_tokens(page, live_server):
    admin = await arrange_account(live_server)
    await login_as(page, admin, next_path="/account/users")
    await expect(page.locator("h1")).to_have_text("机构成员")

    email = f"member-{uuid.uuid4().hex[:8]}@example.cn"
    password = "Member-pass-2024"
    await page.get_by_label(labelled("姓名")).fill("王小明")
    await page.get_by_label(labelled("电子邮箱")).fill(email)
    await page.get_by_label(labelled("角色")).select_option(label="机构成员")
    await page.get_by_role("button", name="发送邀请").click()

    await expect(page.get_by_role("status")).to_have_text(f"已向 {email} 发送邀请。")
    pending = table_rows(page.locator("#invitations"), email)
    await expect(pending).to_contain_text("王小明")
    await expect(pending).to_contain_text("机构成员")
    link = await mailed_link(live_server, email, "/invitations/")

    async with another_person(page, live_server) as invitee:
        await invitee.goto(link)
        await expect(invitee.locator("h1")).to_have_text(f"加入“{admin.organisation.name}”")
        await expect(invitee.get_by_label("登录邮箱")).to_have_value(email)
        await expect(invitee.get_by_label(labelled("姓名"))).to_have_value("王小明")
        await invitee.get_by_label(labelled("密码")).fill(password)
        await invitee.get_by_label(labelled("确认密码")).fill("Another-pass-2024")
        await invitee.get_by_role("button", name="接受邀请并设置密码").click()
        await expect_field_error(invitee.get_by_label(labelled("确认密码")), "两次输入的密码不一致")

        await invitee.get_by_label(labelled("密码")).fill(password)
        await invitee.get_by_label(labelled("确认密码")).fill(password)
        await invitee.get_by_role("button", name="接受邀请并设置密码").click()
        await expect(invitee).to_have_url(f"{live_server.base_url}/account/welcome")
        await expect(header_who(invitee)).to_contain_text(f"王小明 · {admin.organisation.name}")
        await expect(invitee.locator("header nav").get_by_role("link", name="API 令牌")).to_have_count(0)
        response = await invitee.goto("/account/tokens")
        assert response is not None and response.status == 403
        await expect(invitee.get_by_role("alert")).to_have_text("仅机构管理员可以访问")

        # The link is spent.
        response = await invitee.goto(link)
        assert response is not None and response.status == 400
        await expect(invitee.get_by_role("alert")).to_have_text("该邀请已被接受，请直接登录。")

    await page.reload()
    await expect(table_rows(page.locator("#members"), email)).to_contain_text("王小明")
    await expect(page.locator("#invitations")).to_contain_text("没有待接受的邀请")

    await logout(page)
    await login(page, email, password, next_path="/account/users")
    await expect(page.locator("h1")).to_have_text("没有权限")


async def test_logout_returns_to_anonymous_and_protected_pages_ask_for_login(page, live_server):
    admin = await arrange_account(live_server)
    await login_as(page, admin, next_path="/account/users")
    await expect(header_who(page)).to_contain_text(admin.user.display_name)

    await logout(page)
    await expect(header_who(page)).not_to_contain_text(admin.user.display_name)
    for path in ("/account/users", "/account/tokens"):
        await page.goto(path)
        await expect(page).to_have_url(f"{live_server.base_url}/login?next={path}")
        await expect(page.locator("h1")).to_have_text("登录")

    await fill_login_form(page, admin.email, admin.password)
    await expect(page).to_have_url(f"{live_server.base_url}/account/tokens")
    await expect(page.locator("h1")).to_have_text("API 令牌")


async def test_anyone_can_read_the_api_description(page):
    response = await page.goto("/schema/openapi.json")
    assert response is not None and response.status == 200
    document = await response.json()
    assert document["info"]["title"] == "专利开放许可平台 API"
    assert "/api/v1/me" in document["paths"]
