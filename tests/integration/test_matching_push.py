"""Licensors' pushes (定向推送) end to end: the push from the offer page and the API, audited; the
worker choosing the recipients (relevant profiles taking pushes, best first, not the licensor, not
current licensees) and delivering inbox messages, emails and shown events once; the rate limits
on the page and in the API, writing nothing; bad notes and unpublished offers; each role against
each route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.accounts.services import principal_for
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.clock import now_utc
from marketplace.licensing import services as licensing
from marketplace.matching import push
from marketplace.matching.models import InboxMessage, OfferPush
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import drain_once
from tests.catalogue_factories import publish_offer
from tests.evaluation_factories import ROLES, make_expert
from tests.factories import add_member, api_token, bearer, csrf_headers, delivered_mail, login, make_account
from tests.inbox_factories import enterprise_with_profile, events_of, inbox_of, set_profile
from tests.licensing_factories import notice_form

BASE = "http://127.0.0.1:8000"


async def _world(db):
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY, division_code="110108")
    offer = await publish_offer(
        db, licensor.organisation, "一种石墨烯复合负极材料及其制备方法", "本发明公开一种锂电池负极材料。",
        ipc_main="H01M 4/36", mode=PaymentMode.PAY_AFTER_USE,
    )  # fmt: skip
    people = {
        "battery": await enterprise_with_profile(db, industries=["C384"], province_codes=[]),
        "graphene": await enterprise_with_profile(db, industries=[], keywords=["石墨烯"], province_codes=["11"]),
        "no_push": await enterprise_with_profile(db, industries=["C384"], province_codes=[], push_enabled=False),
        "unrelated": await enterprise_with_profile(db, industries=[], keywords=["区块链"], province_codes=[]),
        "licensee": await enterprise_with_profile(db, industries=["C384"], province_codes=[]),
        # No profile yet: the sign-up's section C and province 11 (Beijing, as the licensor).
        "new": await make_account(db, kind=OrganisationKind.ENTERPRISE, division_code="110108"),
    }
    await licensing.accept(
        db,
        actor=principal_for(people["licensee"].user),
        offer_id=offer.id,
        values=notice_form(),
        client=licensing.ClientInfo(),
    )
    await db.commit()
    return licensor, offer, people


async def _push_page(client, offer_id: int, note: str = ""):
    return await client.post(f"/offers/{offer_id}/push", data={"note": note}, headers=await csrf_headers(client))


async def _pushes(db) -> list[OfferPush]:
    db.expunge_all()
    return list(await db.scalars(select(OfferPush).order_by(OfferPush.id)))


async def _push_audits(db, offer_id: int) -> list[AuditRecord]:
    rows = await db.scalars(
        select(AuditRecord)
        .where(AuditRecord.entity_id == offer_id, AuditRecord.action == "push")
        .order_by(AuditRecord.id)
    )
    return list(rows)


async def test_a_push_reaches_the_matching_enterprises_once(client, db, sessionmaker, settings):
    licensor, offer, people = await _world(db)
    member = await add_member(db, people["battery"])
    await login(client, licensor)
    detail = await client.get(f"/offers/{offer.id}")
    assert detail.status_code == 200 and f'action="/offers/{offer.id}/push"' in detail.text

    response = await _push_page(client, offer.id, "欢迎来校洽谈中试合作")
    assert response.status_code in (302, 303) and response.headers["location"] == f"/offers/{offer.id}/push?pushed=1"
    [pushed] = await _pushes(db)
    assert (pushed.offer_id, pushed.note, pushed.pushed_by_user_id) == (
        offer.id,
        "欢迎来校洽谈中试合作",
        licensor.user.id,
    )
    assert pushed.recipients_count is None and pushed.delivered_at is None
    [audit] = await _push_audits(db, offer.id)
    assert (audit.entity_type, audit.actor_user_id, audit.reason) == (
        "open_licence_offer",
        licensor.user.id,
        pushed.note,
    )
    assert audit.details == {"push_id": pushed.id, "note": "欢迎来校洽谈中试合作"}
    page = await client.get(f"/offers/{offer.id}/push?pushed=1")
    assert "已提交推送" in page.text and "处理中" in page.text
    assert "定向推送" in (await client.get(f"/offers/{offer.id}")).text  # in the offer's audit trail

    mails = await delivered_mail(db, sessionmaker, settings)
    [pushed] = await _pushes(db)
    assert pushed.recipients_count == 3 and pushed.delivered_at is not None
    # The licence taken in ``_world`` re-tiered the patent (high value) before the push was delivered.
    expected = {
        "battery": "IPC H01M ↔ 电池制造；高价值专利；无需预付费用；先用后付",
        "graphene": "关键词 石墨烯；高价值专利；无需预付费用；先用后付；同在北京市",
        "new": "IPC H01M ↔ 电池制造；高价值专利；无需预付费用；先用后付；同在北京市",
    }
    for name, why in expected.items():
        [message] = await inbox_of(db, people[name].organisation.id)
        assert message.kind.value == "push" and message.dedupe_key == f"push:{pushed.id}:{people[name].organisation.id}"
        assert message.subject == f"许可方推送：{licensor.organisation.name}向贵单位推荐《{offer.patent.title}》"
        assert message.body == "许可方附言：欢迎来校洽谈中试合作"
        assert [(i["offer_id"], i["why"]) for i in message.items] == [(offer.id, why)]
        assert await events_of(db, people[name].organisation.id) >= {(offer.patent_id, "shown", "push")}
    for name in ("no_push", "unrelated", "licensee"):
        assert await inbox_of(db, people[name].organisation.id) == []
    assert await inbox_of(db, licensor.organisation.id) == []

    to_battery = [m for m in mails if m.to_address in (people["battery"].email, member.email)]
    assert len(to_battery) == 2
    body = to_battery[0].body
    assert "许可方附言：欢迎来校洽谈中试合作" in body and "推荐理由：IPC H01M ↔ 电池制造" in body
    assert f"{BASE}/catalogue/{offer.id}?via=push" in body
    recipients = {m.to_address for m in mails if m.subject.startswith("许可方推送")}
    assert len(recipients) == 4
    assert people["no_push"].email not in recipients and people["licensee"].email not in recipients

    history = await client.get(f"/offers/{offer.id}/push")
    assert "3 家" in history.text and "欢迎来校洽谈中试合作" in history.text
    delivered = await db.scalar(select(AuditRecord).where(AuditRecord.action == "push_delivered"))
    assert (delivered.entity_id, delivered.via, delivered.reason) == (offer.id, "system", "推送送达 3 家企业")
    assert "推送送达" in (await client.get(f"/offers/{offer.id}")).text

    # The enterprise opens it from its inbox and follows the link.
    await client.post("/logout", headers=await csrf_headers(client))
    await login(client, people["graphene"])
    [message] = await inbox_of(db, people["graphene"].organisation.id)
    opened = await client.get(f"/inbox/{message.id}")
    assert "许可方附言：欢迎来校洽谈中试合作" in opened.text and f"/catalogue/{offer.id}?via=push" in opened.text
    await client.get(f"/catalogue/{offer.id}?via=push")
    assert (offer.patent_id, "viewed", "push") in await events_of(db, people["graphene"].organisation.id)


async def test_recipients_best_first_capped_and_never_the_licensor(db):
    licensor = await make_account(db, kind=OrganisationKind.ENTERPRISE, division_code="110108")
    await set_profile(db, licensor.organisation.id, industries=["C384"], keywords=["石墨烯"])
    offer = await publish_offer(db, licensor.organisation, "石墨烯锂电池负极", ipc_main="H01M 4/36")
    strong = await enterprise_with_profile(db, industries=["C384"], keywords=["石墨烯"], province_codes=[])
    middle = await enterprise_with_profile(db, industries=["C384"], province_codes=[])
    weak = await enterprise_with_profile(db, industries=["C"], province_codes=[])
    tied = await enterprise_with_profile(db, industries=["C"], province_codes=[])
    entry = (await db.execute(select(CatalogueEntry.__table__).where(CatalogueEntry.offer_id == offer.id))).first()
    chosen = await push.push_recipients(db, entry)
    assert [(r.organisation_id, r.match.points) for r in chosen] == [
        (strong.organisation.id, 45), (middle.organisation.id, 30),
        (weak.organisation.id, 10), (tied.organisation.id, 10),
    ]  # fmt: skip
    top = await push.push_recipients(db, entry, limit=2, chunk=1)  # chunks of one: the cut spans chunks
    assert [r.organisation_id for r in top] == [strong.organisation.id, middle.organisation.id]


async def test_the_handler_delivers_once_even_if_run_again(db, sessionmaker, settings):
    licensor, offer, people = await _world(db)
    created = await push.push_offer(db, principal_for(licensor.user), offer.id, "")
    await db.commit()
    message = await db.scalar(select(OutboxMessage).where(OutboxMessage.kind == "matching.push"))
    assert message.dedupe_key == f"matching.push:{created.id}"
    for _ in range(2):
        async with sessionmaker() as session, session.begin():
            await push.deliver_push(session, await session.get(OutboxMessage, message.id), settings)
    # Even with its mark cleared, a repeat writes no second message, email or event.
    async with sessionmaker() as session, session.begin():
        row = await session.get(OfferPush, created.id)
        row.delivered_at = None
        await push.deliver_push(session, await session.get(OutboxMessage, message.id), settings)
    assert await db.scalar(select(func.count()).select_from(InboxMessage)) == 3
    emails = await db.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.dedupe_key.like("email:push:%"))
    )
    assert emails == 3  # one user each
    [battery] = await inbox_of(db, people["battery"].organisation.id)
    assert battery.body == f"{licensor.organisation.name}认为该专利与贵单位的兴趣画像匹配。"
    # The worker then processes the same outbox message: nothing new either.
    while await drain_once(sessionmaker, settings):
        pass
    assert await db.scalar(select(func.count()).select_from(InboxMessage)) == 3


async def test_rate_limits_on_the_page_write_nothing(client, db):
    licensor, offer, _ = await _world(db)
    await login(client, licensor)
    assert (await _push_page(client, offer.id)).status_code in (302, 303)
    again = await _push_page(client, offer.id, "再推一次")
    assert again.status_code == 429
    assert "每项声明 7 日内只能推送一次" in again.text and "后再次推送" in again.text
    assert len(await _pushes(db)) == 1 and len(await _push_audits(db, offer.id)) == 1
    waiting = await client.get(f"/offers/{offer.id}/push")
    assert 'id="push-wait"' in waiting.text


async def test_rate_limits_in_the_api(client, db):
    licensor, offer, _ = await _world(db)
    token = bearer(await api_token(db, licensor))
    # Five pushes of other offers in the last six days: the licensor's weekly allowance is used up.
    others = [
        await publish_offer(db, licensor.organisation, f"一种电池极片{n}号", ipc_main="H01M 4/04") for n in range(5)
    ]
    now = now_utc()
    for days, other in zip((6, 5, 4, 2, 1), others, strict=True):
        at = now - timedelta(days=days)
        db.add(OfferPush(offer_id=other.id, licensor_organisation_id=licensor.organisation.id, note="",
                         created_at=at, updated_at=at))  # fmt: skip
    await db.commit()
    refused = await client.post(f"/api/v1/offers/{offer.id}/push", json={"note": "新品推介"}, headers=token)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "licensor_push_limit" and "7 日内最多推送 5 次" in problem["detail"]
    next_at = datetime.fromisoformat(problem["next_push_at"])
    assert abs((next_at - (now + timedelta(days=1))).total_seconds()) < 5
    assert 86000 < int(refused.headers["retry-after"]) <= 86402
    assert len(await _pushes(db)) == 5 and await _push_audits(db, offer.id) == []

    # A week later the allowance is back; the same declaration then waits seven days.
    await db.execute(OfferPush.__table__.update().values(created_at=now - timedelta(days=8)))
    await db.commit()
    accepted = await client.post(f"/api/v1/offers/{offer.id}/push", headers=token)
    assert accepted.status_code == 202
    body = accepted.json()
    assert (body["offer_id"], body["note"], body["recipients_count"], body["delivered_at"]) == (
        offer.id,
        "",
        None,
        None,
    )
    second = await client.post(f"/api/v1/offers/{offer.id}/push", json={}, headers=token)
    assert second.status_code == 429 and second.json()["code"] == "offer_pushed_recently"
    listed = await client.get(f"/api/v1/offers/{offer.id}/pushes", headers=token)
    assert [p["id"] for p in listed.json()] == [body["id"]]


async def test_bad_notes_and_unpublished_offers_are_refused(client, db):
    licensor, offer, _ = await _world(db)
    token = bearer(await api_token(db, licensor))
    long = "长" * 201
    api = await client.post(f"/api/v1/offers/{offer.id}/push", json={"note": long}, headers=token)
    assert api.status_code == 422
    assert api.json()["errors"] == [
        {"field": "note", "message": "推送附言不超过 200 字（现有 201 字）", "code": "too_long"}
    ]
    assert (await client.post(f"/api/v1/offers/{offer.id}/push", json={"note": 5}, headers=token)).status_code == 400
    await login(client, licensor)
    page = await _push_page(client, offer.id, long)
    assert page.status_code == 422 and "推送附言不超过 200 字" in page.text and long in page.text
    assert await _pushes(db) == []

    await db.execute(
        OpenLicenceOffer.__table__.update().where(OpenLicenceOffer.id == offer.id).values(status=OfferStatus.WITHDRAWN)
    )
    await db.commit()
    assert (await client.post(f"/api/v1/offers/{offer.id}/push", headers=token)).status_code == 409
    refused = await _push_page(client, offer.id)
    assert refused.status_code == 409 and "仅已公告的开放许可声明可以推送" in refused.text
    assert "仅已公告的开放许可声明可以推送" in (await client.get(f"/offers/{offer.id}/push")).text
    assert await _pushes(db) == []


async def test_a_withdrawn_offer_reaches_nobody(db, sessionmaker, settings):
    licensor, offer, _ = await _world(db)
    await push.push_offer(db, principal_for(licensor.user), offer.id, "")
    await db.execute(CatalogueEntry.__table__.delete().where(CatalogueEntry.offer_id == offer.id))
    await db.commit()
    while await drain_once(sessionmaker, settings):
        pass
    [pushed] = await _pushes(db)
    assert pushed.recipients_count == 0 and pushed.delivered_at is not None
    assert await db.scalar(select(func.count()).select_from(InboxMessage)) == 0


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_push(client, db, role):
    licensor, offer, people = await _world(db)
    accounts = {
        "enterprise_admin": people["battery"],
        "enterprise_member": await add_member(db, people["battery"]),
        "expert": await make_expert(db),
        "licensor": licensor,
        "licensor_member": await add_member(db, licensor),
        "other_licensor": await make_account(db, kind=OrganisationKind.INSTITUTE),
        "platform_admin": await make_account(db, kind=OrganisationKind.PLATFORM),
    }
    if role != "anonymous":
        await login(client, accounts[role])
    allowed = role in ("licensor", "licensor_member")
    page_status = {"anonymous": (302, 303), "expert": (403,), "platform_admin": (403,)}.get(
        role, (200,) if allowed else (404,)
    )
    assert (await client.get(f"/offers/{offer.id}/push")).status_code in page_status
    posted = await _push_page(client, offer.id, "欢迎洽谈")
    if allowed:
        assert posted.status_code in (302, 303)
        [pushed] = await _pushes(db)
        assert pushed.pushed_by_user_id == accounts[role].user.id
    else:
        assert posted.status_code in page_status
        assert await _pushes(db) == []

    # The API (experts and members have no tokens: organisation admins make them).
    if role in ("expert", "enterprise_member", "licensor_member"):
        return
    headers = {} if role == "anonymous" else bearer(await api_token(db, accounts[role]))
    expected = {"anonymous": 401, "platform_admin": 403, "licensor": 429}.get(role, 404)  # the page pushed already
    api = await client.post(f"/api/v1/offers/{offer.id}/push", json={"note": "API"}, headers=headers)
    assert api.status_code == expected
    listing = await client.get(f"/api/v1/offers/{offer.id}/pushes", headers=headers)
    assert listing.status_code == {"anonymous": 401, "platform_admin": 403, "licensor": 200}.get(role, 404)
    assert len(await _pushes(db)) == (1 if allowed else 0)


async def test_pushed_at_is_compared_in_utc(db):
    """The rule's windows are instants: a push stored by one transaction is seen by the next."""
    licensor, offer, _ = await _world(db)
    await push.push_offer(db, principal_for(licensor.user), offer.id, "")
    await db.commit()
    panel = await push.push_panel(db, principal_for(licensor.user), offer.id)
    assert panel.refusal is not None and panel.refusal.next_at.tzinfo is not None
    assert panel.refusal.next_at > datetime.now(UTC) + timedelta(days=6)
