"""Pure patent rules (专利盘点库): application numbers, terms and expiry, annual fees and the
open-licence fee saving, IPC codes, open-licence candidates (存量专利盘活), and validation of one
patent's fields — typed in a form, sent to the API or read from one row of the inventory table
(盘点表). No I/O apart from the fee table shipped beside this module.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from marketplace.errors import FieldError
from marketplace.money import round_fen
from marketplace.patents.models import LegalStatus, PatentType, TransferIntent

# ---------------------------------------------------------------------------------------------
# Application numbers (申请号)
# ---------------------------------------------------------------------------------------------

#: Weights of the check character; numbers filed before October 2003 have 8 digits and use the first 8.
CHECK_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
#: The type digit: patent type and whether the application entered China through the PCT.
TYPE_DIGITS: dict[str, tuple[PatentType, bool]] = {
    "1": (PatentType.INVENTION, False),
    "2": (PatentType.UTILITY_MODEL, False),
    "3": (PatentType.DESIGN, False),
    "8": (PatentType.INVENTION, True),
    "9": (PatentType.UTILITY_MODEL, True),
}
FIRST_TWELVE_DIGIT_YEAR = 2003

_FULL_WIDTH_DIGITS = {chr(0xFF10 + d): str(d) for d in range(10)}
_DIGITS = str.maketrans(_FULL_WIDTH_DIGITS | {"．": ".", "／": "/", "－": "-"})
_NUMBER_NOISE = str.maketrans(
    {"．": ".", "。": ".", " ": None, "\u3000": None, "\u00a0": None, "\t": None, "ｘ": "X", "Ｘ": "X"}
    | _FULL_WIDTH_DIGITS
)


class InvalidValue(ValueError):
    """A value a person typed cannot be accepted; ``message`` says why, in Chinese."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ApplicationNumber:
    canonical: str
    patent_type: PatentType
    is_pct: bool

    @property
    def patent_number(self) -> str:
        """专利号 = ZL + application number."""
        return f"ZL{self.canonical}"


def check_character(digits: str) -> str:
    """The check character of 12 (or, before 2003, 8) digits: weighted sum mod 11, 10 written X."""
    total = sum(map(operator.mul, map(int, digits), CHECK_WEIGHTS[: len(digits)]))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def clean_application_number(raw: object) -> str:
    """The number without noise: prefixes CN/ZL, spaces, full-width characters, lowercase x."""
    text = str(raw)
    # ASCII input (the usual case) only needs its spaces removed; the translation handles the rest.
    text = "".join(text.split()).upper() if text.isascii() else text.translate(_NUMBER_NOISE).upper()
    while text[:2] in ("CN", "ZL"):
        text = text[2:]
    return text


def canonical_application_number(digits: str) -> str:
    """The canonical number for 12 (or 8) digits, with their check character appended."""
    return f"{digits}.{check_character(digits)}"


def parse_application_number(raw: object) -> ApplicationNumber:
    """Validate an application number and return its canonical form, or raise :class:`InvalidValue`."""
    text = clean_application_number(raw)
    if not text:
        raise InvalidValue("请填写申请号", "required")
    body, dot, check = text.partition(".")
    if not dot:
        if text.isascii() and text.isdigit() and len(text) in (8, 12):
            raise InvalidValue("缺少校验位：申请号应以“.”加一位校验位结尾，如 202010566088.9")
        body, check = text[:-1], text[-1:]
    if not (body.isascii() and body.isdigit()):
        raise InvalidValue("申请号只能由数字、“.”和校验位（数字或X）组成")
    if not check:
        raise InvalidValue("缺少校验位：申请号应以“.”加一位校验位结尾，如 202010566088.9")
    if len(check) != 1 or check not in "0123456789X":
        raise InvalidValue("校验位应为一位数字或X")
    if len(body) not in (8, 12):
        size = "不足" if len(body) < 12 else "过多"
        raise InvalidValue(
            f"申请号位数{size}：应为12位数字加校验位（如 202010566088.9），2003年以前的申请为8位数字加校验位"
        )
    modern = len(body) == 12
    type_position = 5 if modern else 3
    type_digit = body[type_position - 1]
    if type_digit not in TYPE_DIGITS:
        raise InvalidValue(
            f"申请号第{type_position}位表示专利类型（1发明、2实用新型、3外观设计、8/9为PCT国际申请），不能为{type_digit}"
        )
    if modern and int(body[:4]) < FIRST_TWELVE_DIGIT_YEAR:
        raise InvalidValue(f"12位申请号自2003年起使用，年份“{body[:4]}”不正确")
    if not modern and 4 <= int(body[:2]) < 85:
        raise InvalidValue(f"8位申请号适用于1985年至2003年的申请，年份“{body[:2]}”不正确")
    expected = check_character(body)
    if check != expected:
        raise InvalidValue(f"校验位应为{expected}", "check_character")
    patent_type, is_pct = TYPE_DIGITS[type_digit]
    return ApplicationNumber(canonical=f"{body}.{check}", patent_type=patent_type, is_pct=is_pct)


