"""The conversion funnel (转化漏斗) over a small world, on SQLite and PostgreSQL: exact counts per stage
for a patent, a licensor, a region and a period (the period's Asia/Shanghai midnights, and a pair
counted when it first reached a stage); experts' evaluations and a university's licence left out; and
each role against each page and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.accounts.services import principal_for
from marketplace.evaluations import services as evaluations
from marketplace.evaluations import tiers
from marketplace.evaluations.models import PatentEvaluation
from marketplace.filings.models import ContractFiling, Registry
from marketplace.licensing import services as licensing
from marketplace.licensing.models import LicenceContract
from marketplace.matching import funnel, services
from marketplace.matching.funnel_rules import Breakdown, Counts, Filters, Period
from marketplace.matching.models import Channel, FunnelStage, MatchEvent
from marketplace.offers.models import OpenLicenceOffer
from tests.catalogue_factories import publish_offer
from tests.evaluation_factories import ROLES, World, evaluation_form, make_world
from tests.factories import Account, api_token, bearer, login, make_account
from tests.filing_factories import recorded_as_filed, refreshed
from tests.licensing_factories import notice_form

API = "/api/v1/funnel"
#: 2025-12-31 23:30 in Shanghai, and 2026-01-01 00:30 (both on 2025-12-31 in UTC).
LATE_ON_NEW_YEARS_EVE = datetime(2025, 12, 31, 15, 30, tzinfo=UTC)
JUST_AFTER_MIDNIGHT = datetime(2025, 12, 31, 16, 30, tzinfo=UTC)
FILED_ON = date(2026, 3, 20)


@dataclass
class Funnel:
    world: World
    #: The licensor's (Beijing) second patent, shown once and nothing more.
    quiet: OpenLicenceOffer
    #: A second enterprise.
    rival: Account
    rival_licence: LicenceContract
    licence: LicenceContract

    @property
    def p1(self) -> int:
        return self.world.patent_id

    @property
    def p2(self) -> int:
        return self.world.other_offer.patent_id

    @property
    def p3(self) -> int:
        return self.quiet.patent_id

    def org(self, role: str) -> int:
        return self.world.account(role).organisation.id


async def _evaluate(db, settings, account: Account, patent_id: int) -> PatentEvaluation:
    evaluation, _ = await evaluations.save(
        db, principal_for(account.user), patent_id, evaluation_form(), rules=tiers.rules_for(settings)
    )
    await db.commit()
    return evaluation


async def _accept(db, account: Account, offer_id: int) -> LicenceContract:
    contract, _ = await licensing.accept(
        db, actor=principal_for(account.user), offer_id=offer_id, values=notice_form(), client=licensing.ClientInfo()
    )
    await db.commit()
    return contract


@pytest.fixture
async def arranged(db, settings) -> Funnel:
    """Licensor L (Beijing, 11) owns P1 and P3; licensor O (Zhejiang, 33) owns P2. Enterprise E (two
    users) and enterprise R:

    - shown: E ← P1, P2, P3; R ← P1 (late on 2025-12-31, Shanghai time)
    - viewed: E ← P1; R ← P1 (just after midnight, 2026-01-01 in Shanghai)
    - evaluated: P1 by E's admin (now) and E's member (2025-12-20): one pair, reached in 2025; P1 by an
      expert (not counted)
    - accepted: E takes P1 (now); R takes P2 (now); O, an institute, takes P1 (not an enterprise)
    - filed: E's licence of P1, filed by the registry on 2026-03-20
    """
    world = await make_world(db)
    other = await db.get(Organisation, world.account("other_licensor").organisation.id)
    other.division_code = "330106"
    await db.commit()
    quiet = await publish_offer(db, world.account("licensor").organisation, "一种低温等离子体杀菌装置")
    rival = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    enterprise = world.account("enterprise_admin").organisation.id
    p1, p2, p3 = world.patent_id, world.other_offer.patent_id, quiet.patent_id

    await services.record_events(db, enterprise, [p1, p2, p3], FunnelStage.SHOWN, Channel.PAGE)
    await services.record_events(db, rival.organisation.id, [p1], FunnelStage.SHOWN, Channel.DIGEST)
    await services.record_events(db, enterprise, [p1], FunnelStage.VIEWED, Channel.PAGE)
    await services.record_events(db, rival.organisation.id, [p1], FunnelStage.VIEWED, Channel.DIGEST)
    await services.record_events(db, enterprise, [p1], FunnelStage.SHOWN, Channel.PUSH)  # again: a no-op
    for stage, at in ((FunnelStage.SHOWN, LATE_ON_NEW_YEARS_EVE), (FunnelStage.VIEWED, JUST_AFTER_MIDNIGHT)):
        await db.execute(
            update(MatchEvent)
            .where(MatchEvent.organisation_id == rival.organisation.id, MatchEvent.stage == stage)
            .values(created_at=at)
        )
    await db.commit()

    await _evaluate(db, settings, world.account("enterprise_admin"), p1)
    early = await _evaluate(db, settings, world.account("enterprise_member"), p1)
    await db.execute(
        update(PatentEvaluation)
        .where(PatentEvaluation.id == early.id)
        .values(created_at=datetime(2025, 12, 20, 2, 0, tzinfo=UTC))
    )
    await db.commit()
    await _evaluate(db, settings, world.account("expert"), p1)

    licence = await _accept(db, world.account("enterprise_admin"), world.offer.id)
    rival_licence = await _accept(db, rival, world.other_offer.id)
    await _accept(db, world.account("other_licensor"), world.offer.id)
    await refreshed(db, settings)
    await recorded_as_filed(db, licence.id, "2026990000301", (Registry.LICENCE_FILING,))
    await db.execute(
        update(ContractFiling)
        .where(ContractFiling.contract_id == licence.id, ContractFiling.registry == Registry.LICENCE_FILING)
        .values(filed_on=FILED_ON)
    )
    # The rival's licence has a technology-contract registration filed, but no licence filing.
    await recorded_as_filed(db, rival_licence.id, "2026330000001", (Registry.TECH_CONTRACT,))
    await db.commit()
    return Funnel(world, quiet, rival, rival_licence, licence)


def _counts(shown=0, viewed=0, evaluated=0, accepted=0, filed=0) -> Counts:
    return Counts(shown, viewed, evaluated, accepted, filed)


async def _totals(db, **filters) -> Counts:
    admin = principal_for((await _admin(db)).user)
    scope = await funnel.resolve_scope(db, admin, Filters(**filters))
    return await funnel.totals(db, scope)


async def _admin(db) -> Account:
    return await make_account(db, kind=OrganisationKind.PLATFORM)


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------


async def test_counts_per_patent_licensor_region_and_platform(db, arranged):
    f = arranged
    assert await _totals(db, patent_id=f.p1) == _counts(2, 2, 1, 1, 1)
    assert await _totals(db, patent_id=f.p2) == _counts(1, 0, 0, 1, 0)
    assert await _totals(db, patent_id=f.p3) == _counts(1)
    assert await _totals(db, licensor_id=f.org("licensor")) == _counts(3, 2, 1, 1, 1)
    assert await _totals(db, licensor_id=f.org("other_licensor")) == _counts(1, 0, 0, 1, 0)
    assert await _totals(db, region="11") == _counts(3, 2, 1, 1, 1)
    assert await _totals(db, region="33") == _counts(1, 0, 0, 1, 0)
    assert await _totals(db, region="44") == _counts()
    assert await _totals(db) == _counts(4, 2, 1, 2, 1)
    # Scopes intersect: the licensor's patent outside its region is nothing.
    assert await _totals(db, licensor_id=f.org("licensor"), region="33") == _counts()


async def test_a_period_counts_pairs_by_when_they_first_reached_each_stage(db, arranged):
    f = arranged
    this_year = Period(date(2026, 1, 1), None)
    # R was shown P1 at 23:30 on New Year's Eve and viewed it at 00:30 on New Year's Day (Shanghai);
    # E's member evaluated P1 in 2025, so E's pair reached "evaluated" then, not when its admin did.
    assert await _totals(db, patent_id=f.p1, period=this_year) == _counts(1, 2, 0, 1, 1)
    last_year = Period(None, date(2025, 12, 31))
    assert await _totals(db, patent_id=f.p1, period=last_year) == _counts(1, 0, 1, 0, 0)
    new_years_day = Period(date(2026, 1, 1), date(2026, 1, 1))
    assert await _totals(db, period=new_years_day) == _counts(0, 1)
    filing_day = Period(FILED_ON, FILED_ON)
    assert await _totals(db, period=filing_day) == _counts(filed=1)
    assert await _totals(db, period=Period(date(2026, 3, 21), date(2026, 11, 30))) == _counts()


async def test_tables_group_by_patent_licensor_and_region_largest_shown_first(db, arranged):
    f = arranged
    admin = principal_for((await _admin(db)).user)
    report = await funnel.report(db, admin, Filters(), tables=list(Breakdown))
    by_patent = report.table(Breakdown.PATENT)
    assert [(row.key, row.counts) for row in by_patent.rows] == [
        (str(f.p1), _counts(2, 2, 1, 1, 1)),
        (str(f.p2), _counts(1, 0, 0, 1, 0)),
        (str(f.p3), _counts(1)),
    ]
    assert by_patent.rows[0].label == f.world.offer.patent.title and by_patent.rows[0].number.startswith("ZL")
    assert by_patent.total == 3 and not by_patent.truncated
    by_licensor = report.table(Breakdown.LICENSOR)
    assert [(row.key, row.label, row.counts) for row in by_licensor.rows] == [
        (str(f.org("licensor")), f.world.account("licensor").organisation.name, _counts(3, 2, 1, 1, 1)),
        (str(f.org("other_licensor")), f.world.account("other_licensor").organisation.name, _counts(1, 0, 0, 1, 0)),
    ]
    by_region = report.table(Breakdown.REGION)
    assert [(row.key, row.label, row.counts) for row in by_region.rows] == [
        ("11", "北京市", _counts(3, 2, 1, 1, 1)),
        ("33", "浙江省", _counts(1, 0, 0, 1, 0)),
    ]
    limited = await funnel.breakdown(db, report.scope, Breakdown.PATENT, limit=1)
    assert [row.key for row in limited.rows] == [str(f.p1)] and limited.total == 3 and limited.truncated


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


def _section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</section>", start)]


def _stage_counts(html: str) -> dict[str, tuple[int, str, str]]:
    part = _section(html, "funnel-totals")
    found = re.findall(
        r'<tr data-stage="(\w+)">.*?data-count>([\d,]+)</td>.*?data-from-previous>([^<]+)</td>'
        r".*?data-from-shown>([^<]+)</td>",
        part,
        re.S,
    )
    return {stage: (int(count.replace(",", "")), previous, shown) for stage, count, previous, shown in found}


def _row(html: str, table_id: str, key: int | str) -> list[int]:
    table = html[html.index(f'id="{table_id}"') :]
    start = table.index(f'<tr data-key="{key}">')
    row = table[start : table.index("</tr>", start)]
    return [int(n.replace(",", "")) for n in re.findall(r'data-stage="\w+">([\d,]+)', row)]


def _keys(html: str, table_id: str) -> list[str]:
    table = html[html.index(f'id="{table_id}"') :]
    return re.findall(r'<tr data-key="(\w+)">', table[: table.index("</table>")])


async def _as(client, f: Funnel, role: str) -> None:
    if role != "anonymous":
        await login(client, f.world.account(role))


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_open_the_licensors_page(client, arranged, role):
    f = arranged
    await _as(client, f, role)
    page = await client.get("/funnel")
    if role == "anonymous":
        assert page.status_code in (302, 303) and page.headers["location"].startswith("/login")
    elif role == "platform_admin":
        assert page.status_code in (302, 303) and page.headers["location"] == "/admin/funnel"
    elif role in ("enterprise_admin", "enterprise_member", "expert"):
        assert page.status_code == 403 and "转化漏斗仅向许可人" in page.text
    elif role in ("licensor", "licensor_member"):
        assert page.status_code == 200
        assert _stage_counts(page.text) == {
            "shown": (3, "—", "100.0%"),
            "viewed": (2, "66.7%", "66.7%"),
            "evaluated": (1, "50.0%", "33.3%"),
            "accepted": (1, "100.0%", "33.3%"),
            "filed": (1, "100.0%", "33.3%"),
        }
        assert _keys(page.text, "funnel-by-patent") == [str(f.p1), str(f.p3)]
        assert _row(page.text, "funnel-by-patent", f.p1) == [2, 2, 1, 1, 1]
        assert f'href="/funnel/patents/{f.p1}"' in page.text
        assert f.world.other_offer.patent.title not in page.text
    else:  # the other licensor sees its own patent only
        assert page.status_code == 200
        assert _stage_counts(page.text)["accepted"] == (1, "—", "100.0%")
        assert _keys(page.text, "funnel-by-patent") == [str(f.p2)]
        assert f.world.offer.patent.title not in page.text


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_open_a_patents_funnel(client, arranged, role):
    f = arranged
    await _as(client, f, role)
    page = await client.get(f"/funnel/patents/{f.p1}")
    expected = {
        "anonymous": (302, 303),
        "enterprise_admin": (403,),
        "enterprise_member": (403,),
        "expert": (403,),
        "other_licensor": (404,),
    }.get(role, (200,))
    assert page.status_code in expected, page.text
    if page.status_code == 200:
        assert f.world.offer.patent.title in page.text
        counts = _stage_counts(page.text)
        assert {stage: value[0] for stage, value in counts.items()} == {
            "shown": 2, "viewed": 2, "evaluated": 1, "accepted": 1, "filed": 1,
        }  # fmt: skip
        assert counts["evaluated"][1:] == ("50.0%", "50.0%")
    # A patent that does not exist: refused like any other to those who may not read funnels.
    missing = await client.get("/funnel/patents/999999")
    assert missing.status_code in (expected if 200 not in expected else (404,))


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_open_the_admin_page(client, arranged, role):
    f = arranged
    await _as(client, f, role)
    page = await client.get("/admin/funnel")
    assert page.status_code in {"anonymous": (302, 303), "platform_admin": (200,)}.get(role, (403,))
    if role != "platform_admin":
        return
    assert {stage: value[0] for stage, value in _stage_counts(page.text).items()} == {
        "shown": 4, "viewed": 2, "evaluated": 1, "accepted": 2, "filed": 1,
    }  # fmt: skip
    assert _stage_counts(page.text)["accepted"][1:] == ("200.0%", "50.0%")
    assert _row(page.text, "funnel-by-licensor", f.org("licensor")) == [3, 2, 1, 1, 1]
    assert _row(page.text, "funnel-by-licensor", f.org("other_licensor")) == [1, 0, 0, 1, 0]
    assert _row(page.text, "funnel-by-region", "11") == [3, 2, 1, 1, 1]
    assert _row(page.text, "funnel-by-region", "33") == [1, 0, 0, 1, 0]
    assert 'id="funnel-by-patent"' not in page.text
    for chart in ("funnel-chart", "funnel-chart-licensor", "funnel-chart-region"):
        svg = page.text[page.text.index(f'<figure class="funnel-chart" id="{chart}"') :]
        svg = svg[: svg.index("</svg>")]
        assert 'role="img"' in svg and f'<title id="{chart}-title">' in svg and f'<desc id="{chart}-desc">' in svg
    assert "推荐展示 4；查看 2（较上一步 50.0%）" in page.text


async def test_the_admin_filters_by_licensor_region_and_period(client, db, arranged):
    f = arranged
    await login(client, f.world.account("platform_admin"))
    page = await client.get(f"/admin/funnel?licensor_id={f.org('licensor')}&from=2026-01-01")
    assert page.status_code == 200
    assert {stage: value[0] for stage, value in _stage_counts(page.text).items()} == {
        "shown": 2, "viewed": 2, "evaluated": 0, "accepted": 1, "filed": 1,
    }  # fmt: skip
    assert _keys(page.text, "funnel-by-patent") == [str(f.p1), str(f.p3)]
    assert _row(page.text, "funnel-by-patent", f.p1) == [1, 2, 0, 1, 1]
    assert f'href="/funnel/patents/{f.p1}?from=2026-01-01"' in page.text

    zhejiang = await client.get("/admin/funnel?region=33")
    assert _keys(zhejiang.text, "funnel-by-licensor") == [str(f.org("other_licensor"))]
    assert _keys(zhejiang.text, "funnel-by-region") == ["33"]
    assert _stage_counts(zhejiang.text)["evaluated"] == (0, "—", "0.0%")

    patent = await client.get(f"/funnel/patents/{f.p1}?to=2025-12-31")
    assert {stage: value[0] for stage, value in _stage_counts(patent.text).items()} == {
        "shown": 1, "viewed": 0, "evaluated": 1, "accepted": 0, "filed": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("path", "messages"),
    [
        (
            "/admin/funnel?region=99&from=2026-02-30",
            ["地区应为两位省级行政区划代码", "开始日期应为 YYYY-MM-DD 格式的日期"],
        ),
        (
            "/admin/funnel?licensor_id=abc&from=2026-05-01&to=2026-04-01",
            ["许可人应为正整数编号", "结束日期不能早于开始日期"],
        ),
        ("/admin/funnel?licensor_id=999999", ["未找到编号为 999999 的许可人"]),
    ],
)
async def test_bad_admin_filters_are_field_errors(client, arranged, path, messages):
    await login(client, arranged.world.account("platform_admin"))
    page = await client.get(path)
    assert page.status_code == 422
    for message in messages:
        assert message in page.text
    assert 'aria-invalid="true"' in page.text and 'id="funnel-totals"' not in page.text


async def test_bad_period_on_the_licensors_pages_is_a_field_error(client, arranged):
    f = arranged
    await login(client, f.world.account("licensor"))
    for path in ("/funnel?to=2026/01/01", f"/funnel/patents/{f.p1}?from=1999-12-31"):
        page = await client.get(path)
        assert page.status_code == 422, path
        assert "日期" in page.text and 'aria-invalid="true"' in page.text


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


def _api_counts(body: dict) -> dict[str, int]:
    return {stage["stage"]: stage["count"] for stage in body["stages"]}


@pytest.mark.parametrize("role", ("anonymous", "enterprise_admin", "licensor", "other_licensor", "platform_admin"))
async def test_who_may_read_the_api(client, db, arranged, role):
    """Experts have no API tokens (organisation admins make them); they are covered on the pages."""
    f = arranged
    headers = {} if role == "anonymous" else bearer(await api_token(db, f.world.account(role)))
    response = await client.get(API, headers=headers)
    assert response.status_code == {"anonymous": 401, "enterprise_admin": 403}.get(role, 200), response.text
    if response.status_code != 200:
        assert response.headers["content-type"].startswith("application/problem+json")
        return
    body = response.json()
    if role == "platform_admin":
        assert _api_counts(body) == {"shown": 4, "viewed": 2, "evaluated": 1, "accepted": 2, "filed": 1}
        assert body["by"] == "region" and [g["key"] for g in body["by_region"]] == ["11", "33"]
        assert "by_patent" not in body and "by_licensor" not in body
        assert body["scope"]["licensor_id"] is None and body["scope"]["from"] is None
    elif role == "licensor":
        assert _api_counts(body) == {"shown": 3, "viewed": 2, "evaluated": 1, "accepted": 1, "filed": 1}
        assert body["by"] == "patent" and [g["key"] for g in body["by_patent"]] == [str(f.p1), str(f.p3)]
        assert body["scope"]["licensor_id"] == f.org("licensor") and body["groups_total"] == 2
        assert body["stages"][1] == {
            "stage": "viewed", "label": "查看", "count": 2, "from_previous_pct": 66.7, "from_shown_pct": 66.7,
        }  # fmt: skip
        assert body["stages"][0]["from_previous_pct"] is None and body["stages"][0]["from_shown_pct"] == 100.0
    else:
        assert _api_counts(body) == {"shown": 1, "viewed": 0, "evaluated": 0, "accepted": 1, "filed": 0}
        assert body["stages"][2]["from_previous_pct"] is None and body["stages"][3]["from_previous_pct"] is None
        assert [g["key"] for g in body["by_patent"]] == [str(f.p2)]


async def test_a_licensors_token_reads_only_its_own(client, db, arranged):
    f = arranged
    headers = bearer(await api_token(db, f.world.account("licensor")))
    other = await client.get(f"{API}?licensor_id={f.org('other_licensor')}", headers=headers)
    assert other.status_code == 403 and other.json()["code"] == "forbidden"
    assert (await client.get(f"{API}?patent_id={f.p2}", headers=headers)).status_code == 404
    assert (await client.get(f"{API}?patent_id=999999", headers=headers)).status_code == 404
    own = await client.get(f"{API}?licensor_id={f.org('licensor')}&patent_id={f.p1}&from=2026-01-01", headers=headers)
    assert own.status_code == 200
    body = own.json()
    assert _api_counts(body) == {"shown": 1, "viewed": 2, "evaluated": 0, "accepted": 1, "filed": 1}
    assert body["scope"]["patent_id"] == f.p1 and body["scope"]["from"] == "2026-01-01"
    assert body["by_patent"][0]["number"].startswith("ZL")
    by_region = await client.get(f"{API}?by=region", headers=headers)
    assert [(g["key"], g["label"]) for g in by_region.json()["by_region"]] == [("11", "北京市")]


async def test_an_admins_token_reads_any_scope(client, db, arranged):
    f = arranged
    headers = bearer(await api_token(db, f.world.account("platform_admin")))
    region = (await client.get(f"{API}?region=33", headers=headers)).json()
    assert region["by"] == "licensor" and [g["key"] for g in region["by_licensor"]] == [str(f.org("other_licensor"))]
    assert region["scope"]["region_name"] == "浙江省"
    patent = (await client.get(f"{API}?patent_id={f.p2}&to=2026-12-31", headers=headers)).json()
    assert _api_counts(patent) == {"shown": 1, "viewed": 0, "evaluated": 0, "accepted": 1, "filed": 0}
    assert (await client.get(f"{API}?patent_id=999999", headers=headers)).status_code == 404


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("from=2026-13-01", ["from"]),
        ("from=2026-05-01&to=2026-04-30", ["to"]),
        ("region=99&by=industry", ["region", "by"]),
        ("licensor_id=abc&patent_id=0", ["patent_id", "licensor_id"]),
        ("licensor_id=999999", ["licensor_id"]),
    ],
)
async def test_bad_api_filters_are_422_problems_with_chinese_field_messages(client, db, arranged, query, fields):
    headers = bearer(await api_token(db, arranged.world.account("platform_admin")))
    response = await client.get(f"{API}?{query}", headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == fields
    assert all(re.search(r"[\u4e00-\u9fff]", error["message"]) for error in errors)


async def test_the_openapi_schema_documents_the_funnel(client):
    schema = (await client.get("/schema/openapi.json")).json()
    operation = schema["paths"][API]["get"]
    assert operation["summary"].startswith("转化漏斗")
    assert "from_previous_pct" in operation["description"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"patent_id", "licensor_id", "region", "from", "to", "by"} <= names
