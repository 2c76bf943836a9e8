"""Catalogue rules: Chinese text segmentation (jieba) shared by indexing and querying, the search
query a visitor can ask (filters, sorting, paging) and its validation, safe full-text expressions
for SQLite FTS5 and PostgreSQL, and the code tables the facets are labelled with.

Both sides segment with the same dictionary and without the HMM guesser, so a word is cut the
same way in a patent's abstract as in a query. Indexing uses search mode (words plus their
shorter dictionary words), querying uses precise mode, so every query token is among the
tokens indexed for the same text.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import jieba

from marketplace.errors import FieldError
from marketplace.money import FEN_PER_YUAN, parse_yuan
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType

_DATA = Path(__file__).with_name("data")

jieba.setLogLevel(logging.WARNING)
# Technical terms jieba's general dictionary lacks (石墨烯 would otherwise be 石墨 + 烯).
jieba.load_userdict(str(_DATA / "terms.txt"))

# Title words count three times so that a title match outranks a passing mention in an abstract.
TITLE_WEIGHT = 3
_WORD = re.compile(r"[\w\u4e00-\u9fff]+", re.UNICODE)
_STOP = frozenset("的 了 和 与 及 或 在 是 一种 所述 其 为 对 由 中 上 下 用 于 及其 以及 等 该 将 可 并".split())


def _clean(tokens: list[str]) -> list[str]:
    out = []
    for token in tokens:
        token = token.strip().lower()
        # "_" alone is a word character to the regex but a separator to both full-text tokenizers.
        if token and token not in _STOP and _WORD.fullmatch(token) and any(ch.isalnum() for ch in token):
            out.append(token)
    return out


def index_tokens(title: str, abstract: str = "", extra: str = "") -> str:
    """The space-separated token string stored in ``catalogue_entries.search_tokens``."""
    title_tokens = _clean(list(jieba.cut_for_search(title, HMM=False)))
    body = f"{abstract} {extra}"
    body_tokens = _clean(list(jieba.cut_for_search(body, HMM=False)))
    return " ".join(title_tokens * TITLE_WEIGHT + body_tokens)


def query_tokens(query: str) -> list[str]:
    """Distinct tokens of a user's query, in order; empty when it has no searchable word."""
    seen: dict[str, None] = {}
    for token in _clean(list(jieba.cut(query, HMM=False))):
        seen.setdefault(token, None)
    return list(seen)


def _fts5_strings(terms: list[str]) -> str:
    return " ".join('"' + term.replace("\x00", "").replace('"', '""') + '"' for term in terms)


def fts5_match(tokens: list[str], facet_terms: list[str]) -> str:
    """An FTS5 MATCH expression: every keyword token, in any order, in ``search_tokens``, and
    every facet term in ``facet_tokens`` (see :func:`fts5_facet_terms`). Needs at least one of them.

    Each token is a double-quoted string (quotes doubled), so words such as AND, OR, NEAR and
    characters such as ``*``, ``-``, ``:`` or ``^`` are matched as text, never read as syntax.
    NUL would end the string early inside SQLite, so it goes. The column filters keep a typed
    word from matching a facet token.
    """
    parts = []
    if tokens:
        parts.append(f"search_tokens : ({_fts5_strings(tokens)})")
    if facet_terms:
        parts.append(f"facet_tokens : ({_fts5_strings(facet_terms)})")
    return " AND ".join(parts)


def fts5_facet_terms(query: CatalogueQuery) -> list[str]:
    """The equality filters of ``query`` as the facet tokens migration 0002 indexes on SQLite.

    Upfront cost stays a SQL condition: a "no more than" amount has no token.
    """
    terms = []
    if query.patent_type is not None:
        terms.append("t" + query.patent_type.value.replace("_", ""))
    if query.payment_mode is not None:
        terms.append("m" + query.payment_mode.value.replace("_", ""))
    if query.pay_after_use is not None:
        terms.append("a1" if query.pay_after_use else "a0")
    for prefix, value in (("p", query.province), ("s", query.ipc_section), ("c", query.ipc_class)):
        if value is not None:
            terms.append(prefix + value)
    if query.licensor is not None:
        terms.append(f"l{query.licensor}")
    if query.min_trl is not None:
        terms.append(f"r{query.min_trl}")
    return terms


