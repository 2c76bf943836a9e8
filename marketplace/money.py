"""Money: integer fen (分) everywhere, rates as Decimal, and the one rounding helper."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN_PER_YUAN = 100
#: No amount a person types is this large; beyond it Decimal arithmetic would lose exactness.
MAX_YUAN = Decimal(10) ** 15


def round_fen(value: Decimal) -> int:
    """Round an amount in fen, half-up, to a whole fen. The only place the code rounds money."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_yuan(text: str) -> int:
    """Parse a yuan amount typed by a person (``12,345.67`` / ``１２３``) into fen.

    Raises ValueError for anything that is not a non-negative amount with at most two decimals.
    """
    cleaned = text.strip().translate(_FULLWIDTH).replace(",", "").replace("，", "")
    cleaned = cleaned.removeprefix("¥").removeprefix("￥").removesuffix("元").strip()
    try:
        amount = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError("金额格式不正确") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError("金额必须为非负数")
    if amount >= MAX_YUAN:
        raise ValueError("金额过大")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("金额最多保留两位小数")
    return int(amount * FEN_PER_YUAN)


def format_yuan(fen: int) -> str:
    """``1234567`` → ``12,345.67``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan:,}.{cents:02d}"


_FULLWIDTH = str.maketrans("０１２３４５６７８９．", "0123456789.")
