"""Catalogue rules: segmentation, safe full-text expressions, query parameters and code tables."""

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.catalogue.rules import (
    MAX_PAGE,
    MAX_PAGE_SIZE,
    PROVINCES,
    TITLE_WEIGHT,
    CatalogueQuery,
    SortOrder,
    fts5_facet_terms,
    fts5_match,
    index_tokens,
    ipc_section_label,
    page_params,
    parse_page_params,
    pg_tsquery,
    province_name,
    query_tokens,
    validate_query,
    yuan_text,
)
from marketplace.money import parse_yuan
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType

TITLE = "一种石墨烯复合负极材料及其制备方法"
ABSTRACT = "本发明公开一种锂电池负极材料，以硅颗粒为核、导电碳层为壳。"


def _fts5(*documents: str, facets: str = "tinvention p11") -> sqlite3.Connection:
    """The same FTS5 columns and tokenizer as migration 0002, in memory."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE docs USING fts5(search_tokens, facet_tokens, tokenize='unicode61')")
    conn.executemany("INSERT INTO docs(search_tokens, facet_tokens) VALUES (?, ?)", [(d, facets) for d in documents])
    return conn


def _search(conn: sqlite3.Connection, query: str, facet_terms: list[str] | None = None) -> list[int]:
    tokens = query_tokens(query)
    if not tokens and not facet_terms:
        return []
    match = fts5_match(tokens, facet_terms or [])
    return [row[0] for row in conn.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (match,))]


def test_technical_terms_stay_whole_words():
    assert query_tokens("石墨烯") == ["石墨烯"]
    assert query_tokens("锂电池") == ["锂电池"]
    assert query_tokens("3D打印") == ["3d打印"]


def test_query_words_are_the_same_whatever_the_spacing_or_order():
    assert set(query_tokens("负极 石墨烯")) == set(query_tokens("石墨烯 负极")) == set(query_tokens("石墨烯负极"))
    assert query_tokens("石墨烯 石墨烯") == ["石墨烯"]


def test_queries_without_a_searchable_word_are_empty():
    assert query_tokens("的") == []
    assert query_tokens("  ") == []
    assert query_tokens('*"-:()^_') == []


def test_title_words_count_three_times_and_abstract_words_once():
    tokens = index_tokens(TITLE, ABSTRACT).split()
    assert tokens.count("石墨烯") == TITLE_WEIGHT
    assert tokens.count("锂电池") == 1
    assert "的" not in tokens


def test_every_query_word_of_a_text_is_indexed_for_that_text():
    for text in (TITLE, ABSTRACT, "锂离子电池热管理系统", "基于深度学习的图像识别方法"):
        assert set(query_tokens(text)) <= set(index_tokens(text).split())


def test_unicode61_keeps_each_cjk_token_whole():
    """FTS5's unicode61 splits on spaces and punctuation only: the index holds the jieba words."""
    stored = index_tokens(TITLE, ABSTRACT)
    conn = _fts5(stored)
    conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, docs, col)")
    terms = {row[0] for row in conn.execute("SELECT term FROM temp.vocab WHERE col = 'search_tokens'")}
    assert terms == set(stored.split())
    assert "石墨烯" in terms and "烯" not in terms
    assert _search(conn, "石墨烯") == [1]
    assert _search(conn, "烯") == []


def test_all_words_must_match_in_any_order():
    conn = _fts5(index_tokens(TITLE, ABSTRACT), index_tokens("锂电池热管理装置", "采用石墨烯导热膜"))
    assert _search(conn, "负极 石墨烯") == _search(conn, "石墨烯 负极") == [1]
    assert _search(conn, "石墨烯") == [1, 2]
    assert _search(conn, "石墨烯 污水") == []


@pytest.mark.parametrize(
    "query",
    [
        "石墨烯 OR 污水",
        "石墨烯 AND",
        "NEAR(石墨烯 负极)",
        '"石墨烯',
        "-石墨烯",
        "search_tokens:石墨烯",
        "石墨烯*",
        "^石墨烯",
    ],
)
def test_fts_syntax_in_a_query_is_plain_text(query):
    conn = _fts5(index_tokens(TITLE, ABSTRACT), index_tokens("一种污水处理系统"))
    found = _search(conn, query)
    # Operators are words that must also match (so OR narrows); stray syntax characters are dropped.
    assert found == ([] if {"or", "and", "near", "search"} & set(query_tokens(query)) else [1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5))