def pg_tsquery(tokens: list[str]) -> str:
    """A ``to_tsquery`` expression requiring every token: quoted lexemes joined by ``&``.

    Inside quotes ``&``, ``|``, ``!``, ``:`` and ``*`` are text; quotes and backslashes are escaped.
    PostgreSQL text cannot hold NUL, so it goes.
    """
    return " & ".join(
        "'" + token.replace("\x00", "").replace("\\", "\\\\").replace("'", "''") + "'" for token in tokens
    )


def _code_table(name: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for line in (_DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            code, label = line.split("\t", 1)
            table[code.strip()] = label.strip()
    return table


#: GB/T 2260 province-level codes (the first two digits of a division code) → names.
PROVINCES = _code_table("provinces.tsv")
#: IPC sections A–H → Chinese titles.
IPC_SECTIONS = _code_table("ipc_sections.tsv")


def province_name(code: str | None) -> str:
    if not code:
        return "未填写地区"
    return PROVINCES.get(code, f"地区代码 {code}")


def ipc_section_label(section: str | None) -> str:
    if not section:
        return "未分类"
    title = IPC_SECTIONS.get(section)
    return f"{section} 部 · {title}" if title else f"{section} 部"


class SortOrder(enum.StrEnum):
    RELEVANCE = "relevance"
    NEWEST = "newest"
    UPFRONT_ASC = "upfront_asc"
    EXPIRY_DESC = "expiry_desc"

    @property
    def label(self) -> str:
        return {
            "relevance": "相关度",
            "newest": "最新公告",
            "upfront_asc": "预付费用从低到高",
            "expiry_desc": "专利到期日最晚",
        }[self.value]


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Deep offsets cost as much as reading every row before them; narrowing the search is the way on.
MAX_PAGE = 1000
MAX_QUERY_LENGTH = 200
# Far above any fixed fee the platform accepts; only keeps the number inside a BIGINT.
MAX_UPFRONT_FILTER_FEN = 10**15
MAX_LICENSOR_ID = 2**63 - 1
_IPC_CLASS = re.compile(r"[A-H][0-9]{2}")


@dataclass(frozen=True)
class CatalogueQuery:
    """What a visitor asks the catalogue: a keyword, facet filters, a sort order and a page."""

    q: str = ""
    patent_type: PatentType | None = None
    ipc_section: str | None = None
    ipc_class: str | None = None
    licensor: int | None = None
    province: str | None = None
    payment_mode: PaymentMode | None = None
    pay_after_use: bool | None = None
    max_upfront_fen: int | None = None
    min_trl: int | None = None
    sort: SortOrder = SortOrder.RELEVANCE
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE

    @property
    def tokens(self) -> list[str]:
        return query_tokens(self.q)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def effective_sort(self, has_keyword: bool) -> SortOrder:
        """Relevance needs a keyword; without one the newest offers come first."""
        if self.sort is SortOrder.RELEVANCE and not has_keyword:
            return SortOrder.NEWEST
        return self.sort


def normalise_query(query: CatalogueQuery) -> CatalogueQuery:
    """Codes in their canonical case and spacing (``h01`` → ``H01``, blank → no filter)."""

    def code(value: str | None) -> str | None:
        cleaned = (value or "").replace(" ", "").upper()
        return cleaned or None

    return dataclasses.replace(
        query,
        q=query.q.strip(),
        ipc_section=code(query.ipc_section),
        ipc_class=code(query.ipc_class),
        province=code(query.province),
    )


def validate_query(query: CatalogueQuery) -> list[FieldError]:
    """Every out-of-range value of a (normalised) query, named by its API parameter."""
    errors: list[FieldError] = []
    if len(query.q) > MAX_QUERY_LENGTH:
        errors.append(FieldError("q", f"检索词不能超过{MAX_QUERY_LENGTH}个字符"))
    if query.ipc_section is not None and query.ipc_section not in IPC_SECTIONS:
        errors.append(FieldError("ipc_section", "IPC 部应为 A 至 H 中的一个字母"))
    if query.ipc_class is not None and not _IPC_CLASS.fullmatch(query.ipc_class):
        errors.append(FieldError("ipc_class", "IPC 大类应为部字母加两位数字，例如 H01"))
    if query.licensor is not None and not 1 <= query.licensor <= MAX_LICENSOR_ID:
        errors.append(FieldError("licensor", "许可人编号不正确"))
    if query.province is not None and query.province not in PROVINCES:
        errors.append(FieldError("province", "地区应为两位省级行政区划代码，例如 11（北京市）"))
    if query.max_upfront_fen is not None and not 0 <= query.max_upfront_fen <= MAX_UPFRONT_FILTER_FEN:
        errors.append(FieldError("max_upfront_fen", "预付费用上限应为不小于零的合理金额"))
    if query.min_trl is not None and not 1 <= query.min_trl <= 9:
        errors.append(FieldError("min_trl", "技术成熟度应为 1 至 9"))
    if not 1 <= query.page <= MAX_PAGE:
        errors.append(FieldError("page", f"页码应为 1 至 {MAX_PAGE}；结果较多时请缩小检索范围"))
    if not 1 <= query.page_size <= MAX_PAGE_SIZE:
        errors.append(FieldError("page_size", f"每页条数应为 1 至 {MAX_PAGE_SIZE}"))
    return errors


# The page takes the upfront limit in yuan, as people type it; the API takes fen.
_PAGE_FIELD = {"max_upfront_fen": "max_upfront"}
_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}


def _parse_int(raw: str) -> int:
    # int() also accepts "1_000" and full-width digits; a query parameter should be plain digits.
    text = raw.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,20}", text):
        raise ValueError(raw)
    return int(text)


