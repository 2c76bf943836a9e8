"""Searching the catalogue: Chinese keywords, ranking, facets, sorting and paging, through the
service and through ``GET /api/v1/catalogue`` (on SQLite and PostgreSQL)."""

from datetime import date

import pytest

from marketplace.catalogue.rules import CatalogueQuery, SortOrder
from marketplace.catalogue.services import LICENSOR_FACET_SIZE, FacetValue, search
from marketplace.errors import ValidationFailed
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType
from tests.catalogue_factories import make_licensor, publish_offer, small_catalogue

API = "/api/v1/catalogue"


@pytest.fixture
async def offers(db):
    return await small_catalogue(db)


def _names(offers, result) -> list[str]:
    by_id = {offer.id: name for name, offer in offers.items()}
    return [by_id[hit.offer_id] for hit in result.items]


def _counts(facet) -> dict[str, int]:
    return {value.value: value.count for value in facet}


async def test_graphene_is_found_in_titles_and_abstracts(db, offers):
    result = await search(db, CatalogueQuery(q="石墨烯"))
    assert result.total == 4
    assert set(_names(offers, result)) == {"graphene_anode", "graphene_film", "battery_cooling", "anode_method"}


async def test_lithium_battery_is_found_in_a_title_and_an_abstract(db, offers):
    result = await search(db, CatalogueQuery(q="锂电池"))
    assert set(_names(offers, result)) == {"battery_cooling", "graphene_anode"}


async def test_a_title_match_ranks_above_a_mention_in_the_abstract(db, offers):
    graphene = _names(offers, await search(db, CatalogueQuery(q="石墨烯")))
    assert set(graphene[:2]) == {"graphene_anode", "graphene_film"}
    assert set(graphene[2:]) == {"battery_cooling", "anode_method"}
    battery = _names(offers, await search(db, CatalogueQuery(q="锂电池")))
    assert battery == ["battery_cooling", "graphene_anode"]
    # A title with both words ranks above a title with one of them, though that one is newer.
    both = _names(offers, await search(db, CatalogueQuery(q="负极 石墨烯")))
    assert both == ["graphene_anode", "anode_method"]


async def test_two_words_match_in_any_order(db, offers):
    forwards = await search(db, CatalogueQuery(q="负极 石墨烯"))
    backwards = await search(db, CatalogueQuery(q="石墨烯 负极"))
    unspaced = await search(db, CatalogueQuery(q="石墨烯负极"))
    assert set(_names(offers, forwards)) == {"graphene_anode", "anode_method"}
    assert set(_names(offers, backwards)) == set(_names(offers, forwards)) == set(_names(offers, unspaced))
    # Both words must occur: battery_cooling mentions 石墨烯 but not 负极.
    assert forwards.total == 2


async def test_equal_relevance_lists_the_newest_first(db):
    licensor = await make_licensor(db)
    older = await publish_offer(db, licensor, "钙钛矿太阳能电池")
    newer = await publish_offer(db, licensor, "钙钛矿太阳能电池")
    result = await search(db, CatalogueQuery(q="钙钛矿"))
    assert [hit.offer_id for hit in result.items] == [newer.id, older.id]


async def test_a_query_without_searchable_words_filters_nothing(db, offers):
    result = await search(db, CatalogueQuery(q="的 ，。"))
    assert result.total == 5
    assert result.sort is SortOrder.NEWEST
    assert _names(offers, result)[0] == "anode_method"


async def test_a_word_nobody_uses_finds_nothing(db, offers):
    result = await search(db, CatalogueQuery(q="量子点"))
    assert result.total == 0 and result.items == []