# ---------------------------------------------------------------------------------------------
# Term and expiry (Patent Law art. 42)
# ---------------------------------------------------------------------------------------------

TERM_YEARS = {PatentType.INVENTION: 20, PatentType.UTILITY_MODEL: 10}
DESIGN_TERM_YEARS = 15
DESIGN_TERM_YEARS_BEFORE_CUTOVER = 10
#: Designs filed from this day get 15 years (the 2020 amendment); settings.design_term_cutover may move it.
DESIGN_TERM_CUTOVER = date(2021, 6, 1)


def anniversary(start: date, years: int) -> date:
    """``start`` plus whole years. 29 February falls on 1 March in a year without it, so a term
    counted from 29 February ends on the last day of February."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return date(start.year + years, 3, 1)


def term_years(patent_type: PatentType, filing_date: date, design_cutover: date = DESIGN_TERM_CUTOVER) -> int:
    if patent_type == PatentType.DESIGN:
        return DESIGN_TERM_YEARS if filing_date >= design_cutover else DESIGN_TERM_YEARS_BEFORE_CUTOVER
    return TERM_YEARS[patent_type]


@lru_cache(maxsize=16_384)
def statutory_expiry(
    patent_type: PatentType, filing_date: date, design_cutover: date = DESIGN_TERM_CUTOVER
) -> date:
    """Filing date + term − 1 day (cached: an upload repeats filing dates)."""
    return anniversary(filing_date, term_years(patent_type, filing_date, design_cutover)) - timedelta(days=1)


def expiry_date(
    patent_type: PatentType, filing_date: date, design_cutover: date = DESIGN_TERM_CUTOVER, override: date | None = None
) -> date:
    """The last day of protection; an explicit override (term extension) wins."""
    return override or statutory_expiry(patent_type, filing_date, design_cutover)


# ---------------------------------------------------------------------------------------------
# Annual fees (专利年费) and the open-licence reduction
# ---------------------------------------------------------------------------------------------

#: CNIPA announcement 594 (2024): annual fees are reduced by 15 % while an open licence stands.
OPEN_LICENCE_FEE_REDUCTION = Decimal("0.15")


def _load_fee_table() -> dict[PatentType, tuple[tuple[int, int, int], ...]]:
    raw = json.loads((Path(__file__).with_name("data") / "annual_fees.json").read_text(encoding="utf-8"))
    return {kind: tuple(tuple(band) for band in raw[kind.value]) for kind in PatentType}


ANNUAL_FEES_YUAN = _load_fee_table()


def patent_year(filing_date: date, on: date) -> int:
    """The patent year (1-based) that ``on`` falls in; each year starts on a filing anniversary."""
    years = on.year - filing_date.year
    if anniversary(filing_date, years) > on:
        years -= 1
    return years + 1


def annual_fee_fen(patent_type: PatentType, year: int) -> int | None:
    """The annual fee for a patent year in fen, or None outside the fee table."""
    for first, last, yuan in ANNUAL_FEES_YUAN[patent_type]:
        if first <= year <= last:
            return yuan * 100
    return None


def open_licence_saving_fen(fee_fen: int) -> int:
    return round_fen(Decimal(fee_fen) * OPEN_LICENCE_FEE_REDUCTION)


@dataclass(frozen=True)
class AnnualFee:
    year: int
    due_date: date
    fee_fen: int

    @property
    def open_licence_saving_fen(self) -> int:
        return open_licence_saving_fen(self.fee_fen)

    @property
    def open_licence_fee_fen(self) -> int:
        return self.fee_fen - self.open_licence_saving_fen


def annual_fee_for_year(patent_type: PatentType, filing_date: date, year: int, expiry: date) -> AnnualFee | None:
    """The fee for patent year ``year``, due on the anniversary that starts it (None after expiry)."""
    due = anniversary(filing_date, year - 1)
    fee = annual_fee_fen(patent_type, year)
    if year < 1 or fee is None or due > expiry:
        return None
    return AnnualFee(year=year, due_date=due, fee_fen=fee)


def current_annual_fee(patent_type: PatentType, filing_date: date, on: date, expiry: date) -> AnnualFee | None:
    return annual_fee_for_year(patent_type, filing_date, patent_year(filing_date, on), expiry)


def next_annual_fee(patent_type: PatentType, filing_date: date, on: date, expiry: date) -> AnnualFee | None:
    """The next fee to fall due after ``on`` — the one an open licence declared now would reduce."""
    return annual_fee_for_year(patent_type, filing_date, patent_year(filing_date, on) + 1, expiry)


# ---------------------------------------------------------------------------------------------
# Classification codes (IPC; Locarno for designs)
# ---------------------------------------------------------------------------------------------

_IPC = re.compile(r"([A-H])(\d{2})([A-Z])(\d{1,4})/(\d{2,6})")
_LOCARNO = re.compile(r"(\d{2})-(\d{2})")
_IPC_VERSION = re.compile(r"\(\d{4}\.\d{2}\)$")
_IPC_NOISE = str.maketrans({"／": "/", "（": "(", "）": ")", "－": "-", " ": None, "\u3000": None, "\u00a0": None})


def normalise_ipc(raw: str, *, allow_locarno: bool = False) -> str:
    """``G06F16/30`` → ``G06F 16/30``: section A–H, 2-digit class, subclass letter, main group of
    1–4 digits, ``/``, subgroup of 2–6 digits. A trailing edition such as ``(2006.01)`` is dropped.
    Designs are classified by Locarno (``14-03``), accepted when ``allow_locarno``."""
    code = _IPC_VERSION.sub("", raw.translate(_IPC_NOISE).upper())
    match = _IPC.fullmatch(code)
    if match:
        section, klass, subclass, group, subgroup = match.groups()
        return f"{section}{klass}{subclass} {int(group)}/{subgroup}"
    if allow_locarno and _LOCARNO.fullmatch(code):
        return code
    raise InvalidValue(
        f"分类号“{raw.strip()}”格式不正确，应如 H01M 4/583（部A–H、2位大类、小类字母、1–4位大组、“/”、2–6位小组）"
        + ("；外观设计可填洛迦诺分类号，如 14-03" if allow_locarno else "")
    )


# ---------------------------------------------------------------------------------------------
# Open-licence candidates (存量专利盘活)
# ---------------------------------------------------------------------------------------------

CANDIDATE_YEARS_AFTER_GRANT = 3
STATE_LICENSABLE_YEARS_AFTER_GRANT = 5


def latest_grant_date(today: date, years: int) -> date:
    """The latest grant date that is at least ``years`` whole years before ``today``
    (``anniversary(grant, years) <= today`` exactly when ``grant <= latest_grant_date(today, years)``)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return date(today.year - years, 2, 28)