def test_any_tokens_make_a_valid_fts5_expression(tokens):
    conn = _fts5(index_tokens(TITLE, ABSTRACT))
    conn.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (fts5_match(tokens, tokens),)).fetchall()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_typed_query_is_searchable(query):
    conn = _fts5(index_tokens(TITLE, ABSTRACT))
    assert _search(conn, query) in ([], [1])


def test_tsquery_lexemes_are_quoted_and_joined_with_and():
    assert pg_tsquery(["石墨烯", "负极"]) == "'石墨烯' & '负极'"
    assert pg_tsquery(["it's"]) == "'it''s'"
    assert pg_tsquery(["a\\b"]) == "'a\\\\b'"
    assert pg_tsquery(["a&b|!c"]) == "'a&b|!c'"
    assert pg_tsquery(["a\x00b"]) == "'ab'"
    assert fts5_match(['say "hi"', "a\x00b"], []) == 'search_tokens : ("say ""hi""" "ab")'
    assert fts5_match(["石墨烯"], ["p11"]) == 'search_tokens : ("石墨烯") AND facet_tokens : ("p11")'
    assert fts5_match([], ["p11", "a1"]) == 'facet_tokens : ("p11" "a1")'


def test_equality_filters_become_facet_tokens():
    query = CatalogueQuery(
        q="石墨烯", patent_type=PatentType.UTILITY_MODEL, payment_mode=PaymentMode.ENTRY_FEE_ROYALTY,
        pay_after_use=False, province="44", ipc_section="H", ipc_class="H01", licensor=27, min_trl=6,
        max_upfront_fen=100, sort=SortOrder.NEWEST, page=2,
    )  # fmt: skip
    assert fts5_facet_terms(query) == ["tutilitymodel", "mentryfeeroyalty", "a0", "p44", "sH", "cH01", "l27", "r6"]
    assert fts5_facet_terms(CatalogueQuery(q="石墨烯", max_upfront_fen=0)) == []


def test_a_typed_word_never_matches_a_facet_token():
    conn = _fts5(index_tokens("一种污水处理系统"), facets="tinvention p44 l3")
    assert _search(conn, "p44") == []
    assert _search(conn, "污水处理", ["p44"]) == [1]
    assert _search(conn, "污水处理", ["p11"]) == []
    assert _search(conn, "", ["p44", "l3"]) == [1]


def test_province_table_covers_the_provincial_divisions():
    assert len(PROVINCES) == 34
    assert PROVINCES["11"] == "北京市"
    assert PROVINCES["44"] == "广东省"
    assert PROVINCES["65"] == "新疆维吾尔自治区"
    assert province_name("99") == "地区代码 99"
    assert province_name(None) == "未填写地区"
    assert ipc_section_label("H") == "H 部 · 电学"


def test_page_parameters_become_a_query():
    query, errors = parse_page_params(
        {
            "q": " 石墨烯 ",
            "patent_type": "invention",
            "ipc_section": "h",
            "ipc_class": "h01",
            "licensor": "7",
            "province": "11",
            "payment_mode": "pay_after_use",
            "pay_after_use": "1",
            "max_upfront": "50,000",
            "min_trl": "5",
            "sort": "upfront_asc",
            "page": "3",
            "page_size": "50",
        }
    )
    assert errors == []
    assert query == CatalogueQuery(
        q="石墨烯",
        patent_type=PatentType.INVENTION,
        ipc_section="H",
        ipc_class="H01",
        licensor=7,
        province="11",
        payment_mode=PaymentMode.PAY_AFTER_USE,
        pay_after_use=True,
        max_upfront_fen=5_000_000,
        min_trl=5,
        sort=SortOrder.UPFRONT_ASC,
        page=3,
        page_size=50,
    )


