"""The industry lookup beside the profile form, and when a profile's recommendations are broad."""

from __future__ import annotations

from marketplace.matching import rules
from marketplace.matching.rules import Profile


def test_matches_by_code_prefix_in_any_case_or_by_name():
    assert rules.industry_matches("c384") == [("C384", "电池制造")]
    by_prefix = rules.industry_matches("C38")
    assert by_prefix[0] == ("C38", "电气机械和器材制造业") and all(code.startswith("C38") for code, _ in by_prefix)
    assert ("C384", "电池制造") in rules.industry_matches("电池")
    assert all("软件" in name for _, name in rules.industry_matches("软件"))
    assert len(rules.industry_matches("C")) == rules.INDUSTRY_MATCHES
    assert rules.industry_matches("  ") == [] and rules.industry_matches("不存在的行业") == []


def test_lookup_names_known_codes_and_suggests_for_other_words():
    lookup = rules.lookup_industries("c38，电池 不存在的行业")
    assert lookup.words == ("c38", "电池", "不存在的行业")
    assert lookup.known == (("C38", "电气机械和器材制造业"),)
    assert [word for word, _ in lookup.unknown] == ["电池", "不存在的行业"]
    assert ("C384", "电池制造") in lookup.unknown[0][1] and lookup.unknown[1][1] == ()
    assert lookup.choosing("电池", "C384") == "c38, C384, 不存在的行业"
    assert rules.lookup_industries("") == rules.IndustryLookup((), (), ())


def test_a_profile_of_sections_only_is_broad():
    assert Profile(industries=("C",)).is_broad
    assert Profile(industries=("C", "I")).is_broad
    assert not Profile(industries=("C", "C384")).is_broad
    assert not Profile(industries=("C",), keywords=("锂电池",)).is_broad
    assert not Profile(industries=("C",), learned_ipc={"H01M": 1}).is_broad
    assert not Profile().is_broad and Profile().is_empty