@dataclass(frozen=True)
class CandidateFacts:
    legal_status: LegalStatus
    grant_date: date | None
    implemented: bool
    government_funded: bool
    has_published_offer: bool


def is_open_licence_candidate(facts: CandidateFacts, today: date) -> bool:
    """Granted at least 3 years ago, in force, not exploited and not yet offered."""
    return (
        facts.legal_status is LegalStatus.GRANTED
        and facts.grant_date is not None
        and anniversary(facts.grant_date, CANDIDATE_YEARS_AFTER_GRANT) <= today
        and not facts.implemented
        and not facts.has_published_offer
    )


def is_state_licensable(facts: CandidateFacts, today: date) -> bool:
    """Government-funded and unexploited 5 years after grant: the state may license it (可由国家依法许可)."""
    return (
        facts.legal_status is LegalStatus.GRANTED
        and facts.grant_date is not None
        and facts.government_funded
        and not facts.implemented
        and anniversary(facts.grant_date, STATE_LICENSABLE_YEARS_AFTER_GRANT) <= today
    )


# ---------------------------------------------------------------------------------------------
# One patent's fields: the inventory table's columns, parsing and validation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One field of a patent: its identifier (form field and API name), the inventory table's
    Chinese header, whether it is required, and the format note and example of the template."""

    key: str
    header: str
    required: bool
    note: str
    example: str


TEMPLATE_EXAMPLE_MARK = "【示例】"

COLUMNS: tuple[Column, ...] = (
    Column("application_number", "申请号", True,
           "12位数字加“.”和校验位，如 202010566088.9；2003年以前为8位数字加校验位；可带 CN、ZL 前缀",
           "202010566088.9"),
    Column("title", "专利名称", True, "不超过300字；示例行的名称以“【示例】”开头，上传前请删除示例行",
           f"{TEMPLATE_EXAMPLE_MARK}一种石墨烯复合电极材料的制备方法"),
    Column("patent_type", "专利类型", False, "发明、实用新型或外观设计；可留空，由申请号第5位识别", "发明"),
    Column("filing_date", "申请日", True, "日期，如 2020-01-02、2020/1/2、2020.1.2 或 20200102", "2020-06-19"),
    Column("grant_date", "授权日", False, "法律状态为有效、失效、无效、届满时必填；审中的专利留空", "2022-03-15"),
    Column("legal_status", "法律状态", True, "审中、有效、失效（未缴年费）、无效（被宣告无效）或届满", "有效"),
    Column("annual_fee_paid_until", "年费缴至", False, "已缴年费覆盖到的日期", "2026-06-18"),
    Column("expiry_override", "到期日（如有延长）", False, "仅在专利权期限获得补偿或延长时填写；一般留空", ""),
    Column("ipc_main", "主分类号", False, "IPC 分类号，如 H01M 4/583；外观设计可填洛迦诺分类号，如 14-03",
           "H01M 4/583"),
    Column("ipc_codes", "其他分类号", False, "多个以分号（; 或 ；）分隔", "H01M 4/62；C01B 32/184"),
    Column("abstract", "摘要", False, "不超过5000字", "本发明公开了一种石墨烯复合电极材料的制备方法……"),
    Column("inventors", "发明人", False, "多人以 ; 、 , 分隔", "张三；李四"),
    Column("co_owners", "共有人", False, "本机构以外的其他专利权人，多个以分号分隔；无则留空", ""),
    Column("co_owner_consent", "共有人已同意开放许可", False,
           "是或否；有共有人时，声明开放许可须全体共有人书面同意", "否"),
    Column("pledged", "已质押", False, "是或否", "否"),
    Column("pledgee_consent", "质权人已同意", False, "是或否；已质押的专利声明开放许可须质权人同意", "否"),
    Column("exclusive_or_sole_licence", "存在独占或排他许可", False,
           "否、独占或排他（填“是”按独占许可登记）", "否"),
    Column("proceedings_suspended", "程序中止", False, "是或否；因权属纠纷或财产保全中止有关程序时填是", "否"),
    Column("government_funded", "财政资助", False, "是或否；利用财政资金形成的专利填是", "是"),
    Column("implemented", "已实施", False, "是或否；已自行实施或已许可、转让实施的填是", "否"),
    Column("trl", "技术成熟度", False, "1–9 的整数（TRL）", "5"),
    Column("transfer_intents", "转化意愿", False,
           "转让、许可、作价入股、自行实施，可多选，以 ; 、 , 分隔", "许可；转让"),
    Column("application_scenarios", "应用场景", False, "不超过2000字", "动力电池负极材料"),
    Column("claims_count", "权利要求数", False, "正整数", "10"),
)
COLUMN_BY_KEY = {column.key: column for column in COLUMNS}
_KEY_HEADERS = tuple((column.key, column.header) for column in COLUMNS)
REQUIRED_HEADERS = tuple(column.header for column in COLUMNS if column.required)

MAX_TITLE_LENGTH = 300
MAX_ABSTRACT_LENGTH = 5000
MAX_SCENARIOS_LENGTH = 2000
MAX_NAME_LENGTH = 100
MAX_LIST_ITEMS = 50
MAX_CLAIMS = 9999
MAX_EXCEL_SERIAL = 2958465  # 9999-12-31
_EXCEL_EPOCH = date(1899, 12, 30)
#: The Patent Law took effect on 1 April 1985; no patent date is earlier.
EARLIEST_PATENT_DATE = date(1985, 4, 1)

_HEADER_NOISE = str.maketrans({"(": "（", ")": "）", "*": None, "＊": None, " ": None, "\u3000": None, "\t": None})
_CONTROL = str.maketrans({c: None for c in range(32) if chr(c) not in "\t\n\r"} | {0x7F: None})
_LIST_SEPARATORS = re.compile(r"[;；、,，\n]+")
_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T]00:00(?::00(?:\.0+)?)?)?")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")

_BOOL_WORDS = dict.fromkeys(("是", "y", "yes", "true", "1", "on", "√", "✓", "有"), True) | dict.fromkeys(
    ("否", "n", "no", "false", "0", "×", "无", ""), False
)


def _words(mapping: dict[str, Any], enum_cls: Any) -> dict[str, Any]:
    """Accept the Chinese words, the enum's own values and labels."""
    words = {word.lower(): value for word, value in mapping.items()}
    for member in enum_cls:
        words[member.value] = member
        words[member.label.replace(" ", "").lower()] = member
    return words


