"""Pure patent rules: application numbers, expiry, annual fees, IPC, candidates, inventory rows."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.patents import rules
from marketplace.patents.models import LegalStatus, PatentType, TransferIntent
from marketplace.settings import PROJECT_ROOT

VECTORS = json.loads((PROJECT_ROOT.parent / "shared" / "domain" / "test-vectors.json").read_text(encoding="utf-8"))
CUTOVER = date(2021, 6, 1)
TODAY = date(2026, 3, 15)

# ---------------------------------------------------------------------------------------------
# Application numbers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", VECTORS["application_numbers"]["valid"])
def test_known_valid_numbers_are_canonical(number):
    assert rules.parse_application_number(number).canonical == number


@pytest.mark.parametrize(("raw", "canonical"), VECTORS["application_numbers"]["valid_with_noise"].items())
def test_known_noisy_numbers_are_cleaned(raw, canonical):
    assert rules.parse_application_number(raw).canonical == canonical


_INVALID_MESSAGES = {
    "202310123456.7": "校验位应为6",
    "20231012345.6": "申请号位数不足",
    "202340123456.3": "申请号第5位表示专利类型",
    "202010566088": "缺少校验位",
}


@pytest.mark.parametrize(("raw", "reason"), VECTORS["application_numbers"]["invalid"].items())
def test_known_invalid_numbers_are_refused_with_a_chinese_reason(raw, reason):
    with pytest.raises(rules.InvalidValue) as caught:
        rules.parse_application_number(raw)
    assert _INVALID_MESSAGES[raw] in caught.value.message, reason


@pytest.mark.parametrize(("digit", "meaning"), VECTORS["application_numbers"]["type_digit"].items())
def test_type_digit_gives_type_and_pct(digit, meaning):
    number = rules.canonical_application_number(f"2020{digit}0566088")
    parsed = rules.parse_application_number(number)
    assert parsed.patent_type.value == meaning.split(" ")[0]
    assert parsed.is_pct == ("PCT" in meaning)


@pytest.mark.parametrize("digit", ["0", "4", "5", "6", "7"])
def test_other_type_digits_are_invalid(digit):
    with pytest.raises(rules.InvalidValue, match=f"不能为{digit}"):
        rules.parse_application_number(rules.canonical_application_number(f"2020{digit}0566088"))


def test_pre_2003_numbers_use_eight_digits_and_weights_two_to_nine():
    digits = "99212345"
    expected = sum(int(d) * w for d, w in zip(digits, range(2, 10), strict=True)) % 11
    number = f"{digits}.{'X' if expected == 10 else expected}"
    parsed = rules.parse_application_number(f"ZL {number}")
    assert parsed.canonical == number
    assert parsed.patent_type is PatentType.UTILITY_MODEL


def test_lowercase_x_and_missing_dot_are_accepted():
    assert rules.parse_application_number("zl201811564288x").canonical == "201811564288.X"
    assert rules.parse_application_number("2020105660889").canonical == "202010566088.9"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [("", "请填写申请号"), ("2020ABC566088.9", "只能由数字"), ("202010566088.99", "一位数字或X"),
     ("2020105660881234.9", "位数过多"), ("200010566088.1", "自2003年起")],
)
def test_malformed_numbers_say_what_is_wrong(raw, fragment):
    with pytest.raises(rules.InvalidValue, match=fragment):
        rules.parse_application_number(raw)


_bodies = st.builds(
    lambda year, digit, serial: f"{year}{digit}{serial:07d}",
    st.integers(2003, 2099), st.sampled_from("12389"), st.integers(0, 9_999_999),
)
_noise = st.tuples(
    st.sampled_from(["", "CN", "ZL", "cn", "zl", "ZL ", "CN "]),
    st.sampled_from([".", "．"]),
    st.lists(st.integers(0, 13), max_size=3),
)


@given(_bodies, _noise)
def test_any_valid_number_survives_noise(body, noise):
    prefix, dot, space_positions = noise
    canonical = rules.canonical_application_number(body)
    noisy = body + dot + canonical[-1].lower()
    for position in sorted(space_positions, reverse=True):
        noisy = noisy[:position] + " " + noisy[position:]
    assert rules.parse_application_number(prefix + noisy).canonical == canonical


@given(_bodies, st.integers(0, 11), st.integers(1, 9))
def test_changing_one_digit_breaks_the_number(body, position, delta):
    canonical = rules.canonical_application_number(body)
    changed = body[:position] + str((int(body[position]) + delta) % 10) + body[position + 1 :]
    with pytest.raises(rules.InvalidValue):
        rules.parse_application_number(f"{changed}.{canonical[-1]}")


# ---------------------------------------------------------------------------------------------
# Expiry and annual fees
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["patent_expiry"], ids=lambda c: f"{c['type']}-{c['filing_date']}")
def test_expiry_vectors(case):
    filing = date.fromisoformat(case["filing_date"])
    assert rules.expiry_date(PatentType(case["type"]), filing, CUTOVER) == date.fromisoformat(case["expiry"])


def test_the_design_cutover_is_configuration():
    assert rules.expiry_date(PatentType.DESIGN, date(2021, 6, 1), date(2022, 1, 1)) == date(2031, 5, 31)


def test_explicit_expiry_override_wins():
    override = date(2037, 1, 1)
    assert rules.expiry_date(PatentType.INVENTION, date(2015, 3, 10), CUTOVER, override) == override


@pytest.mark.parametrize(
    ("patent_type", "filing", "expiry"),
    [
        (PatentType.UTILITY_MODEL, date(2020, 2, 29), date(2030, 2, 28)),
        (PatentType.INVENTION, date(2020, 2, 29), date(2040, 2, 28)),
        (PatentType.INVENTION, date(2020, 3, 1), date(2040, 2, 29)),
        (PatentType.DESIGN, date(2024, 2, 29), date(2039, 2, 28)),
    ],
)
def test_a_term_from_29_february_ends_on_the_last_day_of_february(patent_type, filing, expiry):
    assert rules.expiry_date(patent_type, filing, CUTOVER) == expiry


@given(st.dates(date(1985, 4, 1), date(2090, 12, 31)), st.sampled_from(list(PatentType)))
def test_expiry_is_the_day_before_the_anniversary_ending_the_term(filing, patent_type):
    expiry = rules.expiry_date(patent_type, filing, CUTOVER)
    years = rules.term_years(patent_type, filing, CUTOVER)
    assert rules.patent_year(filing, expiry) == years
    assert rules.patent_year(filing, expiry + timedelta(days=1)) == years + 1


@pytest.mark.parametrize(
    ("patent_type", "year", "yuan"),
    [
        (PatentType.INVENTION, 1, 900), (PatentType.INVENTION, 3, 900), (PatentType.INVENTION, 4, 1200),
        (PatentType.INVENTION, 9, 2000), (PatentType.INVENTION, 12, 4000), (PatentType.INVENTION, 15, 6000),
        (PatentType.INVENTION, 20, 8000), (PatentType.UTILITY_MODEL, 5, 900), (PatentType.UTILITY_MODEL, 8, 1200),
        (PatentType.UTILITY_MODEL, 10, 2000), (PatentType.DESIGN, 11, 3000), (PatentType.DESIGN, 15, 3000),
    ],
)
def test_annual_fee_table(patent_type, year, yuan):
    assert rules.annual_fee_fen(patent_type, year) == yuan * 100


def test_no_fee_outside_the_term():
    assert rules.annual_fee_fen(PatentType.INVENTION, 21) is None
    assert rules.annual_fee_fen(PatentType.UTILITY_MODEL, 11) is None
    assert rules.annual_fee_fen(PatentType.INVENTION, 0) is None


def test_patent_year_counts_from_the_filing_anniversary():
    filing = date(2016, 3, 10)
    assert rules.patent_year(filing, date(2016, 3, 10)) == 1
    assert rules.patent_year(filing, date(2017, 3, 9)) == 1
    assert rules.patent_year(filing, date(2017, 3, 10)) == 2
    assert rules.patent_year(date(2020, 2, 29), date(2021, 2, 28)) == 1
    assert rules.patent_year(date(2020, 2, 29), date(2021, 3, 1)) == 2


def test_next_fee_and_the_open_licence_saving():
    filing = date(2016, 3, 10)
    expiry = rules.expiry_date(PatentType.INVENTION, filing, CUTOVER)
    fee = rules.next_annual_fee(PatentType.INVENTION, filing, TODAY, expiry)
    assert (fee.year, fee.due_date, fee.fee_fen) == (12, date(2027, 3, 10), 400_000)
    assert fee.open_licence_saving_fen == 60_000
    assert fee.open_licence_fee_fen == 340_000
    current = rules.current_annual_fee(PatentType.INVENTION, filing, TODAY, expiry)
    assert (current.year, current.due_date) == (11, date(2026, 3, 10))


def test_no_next_fee_in_the_last_year():
    filing = date(2016, 6, 1)
    expiry = rules.expiry_date(PatentType.UTILITY_MODEL, filing, CUTOVER)
    assert rules.next_annual_fee(PatentType.UTILITY_MODEL, filing, date(2025, 12, 1), expiry) is None


@given(st.integers(0, 10_000_000))
def test_saving_is_fifteen_percent_rounded_half_up_once(fee_fen):
    saving = rules.open_licence_saving_fen(fee_fen)
    assert abs(saving * 100 - fee_fen * 15) <= 50
    assert saving + (fee_fen - saving) == fee_fen


def test_saving_rounds_half_up():
    assert rules.open_licence_saving_fen(10) == 2  # 1.5 fen → 2
    assert rules.open_licence_saving_fen(3) == 0  # 0.45 fen → 0


# ---------------------------------------------------------------------------------------------
# IPC
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [("H01M 4/583", "H01M 4/583"), ("G06F16/30", "G06F 16/30"), ("g06f 16 / 30", "G06F 16/30"),
     ("H01M 4/583(2010.01)", "H01M 4/583"), ("C01B 0032/184", "C01B 32/184"), ("A61K 31／00", "A61K 31/00"),
     ("H04L 9/321456", "H04L 9/321456")],
)
def test_ipc_codes_are_normalised(raw, code):
    assert rules.normalise_ipc(raw) == code


@pytest.mark.parametrize("raw", ["I01M 4/583", "H1M 4/583", "H01 4/583", "H01M 4/5", "H01M 12345/00", "H01M4", "14-03"])
def test_malformed_ipc_codes_are_refused(raw):
    with pytest.raises(rules.InvalidValue, match="格式不正确"):
        rules.normalise_ipc(raw)


def test_designs_may_use_locarno():
    assert rules.normalise_ipc("14-03", allow_locarno=True) == "14-03"


# ---------------------------------------------------------------------------------------------
# Open-licence candidates
# ---------------------------------------------------------------------------------------------


def _facts(**overrides):
    values = {"legal_status": LegalStatus.GRANTED, "grant_date": date(2020, 5, 1), "implemented": False,
              "government_funded": False, "has_published_offer": False}
    return rules.CandidateFacts(**(values | overrides))


def test_candidate_needs_three_years_since_grant_no_use_and_no_offer():
    assert rules.is_open_licence_candidate(_facts(grant_date=date(2023, 3, 15)), TODAY)
    assert not rules.is_open_licence_candidate(_facts(grant_date=date(2023, 3, 16)), TODAY)
    assert not rules.is_open_licence_candidate(_facts(implemented=True), TODAY)
    assert not rules.is_open_licence_candidate(_facts(has_published_offer=True), TODAY)
    assert not rules.is_open_licence_candidate(_facts(legal_status=LegalStatus.LAPSED), TODAY)
    assert not rules.is_open_licence_candidate(_facts(grant_date=None, legal_status=LegalStatus.PENDING), TODAY)


def test_state_licensable_needs_funding_and_five_years():
    assert rules.is_state_licensable(_facts(government_funded=True, grant_date=date(2021, 3, 15)), TODAY)
    assert not rules.is_state_licensable(_facts(government_funded=True, grant_date=date(2021, 3, 16)), TODAY)
    assert not rules.is_state_licensable(_facts(government_funded=False, grant_date=date(2019, 1, 1)), TODAY)
    assert not rules.is_state_licensable(
        _facts(government_funded=True, implemented=True, grant_date=date(2019, 1, 1)), TODAY
    )


@given(st.dates(date(1990, 1, 1), date(2090, 1, 1)), st.dates(date(1990, 1, 1), date(2095, 1, 1)),
       st.integers(1, 10))
def test_latest_grant_date_agrees_with_the_anniversary_rule(grant, today, years):
    assert (grant <= rules.latest_grant_date(today, years)) == (rules.anniversary(grant, years) <= today)


# ---------------------------------------------------------------------------------------------
# One inventory row
# ---------------------------------------------------------------------------------------------


def _row(**cells):
    values = {"application_number": "CN202010566088.9", "title": "一种锂电池负极材料", "filing_date": "2020-06-19",
              "grant_date": "2022/3/15", "legal_status": "有效"}
    values.update(cells)
    return {rules.COLUMN_BY_KEY[key].header: value for key, value in values.items()}


def _validate(row_number=2, **cells):
    return rules.validate_inventory_row(_row(**cells), row=row_number, today=TODAY, design_cutover=CUTOVER)


def _messages(result):
    assert isinstance(result, list), result
    return {error.field: error.message for error in result}


def test_a_full_row_is_validated_into_typed_values():
    result = _validate(
        patent_type="发明", annual_fee_paid_until=20260618, ipc_main="H01M4/583", ipc_codes="H01M 4/62；C01B32/184",
        abstract="摘要", inventors="张三、李四,王五;张三", co_owners="某某研究院", co_owner_consent="是", pledged="否",
        pledgee_consent="", exclusive_or_sole_licence="排他", proceedings_suspended="否", government_funded="是",
        implemented="否", trl="6", transfer_intents="许可、作价入股", application_scenarios="储能", claims_count=10.0,
    )
    assert isinstance(result, rules.PatentInput)
    assert result.application_number == "202010566088.9"
    assert result.patent_type is PatentType.INVENTION
    assert result.grant_date == date(2022, 3, 15)
    assert result.annual_fee_paid_until == date(2026, 6, 18)
    assert result.expiry_date == date(2040, 6, 18)
    assert result.ipc_main == "H01M 4/583"
    assert result.ipc_codes == ("H01M 4/62", "C01B 32/184")
    assert result.inventors == ("张三", "李四", "王五")
    assert (result.exclusive_licence, result.sole_licence) == (False, True)
    assert result.transfer_intents == (TransferIntent.LICENCE, TransferIntent.EQUITY)
    assert (result.trl, result.claims_count, result.government_funded, result.co_owner_consent) == (6, 10, True, True)


@pytest.mark.parametrize(
    "value", ["2020-06-19", "2020/6/19", "2020.6.19", "20200619", 20200619, "2020年6月19日", date(2020, 6, 19),
              datetime(2020, 6, 19, 0, 0), 44001, "2020-06-19 00:00:00"],
)
def test_dates_in_every_accepted_form(value):
    result = _validate(filing_date=value, grant_date="")
    assert not isinstance(result, list) or "申请日" not in _messages(result)
    assert rules.parse_date(value) == date(2020, 6, 19)


def test_errors_name_the_column_header_and_the_row():
    result = _validate(row_number=7, application_number="202310123456.7", filing_date="2020-02-30", trl="12")
    assert {(e.row, e.field) for e in result} == {(7, "申请号"), (7, "申请日"), (7, "技术成熟度")}
    messages = _messages(result)
    assert messages["申请号"] == "校验位应为6"
    assert "日期不存在" in messages["申请日"]
    assert messages["技术成熟度"] == "应在1至9之间"


def test_required_columns():
    messages = _messages(_validate(application_number="", title=" ", filing_date=None, legal_status=""))
    assert set(messages) == {"申请号", "专利名称", "申请日", "法律状态"}


@pytest.mark.parametrize(
    ("cells", "column", "fragment"),
    [
        ({"patent_type": "实用新型"}, "专利类型", "与申请号不符"),
        ({"patent_type": "软件"}, "专利类型", "应为发明、实用新型或外观设计"),
        ({"grant_date": "2019-01-01"}, "授权日", "不能早于申请日"),
        ({"grant_date": "2026-03-16"}, "授权日", "不能晚于今天"),
        ({"filing_date": "2026-03-16", "grant_date": ""}, "申请日", "不能晚于今天"),
        ({"legal_status": "审中"}, "授权日", "审中的专利不应填写授权日"),
        ({"grant_date": ""}, "授权日", "须填写授权日"),
        ({"legal_status": "届满"}, "法律状态", "尚未届满"),
        ({"legal_status": "在售"}, "法律状态", "应为审中、有效、失效、无效或届满"),
        ({"annual_fee_paid_until": "2019-01-01"}, "年费缴至", "不能早于申请日"),
        ({"expiry_override": "2040-01-01"}, "到期日（如有延长）", "不能早于法定到期日2040-06-18"),
        ({"pledged": "可能"}, "已质押", "应填写“是”或“否”"),
        ({"exclusive_or_sole_licence": "普通"}, "存在独占或排他许可", "否、独占或排他"),
        ({"transfer_intents": "许可；出售"}, "转化意愿", "“出售”无法识别"),
        ({"ipc_main": "H01M"}, "主分类号", "格式不正确"),
        ({"claims_count": "十"}, "权利要求数", "应为整数"),
        ({"title": "名" * 301}, "专利名称", "不能超过300个字符"),
        ({"filing_date": "1980-01-01", "grant_date": ""}, "申请日", "不能早于1985-04-01"),
    ],
)
def test_cross_field_and_format_checks(cells, column, fragment):
    messages = _messages(_validate(**cells))
    assert fragment in messages[column]


def test_a_granted_patent_past_its_term_must_be_marked_expired():
    messages = _messages(_validate(filing_date="2005-01-10", grant_date="2007-01-01",
                                   application_number=rules.canonical_application_number("200510096239")))
    assert messages["法律状态"] == "专利权已于2025-01-09期满，法律状态应为“届满”"
    expired = _validate(filing_date="2005-01-10", grant_date="2007-01-01", legal_status="届满",
                        application_number=rules.canonical_application_number("200510096239"))
    assert expired.legal_status is LegalStatus.EXPIRED


def test_pending_without_grant_date_and_design_with_locarno():
    pending = _validate(legal_status="审中", grant_date="")
    assert pending.legal_status is LegalStatus.PENDING and pending.grant_date is None
    design = _validate(application_number=rules.canonical_application_number("202130123456"), filing_date="2021-07-01",
                       grant_date="2021-12-01", ipc_main="14-03")
    assert design.patent_type is PatentType.DESIGN
    assert design.ipc_main == "14-03"
    assert design.expiry_date == date(2036, 6, 30)


def test_control_characters_are_stripped_from_text():
    result = _validate(title="一种\x00负极材料\x07")
    assert result.title == "一种负极材料"


def test_the_template_example_row_is_refused():
    example = {column.header: column.example for column in rules.COLUMNS}
    result = rules.validate_inventory_row(example, row=3, today=TODAY, design_cutover=CUTOVER)
    message = "这是模板中的示例行，请删除或替换为本机构的专利"
    assert [(e.row, e.field, e.message) for e in result] == [(3, "专利名称", message)]


def test_headers_are_recognised_as_people_retype_them():
    assert rules.HEADER_KEYS[rules.normalise_header(" 申请号* ")] == "application_number"
    assert rules.HEADER_KEYS[rules.normalise_header("到期日(如有延长)")] == "expiry_override"
    assert rules.HEADER_KEYS[rules.normalise_header("filing_date")] == "filing_date"
