import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.accounts.models import VerificationStatus
from marketplace.accounts.rules import (
    CONFIRMATION_LIFETIME,
    DIVISION_MATCHES,
    DIVISIONS,
    INDUSTRIES,
    INVITATION_LIFETIME,
    USCC_ALPHABET,
    VERIFICATION_TRANSITIONS,
    EnterpriseSignUp,
    LinkState,
    division_error,
    division_matches,
    division_name,
    email_error,
    enterprise_size_error,
    industry_error,
    industry_label,
    link_state,
    normalise_phone,
    password_error,
    phone_error,
    reason_error,
    sign_up_errors,
    uscc_error,
    verification_actions,
)
from tests.factories import make_uscc

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "shared/domain/test-vectors.json").read_text())


@pytest.mark.parametrize("code", VECTORS["uscc"]["valid"])
def test_known_valid_usccs(code):
    assert uscc_error(code) is None


@pytest.mark.parametrize("code", list(VECTORS["uscc"]["invalid"]))
def test_known_invalid_usccs(code):
    assert uscc_error(code) is not None


def test_uscc_messages_name_the_problem():
    assert uscc_error("91110000802100433C") == "统一社会信用代码校验位不正确"
    assert uscc_error("9111000080210043") == "统一社会信用代码应为18位"
    assert "I" in uscc_error("91110000802100I33B")


def test_codes_python_stdnum_rejects_are_accepted_when_the_checksum_is_right():
    from stdnum.cn import uscc as stdnum_uscc

    # Registering-authority code "N" (farmers' cooperatives) is a letter; stdnum wants digits there.
    body = "N2110000MA0000001"
    code = body + stdnum_uscc.calc_check_digit(body)
    assert not stdnum_uscc.is_valid(code)
    assert uscc_error(code) is None


@given(st.integers(min_value=0, max_value=999_999_999))
def test_any_single_character_change_breaks_the_check(serial):
    code = make_uscc("91", serial)
    assert uscc_error(code) is None
    replacement = USCC_ALPHABET[(USCC_ALPHABET.index(code[-1]) + 1) % 31]
    assert uscc_error(code[:-1] + replacement) is not None


def test_password_policy():
    assert password_error("short1") is not None
    assert password_error("onlyletterslong") is not None
    assert password_error("letters-and-123") is None


# ---------------------------------------------------------------------------------------------
# Divisions (GB/T 2260), industries (GB/T 4754), phones, sign-up, links, verification
# ---------------------------------------------------------------------------------------------


def test_the_division_table_is_loaded_without_its_comments():
    assert len(DIVISIONS) == 3348
    assert all(len(code) == 6 and code.isdigit() for code in DIVISIONS)
    assert division_name("110108") == "北京市海淀区"
    assert division_name("440305") == "广东省深圳市南山区"
    assert division_name("999999") is None and division_name(None) is None


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "请填写行政区划代码"),
        ("11010", "行政区划代码应为6位数字（GB/T 2260），例如 110108"),
        ("11O108", "行政区划代码应为6位数字（GB/T 2260），例如 110108"),
        ("１１０１０８", "行政区划代码应为6位数字（GB/T 2260），例如 110108"),
        ("119999", "行政区划代码“119999”不存在（GB/T 2260）"),
        (" 110108 ", None),
    ],
)
def test_division_codes(code, message):
    assert division_error(code) == message


def test_division_lookup_by_code_prefix_or_place_name():
    assert division_matches("海淀") == [("110108", "北京市海淀区")]
    assert all(code.startswith("4403") for code, _ in division_matches("4403"))
    assert len(division_matches("1")) == DIVISION_MATCHES
    assert division_matches("") == [] and division_matches("火星") == []


def test_industry_sections_and_sizes():
    assert list(INDUSTRIES) == list("ABCDEFGHIJKLMNOPQRST")
    assert industry_label("C") == "C 制造业" and industry_label(None) == "—"
    assert industry_error("c") is None and industry_error("U") is not None
    assert industry_error("") == "请选择所属行业门类"
    assert enterprise_size_error("micro") is None
    assert enterprise_size_error("huge") == "企业规模应为微型、小型、中型或大型"


