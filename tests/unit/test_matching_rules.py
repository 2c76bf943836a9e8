"""Matching rules without a database: the concordance file, industry levels, the points of each
signal with its reason line, profile checking, and invariants of ``score`` over random inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.matching import rules
from marketplace.matching.rules import WEIGHTS, Item, Profile, ProfileInput


def _item(subclass: str | None = "H01M", text: str = "", **overrides) -> Item:
    values = {
        "ipc_subclass": subclass,
        "tokens": frozenset(text.split()),
        "tier": None,
        "upfront_cost_fen": 100_000,
        "pay_after_use": False,
        "province_code": "11",
    }
    return Item(**{**values, **overrides})


def test_concordance_codes_all_exist_and_prefixes_are_classes_or_subclasses():
    known = rules.industries()
    table = rules.concordance()
    assert len(table) > 600 and "H01M" in table and "A01" in table
    for prefix, codes in table.items():
        assert len(prefix) in (3, 4) and prefix[0] in "ABCDEFGH"
        assert codes and all(code in known for code in codes)
    # Every sign-up section is a profile industry too.
    assert {"A", "C", "I", "T"} <= set(known)


@pytest.mark.parametrize(
    ("subclass", "expected"),
    [
        ("H01M", ("H01M", rules.concordance()["H01M"])),
        ("H01X", ("H01", rules.concordance()["H01"])),  # no line of its own: the class line
        (None, ("", ())),
    ],
)
def test_longest_prefix_wins(subclass, expected):
    assert rules.industries_of(subclass) == expected


@pytest.mark.parametrize(
    ("profile_industries", "points", "text"),
    [
        (("C384",), WEIGHTS.industry_group, "IPC H01M ↔ 电池制造"),
        (("C38",), WEIGHTS.industry_division, "IPC H01M ↔ 电池制造"),
        (("C381",), WEIGHTS.industry_related, "IPC H01M ↔ 电池制造"),
        (("C",), WEIGHTS.industry_section, "IPC H01M ↔ 电池制造"),
        (("I65", "A01"), 0, ""),
    ],
)
def test_industry_levels(profile_industries, points, text):
    assert rules.industry_match(profile_industries, "H01M") == (points, text)


def test_every_signal_adds_its_points_and_says_why():
    profile = Profile(
        industries=("C384",),
        keywords=("锂电池", "固态电池"),
        provinces=("11",),
        max_upfront_fen=200_000,
        prefers_pay_after_use=True,
    )
    match = rules.score(profile, _item(text="锂电池 负极 材料", tier="high_value", pay_after_use=True))
    assert [(r.kind, r.text, r.points) for r in match.reasons] == [
        ("industry", "IPC H01M ↔ 电池制造", 30),
        ("keyword", "关键词 锂电池", 15),
        ("tier", "高价值专利", 10),
        ("cost", "首付 ¥1,000.00 在预算内", 6),
        ("cost", "先用后付", 8),
        ("region", "同在北京市", 6),
    ]
    assert match.points == 75 and match.relevant
    assert match.why.startswith("IPC H01M ↔ 电池制造；关键词 锂电池")


def test_keywords_need_every_token_and_are_capped():
    profile = Profile(keywords=("锂电池", "负极材料", "石墨烯", "固态电解质"))
    item = _item(subclass=None, text="锂电池 负极 材料 石墨烯 固态 电解质")
    match = rules.score(profile, item)
    assert match.reasons[0].points == WEIGHTS.keyword_cap  # four hits, capped at 30
    assert rules.keyword_hit("负极材料", frozenset({"负极", "材料"}))
    assert not rules.keyword_hit("负极材料", frozenset({"负极"}))


def test_boosters_alone_are_not_relevant_and_budget_can_count_against():
    profile = Profile(provinces=("11",), max_upfront_fen=50_000)
    match = rules.score(profile, _item(tier="high_value"))
    assert not match.relevant
    reasons = [(r.kind, r.text, r.points) for r in match.reasons]
    assert ("cost", "首付 ¥1,000.00 超出预算", WEIGHTS.over_budget) in reasons


def test_ipc_explicit_beats_learned_and_class_codes_match_subclasses():
    assert rules.score(Profile(ipc_codes=("H01M",), learned_ipc={"H01M": 9}), _item()).reasons[0].points == 25
    assert rules.score(Profile(ipc_codes=("H01",)), _item()).reasons[0].text == "IPC H01M 属关注的 H01 大类"
    learned = rules.score(Profile(learned_ipc={"H01M": 2}), _item())
    assert learned.reasons[0].points == WEIGHTS.ipc_learned and learned.relevant


def test_learned_lists_keep_the_most_frequent_and_skip_explicit_ones():
    profile = Profile(ipc_codes=("H01M",), learned_ipc={"H01M": 9, "C02F": 1, "G06N": 4, "A01G": 4, "B25J": 2})
    assert profile.top_learned_ipc == ("A01G", "G06N", "B25J")
    assert rules.learn({"锂电池": 2}, ["锂电池", "石墨烯"], 3) == {"锂电池": 5, "石墨烯": 3}
    assert len(rules.learn({f"k{i}": i for i in range(30)}, ["new"], 1, keep=20)) == 20


def test_domain_terms_come_from_the_catalogue_dictionary():
    assert rules.domain_terms("一种石墨烯改性锂电池负极材料的制备方法") == ["石墨烯", "锂电池"]


def test_check_profile_reports_every_problem_against_its_field():
    _, errors = rules.check_profile(
        ProfileInput(
            industries="C384, Z99",
            keywords=["锂电池", "的"],
            ipc_codes="h01m，H1",
            provinces=["33", "99"],
            max_upfront_fen=-1,
        )
    )
    fields = {error.field: error.message for error in errors}
    assert set(fields) == {"industries", "keywords", "ipc_codes", "provinces", "max_upfront"}
    assert "Z99" in fields["industries"] and "H1" in fields["ipc_codes"] and "99" in fields["provinces"]
    good, none = rules.check_profile(ProfileInput(industries="c384 C38", ipc_codes="h01m", provinces="33"))
    assert none == [] and good["industries"] == ["C384", "C38"] and good["ipc_codes"] == ["H01M"]


_subclasses = st.sampled_from(["H01M", "G06F", "A61K", "C02F", "B25J", "A01G", "H04L", "F16H", None])
_words = st.sampled_from(["锂电池", "石墨烯", "污水", "机器人", "深度学习", "疫苗", "芯片", "传感器"])


@given(
    industries=st.lists(st.sampled_from(["C", "C38", "C384", "I65", "N772", "A01", "C27"]), max_size=3, unique=True),
    keywords=st.lists(_words, max_size=4, unique=True),
    ipc=st.lists(st.sampled_from(["H01M", "G06", "A61K", "C02F"]), max_size=2, unique=True),
    subclass=_subclasses,
    text=st.lists(_words, max_size=5),
    tier=st.sampled_from([None, "high_value", "general", "low"]),
    upfront=st.integers(min_value=0, max_value=10**9),
    budget=st.one_of(st.none(), st.integers(min_value=0, max_value=10**9)),
    after_use=st.booleans(),
)
def test_points_are_the_sum_of_the_reasons_and_relevance_needs_a_relevance_reason(
    industries, keywords, ipc, subclass, text, tier, upfront, budget, after_use
):
    profile = Profile(
        industries=tuple(industries), keywords=tuple(keywords), ipc_codes=tuple(ipc), max_upfront_fen=budget
    )
    item = _item(subclass, " ".join(text), tier=tier, upfront_cost_fen=upfront, pay_after_use=after_use)
    match = rules.score(profile, item)
    assert match.points == sum(reason.points for reason in match.reasons)
    relevance = [r for r in match.reasons if r.kind in ("industry", "ipc", "keyword")]
    assert match.relevant == bool(relevance)
    assert all(r.points > 0 for r in relevance)
    # A signal the profile lacks never adds points.
    if not industries:
        assert all(r.kind != "industry" for r in match.reasons)
    if not keywords:
        assert all(r.kind != "keyword" for r in match.reasons)
