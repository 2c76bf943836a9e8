"""The public pages: home and the catalogue with its facet sidebar, HTMX fragment and paging."""

import re

import pytest

from marketplace.accounts.models import OrganisationKind, Role
from tests.catalogue_factories import make_licensor, publish_offer, small_catalogue
from tests.factories import add_member, login, make_account


@pytest.fixture
async def offers(db):
    return await small_catalogue(db)


def _offer_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-offer-id="(\d+)"', html)]


def _facet_count(html: str, name: str, value: str) -> int | None:
    match = re.search(rf'name="{name}" value="{value}"(?: checked)?> [^<]*<span class="count">(\d+)</span>', html)
    return int(match.group(1)) if match else None


async def test_home_shows_counts_newest_offers_and_a_search_box(client, offers):
    response = await client.get("/")
    assert response.status_code == 200
    html = response.text
    assert 'id="offer-count">5<' in html and 'id="licensor-count">3<' in html
    assert 'action="/catalogue"' in html and 'name="q"' in html
    assert _offer_ids(html) == [
        offers[n].id for n in ("anode_method", "graphene_film", "sewage", "battery_cooling", "graphene_anode")
    ]
    assert f'href="/catalogue/{offers["sewage"].id}"' in html


async def test_home_without_offers_says_so(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert 'id="offer-count">0<' in response.text
    assert "暂无已公告的开放许可" in response.text


async def test_a_result_shows_what_a_licensee_compares(client, offers):
    response = await client.get("/catalogue", params={"q": "锂电池"})
    assert response.status_code == 200
    html = response.text
    assert set(_offer_ids(html)) == {offers["battery_cooling"].id, offers["graphene_anode"].id}
    card = html.split(f'data-offer-id="{offers["graphene_anode"].id}"')[1].split("</article>")[0]
    assert f'href="/catalogue/{offers["graphene_anode"].id}"' in card
    for text in (
        "一种石墨烯复合负极材料及其制备方法",
        "北方测试大学",
        "北京市",
        "发明",
        "一次总算、一次总付",
        "¥50,000.00",
        "TRL 6",
        "2038-05-09",
    ):
        assert text in card, text
    assert "先用后付" not in card
    cooling = html.split(f'data-offer-id="{offers["battery_cooling"].id}"')[1].split("</article>")[0]
    assert '<span class="badge ok">先用后付</span>' in cooling and "¥0.00" in cooling and "实用新型" in cooling


async def test_the_sidebar_counts_under_the_current_search(client, offers):
    html = (await client.get("/catalogue", params={"q": "石墨烯", "patent_type": "invention"})).text
    assert 'id="result-total">2<' in html
    assert _facet_count(html, "patent_type", "invention") == 2
    assert _facet_count(html, "patent_type", "utility_model") is None
    assert 'name="patent_type" value="invention" checked>' in html
    assert _facet_count(html, "province", "11") == 2
    assert _facet_count(html, "province", "44") is None
    assert _facet_count(html, "payment_mode", "entry_fee_royalty") == 1


async def test_the_search_form_updates_results_in_place_with_htmx(client, offers):
    page = await client.get("/catalogue", params={"q": "石墨烯"})
    form = page.text.split('<form id="catalogue-search"')[1].split(">")[0]
    assert 'hx-get="/catalogue"' in form and 'hx-target="#results"' in form and 'hx-push-url="true"' in form
    assert 'method="get"' in form and 'action="/catalogue"' in form
    assert '<div id="results"' in page.text

    fragment = await client.get("/catalogue", params={"q": "石墨烯", "sort": "newest"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<form" not in fragment.text
    assert _offer_ids(fragment.text) == [
        offers[n].id for n in ("anode_method", "graphene_film", "battery_cooling", "graphene_anode")
    ]
    assert "HX-Request" in fragment.headers["vary"]

    restore = await client.get(
        "/catalogue", params={"q": "石墨烯"}, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in restore.text and _offer_ids(restore.text) == _offer_ids(page.text)


async def test_pages_link_to_each_other_keeping_the_search(client, db):
    licensor = await make_licensor(db)
    created = [await publish_offer(db, licensor, f"无人机避障方法{i}") for i in range(23)]
    first = await client.get("/catalogue", params={"q": "无人机", "sort": "newest"})
    assert _offer_ids(first.text) == [o.id for o in reversed(created)][:20]
    assert "第 1 / 2 页，共 23 条" in first.text
    next_link = re.search(r'<a href="([^"]+)" rel="next">', first.text).group(1).replace("&amp;", "&")
    assert "page=2" in next_link
    second = await client.get(next_link)
    assert _offer_ids(second.text) == [o.id for o in reversed(created)][20:]
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    # Pager links are boosted into the results region when JavaScript runs.
    assert 'hx-boost="true" hx-target="#results"' in second.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page": "-1"}, "页码应为 1 至"),
        ({"max_upfront": "abc"}, "预付费用上限应为金额（元）"),
        ({"patent_type": "unknown"}, "请选择有效的专利类型"),
        ({"min_trl": "12"}, "技术成熟度应为 1 至 9"),
        ({"province": "xx"}, "地区应为两位省级行政区划代码"),
        ({"page_size": "100000000000000000000000"}, "每页条数应为 1 至 100"),
        ({"max_upfront": "1e30"}, "预付费用上限应为金额（元）"),
    ],
)
async def test_invalid_parameters_are_shown_beside_the_fields(client, offers, params, message):
    response = await client.get("/catalogue", params=params)
    assert response.status_code == 422
    assert message in response.text
    # The rest of the search still runs, ignoring the bad value.
    assert 'id="result-total">5<' in response.text
    fragment = await client.get("/catalogue", params=params, headers={"HX-Request": "true"})
    assert fragment.status_code == 422 and message in fragment.text and "<html" not in fragment.text


async def test_a_mistyped_amount_is_kept_in_its_field(client, offers):
    html = (await client.get("/catalogue", params={"max_upfront": "五万"})).text
    assert 'name="max_upfront" type="text" value="五万"' in html
    assert 'aria-describedby="e-max_upfront"' in html


async def test_odd_queries_never_break_the_page(client, offers):
    for raw in (
        "q=%FF%FE",
        "q=%00",
        "q=%22%2A%3A-AND",
        "q=" + "%E7%9F%B3" * 300,
        "page=%FF",
        "q=a&q=b",
        "max_upfront=%EF%BC%95%EF%BC%90",
        "sort=&page=&page_size=",
    ):
        response = await client.get(f"/catalogue?{raw}")
        assert response.status_code in (200, 422), (raw, response.status_code)
        assert "<html" in response.text


async def test_page_and_api_list_the_same_offers_in_the_same_order(client, offers):
    cases = [
        ({"q": "石墨烯"}, {"q": "石墨烯"}),
        ({"q": "负极 石墨烯", "sort": "upfront_asc"}, {"q": "负极 石墨烯", "sort": "upfront_asc"}),
        ({"max_upfront": "10000", "sort": "expiry_desc"}, {"max_upfront_fen": 1_000_000, "sort": "expiry_desc"}),
        ({"pay_after_use": "1"}, {"pay_after_use": "true"}),
        ({"province": "44", "min_trl": "5"}, {"province": "44", "min_trl": 5}),
        ({"ipc_class": "h01", "page_size": "2", "page": "2"}, {"ipc_class": "h01", "page_size": 2, "page": 2}),
        (
            {"licensor": str(offers["sewage"].licensor_organisation_id), "payment_mode": "free"},
            {"licensor": offers["sewage"].licensor_organisation_id, "payment_mode": "free"},
        ),
    ]
    for page_params, api_params in cases:
        page = await client.get("/catalogue", params=page_params)
        api = (await client.get("/api/v1/catalogue", params=api_params)).json()
        assert page.status_code == 200, page_params
        assert _offer_ids(page.text) == [item["offer_id"] for item in api["items"]], page_params
        assert f'id="result-total">{api["total"]}<' in page.text
        for value in api["facets"]["patent_type"]:
            assert _facet_count(page.text, "patent_type", value["value"]) == value["count"]


@pytest.mark.parametrize("who", ["anonymous", "org_member", "org_admin", "other_org", "platform_admin"])
async def test_everyone_sees_the_same_catalogue(client, db, offers, who):
    if who != "anonymous":
        kinds = {"platform_admin": OrganisationKind.PLATFORM, "other_org": OrganisationKind.ENTERPRISE}
        account = await make_account(db, kind=kinds.get(who, OrganisationKind.UNIVERSITY))
        if who == "org_member":
            account = await add_member(db, account, Role.ORG_MEMBER)
        await login(client, account)
    home = await client.get("/")
    page = await client.get("/catalogue", params={"q": "石墨烯"})
    assert home.status_code == 200 and page.status_code == 200
    assert len(_offer_ids(page.text)) == 4
