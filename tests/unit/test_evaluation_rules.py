"""Evaluation rules: who may evaluate, what an evaluation must contain, what an edit changed, and
the catalogue's aggregate."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.accounts.rules import Principal
from marketplace.evaluations.models import CooperationWillingness
from marketplace.evaluations.rules import (
    MAX_IMPROVEMENT_NEEDS_LENGTH,
    NO_EVALUATIONS,
    Aggregate,
    EvaluationInput,
    aggregate,
    aggregate_from_sums,
    changes,
    evaluator_refusal,
    parse_evaluation,
)

LICENSOR = 7


def principal(kind: OrganisationKind, role: Role = Role.ORG_MEMBER, *, organisation_id: int = 3, **extra) -> Principal:
    return Principal(
        user_id=1, organisation_id=organisation_id, organisation_kind=kind, organisation_name="某机构",
        role=role, display_name="张三", **extra,
    )  # fmt: skip


VALID = {"prospects": "4", "cooperation": "willing", "improvement_needs": "  需要中试放大  ", "interested_now": "1"}


@pytest.mark.parametrize("role", [Role.ORG_ADMIN, Role.ORG_MEMBER])
def test_enterprise_people_may_evaluate_other_organisations_patents(role):
    assert evaluator_refusal(principal(OrganisationKind.ENTERPRISE, role), LICENSOR) is None
    api = principal(OrganisationKind.ENTERPRISE, Role.ORG_ADMIN, via="api", token_id=5)
    assert evaluator_refusal(api, LICENSOR) is None


def test_experts_may_evaluate():
    assert evaluator_refusal(principal(OrganisationKind.PLATFORM, Role.EXPERT), LICENSOR) is None


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        (principal(OrganisationKind.ENTERPRISE, organisation_id=LICENSOR), "不能评价本机构的专利"),
        (principal(OrganisationKind.UNIVERSITY, Role.ORG_ADMIN, organisation_id=LICENSOR), "不能评价本机构的专利"),
        (principal(OrganisationKind.UNIVERSITY), "仅企业用户和评审专家可以评价专利"),
        (principal(OrganisationKind.INSTITUTE, Role.ORG_ADMIN), "仅企业用户和评审专家可以评价专利"),
        (principal(OrganisationKind.PLATFORM, Role.PLATFORM_ADMIN), "平台管理员不能评价专利"),
        (principal(OrganisationKind.ENTERPRISE, email_confirmed=False), "请先确认您的邮箱，再评价专利"),
    ],
)
def test_who_may_not_evaluate(actor, message):
    assert evaluator_refusal(actor, LICENSOR) == message


def test_a_valid_form_is_parsed_and_trimmed():
    parsed, errors = parse_evaluation(VALID)
    assert errors == []
    assert parsed == EvaluationInput(4, "需要中试放大", CooperationWillingness.WILLING, True)


def test_api_values_and_an_unticked_checkbox():
    parsed, _ = parse_evaluation({"prospects": 5, "cooperation": "strong", "interested_now": False})
    assert parsed == EvaluationInput(5, None, CooperationWillingness.STRONG, False)
    parsed, _ = parse_evaluation({"prospects": "1", "cooperation": "unwilling", "improvement_needs": "   "})
    assert parsed == EvaluationInput(1, None, CooperationWillingness.UNWILLING, False)


def test_every_field_is_reported_at_once_in_chinese():
    parsed, errors = parse_evaluation(
        {
            "prospects": "6",
            "cooperation": "maybe",
            "improvement_needs": "长" * (MAX_IMPROVEMENT_NEEDS_LENGTH + 1),
            "interested_now": "perhaps",
        }
    )
    assert parsed is None
    assert {e.field: e.message for e in errors} == {
        "prospects": "产业化前景评分应为1至5的整数",
        "cooperation": "产学研合作意愿应为：强烈、愿意、一般、不愿意",
        "improvement_needs": "技术改进需求不能超过2000个字符",
        "interested_now": "是否有意向立即取得许可应为“是”或“否”",
    }


@pytest.mark.parametrize("raw", ["", None, "  "])
def test_missing_required_fields(raw):
    _, errors = parse_evaluation({"prospects": raw, "cooperation": raw})
    assert {(e.field, e.code) for e in errors} == {("prospects", "required"), ("cooperation", "required")}


@pytest.mark.parametrize("raw", [0, 6, -1, True, 3.5, "3.5", "３", "abc"])
def test_prospects_must_be_a_whole_score_from_1_to_5(raw):
    _, errors = parse_evaluation({**VALID, "prospects": raw})
    assert [e.field for e in errors] == ["prospects"]


def test_exactly_the_length_limit_is_accepted():
    parsed, errors = parse_evaluation({**VALID, "improvement_needs": "改" * MAX_IMPROVEMENT_NEEDS_LENGTH})
    assert errors == [] and parsed is not None


def test_changes_list_only_what_an_edit_changed():
    before = EvaluationInput(3, None, CooperationWillingness.NEUTRAL, False)
    after = EvaluationInput(4, None, CooperationWillingness.STRONG, False)
    assert changes(before, after) == {
        "prospects": {"from": 3, "to": 4},
        "cooperation": {"from": "neutral", "to": "strong"},
    }
    assert changes(before, before) == {}


def test_known_aggregates():
    assert aggregate([]) == NO_EVALUATIONS == Aggregate(0, None, None)
    scores = [
        EvaluationInput(p, None, CooperationWillingness.WILLING, i) for p, i in [(4, True), (5, False), (4, True)]
    ]
    assert aggregate(scores) == Aggregate(3, Decimal("4.3"), 67)
    # Half-up at the boundary: 4.25 → 4.3, 1/8 = 12.5% → 13%.
    assert aggregate_from_sums(4, 17, 1) == Aggregate(4, Decimal("4.3"), 25)
    assert aggregate_from_sums(8, 8, 1) == Aggregate(8, Decimal("1.0"), 13)
    assert aggregate_from_sums(2, 7, 1) == Aggregate(2, Decimal("3.5"), 50)


evaluations = st.lists(
    st.builds(
        EvaluationInput,
        prospects=st.integers(1, 5),
        improvement_needs=st.none(),
        cooperation=st.sampled_from(CooperationWillingness),
        interested_now=st.booleans(),
    ),
    min_size=1,
    max_size=200,
)


@given(evaluations)
def test_aggregate_properties(items):
    result = aggregate(items)
    assert result.count == len(items)
    # The mean is within the scores and at most half a tenth away from the exact mean.
    exact = Decimal(sum(e.prospects for e in items)) / len(items)
    assert Decimal(1) <= result.mean_prospects <= Decimal(5)
    assert abs(result.mean_prospects - exact) <= Decimal("0.05")
    assert result.mean_prospects == result.mean_prospects.quantize(Decimal("0.1"))
    interested = sum(e.interested_now for e in items)
    assert 0 <= result.interested_percent <= 100
    assert abs(Decimal(result.interested_percent) - Decimal(100 * interested) / len(items)) <= Decimal("0.5")
    assert (result.interested_percent == 0) == (interested == 0 or 100 * interested / len(items) < 0.5)
    # Order does not matter, and unanimous answers are exact.
    assert aggregate(reversed(items)) == result
    if all(e.prospects == items[0].prospects for e in items):
        assert result.mean_prospects == Decimal(items[0].prospects)