async def test_facets_filter_the_results(db, offers):
    cases = {
        CatalogueQuery(patent_type=PatentType.INVENTION): {"graphene_anode", "sewage", "anode_method"},
        CatalogueQuery(ipc_section="C"): {"sewage"},
        CatalogueQuery(ipc_class="H01"): {"graphene_anode", "battery_cooling", "anode_method"},
        CatalogueQuery(licensor=offers["sewage"].licensor_organisation_id): {"sewage", "graphene_film"},
        CatalogueQuery(province="33"): {"battery_cooling"},
        CatalogueQuery(payment_mode=PaymentMode.FREE): {"sewage"},
        CatalogueQuery(pay_after_use=True): {"battery_cooling"},
        CatalogueQuery(pay_after_use=False): {"graphene_anode", "sewage", "graphene_film", "anode_method"},
        CatalogueQuery(max_upfront_fen=1_000_000): {"battery_cooling", "sewage", "graphene_film", "anode_method"},
        CatalogueQuery(max_upfront_fen=999_999): {"battery_cooling", "sewage", "graphene_film"},
        CatalogueQuery(min_trl=6): {"graphene_anode", "sewage"},
        CatalogueQuery(q="石墨烯", province="11", patent_type=PatentType.INVENTION): {"graphene_anode", "anode_method"},
        CatalogueQuery(q="石墨烯", province="44"): {"graphene_film"},
        CatalogueQuery(q="石墨烯", province="44", patent_type=PatentType.INVENTION): set(),
        CatalogueQuery(q="石墨烯", patent_type=PatentType.UTILITY_MODEL): {"battery_cooling"},
        CatalogueQuery(q="石墨烯", ipc_section="H"): {"graphene_anode", "battery_cooling", "anode_method"},
        CatalogueQuery(q="石墨烯", ipc_class="H01"): {"graphene_anode", "battery_cooling", "anode_method"},
        CatalogueQuery(q="石墨烯", ipc_class="C02"): set(),
        CatalogueQuery(q="石墨烯", licensor=offers["sewage"].licensor_organisation_id): {"graphene_film"},
        CatalogueQuery(q="石墨烯", payment_mode=PaymentMode.ROYALTY): {"graphene_film"},
        CatalogueQuery(q="石墨烯", pay_after_use=True): {"battery_cooling"},
        CatalogueQuery(q="石墨烯", pay_after_use=False): {"graphene_anode", "graphene_film", "anode_method"},
        CatalogueQuery(q="石墨烯", min_trl=5): {"graphene_anode", "battery_cooling"},
        CatalogueQuery(q="石墨烯", min_trl=7): set(),
        CatalogueQuery(q="石墨烯", max_upfront_fen=0): {"battery_cooling", "graphene_film"},
        CatalogueQuery(q="负极", max_upfront_fen=1_000_000, min_trl=4, province="11"): {"anode_method"},
    }
    for query, expected in cases.items():
        result = await search(db, query)
        assert set(_names(offers, result)) == expected, query
        assert result.total == len(expected), query


async def test_facet_counts_follow_the_keyword(db, offers):
    facets = (await search(db, CatalogueQuery(q="石墨烯"))).facets
    assert _counts(facets.patent_type) == {"invention": 2, "utility_model": 1, "design": 1}
    assert _counts(facets.payment_mode) == {"lump_sum": 1, "pay_after_use": 1, "royalty": 1, "entry_fee_royalty": 1}
    assert _counts(facets.province) == {"11": 2, "33": 1, "44": 1}
    assert [v.label for v in facets.province] == ["北京市", "浙江省", "广东省"]
    assert _counts(facets.ipc_section) == {"H": 3}
    north = str(offers["graphene_anode"].licensor_organisation_id)
    assert facets.licensor[0].value == north and facets.licensor[0].count == 2
    assert facets.licensor[0].label == "北方测试大学"
    assert not any(value.selected for value in facets.patent_type)


async def test_facets_count_within_the_current_filters(db, offers):
    result = await search(db, CatalogueQuery(q="石墨烯", patent_type=PatentType.INVENTION))
    assert result.total == 2
    assert _counts(result.facets.patent_type) == {"invention": 2}
    assert [v.value for v in result.facets.patent_type if v.selected] == ["invention"]
    assert _counts(result.facets.province) == {"11": 2}
    assert _counts(result.facets.payment_mode) == {"lump_sum": 1, "entry_fee_royalty": 1}
    assert _counts(result.facets.ipc_section) == {"H": 2}
    assert sum(_counts(result.facets.licensor).values()) == result.total
    cheap = await search(db, CatalogueQuery(max_upfront_fen=0, min_trl=5))
    assert cheap.total == 2
    assert _counts(cheap.facets.payment_mode) == {"free": 1, "pay_after_use": 1}
    assert _counts(cheap.facets.province) == {"33": 1, "44": 1}


async def test_the_licensor_facet_lists_the_busiest_licensors(db):
    licensors = [await make_licensor(db, f"许可人{i:02d}") for i in range(LICENSOR_FACET_SIZE + 2)]
    for i, licensor in enumerate(licensors):
        for _ in range(1 + (i == 5) * 2):
            await publish_offer(db, licensor, "储能系统")
    result = await search(db, CatalogueQuery(q="储能系统"))
    assert result.total == LICENSOR_FACET_SIZE + 4
    assert len(result.facets.licensor) == LICENSOR_FACET_SIZE
    assert (result.facets.licensor[0].label, result.facets.licensor[0].count) == ("许可人05", 3)
    last = licensors[-1]
    assert str(last.id) not in {v.value for v in result.facets.licensor}
    chosen = await search(db, CatalogueQuery(q="储能系统", licensor=last.id))
    assert [(v.label, v.count, v.selected) for v in chosen.facets.licensor] == [(last.name, 1, True)]
    # A chosen licensor without matches is still listed, by name, so it can be seen and cleared.
    nothing = await search(db, CatalogueQuery(q="污水", licensor=last.id))
    assert [(v.label, v.count, v.selected) for v in nothing.facets.licensor] == [(last.name, 0, True)]