LEGAL_STATUS_WORDS = _words(
    {
        "审中": LegalStatus.PENDING, "在审": LegalStatus.PENDING, "审查中": LegalStatus.PENDING,
        "实审": LegalStatus.PENDING, "公开": LegalStatus.PENDING,
        "有效": LegalStatus.GRANTED, "授权": LegalStatus.GRANTED, "已授权": LegalStatus.GRANTED,
        "有权": LegalStatus.GRANTED, "专利权维持": LegalStatus.GRANTED,
        "失效": LegalStatus.LAPSED, "终止": LegalStatus.LAPSED, "权利终止": LegalStatus.LAPSED,
        "未缴年费终止": LegalStatus.LAPSED,
        "无效": LegalStatus.INVALIDATED, "宣告无效": LegalStatus.INVALIDATED, "全部无效": LegalStatus.INVALIDATED,
        "届满": LegalStatus.EXPIRED, "期限届满": LegalStatus.EXPIRED, "到期": LegalStatus.EXPIRED,
    },
    LegalStatus,
)
PATENT_TYPE_WORDS = _words(
    {
        "发明": PatentType.INVENTION, "发明专利": PatentType.INVENTION,
        "实用新型": PatentType.UTILITY_MODEL, "实用新型专利": PatentType.UTILITY_MODEL,
        "外观设计": PatentType.DESIGN, "外观设计专利": PatentType.DESIGN, "外观": PatentType.DESIGN,
    },
    PatentType,
)
TRANSFER_INTENT_WORDS = _words({"入股": TransferIntent.EQUITY, "实施": TransferIntent.OWN_USE}, TransferIntent)
#: 存在独占或排他许可: (exclusive_licence, sole_licence).
LICENCE_RESTRICTION_WORDS: dict[str, tuple[bool, bool]] = {
    word: (False, False) for word in ("否", "无", "none", "no", "n", "0", "false")
} | {word: (True, False) for word in ("是", "独占", "独占许可", "exclusive", "yes", "y", "1", "true")} | {
    word: (False, True) for word in ("排他", "排他许可", "sole")
}