def parse_page_params(params: Mapping[str, str]) -> tuple[CatalogueQuery, list[FieldError]]:
    """A query from the catalogue page's (untrusted) parameters, and what was wrong with them.

    Invalid values are reported and left out, so the page still shows results for the rest.
    Blank values mean "no filter".
    """
    errors: list[FieldError] = []
    values: dict[str, object] = {}

    def raw(name: str) -> str:
        value = params.get(name)
        return value.strip() if isinstance(value, str) else ""

    def convert(name: str, parse, message: str, target: str | None = None) -> None:
        text = raw(name)
        if not text:
            return
        try:
            values[target or name] = parse(text)
        # parse_yuan lets decimal.InvalidOperation (an ArithmeticError) out for amounts like 1e30.
        except (ValueError, ArithmeticError):
            errors.append(FieldError(name, message))

    values["q"] = raw("q")
    for name in ("ipc_section", "ipc_class", "province"):
        values[name] = raw(name) or None
    convert("patent_type", PatentType, "请选择有效的专利类型")
    convert("payment_mode", PaymentMode, "请选择有效的支付方式")
    convert("sort", SortOrder, "请选择有效的排序方式")
    convert("licensor", _parse_int, "许可人编号不正确")
    convert("min_trl", _parse_int, "技术成熟度应为 1 至 9")
    convert("page", _parse_int, "页码应为正整数")
    convert("page_size", _parse_int, f"每页条数应为 1 至 {MAX_PAGE_SIZE}")
    convert("max_upfront", parse_yuan, "预付费用上限应为金额（元），例如 50000", target="max_upfront_fen")
    convert("pay_after_use", _parse_flag, "“先用后付”取值不正确")

    query = normalise_query(CatalogueQuery(**values))  # type: ignore[arg-type]
    defaults = CatalogueQuery()
    reset: dict[str, object] = {}
    for error in validate_query(query):
        reset[error.field] = getattr(defaults, error.field)
        errors.append(dataclasses.replace(error, field=_PAGE_FIELD.get(error.field, error.field)))
    return dataclasses.replace(query, **reset), errors  # type: ignore[arg-type]


def _parse_flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def yuan_text(fen: int) -> str:
    """Fen as a plain yuan amount for a form field: ``5000000`` → ``50000``, ``150`` → ``1.5``."""
    amount = Decimal(fen) / FEN_PER_YUAN
    return format(amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize(), "f")


def page_params(query: CatalogueQuery, **changes: object) -> dict[str, str]:
    """The catalogue page's URL parameters for ``query`` (with ``changes``), defaults left out."""
    query = dataclasses.replace(query, **changes)  # type: ignore[arg-type]
    params: dict[str, str] = {}
    if query.q:
        params["q"] = query.q
    for name in ("patent_type", "ipc_section", "ipc_class", "licensor", "province", "payment_mode", "min_trl"):
        value = getattr(query, name)
        if value is not None:
            params[name] = str(value)
    if query.pay_after_use is not None:
        params["pay_after_use"] = "1" if query.pay_after_use else "0"
    if query.max_upfront_fen is not None:
        params["max_upfront"] = yuan_text(query.max_upfront_fen)
    if query.sort is not SortOrder.RELEVANCE:
        params["sort"] = query.sort.value
    if query.page_size != DEFAULT_PAGE_SIZE:
        params["page_size"] = str(query.page_size)
    if query.page != 1:
        params["page"] = str(query.page)
    return params