async def test_a_chosen_value_without_matches_stays_in_its_facet(db, offers):
    result = await search(db, CatalogueQuery(q="污水", province="33", payment_mode=PaymentMode.ROYALTY))
    assert result.total == 0
    assert result.facets.province == [FacetValue("33", "浙江省", 0, selected=True)]
    assert result.facets.payment_mode == [FacetValue("royalty", "提成支付", 0, selected=True)]
    assert result.facets.patent_type == []


async def test_sort_orders(db, offers):
    newest = _names(offers, await search(db, CatalogueQuery(sort=SortOrder.NEWEST)))
    assert newest == ["anode_method", "graphene_film", "sewage", "battery_cooling", "graphene_anode"]
    cheapest = _names(offers, await search(db, CatalogueQuery(sort=SortOrder.UPFRONT_ASC)))
    # Four offers cost nothing upfront (newest first among them), then the entry fee, then the lump sum.
    assert cheapest == ["graphene_film", "sewage", "battery_cooling", "anode_method", "graphene_anode"]
    latest_expiry = _names(offers, await search(db, CatalogueQuery(sort=SortOrder.EXPIRY_DESC)))
    assert latest_expiry == ["anode_method", "graphene_anode", "graphene_film", "sewage", "battery_cooling"]
    keyword_newest = _names(offers, await search(db, CatalogueQuery(q="石墨烯", sort=SortOrder.NEWEST)))
    assert keyword_newest == ["anode_method", "graphene_film", "battery_cooling", "graphene_anode"]


async def test_pages_cover_every_result_once(db):
    licensor = await make_licensor(db)
    created = [await publish_offer(db, licensor, f"储能系统控制方法{i}") for i in range(23)]
    await publish_offer(db, licensor, "无关的污水处理系统")
    seen = []
    for page in (1, 2, 3):
        result = await search(db, CatalogueQuery(q="储能系统", sort=SortOrder.NEWEST, page=page, page_size=10))
        assert result.total == 23 and result.pages == 3
        seen += [hit.offer_id for hit in result.items]
    assert seen == [offer.id for offer in reversed(created)]
    beyond = await search(db, CatalogueQuery(q="储能系统", page=4, page_size=10))
    assert beyond.items == [] and beyond.total == 23


async def test_out_of_range_values_are_refused_before_searching(db, offers):
    with pytest.raises(ValidationFailed) as refused:
        await search(db, CatalogueQuery(page=0, page_size=101, min_trl=10, province="99", max_upfront_fen=-1))
    assert {e.field for e in refused.value.errors} == {"page", "page_size", "min_trl", "province", "max_upfront_fen"}