@pytest.mark.parametrize(
    "phone",
    ["13812345678", "19912345678", "010-12345678", "0755-1234567", "0755-12345678", "021-12345678-123",
     "0571-87654321转8001", "010-12345678ext12", "(010)12345678", "(0755) 1234567", "010 12345678",
     "138 1234 5678", "０１０－１２３４５６７８"],
)  # fmt: skip
def test_valid_phones(phone):
    assert phone_error(phone) is None


@pytest.mark.parametrize(
    "phone",
    ["", "12345678901", "1381234567", "138123456789", "12345678", "010-123456", "010-123456789", "10-12345678",
     "01012345678-", "010-12345678-1234567", "+1 415 555 0100", "138abcd5678"],
)  # fmt: skip
def test_invalid_phones(phone):
    assert phone_error(phone) is not None


def test_phones_are_stored_in_one_shape():
    assert normalise_phone(" (010) 1234 5678 ") == "010-12345678"
    assert normalise_phone("０７５５－１２３４５６７") == "0755-1234567"
    assert normalise_phone("138 1234 5678") == "13812345678"


def _sign_up(**overrides) -> EnterpriseSignUp:
    values = {
        "name": "某某科技有限公司", "uscc": make_uscc("91"), "division_code": "110108", "enterprise_size": "small",
        "industry_code": "C", "address": "北京市海淀区某路1号", "contact_name": "张三", "contact_email": "a@b.cn",
        "contact_phone": "13812345678", "admin_display_name": "张三", "admin_email": "a@b.cn",
        "admin_password": "letters-and-123", "admin_password_confirm": "letters-and-123",
    }  # fmt: skip
    return EnterpriseSignUp(**(values | overrides))


def test_a_complete_sign_up_has_no_errors():
    assert sign_up_errors(_sign_up()) == []
    # The API has no confirmation field.
    assert sign_up_errors(_sign_up(admin_password_confirm=None)) == []


def test_every_sign_up_problem_is_reported_under_its_json_name():
    empty = EnterpriseSignUp(*([""] * 12), admin_password_confirm="x")
    fields = [error.field for error in sign_up_errors(empty)]
    assert fields == ["name", "uscc", "division_code", "enterprise_size", "industry_code", "address", "contact_name",
                      "contact_email", "contact_phone", "admin.display_name", "admin.email", "admin.password",
                      "admin.password_confirm"]  # fmt: skip
    long = sign_up_errors(_sign_up(name="企" * 201, address="址" * 301, admin_display_name="名" * 101))
    assert {e.field: e.message for e in long} == {
        "name": "企业名称不能超过200个字符",
        "address": "地址不能超过300个字符",
        "admin.display_name": "姓名不能超过100个字符",
    }


@pytest.mark.parametrize(
    ("email", "ok"),
    [("a@b.cn", True), ("first.last@sub.example.com", True), ("", False), ("ab.cn", False), ("a@b", False),
     ("@b.cn", False), ("a@.cn", False), ("a@b.", False), ("a b@c.cn", False), ("a@" + "b" * 250 + ".cn", False)],
)  # fmt: skip
def test_email_addresses(email, ok):
    assert (email_error(email) is None) is ok


def test_link_states():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert link_state(expires_at=now + timedelta(seconds=1), used_at=None, now=now) is LinkState.VALID
    assert link_state(expires_at=now, used_at=None, now=now) is LinkState.EXPIRED
    assert link_state(expires_at=now + timedelta(days=1), used_at=now, now=now) is LinkState.USED
    assert CONFIRMATION_LIFETIME == timedelta(hours=72) and INVITATION_LIFETIME == timedelta(days=7)


def test_verification_transitions():
    pending, verified, rejected = VerificationStatus.PENDING, VerificationStatus.VERIFIED, VerificationStatus.REJECTED
    assert VERIFICATION_TRANSITIONS == {
        pending: {verified, rejected},
        rejected: {verified},
        verified: {rejected},
    }
    # Nothing goes back to pending, and no decision repeats itself.
    assert all(pending not in targets and state not in targets for state, targets in VERIFICATION_TRANSITIONS.items())
    assert verification_actions(rejected) == frozenset({verified})


def test_reasons():
    assert reason_error(" ", "不通过的原因") == "请填写不通过的原因"
    assert reason_error("x" * 2001, "原因") == "原因不能超过2000个字符"
    assert reason_error("名称不符", "原因") is None
