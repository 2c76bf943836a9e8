import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.accounts.rules import USCC_ALPHABET, password_error, uscc_error
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
