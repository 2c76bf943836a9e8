"""The weekly digest (每周推荐) end to end: the right new offers, with why they match, in the right
enterprises' inboxes and mailboxes; nothing twice in one week; unsubscribed, own-offer, licensed
and unmatched cases; the unsubscribe link without login; the inbox pages and API; the worker's
weekly job."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind, User
from marketplace.accounts.services import create_user, principal_for
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.cli import main
from marketplace.clock import BUSINESS_TZ, now_utc
from marketplace.licensing import services as licensing
from marketplace.matching import digest_rules, push
from marketplace.matching.models import InboxMessage
from marketplace.offers.models import PaymentMode
from marketplace.outbox.models import PRIORITY_BULK, PRIORITY_NORMAL, MailMessage, OutboxMessage
from marketplace.outbox.services import _BATCH_JOBS, drain_once, queue_email
from tests.catalogue_factories import make_licensor, publish_offer
from tests.evaluation_factories import ROLES, make_expert
from tests.factories import PASSWORD, add_member, api_token, bearer, csrf_headers, delivered_mail, login, make_account
from tests.inbox_factories import (
    enterprise_with_profile,
    events_of,
    inbox_of,
    profile_of,
    set_profile,
    unsubscribe_link,
)
from tests.licensing_factories import notice_form

T = datetime.now(UTC).replace(microsecond=0)
BASE = "http://127.0.0.1:8000"


async def _world(db):
    north = await make_licensor(db, "北方测试大学", division_code="110108")
    south = await make_licensor(db, "南海芯片科技有限公司", division_code="440305", kind=OrganisationKind.ENTERPRISE)
    offers = {
        "anode": await publish_offer(
            db, north, "一种石墨烯复合负极材料及其制备方法", "本发明公开一种锂电池负极材料。",
            ipc_main="H01M 4/36", mode=PaymentMode.LUMP_SUM, published_at=T - timedelta(days=1),
        ),
        "cooling": await publish_offer(
            db, north, "锂电池热管理装置", "一种电池包散热结构，适用于新能源汽车。",
            ipc_main="H01M 10/613", mode=PaymentMode.PAY_AFTER_USE, published_at=T - timedelta(days=2),
        ),
        "sewage": await publish_offer(
            db, north, "一种污水处理系统", "通过生物膜反应器去除氨氮。",
            ipc_main="C02F 9/00", mode=PaymentMode.FREE, published_at=T - timedelta(days=3),
        ),
        "chip": await publish_offer(
            db, south, "一种芯片散热结构", "用于功率器件的散热。",
            ipc_main="H01L 23/36", mode=PaymentMode.ROYALTY, published_at=T - timedelta(days=1, hours=1),
        ),
        # Published before the window: already in an earlier digest.
        "old": await publish_offer(
            db, north, "一种石墨烯电池隔膜", "", ipc_main="H01M 50/40", published_at=T - timedelta(days=9),
        ),
    }  # fmt: skip
    week_ago = T - timedelta(days=8)
    people = {
        "battery": await enterprise_with_profile(
            db, industries=["C384"], keywords=["石墨烯"], province_codes=[], digest_through=week_ago
        ),
        "water": await enterprise_with_profile(
            db, industries=[], ipc_codes=["C02F"], province_codes=[], digest_through=week_ago
        ),
        "unsubscribed": await enterprise_with_profile(
            db, industries=["C384"], province_codes=[], digest_enabled=False, digest_through=week_ago
        ),
        "unmatched": await enterprise_with_profile(
            db, industries=[], keywords=["区块链"], province_codes=[], digest_through=week_ago
        ),
        # Signed up, never opened its profile: the sign-up's industry section (C) and province (11).
        "new": await make_account(db, kind=OrganisationKind.ENTERPRISE, division_code="110108"),
        "licensee": await enterprise_with_profile(db, industries=["C384"], province_codes=[], digest_through=week_ago),
    }
    # An enterprise that is also a licensor is not shown its own offer.
    await set_profile(db, south.id, ipc_codes=["H01L"], industries=[], digest_through=week_ago)
    await licensing.accept(
        db,
        actor=principal_for(people["licensee"].user),
        offer_id=offers["anode"].id,
        values=notice_form(),
        client=licensing.ClientInfo(),
    )
    await db.commit()
    return offers, people, south


def _titles(message: InboxMessage) -> list[str]:
    return [item["title"] for item in message.items]


async def test_a_digest_run_fills_the_right_inboxes_and_mailboxes(db, sessionmaker, settings):
    offers, people, south = await _world(db)
    battery = people["battery"]
    member = await add_member(db, battery)
    # Neither an inactive user nor an unconfirmed address gets the email.
    inactive = await add_member(db, battery)
    await db.execute(User.__table__.update().where(User.id == inactive.user.id).values(is_active=False))
    await create_user(
        db, organisation=battery.organisation, email="unconfirmed@example.cn", display_name="未确认",
        password=PASSWORD, role=battery.user.role, email_confirmed=False,
    )  # fmt: skip
    await db.commit()

    run = await push.run_digest(sessionmaker, settings, at=T)
    assert (run.week, run.offers) == (digest_rules.week_key(T), 4)
    assert run.messages == 4 and run.already == 0

    [message] = await inbox_of(db, battery.organisation.id)
    assert message.kind.value == "digest" and message.read_at is None
    assert message.dedupe_key == f"digest:{battery.organisation.id}:{digest_rules.week_key(T)}"
    assert message.subject == "每周推荐：2 项新公告的开放许可专利与贵单位匹配"
    assert [(i["title"], i["why"], i["points"]) for i in message.items] == [
        ("一种石墨烯复合负极材料及其制备方法", "IPC H01M ↔ 电池制造；关键词 石墨烯", 45),
        ("锂电池热管理装置", "IPC H01M ↔ 电池制造；无需预付费用；先用后付", 40),
    ]
    assert [i["offer_id"] for i in message.items] == [offers["anode"].id, offers["cooling"].id]

    [water] = await inbox_of(db, people["water"].organisation.id)
    assert [(i["title"], i["why"]) for i in water.items] == [
        ("一种污水处理系统", "IPC C02F 与关注分类一致；无需预付费用")
    ]

    # The sign-up defaults (section C, Beijing): every manufacturing offer, ties newest first.
    [new] = await inbox_of(db, people["new"].organisation.id)
    assert _titles(new) == [
        "锂电池热管理装置",
        "一种污水处理系统",
        "一种石墨烯复合负极材料及其制备方法",
        "一种芯片散热结构",
    ]
    assert (new.items[0]["why"], new.items[0]["points"]) == (
        "IPC H01M ↔ 电池制造；无需预付费用；先用后付；同在北京市",
        26,
    )
    created = await profile_of(db, people["new"].organisation.id)
    assert created.digest_through == T and created.industries == ["C"] and created.province_codes == ["11"]

    # A licence already held is not recommended again; nor is one's own offer; nor anything when
    # unsubscribed or when nothing matches (whose mark still moves on).
    [licensee] = await inbox_of(db, people["licensee"].organisation.id)
    assert _titles(licensee) == ["锂电池热管理装置"]
    assert await inbox_of(db, south.id) == []
    assert await inbox_of(db, people["unsubscribed"].organisation.id) == []
    assert await inbox_of(db, people["unmatched"].organisation.id) == []
    assert (await profile_of(db, people["unmatched"].organisation.id)).digest_through == T
    assert (await profile_of(db, people["unsubscribed"].organisation.id)).digest_through == T - timedelta(days=8)

    # Shown events for the funnel, channel digest.
    assert await events_of(db, battery.organisation.id) == {
        (offers["anode"].patent_id, "shown", "digest"),
        (offers["cooling"].patent_id, "shown", "digest"),
    }

    mails = await delivered_mail(db, sessionmaker, settings)
    to_battery = [m for m in mails if m.to_address in (battery.email, member.email)]
    assert sorted(m.to_address for m in to_battery) == sorted([battery.email, member.email])
    assert not [m for m in mails if m.to_address in (inactive.email, "unconfirmed@example.cn")]
    body = to_battery[0].body
    assert to_battery[0].subject == "每周推荐：2 项新公告的开放许可专利与贵单位匹配"
    assert "1. 一种石墨烯复合负极材料及其制备方法\n   推荐理由：IPC H01M ↔ 电池制造；关键词 石墨烯\n" in body
    assert f"{BASE}/catalogue/{offers['anode'].id}?via=digest" in body
    assert f"{BASE}/catalogue/{offers['cooling'].id}?via=digest" in body
    assert unsubscribe_link(body).startswith(f"/digest/unsubscribe?token={battery.organisation.id}.")
    recipients = {m.to_address for m in mails}
    assert people["unsubscribed"].email not in recipients and people["unmatched"].email not in recipients

    audit = await db.scalar(select(AuditRecord).where(AuditRecord.entity_type == "weekly_digest"))
    assert audit.entity_id == digest_rules.week_number(T) and audit.details["messages"] == 4


async def test_a_second_run_in_the_same_week_writes_nothing_new(db, sessionmaker, settings):
    _, people, _ = await _world(db)
    battery = people["battery"]
    await push.run_digest(sessionmaker, settings, at=T)
    first_mail = len(await delivered_mail(db, sessionmaker, settings))
    messages = await db.scalar(select(func.count()).select_from(InboxMessage))
    # Published after the first run, before the second one the same week.
    late = await publish_offer(
        db, await make_licensor(db), "一种石墨烯导电浆料", ipc_main="H01M 4/62", published_at=T + timedelta(minutes=30)
    )

    again = await push.run_digest(sessionmaker, settings, at=T + timedelta(hours=1))
    assert again.messages == 0 and again.emails == 0 and again.already >= 1
    assert await db.scalar(select(func.count()).select_from(InboxMessage)) == messages
    assert len(await delivered_mail(db, sessionmaker, settings)) == first_mail
    # Whoever already had this week's digest keeps its mark: the late offer comes next week.
    assert (await profile_of(db, battery.organisation.id)).digest_through == T
    next_week = await push.run_digest(sessionmaker, settings, at=T + timedelta(days=7))
    assert next_week.messages >= 1
    latest = (await inbox_of(db, battery.organisation.id))[-1]
    assert _titles(latest) == ["一种石墨烯导电浆料"] and latest.items[0]["offer_id"] == late.id
    assert (await profile_of(db, battery.organisation.id)).digest_through == T + timedelta(days=7)


async def test_unsubscribe_link_works_without_login_and_a_tampered_one_is_refused(client, db, sessionmaker, settings):
    _, people, _ = await _world(db)
    battery = people["battery"]
    await push.run_digest(sessionmaker, settings, at=T)
    [mail, *_] = await delivered_mail(db, sessionmaker, settings, to=battery.email)
    link = unsubscribe_link(mail.body)

    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    refused = await client.get(tampered)
    assert refused.status_code == 400 and "退订链接无效" in refused.text
    other = link.replace(f"token={battery.organisation.id}.", f"token={people['water'].organisation.id}.")
    assert (await client.get(other)).status_code == 400
    posted = await client.post(
        "/digest/unsubscribe", data={"token": tampered.split("token=")[1]}, headers=await csrf_headers(client)
    )
    assert posted.status_code == 400
    assert (await profile_of(db, battery.organisation.id)).digest_enabled is True

    page = await client.get(link)
    assert page.status_code == 200
    assert battery.organisation.name in page.text and "确认退订" in page.text
    token = link.split("token=")[1]
    done = await client.post("/digest/unsubscribe", data={"token": token}, headers=await csrf_headers(client))
    assert done.status_code == 200 and "已退订" in done.text
    assert (await profile_of(db, battery.organisation.id)).digest_enabled is False
    audit = await db.scalar(
        select(AuditRecord).where(AuditRecord.action == "profile.digest").order_by(AuditRecord.id.desc())
    )
    assert (audit.to_state, audit.via, audit.actor_user_id) == ("unsubscribed", "system", None)
    # Without the page's CSRF token the POST is refused.
    assert (await client.post("/digest/unsubscribe", data={"token": token})).status_code == 403
    # The link again: already unsubscribed.
    assert "已退订" in (await client.get(link)).text

    # Unsubscribed enterprises get no digest next week.
    await publish_offer(
        db, await make_licensor(db), "一种石墨烯负极浆料", ipc_main="H01M 4/62", published_at=T + timedelta(days=1)
    )
    before = len(await inbox_of(db, battery.organisation.id))
    await push.run_digest(sessionmaker, settings, at=T + timedelta(days=7))
    assert len(await inbox_of(db, battery.organisation.id)) == before


async def test_inbox_pages_list_open_and_mark_read(client, db, sessionmaker, settings):
    offers, people, _ = await _world(db)
    battery = people["battery"]
    member = await add_member(db, battery)
    await push.run_digest(sessionmaker, settings, at=T)
    [message] = await inbox_of(db, battery.organisation.id)
    # Listing through the API does not mark anything read.
    token = await api_token(db, battery)
    for _ in range(2):
        body = (await client.get("/api/v1/inbox", headers=bearer(token))).json()
        assert (body["total"], body["unread"], body["items"][0]["unread"]) == (1, 1, True)

    await login(client, member)
    badge = await client.get("/inbox/unread")
    assert (
        badge.status_code == 200 and '<span class="badge warn" id="inbox-unread"' in badge.text and ">1<" in badge.text
    )
    listing = await client.get("/inbox")
    assert listing.status_code == 200
    assert "未读" in listing.text and message.subject in listing.text
    assert f'href="/catalogue/{offers["anode"].id}?via=digest"' in listing.text
    opened = await client.get(f"/inbox/{message.id}")
    assert opened.status_code == 200
    assert "推荐理由：IPC H01M ↔ 电池制造；关键词 石墨烯" in opened.text
    assert f'href="/catalogue/{offers["cooling"].id}?via=digest"' in opened.text
    assert (await inbox_of(db, battery.organisation.id))[0].read_at is not None
    assert 'class="unread"' not in (await client.get("/inbox")).text
    assert "inbox-unread" not in (await client.get("/inbox/unread")).text
    # Following the link counts a view through the digest.
    assert (await client.get(f"/catalogue/{offers['anode'].id}?via=digest")).status_code == 200
    assert (offers["anode"].patent_id, "viewed", "digest") in await events_of(db, battery.organisation.id)

    await client.post("/logout", headers=await csrf_headers(client))
    await login(client, people["water"])
    assert (await client.get(f"/inbox/{message.id}")).status_code == 404
    assert message.subject not in (await client.get("/inbox")).text
    assert (await client.get("/inbox?page=0")).status_code == 400


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_open_the_inbox(client, db, sessionmaker, settings, role):
    _, people, _ = await _world(db)
    battery = people["battery"]
    await push.run_digest(sessionmaker, settings, at=T)
    [message] = await inbox_of(db, battery.organisation.id)
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    accounts = {
        "enterprise_admin": battery,
        "enterprise_member": await add_member(db, battery),
        "expert": await make_expert(db),
        "licensor": licensor,
        "licensor_member": await add_member(db, licensor),
        "other_licensor": await make_account(db, kind=OrganisationKind.INSTITUTE),
        "platform_admin": await make_account(db, kind=OrganisationKind.PLATFORM),
    }
    if role != "anonymous":
        await login(client, accounts[role])
    allowed = role in ("enterprise_admin", "enterprise_member")
    badge = await client.get("/inbox/unread")
    if role == "anonymous":
        assert badge.status_code in (302, 303)
    else:
        assert badge.status_code == 200 and ("inbox-unread" in badge.text) == allowed
    for path in ("/inbox", f"/inbox/{message.id}"):
        response = await client.get(path)
        expected = (302, 303) if role == "anonymous" else (200,) if allowed else (403,)
        assert response.status_code in expected, (path, response.status_code)
    # The API: enterprise tokens only (experts have no tokens).
    if role in ("expert", "enterprise_member", "licensor_member"):
        return
    headers = {} if role == "anonymous" else bearer(await api_token(db, accounts[role]))
    api = await client.get("/api/v1/inbox", headers=headers)
    assert api.status_code == {"anonymous": 401, "enterprise_admin": 200}.get(role, 403)
    if role == "enterprise_admin":
        body = api.json()
        # Opened on the site above: read.
        assert (body["total"], body["unread"]) == (1, 0)
        [item] = body["items"]
        assert (item["kind"], item["kind_label"], item["unread"]) == ("digest", "每周推荐", False)
        assert item["items"][0]["why"] == "IPC H01M ↔ 电池制造；关键词 石墨烯"
        assert item["items"][0]["url"].endswith("?via=digest")
    else:
        assert api.headers["content-type"].startswith("application/problem+json")


async def test_the_worker_runs_the_digest_once_per_week_from_monday_morning(db, sessionmaker, settings):
    assert "matching.weekly_digest" in _BATCH_JOBS
    _, people, _ = await _world(db)
    local = T.astimezone(BUSINESS_TZ)
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0) + timedelta(days=7)
    early, morning = monday + timedelta(hours=7), monday + timedelta(hours=9)
    await publish_offer(
        db,
        await make_licensor(db),
        "一种石墨烯硅碳负极",
        ipc_main="H01M 4/38",
        published_at=morning - timedelta(hours=3),
    )
    assert await push.run_weekly_digest(sessionmaker, settings, at=early) is None
    assert (
        await db.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.entity_type == "weekly_digest"))
        == 0
    )
    run = await push.run_weekly_digest(sessionmaker, settings, at=morning)
    assert run is not None and run.messages >= 1
    # Newest first among equal points: the offer published that morning leads.
    assert _titles((await inbox_of(db, people["battery"].organisation.id))[-1])[0] == "一种石墨烯硅碳负极"
    # Later passes of the worker in the same week do nothing; the next week runs again.
    assert await push.run_weekly_digest(sessionmaker, settings, at=morning + timedelta(hours=30)) is None
    assert await push.run_weekly_digest(sessionmaker, settings, at=morning + timedelta(days=7)) is not None


async def test_the_digests_mail_waits_behind_side_effects_queued_after_it(db, sessionmaker, settings):
    """A week's digest queues hundreds of thousands of e-mails; a contract's or a user's mail queued
    a moment later must not wait for all of them."""
    import marketplace.billing.sweep  # noqa: F401  (the worker's handlers, for the contract the world accepts)

    _, people, _ = await _world(db)
    await delivered_mail(db, sessionmaker, settings)  # what the world's set-up queued
    run = await push.run_digest(sessionmaker, settings, at=T)
    assert run.emails >= 3
    await queue_email(db, to="urgent@example.cn", subject="付款通知书", body="请于30日内付款。", dedupe_key="urgent")
    await db.commit()
    pending = select(OutboxMessage.dedupe_key, OutboxMessage.priority).where(OutboxMessage.processed_at.is_(None))
    priorities = dict((await db.execute(pending)).all())
    assert priorities.pop("email:urgent") == PRIORITY_NORMAL
    assert len(priorities) == run.emails and set(priorities.values()) == {PRIORITY_BULK}

    assert await drain_once(sessionmaker, settings, limit=1) == 1
    first = await db.scalar(select(MailMessage).order_by(MailMessage.id.desc()).limit(1))
    assert (first.to_address, first.subject) == ("urgent@example.cn", "付款通知书")
    # The digest's mail follows.
    sent = await delivered_mail(db, sessionmaker, settings)
    digest_mail = [m for m in sent if m.subject.startswith("每周推荐")]
    assert len(digest_mail) == run.emails
    assert min(m.id for m in digest_mail) > first.id
    assert people["battery"].user.email in {m.to_address for m in digest_mail}


async def test_no_new_offers_no_messages(db, sessionmaker, settings):
    await enterprise_with_profile(db, industries=["C384"], digest_through=now_utc() - timedelta(days=8))
    assert await db.scalar(select(func.count()).select_from(CatalogueEntry)) == 0
    run = await push.run_digest(sessionmaker, settings)
    assert (run.offers, run.enterprises, run.messages) == (0, 1, 0)
    assert await db.scalar(select(func.count()).select_from(MailMessage)) == 0


async def test_the_command_sends_the_digest_now(db):
    """``marketplace digest``: every enterprise taking the digest (not the unsubscribed one)."""
    _, people, _ = await _world(db)
    result = await asyncio.to_thread(CliRunner().invoke, main, ["digest"])
    assert result.exit_code == 0, result.output
    assert f"digest {digest_rules.week_key(now_utc())}: 4 new offers, 6 enterprises, 4 messages" in result.output
    assert _titles((await inbox_of(db, people["water"].organisation.id))[0]) == ["一种污水处理系统"]
