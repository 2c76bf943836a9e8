import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.money import format_yuan, parse_yuan, round_fen

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "shared/domain/test-vectors.json").read_text())


def test_royalty_rounding_vector():
    case = VECTORS["money"]["royalty_rounding"]
    assert round_fen(Decimal(case["rate"]) * case["base_fen"]) == case["royalty_fen"]


def test_half_up_not_bankers():
    assert round_fen(Decimal("2.5")) == 3
    assert round_fen(Decimal("3.5")) == 4
    assert round_fen(Decimal("2.4999")) == 2


@pytest.mark.parametrize(
    ("text", "fen"), [("12,345.67", 1234567), ("１２３", 12300), ("¥0.5", 50), ("100元", 10000), ("0", 0)]
)
def test_parse_yuan(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.234", "NaN", "Infinity", "1e30", "9" * 40])
def test_parse_yuan_rejects(text):
    with pytest.raises(ValueError):
        parse_yuan(text)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_then_parse_round_trips(fen):
    assert parse_yuan(format_yuan(fen)) == fen
