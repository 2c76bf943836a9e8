"""为我推荐 as an enterprise uses it: the profile filled from sign-up gives broad recommendations and
says so; a wrong IPC code is answered in place, in Chinese; an industry found through the lookup and
a keyword narrow the profile; the recommendations then show the reason lines, and a click lands on
the catalogue page, counted as viewed from the recommendations page."""

from __future__ import annotations

import asyncio
import re
import uuid

from playwright.async_api import expect
from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.matching.models import Channel, FunnelStage, MatchEvent
from tests.e2e.helpers import (
    arrange_account,
    arrange_patent,
    arrange_published_offer,
    expect_field_error,
    expect_same_document,
    labelled,
    login_as,
    logout,
    mark_document,
)


async def test_an_enterprise_narrows_its_profile_and_opens_a_recommendation(page, live_server):
    suffix = uuid.uuid4().hex[:6]
    licensor = await arrange_account(live_server, name=f"北方储能测试大学{suffix}")
    title = f"一种石墨烯包覆的锂电池负极材料{suffix}"
    patent = await arrange_patent(live_server, licensor, title=title, ipc_main="H01M 4/583")
    offer = await arrange_published_offer(live_server, licensor, patent, {"mode": "free"})
    company = f"京南电池科技有限公司{suffix}"
    # Signed up as manufacturing (C) in Haidian, Beijing: that is all the profile knows at first.
    enterprise = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=company)

    # 1. 为我推荐: the sign-up profile finds manufacturing patents only broadly, and says so.
    await login_as(page, enterprise, next_path="/recommendations")
    await expect(page.get_by_role("heading", name="为我推荐")).to_be_visible()
    summary = page.locator("#profile-summary")
    await expect(summary).to_contain_text("C 制造业")
    await expect(summary).to_contain_text("北京市")
    await expect(page.locator("#broad-note")).to_contain_text("推荐范围较宽：目前只按行业门类匹配")
    card = page.locator(f'article[data-offer-id="{offer.id}"]')
    await expect(card.get_by_role("list", name="推荐理由")).to_contain_text("IPC H01M ↔ 电池制造 +10 分")

    # 2. The profile, prefilled from sign-up; a wrong IPC code is answered beside the field.
    await summary.get_by_role("link", name="修改兴趣画像").click()
    await expect(page).to_have_url(re.compile(r"/profile$"))
    await expect(page.locator("#prefill-note")).to_be_visible()
    industries = page.get_by_label(labelled("行业（GB/T 4754）"))
    await expect(industries).to_have_value("C")
    await expect(page.get_by_label("北京市")).to_be_checked()
    await mark_document(page)
    ipc = page.get_by_label(labelled("IPC 分类"))
    await ipc.fill("H1M")
    await page.get_by_role("button", name="保存兴趣画像").click()
    await expect_field_error(page.get_by_label(labelled("IPC 分类")), "IPC 分类应为大类或小类，如 H01 或 H01M：H1M")
    await expect_same_document(page)
    await expect(page.get_by_label(labelled("IPC 分类"))).to_have_value("H1M")

    # 3. Fixed: no IPC code, the battery industry found by name, and a keyword.
    await page.get_by_label(labelled("IPC 分类")).fill("")
    await industries.fill("电池")
    await page.locator("#industry-lookup").get_by_role("button", name="C384 电池制造").click()
    await expect(industries).to_have_value("C384")
    await expect(page.locator("#industry-lookup")).to_contain_text("C384 · 电池制造")
    await page.get_by_label(labelled("关键词")).fill("石墨烯")
    await page.get_by_role("button", name="保存兴趣画像").click()

    # 4. The recommendations, with the lines that add up to each score.
    await expect(page).to_have_url(re.compile(r"/recommendations\?saved=1$"))
    await expect(page.get_by_role("status")).to_contain_text("兴趣画像已保存")
    await expect(page.locator("#broad-note")).to_have_count(0)
    await expect(summary).to_contain_text("C384 电池制造")
    reasons = card.get_by_role("list", name="推荐理由")
    await expect(reasons.get_by_role("listitem")).to_have_text(
        ["IPC H01M ↔ 电池制造 +30 分", "关键词 石墨烯 +15 分", "无需预付费用 +6 分", "同在北京市 +6 分"]
    )
    await expect(card.locator(".points")).to_have_text("57 分")
    await expect(card).to_contain_text(f"北方储能测试大学{suffix}")

    # 5. A click opens the catalogue page, counted as viewed from the recommendations.
    await card.get_by_role("link", name=title).click()
    await expect(page).to_have_url(re.compile(rf"/catalogue/{offer.id}\?via=page$"))
    await expect(page.get_by_role("heading", name=title)).to_be_visible()
    async with live_server.sessionmaker() as session:
        rows = await session.execute(
            select(MatchEvent.stage, MatchEvent.channel).where(
                MatchEvent.organisation_id == enterprise.organisation.id, MatchEvent.patent_id == patent.id
            )
        )
        assert dict(rows.all()) == {FunnelStage.SHOWN: Channel.PAGE, FunnelStage.VIEWED: Channel.PAGE}