async def test_the_api_answers_items_total_paging_and_facets(client, offers):
    response = await client.get(API, params={"q": "石墨烯", "page_size": 2, "page": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 4 and body["page"] == 2 and body["page_size"] == 2 and len(body["items"]) == 2
    assert {f["value"]: f["count"] for f in body["facets"]["patent_type"]} == {
        "invention": 2,
        "utility_model": 1,
        "design": 1,
    }
    item = next(i for i in body["items"] if i["offer_id"] == offers["battery_cooling"].id)
    assert item == {
        "offer_id": offers["battery_cooling"].id,
        "patent_id": offers["battery_cooling"].patent_id,
        "url": f"/catalogue/{offers['battery_cooling'].id}",
        "title": "锂电池热管理装置",
        "licensor_id": offers["battery_cooling"].licensor_organisation_id,
        "licensor_name": "江南测试研究院",
        "patent_type": "utility_model",
        "patent_type_label": "实用新型",
        "ipc_section": "H",
        "ipc_class": "H01",
        "province_code": "33",
        "province_name": "浙江省",
        "payment_mode": "pay_after_use",
        "payment_mode_label": "先用后付",
        "pay_after_use": True,
        "upfront_cost_fen": 0,
        "trl": 5,
        "published_at": item["published_at"],
        "expiry_date": date(2031, 3, 1).isoformat(),
        "evaluations": {"count": 0, "mean_prospects": None, "interested_percent": None},
    }


async def test_the_api_applies_every_filter(client, offers):
    params = {
        "q": "石墨烯",
        "patent_type": "invention",
        "ipc_section": "H",
        "ipc_class": "H01",
        "licensor": offers["graphene_anode"].licensor_organisation_id,
        "province": "11",
        "payment_mode": "lump_sum",
        "pay_after_use": "false",
        "max_upfront_fen": 5_000_000,
        "min_trl": 6,
        "sort": "upfront_asc",
    }
    body = (await client.get(API, params=params)).json()
    assert [i["offer_id"] for i in body["items"]] == [offers["graphene_anode"].id]
    assert body["sort"] == "upfront_asc"
    params["max_upfront_fen"] = 4_999_999
    assert (await client.get(API, params=params)).json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"page": "-1"}, 422, "page"),
        ({"page": "abc"}, 400, "page"),
        ({"page": "99999999999999999999999999"}, 422, "page"),
        ({"page_size": "101"}, 422, "page_size"),
        ({"page_size": "0"}, 422, "page_size"),
        ({"max_upfront_fen": "abc"}, 400, "max_upfront_fen"),
        ({"max_upfront_fen": "-1"}, 422, "max_upfront_fen"),
        ({"max_upfront_fen": str(2**62)}, 422, "max_upfront_fen"),
        ({"patent_type": "unknown"}, 400, "patent_type"),
        ({"payment_mode": "barter"}, 400, "payment_mode"),
        ({"sort": "random"}, 400, "sort"),
        ({"pay_after_use": "maybe"}, 400, "pay_after_use"),
        ({"min_trl": "0"}, 422, "min_trl"),
        ({"province": "1"}, 422, "province"),
        ({"ipc_class": "H0"}, 422, "ipc_class"),
        ({"ipc_section": "Z"}, 422, "ipc_section"),
        ({"licensor": "-3"}, 422, "licensor"),
        ({"q": "锂" * 201}, 422, "q"),
    ],
)
async def test_bad_api_parameters_get_problem_details(client, offers, params, status, field):
    response = await client.get(API, params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert field in [error["field"] for error in body["errors"]]


SPECIAL_QUERIES = [
    '"',
    "'",
    '""',
    "*",
    "-",
    ":",
    "^",
    "(",
    ")",
    "AND",
    "OR",
    "NOT",
    "NEAR",
    "NEAR(石墨烯 负极, 2)",
    '石墨烯"',
    "石墨烯*",
    "-石墨烯",
    "search_tokens:石墨烯",
    "石墨烯 OR 污水",
    "石墨烯 AND 负极",
    "!石墨烯 & 负极 | 'x'",
    "\\",
    "\\'",
    "%",
    "_",
    "%_%",
    "'; DROP TABLE catalogue_entries; --",
    "石墨烯\x00负极",
    "🚀石墨烯",
    "ｓｅａｒｃｈ",
    "{}",
    "[]",
    "<script>alert(1)</script>",
]


async def test_special_characters_in_queries_never_error(client, offers):
    graphene = {offers[name].id for name in ("graphene_anode", "graphene_film", "battery_cooling", "anode_method")}
    for query in SPECIAL_QUERIES:
        response = await client.get(API, params={"q": query})
        assert response.status_code == 200, (query, response.text)
        ids = {item["offer_id"] for item in response.json()["items"]}
        assert ids <= {offer.id for offer in offers.values()}
    # Syntax characters are dropped, so they neither widen nor break a search.
    for query in ('石墨烯"', "石墨烯*", "-石墨烯", "^石墨烯", "(石墨烯)", "🚀石墨烯"):
        body = (await client.get(API, params={"q": query})).json()
        assert {item["offer_id"] for item in body["items"]} == graphene, query
    # Operator words are words to match, not operators: OR does not widen the search.
    assert (await client.get(API, params={"q": "石墨烯 OR 污水"})).json()["total"] == 0
    assert (await client.get(API, params={"q": "'; DROP TABLE catalogue_entries; --"})).json()["total"] == 0
    assert (await client.get(API)).json()["total"] == 5


async def test_the_api_is_open_to_anyone(client, db, offers):
    from tests.factories import api_token, bearer, make_account

    anonymous = await client.get(API, params={"q": "锂电池"})
    assert anonymous.status_code == 200 and anonymous.json()["total"] == 2
    account = await make_account(db)
    with_token = await client.get(API, params={"q": "锂电池"}, headers=bearer(await api_token(db, account)))
    assert with_token.status_code == 200 and with_token.json() == anonymous.json()


async def test_the_api_is_documented_with_typed_parameters_and_response(client):
    schema = (await client.get("/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/catalogue"]["get"]
    assert operation["tags"] == ["catalogue"]
    parameters = {p["name"] for p in operation["parameters"]}
    assert parameters == {
        "q",
        "patent_type",
        "ipc_section",
        "ipc_class",
        "licensor",
        "province",
        "payment_mode",
        "pay_after_use",
        "max_upfront_fen",
        "min_trl",
        "sort",
        "page",
        "page_size",
    }
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][response["$ref"].rsplit("/", 1)[-1]]
    assert set(component["properties"]) == {"items", "total", "page", "page_size", "sort", "facets"}
    assert "/catalogue" not in schema["paths"] and "/" not in schema["paths"]
