"""The interest profile (企业兴趣画像) and 为我推荐 pages: who may open them, the form's round trip from
the sign-up prefill to an audited change, mistakes answered in Chinese beside their fields with
nothing written, the recommendations and their reason lines over a small catalogue, the funnel's
``shown`` and ``viewed`` events, and what viewing and evaluating teach the profile."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind, Role, User
from marketplace.accounts.services import create_user, principal_for
from marketplace.audit.models import AuditRecord
from marketplace.licensing import services as licensing
from marketplace.matching.models import Channel, FunnelStage, InterestProfile, MatchEvent
from tests.catalogue_factories import small_catalogue
from tests.evaluation_factories import ROLES, evaluation_form, make_world
from tests.factories import PASSWORD, Account, csrf_headers, login, make_account
from tests.licensing_factories import notice_form

HTMX = {"HX-Request": "true"}
ENTERPRISE_ROLES = ("enterprise_admin", "enterprise_member")


def profile_form(**overrides) -> dict:
    """The profile form as a person fills it in; checkboxes left out are unchecked."""
    form = {
        "industries": "C384, C38",
        "keywords": "锂电池、储能",
        "ipc_codes": "H01M",
        "provinces": ["11", "32"],
        "max_upfront": "50,000",
        "prefers_pay_after_use": "1",
        "push_enabled": "1",
    }
    return {key: value for key, value in (form | overrides).items() if value is not None}


def cards(html: str) -> list[dict]:
    """Each recommendation on the page: offer id, title, link, points and reason lines as shown."""
    found = []
    for chunk in html.split('<article class="card hit recommendation"')[1:]:
        chunk = chunk.split("</article>")[0]
        link = re.search(r'<h2><a href="([^"]+)">([^<]+)</a></h2>', chunk)
        reasons = re.search(r'<ul class="reasons"[^>]*>(.*?)</ul>', chunk, re.S).group(1)
        found.append(
            {
                "offer_id": int(re.match(r' data-offer-id="(\d+)"', chunk).group(1)),
                "href": unescape(link.group(1)),
                "title": link.group(2),
                "points": int(re.search(r'<dd class="points">(-?\d+) 分</dd>', chunk).group(1)),
                "reasons": [_text(li) for li in re.findall(r"<li>(.*?)</li>", reasons, re.S)],
                "pay_after_use_badge": '<span class="badge ok">先用后付</span>' in chunk,
                "text": _text(chunk),
            }
        )
    return found


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _profile(db, organisation_id: int) -> InterestProfile | None:
    db.expunge_all()
    return await db.scalar(select(InterestProfile).where(InterestProfile.organisation_id == organisation_id))


async def _profile_audits(db) -> list[AuditRecord]:
    query = select(AuditRecord).where(AuditRecord.entity_type == "interest_profile").order_by(AuditRecord.id)
    return list((await db.scalars(query)).all())


async def _events(db, organisation_id: int, stage: FunnelStage) -> dict[int, Channel]:
    rows = await db.execute(
        select(MatchEvent.patent_id, MatchEvent.channel).where(
            MatchEvent.organisation_id == organisation_id, MatchEvent.stage == stage
        )
    )
    return {patent_id: channel for patent_id, channel in rows}


async def _post_profile(client, form: dict, *, htmx: bool = False):
    headers = await csrf_headers(client) | (HTMX if htmx else {})
    return await client.post("/profile", data=form, headers=headers)


# ---------------------------------------------------------------------------------------------
# Who may open what
# ---------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/recommendations"),
    ("GET", "/profile"),
    ("GET", "/profile/industries?industries=%E7%94%B5%E6%B1%A0"),
    ("POST", "/profile"),
    ("POST", "/profile/learned/clear"),
]


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_on_each_page(client, db, role):
    world = await make_world(db)
    if role != "anonymous":
        await login(client, world.account(role))
    for method, path in ROUTES:
        if method == "GET":
            response = await client.get(path)
        else:
            response = await client.post(path, data=profile_form(), headers=await csrf_headers(client))
        if role == "anonymous":
            assert response.status_code in (302, 303), (path, response.status_code)
            assert response.headers["location"].startswith("/login?next=")
        elif role in ENTERPRISE_ROLES:
            assert response.status_code in ((200,) if method == "GET" else (302, 303)), (path, response.text)
        else:
            assert response.status_code == 403, (role, path, response.status_code)
            assert "匹配推荐面向企业用户" in response.text
    owners = set((await db.scalars(select(InterestProfile.organisation_id))).all())
    enterprise_id = world.account("enterprise_admin").organisation.id
    assert owners == ({enterprise_id} if role in ENTERPRISE_ROLES else set())
    if role in ENTERPRISE_ROLES:
        # Both users act for the enterprise: the profile is the organisation's.
        profile = await _profile(db, enterprise_id)
        assert profile.industries == ["C384", "C38"] and profile.edited_by_user_id == world.account(role).user.id


# ---------------------------------------------------------------------------------------------
# The profile form
# ---------------------------------------------------------------------------------------------


async def test_first_visit_is_prefilled_from_sign_up_and_a_change_is_saved_and_audited(client, db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)  # industry C, division 110108
    await login(client, enterprise)
    page = await client.get("/profile")
    assert page.status_code == 200
    assert 'name="industries" type="text" value="C"' in page.text
    assert 'value="11" checked> 北京市' in page.text and 'value="32" checked' not in page.text
    assert "已根据贵单位注册时填写的所属行业和所在地区预填" in page.text
    assert "暂无学习记录" in page.text
    assert await _profile_audits(db) == []  # the prefill is no one's edit

    response = await _post_profile(client, profile_form())
    assert response.status_code in (302, 303) and response.headers["location"] == "/recommendations?saved=1"
    profile = await _profile(db, enterprise.organisation.id)
    assert (profile.industries, profile.keywords, profile.ipc_codes, profile.province_codes) == (
        ["C384", "C38"], ["锂电池", "储能"], ["H01M"], ["11", "32"],
    )  # fmt: skip
    assert (profile.max_upfront_fen, profile.prefers_pay_after_use) == (5_000_000, True)
    assert (profile.digest_enabled, profile.push_enabled) == (False, True)
    assert profile.edited_by_user_id == enterprise.user.id and profile.edited_at is not None

    [audit] = await _profile_audits(db)
    assert (audit.action, audit.entity_id, audit.actor_user_id, audit.via) == (
        "profile.update", profile.id, enterprise.user.id, "web",
    )  # fmt: skip
    changes = audit.details["changes"]
    assert changes["industries"] == {"from": ["C"], "to": ["C384", "C38"]}
    assert changes["province_codes"] == {"from": ["11"], "to": ["11", "32"]}
    assert changes["max_upfront_fen"] == {"from": None, "to": 5_000_000}
    assert changes["digest_enabled"] == {"from": True, "to": False}
    assert "push_enabled" not in changes  # unchanged, so not in the record

    shown = await client.get("/recommendations?saved=1")
    assert "兴趣画像已保存" in shown.text
    summary = _text(shown.text.split('id="profile-summary"')[1].split("</section>")[0])
    assert "C384 电池制造、C38 电气机械和器材制造业" in summary and "北京市、江苏省" in summary
    assert "锂电池、储能" in summary and "¥50,000.00" in summary and "优先推荐" in summary

    again = await client.get("/profile")
    assert 'value="C384, C38"' in again.text and 'value="锂电池、储能"' in again.text
    assert 'value="50,000.00"' in again.text and "已根据贵单位注册时" not in again.text
    # Saving the same profile again changes nothing and records nothing.
    assert (await _post_profile(client, profile_form())).status_code in (302, 303)
    assert len(await _profile_audits(db)) == 1


async def test_htmx_save_redirects_through_the_header(client, db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    response = await _post_profile(client, profile_form(keywords="光伏"), htmx=True)
    assert response.status_code == 200 and response.headers["hx-redirect"] == "/recommendations?saved=1"
    assert (await _profile(db, enterprise.organisation.id)).keywords == ["光伏"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ipc_codes": "H1M"}, "ipc_codes", "IPC 分类应为大类或小类，如 H01 或 H01M：H1M"),
        ({"industries": "C384, Z99"}, "industries", "未知的行业代码：Z99"),
        ({"industries": "电池"}, "industries", "未知的行业代码：电池"),
        ({"max_upfront": "五万元"}, "max_upfront", "首付预算金额格式不正确"),
        ({"max_upfront": "-5"}, "max_upfront", "首付预算金额必须为非负数"),
        ({"max_upfront": "10.005"}, "max_upfront", "首付预算金额最多保留两位小数"),
        ({"provinces": ["11", "99"]}, "provinces", "未知的省级行政区代码：99"),
        ({"keywords": "超" * 21}, "keywords", "每个关键词不超过 20 个字"),
        ({"keywords": "、".join(f"词{n}" for n in range(11))}, "keywords", "关键词最多 10 个"),
    ],
)
async def test_mistakes_are_answered_beside_their_fields_and_write_nothing(client, db, overrides, field, message):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    assert (await client.get("/profile")).status_code == 200
    before = await _profile(db, enterprise.organisation.id)

    response = await _post_profile(client, profile_form(**overrides))
    assert response.status_code == 422
    assert f'<p class="error" id="e-{field}">{message}' in response.text
    assert "提交的内容有误，请检查标出的字段" in response.text
    if isinstance(overrides.get(field), str):
        assert f'value="{overrides[field]}"' in response.text  # what was typed stays in the field

    after = await _profile(db, enterprise.organisation.id)
    assert (after.industries, after.keywords, after.ipc_codes, after.province_codes, after.max_upfront_fen) == (
        before.industries, before.keywords, before.ipc_codes, before.province_codes, before.max_upfront_fen,
    )  # fmt: skip
    assert after.edited_at is None and await _profile_audits(db) == []


async def test_every_mistake_at_once_and_in_place_for_htmx(client, db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    response = await _post_profile(client, profile_form(ipc_codes="H1M", max_upfront="abc"), htmx=True)
    assert response.status_code == 422
    assert "<html" not in response.text and response.text.lstrip().startswith('<form id="profile-form"')
    assert 'id="e-ipc_codes"' in response.text and 'id="e-max_upfront"' in response.text
    # The form was never saved: the first request of this enterprise left no profile behind.
    assert await _profile(db, enterprise.organisation.id) is None


async def test_industry_lookup_resolves_codes_and_suggests_by_name(client, db):
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    lookup = await client.get("/profile/industries", params={"industries": "C38, 电池, 不存在的行业"})
    assert lookup.status_code == 200
    text = _text(lookup.text)
    assert "C38 · 电气机械和器材制造业" in text
    assert "“电池”可能是以下行业" in text and "C384 电池制造" in text
    # Choosing a suggestion puts its code in place of the word, keeping the rest.
    assert 'hx-get="/profile/industries?industries=C38%2C%20C384%2C%20%E4%B8%8D' in lookup.text
    assert "没有匹配“不存在的行业”的行业" in text
    by_code = await client.get("/profile/industries", params={"industries": "c384"})
    assert "C384 · 电池制造" in _text(by_code.text)
    too_long = await client.get("/profile/industries", params={"industries": "C" * 301})
    assert too_long.status_code == 400


# ---------------------------------------------------------------------------------------------
# Recommendations
# ---------------------------------------------------------------------------------------------


async def test_recommendations_show_the_reasons_and_are_recorded_as_shown(client, db):
    offers = await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    form = profile_form(industries="C384", keywords="石墨烯", ipc_codes="", provinces=["33"], max_upfront="",
                        prefers_pay_after_use=None)  # fmt: skip
    assert (await _post_profile(client, form)).status_code in (302, 303)

    page = await client.get("/recommendations")
    assert page.status_code == 200
    shown = cards(page.text)
    titles = [card["title"] for card in shown]
    assert offers["sewage"].patent.title not in titles  # neither 电池制造 nor 石墨烯
    first = shown[0]
    cooling = offers["battery_cooling"]
    assert (first["title"], first["offer_id"], first["href"]) == (
        "锂电池热管理装置", cooling.id, f"/catalogue/{cooling.id}?via=page",
    )  # fmt: skip
    assert first["reasons"] == [
        "IPC H01M ↔ 电池制造 +30 分", "关键词 石墨烯 +15 分", "无需预付费用 +6 分", "先用后付 +4 分",
        "同在浙江省 +6 分",
    ]  # fmt: skip
    assert first["points"] == 61
    assert "江南测试研究院" in first["text"] and "IPC 小类 H01M" in first["text"]
    assert first["pay_after_use_badge"]
    assert "预付费用 ¥0.00" in first["text"]
    anode = next(card for card in shown if card["offer_id"] == offers["graphene_anode"].id)
    assert anode["reasons"] == ["IPC H01M ↔ 电池制造 +30 分", "关键词 石墨烯 +15 分"]
    assert "支付方式 一次总算、一次总付" in anode["text"] and not anode["pay_after_use_badge"]
    assert "预付费用 ¥50,000.00" in anode["text"]
    assert all(card["points"] == sum(int(r.split()[-2]) for r in card["reasons"]) for card in shown)
    assert "推荐范围较宽" not in page.text

    events = await _events(db, enterprise.organisation.id, FunnelStage.SHOWN)
    ids = {offer.id: offer.patent_id for offer in offers.values()}
    assert events == {ids[card["offer_id"]]: Channel.PAGE for card in shown}


async def test_a_sign_up_profile_gives_broad_recommendations_and_says_so(client, db):
    offers = await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)  # profile: section C, Beijing
    await login(client, enterprise)
    page = await client.get("/recommendations")
    assert "推荐范围较宽：目前只按行业门类匹配" in page.text
    shown = cards(page.text)
    anode = next(card for card in shown if card["offer_id"] == offers["graphene_anode"].id)
    assert anode["reasons"][0] == "IPC H01M ↔ 电池制造 +10 分"
    assert "同在北京市 +6 分" in anode["reasons"]
    # The design patent has no IPC code, so no industry: it is not recommended.
    assert offers["graphene_film"].id not in {card["offer_id"] for card in shown}


async def test_empty_states_say_why(client, db):
    await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    form = profile_form(industries="", keywords="", ipc_codes="", max_upfront="")
    assert (await _post_profile(client, form)).status_code in (302, 303)
    empty = await client.get("/recommendations")
    assert "您的兴趣画像还没有行业、关键词或 IPC 分类，暂时无法为您推荐" in empty.text
    assert 'href="/profile">完善兴趣画像</a>' in empty.text and cards(empty.text) == []

    assert (await _post_profile(client, form | {"ipc_codes": "A01B"})).status_code in (302, 303)
    nothing = await client.get("/recommendations")
    assert "目前没有与您的兴趣画像匹配的开放许可" in nothing.text and cards(nothing.text) == []
    assert await _events(db, enterprise.organisation.id, FunnelStage.SHOWN) == {}


async def test_own_offers_and_licensed_patents_are_left_out(client, db, sessionmaker):
    offers = await small_catalogue(db)
    # The sewage plant's and the film's licensor is itself an enterprise.
    licensor_id = offers["sewage"].licensor_organisation_id
    user = await create_user(
        db, organisation=offers["sewage"].licensor, email="own@nanhai.example.cn", display_name="南海用户",
        password=PASSWORD, role=Role.ORG_ADMIN,
    )  # fmt: skip
    await db.commit()
    own = Account(organisation=offers["sewage"].licensor, user=user, email="own@nanhai.example.cn")
    await login(client, own)
    form = profile_form(industries="", keywords="石墨烯", ipc_codes="C02F, H01M", provinces=[], max_upfront="")
    assert (await _post_profile(client, form)).status_code in (302, 303)
    titles = {card["offer_id"] for card in cards((await client.get("/recommendations")).text)}
    assert titles == {offers[name].id for name in ("graphene_anode", "battery_cooling", "anode_method")}
    assert not (await _events(db, licensor_id, FunnelStage.SHOWN)).keys() & {
        offers["sewage"].patent_id, offers["graphene_film"].patent_id,
    }  # fmt: skip

    # Once the enterprise holds a licence for the cooling device, it is no longer recommended.
    async with sessionmaker() as session, session.begin():
        taker = principal_for(await session.get(User, user.id))
        await licensing.accept(session, actor=taker, offer_id=offers["battery_cooling"].id, values=notice_form())
    titles = {card["offer_id"] for card in cards((await client.get("/recommendations")).text)}
    assert titles == {offers[name].id for name in ("graphene_anode", "anode_method")}


# ---------------------------------------------------------------------------------------------
# What the profile learns
# ---------------------------------------------------------------------------------------------


async def test_viewing_from_a_recommendation_is_recorded_and_learned(client, db):
    offers = await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    sewage = offers["sewage"]
    response = await client.get(f"/catalogue/{sewage.id}?via=page")
    assert response.status_code == 200
    assert await _events(db, enterprise.organisation.id, FunnelStage.VIEWED) == {sewage.patent_id: Channel.PAGE}
    profile = await _profile(db, enterprise.organisation.id)
    assert profile.learned_ipc == {"C02F": 1}
    assert profile.edited_at is None  # learning is not an edit

    # A second view counts again; the funnel keeps the first channel.
    await client.get(f"/catalogue/{sewage.id}")
    assert (await _profile(db, enterprise.organisation.id)).learned_ipc == {"C02F": 2}
    assert await _events(db, enterprise.organisation.id, FunnelStage.VIEWED) == {sewage.patent_id: Channel.PAGE}

    page = await client.get("/profile")
    assert _text(page.text.split('id="learned-ipc">')[1].split("</dd>")[0]) == "C02F（2）"
    # What was learned makes the plant relevant even to a profile without industries.
    form = profile_form(industries="", keywords="", ipc_codes="", provinces=[], max_upfront="")
    await _post_profile(client, form)
    shown = cards((await client.get("/recommendations")).text)
    assert [(card["offer_id"], card["reasons"][0]) for card in shown] == [
        (sewage.id, "IPC C02F（您浏览或评价过同类专利） +12 分"),
    ]


async def test_a_licensor_viewing_learns_nothing(client, db):
    offers = await small_catalogue(db)
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    await login(client, licensor)
    assert (await client.get(f"/catalogue/{offers['sewage'].id}?via=page")).status_code == 200
    assert await db.scalar(select(func.count()).select_from(MatchEvent)) == 0
    assert await db.scalar(select(func.count()).select_from(InterestProfile)) == 0


async def test_an_evaluation_weighs_three_and_clearing_forgets(client, db):
    offers = await small_catalogue(db)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    await login(client, enterprise)
    anode = offers["graphene_anode"]
    response = await client.post(
        f"/evaluations/patents/{anode.patent_id}", data=evaluation_form(), headers=await csrf_headers(client) | HTMX
    )
    assert response.status_code == 200, response.text
    profile = await _profile(db, enterprise.organisation.id)
    assert profile.learned_ipc == {"H01M": 3}
    assert profile.learned_keywords == {"石墨烯": 3}  # the title's technical terms

    page = await client.get("/profile")
    assert "H01M（3）" in page.text and "石墨烯（3）" in page.text
    audits_before = len(await _profile_audits(db))
    cleared = await client.post("/profile/learned/clear", headers=await csrf_headers(client))
    assert cleared.status_code in (302, 303) and cleared.headers["location"] == "/profile?cleared=1"
    profile = await _profile(db, enterprise.organisation.id)
    assert profile.learned_ipc == {} and profile.learned_keywords == {}
    assert profile.industries == ["C"]  # what the enterprise typed (here: sign-up) stays
    audits = await _profile_audits(db)
    assert len(audits) == audits_before + 1
    assert audits[-1].details["changes"]["learned_ipc"] == {"from": {"H01M": 3}, "to": {}}
    after = await client.get("/profile?cleared=1")
    assert "学习记录已清除" in after.text and "暂无学习记录" in after.text