def test_blank_page_parameters_mean_no_filter():
    query, errors = parse_page_params({name: "" for name in ("q", "patent_type", "province", "max_upfront", "page")})
    assert errors == [] and query == CatalogueQuery()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": "-1"}, "page"),
        ({"page": "0"}, "page"),
        ({"page": str(MAX_PAGE + 1)}, "page"),
        ({"page": "99999999999999999999999"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"page_size": str(MAX_PAGE_SIZE + 1)}, "page_size"),
        ({"max_upfront": "abc"}, "max_upfront"),
        ({"max_upfront": "-5"}, "max_upfront"),
        ({"max_upfront": "1e30"}, "max_upfront"),
        ({"max_upfront": "99999999999999999"}, "max_upfront"),
        ({"patent_type": "unknown"}, "patent_type"),
        ({"payment_mode": "barter"}, "payment_mode"),
        ({"sort": "random"}, "sort"),
        ({"province": "99"}, "province"),
        ({"ipc_section": "Z"}, "ipc_section"),
        ({"ipc_class": "H1"}, "ipc_class"),
        ({"min_trl": "10"}, "min_trl"),
        ({"licensor": "abc"}, "licensor"),
        ({"licensor": "0"}, "licensor"),
        ({"pay_after_use": "maybe"}, "pay_after_use"),
        ({"q": "石" * 201}, "q"),
    ],
)
def test_invalid_page_parameters_are_reported_and_ignored(params, field):
    query, errors = parse_page_params(params)
    assert [e.field for e in errors] == [field]
    assert errors[0].message
    assert query == CatalogueQuery()


def test_validation_names_the_api_parameters():
    errors = validate_query(CatalogueQuery(max_upfront_fen=-1, page=0, page_size=0, min_trl=0))
    assert {e.field for e in errors} == {"max_upfront_fen", "page", "page_size", "min_trl"}


def test_relevance_needs_a_keyword():
    assert CatalogueQuery().effective_sort(has_keyword=False) is SortOrder.NEWEST
    assert CatalogueQuery().effective_sort(has_keyword=True) is SortOrder.RELEVANCE
    assert CatalogueQuery(sort=SortOrder.EXPIRY_DESC).effective_sort(has_keyword=False) is SortOrder.EXPIRY_DESC


def test_yuan_text_is_what_a_person_types():
    assert yuan_text(5_000_000) == "50000"
    assert yuan_text(150) == "1.5"
    assert yuan_text(1) == "0.01"
    assert yuan_text(0) == "0"


@given(st.integers(min_value=0, max_value=10**15))
def test_yuan_text_reads_back_as_the_same_fen(fen):
    assert parse_yuan(yuan_text(fen)) == fen


_queries = st.builds(
    CatalogueQuery,
    q=st.sampled_from(["", "石墨烯", "锂电池 负极"]),
    patent_type=st.none() | st.sampled_from(PatentType),
    ipc_section=st.none() | st.sampled_from("ABCDEFGH"),
    ipc_class=st.none() | st.sampled_from(["H01", "C02", "A61"]),
    licensor=st.none() | st.integers(min_value=1, max_value=2**63 - 1),
    province=st.none() | st.sampled_from(sorted(PROVINCES)),
    payment_mode=st.none() | st.sampled_from(PaymentMode),
    pay_after_use=st.none() | st.booleans(),
    max_upfront_fen=st.none() | st.integers(min_value=0, max_value=10**15),
    min_trl=st.none() | st.integers(min_value=1, max_value=9),
    sort=st.sampled_from(SortOrder),
    page=st.integers(min_value=1, max_value=MAX_PAGE),
    page_size=st.integers(min_value=1, max_value=MAX_PAGE_SIZE),
)


@given(_queries)
def test_page_links_carry_the_whole_query(query):
    parsed, errors = parse_page_params(page_params(query))
    assert errors == []
    assert parsed == query


PAGE_PARAMETERS = (
    "q", "patent_type", "ipc_section", "ipc_class", "licensor", "province", "payment_mode", "pay_after_use",
    "max_upfront", "min_trl", "sort", "page", "page_size", "unknown",
)  # fmt: skip


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(PAGE_PARAMETERS), st.text(max_size=30)))
def test_any_page_parameters_give_a_valid_query(params):
    query, _ = parse_page_params(params)
    assert validate_query(query) == []
