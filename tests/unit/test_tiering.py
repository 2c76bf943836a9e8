"""The tiering rule (分层): known answers with the default table, properties that hold for any input,
and the rule file's validation."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.evaluations.tiering import (
    DEFAULT_RULES_FILE,
    EvaluationSignals,
    PatentFacts,
    Tier,
    TieringRulesError,
    assess,
    full_months,
    load_rules,
    parse_rules,
)

RULES = load_rules(DEFAULT_RULES_FILE)
ON = date(2026, 12, 4)
FACTS = PatentFacts(
    patent_type="invention",
    legal_status="granted",
    grant_date=date(2020, 3, 1),
    expiry_date=date(2038, 5, 9),
    licences=0,
    first_listed_on=date(2026, 6, 1),
)


def test_a_well_rated_licensed_invention_is_high_value_and_every_line_is_shown():
    signals = EvaluationSignals(count=3, prospects_total=13, interested=2, cooperative=2, positive=2)
    result = assess(replace(FACTS, licences=1), signals, RULES, ON)
    assert [line.text for line in result.lines] == [
        "评价均分4.3分（3份评价） ≥ 4.0：+3",
        "评价均分4.3分（3份评价） ≥ 3.0：+1",
        "有意向立即许可67%（3份评价） ≥ 50%：+2",
        "愿意或强烈愿意合作67%（3份评价） ≥ 50%：+1",
        "已有1份许可 ≥ 1份：+3",
        "发明专利：+1",
        "剩余保护期11年 ≥ 10年：+1",
    ]
    assert (result.points, result.tier, result.notes) == (12, Tier.HIGH_VALUE, ())
    assert result.summary == "合计+12分：≥ 4分为高价值，≤ −1分为低，其间为一般 → 高价值"
    assert not result.needs_re_evaluation
    assert result.rules_stamp == f"2026-12-default@{RULES.digest}"


def test_a_poorly_rated_short_lived_utility_model_is_low():
    facts = replace(FACTS, patent_type="utility_model", expiry_date=date(2028, 5, 9))
    result = assess(facts, EvaluationSignals(count=4, prospects_total=8), RULES, ON)
    assert [line.text for line in result.lines] == ["评价均分2.0分（4份评价） < 2.5：−2", "剩余保护期1年 < 3年：−2"]
    assert (result.points, result.tier) == (-4, Tier.LOW)


def test_with_too_few_evaluations_the_facts_alone_decide_and_it_says_so():
    result = assess(FACTS, EvaluationSignals(count=2, prospects_total=10, interested=2, positive=2), RULES, ON)
    assert result.notes == ("评价不足3份（现有2份），仅按专利事实分层",)
    assert [line.text for line in result.lines] == ["发明专利：+1", "剩余保护期11年 ≥ 10年：+1"]
    assert (result.points, result.tier) == (2, Tier.GENERAL)


def test_the_re_evaluation_flag_needs_twelve_months_no_licence_and_no_positive_evaluation():
    listed = replace(FACTS, first_listed_on=date(2025, 12, 4))
    result = assess(listed, EvaluationSignals(count=1, prospects_total=3), RULES, ON)
    assert result.needs_re_evaluation
    assert result.re_evaluation_reason == (
        "自2025-12-04列入许可目录已12个月（≥ 12个月），尚无许可合同，也无积极评价"
        "（产业化前景 ≥ 4分或有意向立即许可），请重新评价并重新标注"
    )
    assert not assess(
        replace(listed, first_listed_on=date(2025, 12, 5)), EvaluationSignals(), RULES, ON
    ).needs_re_evaluation
    assert not assess(replace(listed, licences=1), EvaluationSignals(), RULES, ON).needs_re_evaluation
    assert not assess(listed, EvaluationSignals(count=1, prospects_total=4, positive=1), RULES, ON).needs_re_evaluation
    assert not assess(replace(listed, first_listed_on=None), EvaluationSignals(), RULES, ON).needs_re_evaluation


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [(date(2025, 12, 4), date(2026, 12, 4), 12), (date(2025, 12, 5), date(2026, 12, 4), 11),
     (date(2026, 1, 31), date(2026, 2, 28), 0), (date(2026, 5, 1), date(2026, 4, 1), 0)],
)  # fmt: skip
def test_full_months(start, end, months):
    assert full_months(start, end) == months


facts_strategy = st.builds(
    PatentFacts,
    patent_type=st.sampled_from(["invention", "utility_model", "design"]),
    legal_status=st.sampled_from(["granted", "lapsed", "invalidated", "expired", "pending"]),
    grant_date=st.none() | st.dates(date(2000, 1, 1), date(2026, 12, 1)),
    expiry_date=st.dates(date(2020, 1, 1), date(2050, 1, 1)),
    licences=st.integers(0, 5),
    first_listed_on=st.none() | st.dates(date(2020, 1, 1), date(2026, 12, 4)),
)


@st.composite
def signals_strategy(draw, count=None):
    count = draw(st.integers(0, 30)) if count is None else count
    interested = draw(st.integers(0, count))
    return EvaluationSignals(
        count=count,
        prospects_total=draw(st.integers(count, 5 * count)),
        interested=interested,
        cooperative=draw(st.integers(0, count)),
        positive=draw(st.integers(interested, count)),
    )


@given(facts_strategy, signals_strategy())
def test_the_points_are_the_sum_of_the_lines_shown_and_the_tier_follows_the_thresholds(facts, signals):
    result = assess(facts, signals, RULES, ON)
    assert result.points == sum(line.points for line in result.lines)
    assert all(re.search(r"：[+−]\d+$", line.text) for line in result.lines)
    expected = (
        Tier.HIGH_VALUE if result.points >= RULES.high_value_at_least
        else Tier.LOW if result.points <= RULES.low_at_most else Tier.GENERAL
    )  # fmt: skip
    assert result.tier is expected
    assert result.summary.endswith(expected.label)


@given(facts_strategy, st.integers(3, 30), st.data())
def test_a_better_mean_never_lowers_the_tier(facts, count, data):
    low_total = data.draw(st.integers(count, 5 * count))
    high_total = data.draw(st.integers(low_total, 5 * count))
    base = data.draw(signals_strategy(count))
    worse = assess(facts, replace(base, prospects_total=low_total), RULES, ON)
    better = assess(facts, replace(base, prospects_total=high_total), RULES, ON)
    assert better.points >= worse.points
    assert better.tier.rank >= worse.tier.rank


GOOD = DEFAULT_RULES_FILE.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version = ", "无法读取"),
        (GOOD.replace('version = "2026-12-default"', ""), "version 应为非空字符串"),
        (GOOD.replace("low_at_most = -1", "low_at_most = 4"), "tiers.low_at_most 应小于 tiers.high_value_at_least"),
        (GOOD.replace("minimum_count = 3", "minimum_count = 0"), "evaluations.minimum_count 不能小于1"),
        (GOOD.replace("interested_now = true", 'interested_now = "yes"'), "positive.interested_now 应为 true 或 false"),
        (GOOD.replace('measure = "licences"', 'measure = "citations"'), "criteria[6].measure 未知：'citations'"),
        (GOOD.replace('value = "invention"', 'value = "software"'), "criteria[7].value 对 patent_type 应取自"),
        (GOOD.replace('op = "in"', 'op = ">="'), "criteria[10].op 对 legal_status 应为 == 或 in"),
        (GOOD.replace("value = 4.0", 'value = "4"'), "criteria[1].value 对 mean_prospects 应为数字"),
        (GOOD.replace("points = 3\n", "points = 2.5\n", 1), "criteria[1].points 应为整数"),
        (GOOD.replace("[tiers]", "[tier]"), "缺少 [tiers] 表"),
    ],
)
def test_a_bad_rule_file_is_refused_with_what_is_wrong(content, message):
    with pytest.raises(TieringRulesError) as refused:
        parse_rules(content.encode(), source="bad.toml")
    assert str(refused.value).startswith("分层规则文件 bad.toml")
    assert message in str(refused.value)


def test_several_problems_are_reported_at_once(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(GOOD.replace("minimum_count = 3", "minimum_count = 0").replace('op = "<"', 'op = "~"', 1))
    with pytest.raises(TieringRulesError, match=r"minimum_count 不能小于1；criteria\[3\]\.op"):
        load_rules(path)
    with pytest.raises(TieringRulesError, match="无法读取"):
        load_rules(tmp_path / "missing.toml")
