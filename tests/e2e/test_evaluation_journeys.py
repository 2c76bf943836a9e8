"""Market evaluations (市场评价) as they are used: an enterprise and an invited expert rate a catalogue
patent on its page (a mistake answered in place, then saved and edited), everyone sees the scores, and
the licensor reads each evaluation and the patent's tier (分层) with the lines that add up to it — which
the enterprise may not see."""

from __future__ import annotations

import uuid

from playwright.async_api import Page, expect

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.accounts.services import create_user, ensure_platform_organisation
from tests.e2e.helpers import (
    LiveServer,
    arrange_account,
    arrange_patent,
    arrange_published_offer,
    expect_field_error,
    expect_same_document,
    labelled,
    login_as,
    logout,
    mark_document,
    table_rows,
)
from tests.factories import PASSWORD, Account


async def arrange_expert(server: LiveServer, name: str) -> Account:
    """An expert (评审专家) as an accepted invitation leaves them."""
    email = f"expert-{uuid.uuid4().hex[:8]}@pingshen.example.cn"
    async with server.sessionmaker() as session:
        platform = await ensure_platform_organisation(session)
        user = await create_user(
            session, organisation=platform, email=email, display_name=name, password=PASSWORD, role=Role.EXPERT
        )
        await session.commit()
        return Account(organisation=platform, user=user, email=email)


async def evaluate(page: Page, *, prospects: str, cooperation: str, needs: str, interested: bool) -> None:
    form = page.locator("#evaluation-form")
    await form.get_by_label(labelled("产业化前景（1–5 分）")).select_option(prospects)
    await form.get_by_label(labelled("产学研合作意愿")).select_option(label=cooperation)
    await form.get_by_label("技术改进需求").fill(needs)
    await form.get_by_label("有意向立即取得许可").set_checked(interested)
    await form.get_by_role("button").click()


async def test_an_enterprise_and_an_expert_evaluate_and_the_licensor_reads_them_with_the_tier(page, live_server):
    suffix = uuid.uuid4().hex[:6]
    licensor = await arrange_account(live_server, name=f"华南新材料测试大学{suffix}")
    title = f"一种固态电解质薄膜的制备方法{suffix}"
    patent = await arrange_patent(live_server, licensor, title=title)
    offer = await arrange_published_offer(live_server, licensor, patent, {"mode": "free"})
    company = f"佛山固锂科技有限公司{suffix}"
    enterprise = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=company)
    expert = await arrange_expert(live_server, f"陈专家{suffix}")

    # 1. The enterprise opens the patent in the catalogue: no scores yet; a form without a score is
    #    answered in place, in Chinese.
    await login_as(page, enterprise, next_path=f"/catalogue/{offer.id}")
    panel = page.locator("#evaluation-panel")
    await expect(panel).to_contain_text("暂无市场评价")
    await mark_document(page)
    await page.locator("#evaluation-form").get_by_role("button", name="提交评价").click()
    await expect_field_error(
        page.locator("#evaluation-form").get_by_label(labelled("产业化前景（1–5 分）")), "请选择产业化前景评分（1–5）"
    )
    await expect_same_document(page)

    # 2. Saved, then edited: still one evaluation, with the new score.
    await evaluate(page, prospects="5", cooperation="强烈", needs="需要中试放大工艺参数", interested=True)
    await expect(panel.get_by_role("status")).to_have_text("评价已保存。")
    await expect(panel).to_contain_text("市场评价 1 条 · 产业化前景均分 5.0 · 有意向立即许可 100%")
    await expect(panel).to_contain_text("您已于")
    await evaluate(page, prospects="4", cooperation="愿意", needs="需要中试放大工艺参数和设备选型", interested=True)
    await expect(panel).to_contain_text("市场评价 1 条 · 产业化前景均分 4.0 · 有意向立即许可 100%")
    await expect(page.locator("#evaluation-form").get_by_role("button")).to_have_text("保存修改")
    await expect_same_document(page)
    # The enterprise does not see tiers: the licensor's patent page does not exist for it.
    response = await page.goto(f"/patents/{patent.id}")
    assert response is not None and response.status == 404
    await expect(page.locator("#tier")).to_have_count(0)
    await logout(page)

    # 3. The expert rates it too; the scores now count two evaluations.
    await login_as(page, expert, next_path=f"/catalogue/{offer.id}")
    await expect(page.get_by_role("button", name="取得该开放许可")).to_have_count(0)
    await evaluate(page, prospects="3", cooperation="一般", needs="", interested=False)
    await expect(panel).to_contain_text("市场评价 2 条 · 产业化前景均分 3.5 · 有意向立即许可 50%")
    await logout(page)

    # 4. The licensor reads each evaluation and the tier with its lines (two evaluations: facts alone).
    await login_as(page, licensor, next_path=f"/patents/{patent.id}")
    evaluations = page.locator("#evaluations")
    await expect(table_rows(evaluations, enterprise.organisation.name, "4 / 5", "愿意", "是")).to_have_count(1)
    await expect(table_rows(evaluations, f"陈专家{suffix}（评审专家）", "3 / 5", "一般", "否")).to_have_count(1)
    await expect(table_rows(evaluations, "需要中试放大工艺参数和设备选型", "（已修改）")).to_have_count(1)
    tier = page.locator("#tier")
    await expect(tier.locator(".badge").first).to_have_text("一般")
    await expect(tier).to_contain_text("发明专利：+1")
    await expect(tier).to_contain_text("评价不足3份（现有2份），仅按专利事实分层")