async def test_a_stock_patent_interest_reaches_the_holder_who_reads_its_funnel(page, live_server):
    """An enterprise finds a university's unoffered patent among its recommendations and states an
    interest; the university sees who is interested on its patent page, and its funnel counts the
    enterprise that was shown and opened its published offer."""
    from marketplace.matching import services as matching
    from marketplace.matching.models import InventoryEntry
    from marketplace.matching.rules import ProfileInput
    from tests.e2e.helpers import _principal

    suffix = uuid.uuid4().hex[:6]
    university = await arrange_account(live_server, name=f"东海海洋测试大学{suffix}")
    stock_title = f"一种海水淡化反渗透膜的清洗方法{suffix}"
    stock = await arrange_patent(
        live_server, university, title=stock_title, ipc_main="C02F 1/44", transfer_intents="许可；转让"
    )
    offered = await arrange_patent(live_server, university, title=f"一种含油污水的气浮处理装置{suffix}",
                                   ipc_main="C02F 1/24")  # fmt: skip
    offer = await arrange_published_offer(live_server, university, offered, {"mode": "free"})
    enterprise = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=f"滨海水务科技{suffix}")
    async with live_server.sessionmaker() as session:
        actor = await _principal(session, enterprise)
        await matching.update_profile(session, actor, ProfileInput(industries=["N772"], keywords=["反渗透膜"]))
        await session.commit()
    # The worker (in process) files the new patent among the stock patents within seconds.
    for _ in range(300):
        async with live_server.sessionmaker() as session:
            if await session.scalar(select(InventoryEntry.id).where(InventoryEntry.patent_id == stock.id)):
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the stock patent never reached inventory_entries")

    # 1. 为我推荐: the offer, and under it the stock patent with its reasons.
    await login_as(page, enterprise, next_path="/recommendations")
    await expect(page.locator(f'article[data-offer-id="{offer.id}"]')).to_contain_text("IPC C02F ↔ 环境治理业")
    stock_card = page.locator(f'#stock-recommendations article[data-patent-id="{stock.id}"]')
    await expect(stock_card.get_by_role("list", name="推荐理由")).to_contain_text("关键词 反渗透膜 +15 分")
    await expect(stock_card).to_contain_text("愿意许可、转让")

    # 2. Its page: a note too long is answered in place; then the interest is sent.
    await stock_card.get_by_role("link", name=stock_title).click()
    await expect(page).to_have_url(re.compile(rf"/inventory/{stock.id}$"))
    await expect(page.get_by_role("heading", name=stock_title)).to_be_visible()
    note = page.get_by_label(labelled("留言"))
    await note.fill("长" * 501)
    await page.get_by_role("button", name="表达许可意向").click()
    await expect(page.get_by_role("alert")).to_have_text("留言不超过 500 字")
    await note.fill("拟用于沿海工业园区的淡化水站")
    await page.get_by_role("button", name="表达许可意向").click()
    await expect(page.locator("#interest-sent")).to_have_text("已向专利权人发送许可意向。")
    await expect(page.locator("#interest-state")).to_contain_text("拟用于沿海工业园区的淡化水站")

    # 3. The university reads the interest on its patent page and its funnel on the dashboard.
    # Let the nav's unread badge request finish first: a late answer could bring the session back.
    await page.wait_for_load_state("networkidle")
    await logout(page)
    await login_as(page, university, next_path=f"/patents/{stock.id}")
    interests = page.locator("#interests")
    await expect(interests).to_contain_text(f"滨海水务科技{suffix}")
    await expect(interests).to_contain_text("拟用于沿海工业园区的淡化水站")
    await page.get_by_role("navigation").get_by_role("link", name="转化漏斗").click()
    await expect(page).to_have_url(re.compile(r"/funnel$"))
    totals = page.locator("#funnel-totals")
    await expect(totals.locator("svg")).to_be_visible()
    await expect(totals.locator('tr[data-stage="shown"] [data-count]')).to_have_text("1")
    await expect(totals.locator('tr[data-stage="viewed"] [data-count]')).to_have_text("0")