def normalise_header(raw: object) -> str:
    """Headers as people retype them: spaces, a required-marker ``*`` and half-width brackets vary."""
    return str(raw).translate(_HEADER_NOISE).strip()


#: Normalised header (or the English key) → column key.
HEADER_KEYS: dict[str, str] = {normalise_header(c.header): c.key for c in COLUMNS} | {c.key: c.key for c in COLUMNS}


def clean_text(value: Any) -> str:
    """A cell as trimmed text without control characters (PostgreSQL refuses NUL in text)."""
    if value is None:
        return ""
    if value.__class__ is not str:
        value = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    text = value.strip()
    # isprintable() is a fast check; the translation runs only for the rare text that needs it.
    return text if text.isprintable() else text.translate(_CONTROL).strip()


def _text(value: Any, max_length: int) -> str:
    text = clean_text(value)
    if len(text) > max_length:
        raise InvalidValue(f"不能超过{max_length}个字符", "too_long")
    return text


def parse_date(value: Any) -> date | None:
    """A date cell: a real date, an Excel serial number, 2020-01-02, 2020/1/2, 2020.1.2, 2020年1月2日 or 20200102."""
    if value is None:
        return None
    if value.__class__ is str and len(value) == 10 and value[4] == "-" == value[7]:
        # The common ISO form skips the general path (bulk uploads parse four dates a row).
        year, month, day = value[:4], value[5:7], value[8:]
        if year.isdigit() and month.isdigit() and day.isdigit() and value.isascii():
            try:
                return _not_before_patent_law(date(int(year), int(month), int(day)))
            except InvalidValue:
                raise
            except ValueError:
                pass  # an impossible day such as 2021-02-30: the general path below names it
    if isinstance(value, bool):
        raise InvalidValue("日期格式不正确，应如 2020-01-02")
    if isinstance(value, datetime):
        return _not_before_patent_law(value.date())
    if isinstance(value, date):
        return _not_before_patent_law(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise InvalidValue("日期格式不正确，应如 2020-01-02")
        number = int(value)
        if 1 <= number <= MAX_EXCEL_SERIAL:
            return _not_before_patent_law(_EXCEL_EPOCH + timedelta(days=number))
        value = str(number)
    text = clean_text(value).translate(_DIGITS)
    if not text:
        return None
    match = _DATE.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if not match:
        raise InvalidValue("日期格式不正确，应如 2020-01-02、2020/1/2、2020.1.2 或 20200102")
    year, month, day = (int(part) for part in match.groups())
    try:
        parsed = date(year, month, day)
    except ValueError:
        raise InvalidValue(f"日期不存在：{year}年{month}月{day}日") from None
    return _not_before_patent_law(parsed)


def _not_before_patent_law(value: date) -> date:
    if value < EARLIEST_PATENT_DATE:
        raise InvalidValue("日期不能早于1985-04-01（专利法施行日）", "too_early")
    return value


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    answer = _BOOL_WORDS.get(clean_text(value).lower())
    if answer is None:
        raise InvalidValue("应填写“是”或“否”")
    return answer


def _int_between(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        raise InvalidValue("应为整数")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidValue("应为整数")
        value = int(value)
    if not isinstance(value, int):
        text = clean_text(value).translate(_DIGITS)
        if not text:
            return None
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise InvalidValue("应为整数")
        value = int(text)
    if not low <= value <= high:
        raise InvalidValue(f"应在{low}至{high}之间", "out_of_range")
    return value


def _choice(value: Any, words: Mapping[str, Any], message: str) -> Any:
    text = clean_text(value).replace(" ", "").lower()
    if not text:
        return None
    try:
        return words[text]
    except KeyError:
        raise InvalidValue(message) from None


def _items(value: Any) -> list[str]:
    """A list cell: a real list (API, form checkboxes) or text separated by ; 、 , (half or full width)."""
    if value is None or value == "":
        return []
    parts = value if isinstance(value, list | tuple) else _LIST_SEPARATORS.split(clean_text(value))
    items = [clean_text(part) for part in parts]
    return [item for item in items if item]


def _names(value: Any) -> tuple[str, ...]:
    names = _items(value)
    if len(names) > MAX_LIST_ITEMS:
        raise InvalidValue(f"最多填写{MAX_LIST_ITEMS}个")
    for name in names:
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidValue(f"“{name[:20]}…”过长，每项不能超过{MAX_NAME_LENGTH}个字符")
    return tuple(dict.fromkeys(names))


def _classification(value: Any, allow_locarno: bool) -> str | None:
    text = clean_text(value)
    return normalise_ipc(text, allow_locarno=allow_locarno) if text else None


def _classifications(value: Any, allow_locarno: bool) -> tuple[str, ...]:
    codes = _items(value)
    if len(codes) > MAX_LIST_ITEMS:
        raise InvalidValue(f"最多填写{MAX_LIST_ITEMS}个分类号")
    return tuple(dict.fromkeys(normalise_ipc(code, allow_locarno=allow_locarno) for code in codes))


def _intents(value: Any) -> tuple[TransferIntent, ...]:
    intents = []
    for item in _items(value):
        intent = TRANSFER_INTENT_WORDS.get(item.replace(" ", "").lower())
        if intent is None:
            raise InvalidValue(f"转化意愿“{item[:20]}”无法识别，应为转让、许可、作价入股或自行实施")
        intents.append(intent)
    return tuple(dict.fromkeys(intents))


def _licence_restriction(value: Any) -> tuple[bool, bool]:
    if isinstance(value, bool):
        return (value, False)
    text = clean_text(value).replace(" ", "").lower()
    if not text:
        return (False, False)
    try:
        return LICENCE_RESTRICTION_WORDS[text]
    except KeyError:
        raise InvalidValue("应填写否、独占或排他") from None


@dataclass(slots=True)
class PatentInput:
    """One patent's validated fields, ready to be stored."""

    application_number: str
    patent_type: PatentType
    is_pct: bool
    title: str
    filing_date: date
    grant_date: date | None
    legal_status: LegalStatus
    annual_fee_paid_until: date | None
    expiry_override: date | None
    expiry_date: date
    ipc_main: str | None
    ipc_codes: tuple[str, ...]
    abstract: str
    inventors: tuple[str, ...]
    co_owners: tuple[str, ...]
    co_owner_consent: bool
    pledged: bool
    pledgee_consent: bool
    exclusive_licence: bool
    sole_licence: bool
    proceedings_suspended: bool
    government_funded: bool
    implemented: bool
    trl: int | None
    transfer_intents: tuple[TransferIntent, ...]
    application_scenarios: str
    claims_count: int | None

    def values(self, names: Iterable[str]) -> dict[str, Any]:
        """Column values for the patents table (lists of strings for the JSON columns)."""
        out = {name: getattr(self, name) for name in names}
        for name in _LIST_FIELDS.intersection(out):
            out[name] = [str(item) for item in out[name]]
        return out


_LIST_FIELDS = frozenset({"ipc_codes", "inventors", "co_owners", "transfer_intents"})


#: Which table columns each field sets (the rest set the column of the same name).
_COLUMNS_OF_KEY: dict[str, tuple[str, ...]] = {
    "application_number": ("application_number", "patent_type", "is_pct"),
    "patent_type": (),
    "filing_date": ("filing_date", "expiry_date"),
    "expiry_override": ("expiry_override", "expiry_date"),
    "exclusive_or_sole_licence": ("exclusive_licence", "sole_licence"),
}


def column_names(keys: Iterable[str] | None = None) -> tuple[str, ...]:
    """The table columns written when the given fields (default: all) were supplied."""
    names: dict[str, None] = {}
    for key in keys if keys is not None else COLUMN_BY_KEY:
        names.update(dict.fromkeys(_COLUMNS_OF_KEY.get(key, (key,))))
    return tuple(names)


_REQUIRED = object()  # the "empty value" of a required field


def _once_per_text(parse: Callable[..., Any]) -> Callable[..., Any]:
    """Parse each distinct text once: an inventory table repeats the same statuses, flags, intents,
    classification codes and dates across thousands of rows. Results are immutable; errors are
    raised again each time."""
    cached = lru_cache(maxsize=16_384)(parse)

    def parse_text_once(value: Any, *args: Any) -> Any:
        return cached(value, *args) if value.__class__ is str else parse(value, *args)

    return parse_text_once


_TYPE_MESSAGE = "专利类型应为发明、实用新型或外观设计"
_STATUS_MESSAGE = "法律状态应为审中、有效、失效、无效或届满"
_date_once = _once_per_text(parse_date)
_bool_once = _once_per_text(parse_bool)

#: Each field's parser and its value when the cell is empty. Classification codes are parsed after
#: the application number, because a design's may be Locarno codes.
_PARSERS: tuple[tuple[str, Callable[[Any], Any], Any], ...] = (
    ("application_number", parse_application_number, _REQUIRED),
    ("title", partial(_text, max_length=MAX_TITLE_LENGTH), _REQUIRED),
    ("patent_type", _once_per_text(partial(_choice, words=PATENT_TYPE_WORDS, message=_TYPE_MESSAGE)), None),
    ("filing_date", _date_once, _REQUIRED),
    ("grant_date", _date_once, None),
    ("legal_status", _once_per_text(partial(_choice, words=LEGAL_STATUS_WORDS, message=_STATUS_MESSAGE)), _REQUIRED),
    ("annual_fee_paid_until", _date_once, None),
    ("expiry_override", _date_once, None),
    ("abstract", partial(_text, max_length=MAX_ABSTRACT_LENGTH), ""),
    ("inventors", _once_per_text(_names), ()),
    ("co_owners", _once_per_text(_names), ()),
    ("co_owner_consent", _bool_once, False),
    ("pledged", _bool_once, False),
    ("pledgee_consent", _bool_once, False),
    ("exclusive_or_sole_licence", _once_per_text(_licence_restriction), (False, False)),
    ("proceedings_suspended", _bool_once, False),
    ("government_funded", _bool_once, False),
    ("implemented", _bool_once, False),
    ("trl", _once_per_text(partial(_int_between, low=1, high=9)), None),
    ("transfer_intents", _once_per_text(_intents), ()),
    ("application_scenarios", partial(_text, max_length=MAX_SCENARIOS_LENGTH), ""),
    ("claims_count", _once_per_text(partial(_int_between, low=1, high=MAX_CLAIMS)), None),
)
_CLASSIFICATION_PARSERS = (
    ("ipc_main", _once_per_text(_classification), None),
    ("ipc_codes", _once_per_text(_classifications), ()),
)
#: Fields stored as they are parsed.
_PLAIN_KEYS = tuple(
    key for key in COLUMN_BY_KEY if key not in ("application_number", "patent_type", "exclusive_or_sole_licence")
)


def validate_patent(
    values: Mapping[str, Any], *, today: date, design_cutover: date
) -> PatentInput | list[FieldError]:
    """Validate one patent's raw fields (keyed by :attr:`Column.key`): the validated input, or every
    problem found as :class:`FieldError` on the field's key. Bulk uploads call this once a row, so
    empty cells skip their parsers."""
    errors: list[FieldError] = []
    failed: set[str] = set()
    v: dict[str, Any] = {}
    for key, parse, empty in _PARSERS:
        raw = values.get(key)
        if raw is None or raw == "":
            value = empty
        else:
            try:
                value = parse(raw)
            except InvalidValue as exc:
                errors.append(FieldError(key, exc.message, exc.code))
                failed.add(key)
                v[key] = None
                continue
        if value is _REQUIRED or (empty is _REQUIRED and (value is None or value == "")):
            errors.append(FieldError(key, "必填，不能为空", "required"))
            failed.add(key)
            value = None
        v[key] = value

    number: ApplicationNumber | None = v["application_number"]
    declared_type = v["patent_type"]
    if number and declared_type and declared_type is not number.patent_type:
        errors.append(FieldError("patent_type", f"与申请号不符：申请号表示{number.patent_type.label}", "mismatch"))
    patent_type = number.patent_type if number else declared_type
    locarno = patent_type is PatentType.DESIGN
    for key, parse, empty in _CLASSIFICATION_PARSERS:
        raw = values.get(key)
        try:
            v[key] = empty if raw is None or raw == "" else parse(raw, locarno)
        except InvalidValue as exc:
            errors.append(FieldError(key, exc.message, exc.code))

    filing, grant, status = v["filing_date"], v["grant_date"], v["legal_status"]
    fee_until, override = v["annual_fee_paid_until"], v["expiry_override"]
    if filing and filing > today:
        errors.append(FieldError("filing_date", "申请日不能晚于今天", "future"))
    if grant and grant > today:
        errors.append(FieldError("grant_date", "授权日不能晚于今天", "future"))
    if filing and grant and grant < filing:
        errors.append(FieldError("grant_date", "授权日不能早于申请日", "before_filing"))
    if status is LegalStatus.PENDING and grant:
        errors.append(FieldError("grant_date", "审中的专利不应填写授权日", "unexpected"))
    if status not in (None, LegalStatus.PENDING) and grant is None and "grant_date" not in failed:
        errors.append(FieldError("grant_date", f"法律状态为“{status.label}”的专利须填写授权日", "required"))
    if filing and fee_until and fee_until < filing:
        errors.append(FieldError("annual_fee_paid_until", "年费缴至日期不能早于申请日", "before_filing"))
    expiry = None
    if filing and patent_type:
        statutory = statutory_expiry(patent_type, filing, design_cutover)
        if override and override < statutory:
            errors.append(
                FieldError("expiry_override", f"延长后的到期日不能早于法定到期日{statutory:%Y-%m-%d}", "too_early")
            )
        expiry = override or statutory
        if status is LegalStatus.GRANTED and expiry < today:
            errors.append(FieldError("legal_status", f"专利权已于{expiry:%Y-%m-%d}期满，法律状态应为“届满”"))
        if status is LegalStatus.EXPIRED and expiry >= today:
            errors.append(FieldError("legal_status", f"专利权保护期至{expiry:%Y-%m-%d}，尚未届满"))

    if errors or number is None or expiry is None:
        return errors
    exclusive, sole = v["exclusive_or_sole_licence"]
    return PatentInput(
        application_number=number.canonical,
        patent_type=number.patent_type,
        is_pct=number.is_pct,
        expiry_date=expiry,
        exclusive_licence=exclusive,
        sole_licence=sole,
        **{key: v[key] for key in _PLAIN_KEYS},
    )


def validate_inventory_row(
    cells: Mapping[str, Any], *, row: int, today: date, design_cutover: date
) -> PatentInput | list[FieldError]:
    """Validate one row of the inventory table, its cells keyed by the Chinese headers of
    :data:`COLUMNS`. Errors name the column header and the spreadsheet row (the header row is 1)."""
    result = validate_patent(
        {key: cells.get(header) for key, header in _KEY_HEADERS}, today=today, design_cutover=design_cutover
    )
    if isinstance(result, list):
        return [FieldError(COLUMN_BY_KEY[e.field].header, e.message, e.code, row) for e in result]
    if result.title.startswith(TEMPLATE_EXAMPLE_MARK):
        message = "这是模板中的示例行，请删除或替换为本机构的专利"
        return [FieldError(COLUMN_BY_KEY["title"].header, message, "example", row)]
    return result