async def test_a_licensor_pushes_an_offer_and_the_matching_enterprise_reads_it_in_its_inbox(page, live_server):
    """A university pushes its published offer; the worker delivers it to the enterprise whose profile
    matches; the enterprise sees the unread badge, reads the message with its reason and opens the
    offer, which its funnel counts as viewed from the push. A second push the same week is refused."""
    from marketplace.matching import services as matching
    from marketplace.matching.rules import ProfileInput
    from tests.e2e.helpers import _principal

    suffix = uuid.uuid4().hex[:6]
    university = await arrange_account(live_server, name=f"西岭农业测试大学{suffix}")
    title = f"一种设施大棚番茄水肥一体化灌溉装置{suffix}"
    patent = await arrange_patent(live_server, university, title=title, ipc_main="A01G 25/02")
    offer = await arrange_published_offer(live_server, university, patent, {"mode": "free"})
    enterprise = await arrange_account(live_server, kind=OrganisationKind.ENTERPRISE, name=f"绿野农业科技{suffix}")
    async with live_server.sessionmaker() as session:
        actor = await _principal(session, enterprise)
        await matching.update_profile(session, actor, ProfileInput(industries=["A01"], keywords=["水肥一体化"]))
        await session.commit()

    # 1. The licensor pushes from its offer page.
    await login_as(page, university, next_path=f"/offers/{offer.id}")
    push = page.locator("#push")
    await push.get_by_label(labelled("附言（选填，不超过 200 字）")).fill("欢迎园区企业试用")
    await push.get_by_role("button", name="推送给匹配企业").click()
    await expect(page.locator("#push-accepted")).to_be_visible()
    history = page.locator("#push-history")
    await expect(history).to_contain_text("欢迎园区企业试用")
    for _ in range(300):  # the worker (in process) picks the recipients within seconds
        await page.reload()
        if "1 家" in await history.inner_text():
            break
        await asyncio.sleep(0.1)
    await expect(history).to_contain_text("1 家")
    # A second push of the same declaration within 7 days is refused, with the reason.
    await page.locator("#push").get_by_role("button", name="推送给匹配企业").click()
    await expect(page.locator("#push-refused")).to_contain_text("7")

    # 2. The enterprise: the unread badge, the message and its reason, then the offer.
    # Let the nav's unread badge request finish first: a late answer could bring the session back.
    await page.wait_for_load_state("networkidle")
    await logout(page)
    await login_as(page, enterprise, next_path="/recommendations")
    await expect(page.locator("#inbox-unread")).to_have_text("1")
    await page.get_by_role("navigation").get_by_role("link", name=re.compile("收件箱")).click()
    await page.get_by_role("link", name=re.compile(title)).first.click()
    await expect(page.locator(f'li[data-offer-id="{offer.id}"]')).to_contain_text("关键词 水肥一体化")
    await page.get_by_role("link", name=title).click()
    await expect(page).to_have_url(re.compile(rf"/catalogue/{offer.id}\?via=push$"))
    async with live_server.sessionmaker() as session:
        rows = await session.execute(
            select(MatchEvent.stage, MatchEvent.channel).where(
                MatchEvent.organisation_id == enterprise.organisation.id, MatchEvent.patent_id == patent.id
            )
        )
        assert dict(rows.all()) == {FunnelStage.SHOWN: Channel.PUSH, FunnelStage.VIEWED: Channel.PUSH}
