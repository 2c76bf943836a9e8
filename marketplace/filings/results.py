"""Importing a registry's results (办理结果): which exported records were filed (with the 备案号 or
16-digit 登记编号), which were refused (退回, with reasons), and which cancellations went through.

The file is checked as a whole and applied all or nothing: :func:`read_table` opens it (CSV in UTF-8,
with or without BOM, or XLSX), :func:`layout` finds the columns by their accepted headers
(:data:`HEADERS`), :func:`parse_rows` checks each row on its own and :func:`decide` checks the rows
against the filings they name — all pure. :func:`import_results` reads those filings, and when no
row has a problem moves them (``services.move``, audited), keeps a :class:`FilingImport` and mails
the licensors, in one transaction. A row that repeats what is already recorded counts as unchanged,
so importing the same file twice is harmless.
"""

from __future__ import annotations

import codecs
import csv
import enum
import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

import msgspec
from python_calamine import CalamineError, CalamineWorkbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from marketplace.accounts.models import Organisation
from marketplace.accounts.rules import Principal
from marketplace.audit.services import record
from marketplace.clock import business_date, today
from marketplace.errors import FieldError, Forbidden, NotFound, ValidationFailed
from marketplace.filings import reconciliation, services
from marketplace.filings.models import (
    ContractFiling,
    FilingBatch,
    FilingBatchItem,
    FilingImport,
    FilingStatus,
    RecordKind,
    Registry,
)
from marketplace.licensing.models import LicenceContract
from marketplace.licensing.services import party_emails_for
from marketplace.money import parse_yuan
from marketplace.outbox.services import Email, queue_emails
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.patents.rules import clean_text, normalise_header

MAX_ROWS = 200_000
MAX_REASONS_LENGTH = 2000
LOOKUP_CHUNK = 5000
NOT_UTF8 = "文件编码不是 UTF-8，请在 Excel 中另存为“CSV UTF-8”或上传 XLSX"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0"
_ZIP_MAGIC = b"PK\x03\x04"
#: Excel keeps 15 significant digits: a longer number typed into a number cell has lost its tail.
_EXCEL_DIGITS = 15


class Outcome(enum.StrEnum):
    """What the registry decided (办理结果)."""

    FILED = "filed"
    REFUSED = "refused"


class RowResult(enum.StrEnum):
    """What importing a row did to its contract's filing."""

    FILED = "filed"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    UNCHANGED = "unchanged"

    @property
    def label(self) -> str:
        return {
            "filed": "已办结",
            "refused": "被退回",
            "cancelled": "已注销",
            "unchanged": "无变化（结果此前已导入）",
        }[self.value]


FILED_WORDS = ("准予备案", "已备案", "备案成功", "通过", "准予登记", "已登记", "登记成功")
REFUSED_WORDS = ("不予备案", "不予登记", "退回", "不予受理", "驳回")
OUTCOME_WORDS: dict[str, Outcome] = dict.fromkeys(FILED_WORDS, Outcome.FILED) | dict.fromkeys(
    REFUSED_WORDS, Outcome.REFUSED
)
RECORD_KIND_WORDS: dict[str, RecordKind] = (
    {kind.label: kind for kind in RecordKind} | {kind.value: kind for kind in RecordKind} | {"新登记": RecordKind.NEW}
)

# ---------------------------------------------------------------------------------------------
# The columns: every accepted header in one table
# ---------------------------------------------------------------------------------------------

CONTRACT_NUMBER = "contract_number"
OUTCOME = "outcome"
NUMBER = "number"
REASONS = "refusal_reasons"
DECIDED_ON = "decided_on"
RECORD_KIND = "record_kind"
#: Registry-recorded values that replace what we exported (keys of ``ContractFiling.recorded``).
AMOUNT_KEYS = ("fee_fen", "contract_value_fen", "transaction_value_fen")
DATE_KEYS = ("start", "end")

_LICENCE, _TECH = Registry.LICENCE_FILING, Registry.TECH_CONTRACT
#: Accepted header → (column, the only registry whose results carry it; None: either registry).
#: Headers are compared after ``normalise_header`` (spaces, ``*`` and half-width brackets vary).
HEADERS: dict[str, tuple[str, Registry | None]] = {
    "合同编号": (CONTRACT_NUMBER, None),
    "办理结果": (OUTCOME, None),
    "编号": (NUMBER, None),
    "备案号": (NUMBER, _LICENCE),
    "登记编号": (NUMBER, _TECH),
    "退回原因": (REASONS, None),
    "办理日期": (DECIDED_ON, None),
    "记录类型": (RECORD_KIND, None),
    "登记类型": (RECORD_KIND, _TECH),
    "使用费（元）": ("fee_fen", _LICENCE),
    "合同成交额（元）": ("contract_value_fen", _TECH),
    "技术交易额（元）": ("transaction_value_fen", _TECH),
    "许可期限起始日": ("start", _LICENCE),
    "许可期限届满日": ("end", _LICENCE),
    "有效期起": ("start", _TECH),
    "有效期止": ("end", _TECH),
}
REQUIRED = {CONTRACT_NUMBER: "合同编号", OUTCOME: "办理结果"}


def default_header(key: str, registry: Registry) -> str:
    """How messages name a column the file does not have."""
    if key == NUMBER:
        return registry.number_label
    return next(header for header, (k, only) in HEADERS.items() if k == key and only in (None, registry))


_HEADER_KEYS = {normalise_header(header): (header, *target) for header, target in HEADERS.items()}

_LICENCE_NUMBER = re.compile(r"[A-Z0-9]{6,30}")
_REGISTRATION_NUMBER = re.compile(r"[0-9]{16}")
_DAY = re.compile(r"(\d{4})([-/])(\d{1,2})\2(\d{1,2})")


def _file_error(message: str, code: str = "bad_file") -> ValidationFailed:
    return ValidationFailed([FieldError("file", message, code)], message)


def parse_registry(raw: object) -> Registry:
    try:
        return Registry(str(raw or "").strip())
    except ValueError:
        choices = "、".join(f"{r.label}（{r.value}）" for r in Registry)
        raise ValidationFailed.single(
            "registry", f"请选择登记机关：{choices}", "required" if not raw else "invalid"
        ) from None


# ---------------------------------------------------------------------------------------------
# Reading the file (pure)
# ---------------------------------------------------------------------------------------------

Rows = Iterator[tuple[int, Sequence[Any]]]


def _decode(content: bytes) -> str:
    """UTF-8, with or without BOM; anything else (GBK, GB18030, UTF-16 …) is refused by name."""
    if b"\x00" in content[:4096] and not content.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _file_error("文件不是 CSV 文本，也不是 XLSX 工作簿", "bad_file")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _file_error(NOT_UTF8, "not_utf8") from None


def _csv_rows(content: bytes) -> tuple[list[Any], Rows]:
    text = _decode(content)
    if not text.strip():
        raise _file_error("文件为空", "empty")
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader, [])
    except csv.Error as exc:
        raise _file_error(f"CSV 第1行格式不正确：{exc}") from None

    def rows() -> Rows:
        # Rows are numbered as a spreadsheet shows them: the header is row 1.
        number = 1
        try:
            for number, cells in enumerate(reader, start=2):
                yield number, cells
        except csv.Error as exc:
            raise _file_error(f"CSV 第{number + 1}行格式不正确：{exc}") from None

    return headers, rows()


def _xlsx_rows(content: bytes) -> tuple[list[Any], Rows]:
    """The first worksheet (calamine: dates arrive as dates, numbers as floats, empty cells as "")."""
    try:
        rows = (
            CalamineWorkbook.from_filelike(io.BytesIO(content)).get_sheet_by_index(0).to_python(skip_empty_area=False)
        )
    except (CalamineError, ValueError, IndexError):
        raise _file_error("无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿", "bad_xlsx") from None
    if not rows or _is_blank(rows[0]):
        raise _file_error("文件为空：工作簿第一个工作表的第1行应为表头", "empty")
    return list(rows[0]), enumerate(rows[1:], start=2)


def read_table(filename: str, content: bytes) -> tuple[list[Any], Rows]:
    """The header row and the numbered data rows of an uploaded results file, its format decided by
    its content (an ``.xlsx`` name on anything else is refused)."""
    suffix = PurePath(filename or "").suffix.lower()
    if not content:
        raise _file_error("文件为空", "empty")
    if content.startswith(_XLS_MAGIC) or suffix == ".xls":
        raise _file_error("不支持旧版 Excel（.xls）文件，请另存为 XLSX 或“CSV UTF-8”", "unsupported")
    if content.startswith(_ZIP_MAGIC):
        return _xlsx_rows(content)
    if suffix in (".xlsx", ".xlsm"):
        raise _file_error("无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿", "bad_xlsx")
    if suffix not in ("", ".csv", ".txt"):
        raise _file_error("仅支持 CSV（UTF-8）或 XLSX 文件", "unsupported")
    return _csv_rows(content)


def _is_blank(cells: Sequence[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


@dataclass(frozen=True)
class Layout:
    """Where each known column is in the file, and its header there (messages name the column as
    the file does)."""

    index: dict[str, int]
    header: dict[str, str]

    def cells(self, cells: Sequence[Any]) -> dict[str, Any]:
        return {key: cells[i] if i < len(cells) else None for key, i in self.index.items()}


def layout(headers: Sequence[Any], registry: Registry) -> Layout:
    """Find the columns by their headers (order free, unknown columns ignored), reporting at once
    missing required columns, columns given twice and columns of the other registry's results."""
    index: dict[str, int] = {}
    header: dict[str, str] = {}
    errors: list[FieldError] = []
    for i, raw in enumerate(headers):
        found = _HEADER_KEYS.get(normalise_header(raw if raw is not None else ""))
        if found is None:
            continue
        name, key, only = found
        if only is not None and only is not registry:
            errors.append(
                FieldError(
                    "file",
                    f"列“{name}”属于{only.label}的结果，与所选的“{registry.label}”不符，请确认登记机关是否选对",
                    "wrong_registry",
                    1,
                )
            )
            continue
        if key in index:
            errors.append(
                FieldError(
                    "file", f"列“{name}”与列“{header[key]}”重复（含义相同），请只保留一列", "duplicate_column", 1
                )
            )
            continue
        index[key], header[key] = i, name
    missing = [name for key, name in REQUIRED.items() if key not in index]
    if missing:
        present = [clean_text(raw) for raw in headers if clean_text(raw)]
        shown = "、".join(present[:20]) + ("等" if len(present) > 20 else "") if present else "无"
        errors.insert(
            0,
            FieldError(
                "file",
                f"缺少必填列：{'、'.join(missing)}（第1行应为表头；文件中的列：{shown}）",
                "missing_columns",
                1,
            ),
        )
    if errors:
        raise ValidationFailed(errors, errors[0].message)
    return Layout(index, header)


# ---------------------------------------------------------------------------------------------
# One row on its own (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    """One row of the results file as read. ``ok`` is False when the row has a problem of its own
    (it is still checked against its contract, so every problem is reported at once)."""

    row: int
    contract_number: str
    outcome: Outcome | None = None
    number: str | None = None
    reasons: str | None = None
    decided_on: date | None = None
    record_kind: RecordKind | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


class _Bad(ValueError):
    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message, self.code = message, code


def parse_day(value: Any) -> date | None:
    """A date cell: a spreadsheet date, or text YYYY-MM-DD or YYYY/MM/DD (month and day may be one digit)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool | int | float):
        raise _Bad("日期应为 YYYY-MM-DD 或 YYYY/MM/DD，例如 2026-03-05")
    text = clean_text(value)
    if not text:
        return None
    match = _DAY.fullmatch(text)
    if match is None:
        raise _Bad(f"日期应为 YYYY-MM-DD 或 YYYY/MM/DD，例如 2026-03-05（现为“{text}”）")
    year, month, day = int(match.group(1)), int(match.group(3)), int(match.group(4))
    try:
        return date(year, month, day)
    except ValueError:
        raise _Bad(f"日期不存在：{text}") from None


def parse_amount(value: Any) -> int | None:
    """Yuan with at most two decimals → fen."""
    if isinstance(value, bool):
        raise _Bad("金额格式不正确")
    text = repr(value) if isinstance(value, float) else clean_text(value)
    if not text:
        return None
    try:
        return parse_yuan(text)
    except ValueError as exc:
        raise _Bad(f"{exc}（现为“{text}”）") from None


def parse_number(value: Any, registry: Registry) -> str | None:
    """The registry's number: a licence filing number is 6–30 letters or digits, a registration
    number exactly 16 digits."""
    label = registry.number_label
    if isinstance(value, float | int) and not isinstance(value, bool):
        digits = str(int(value)) if float(value).is_integer() else repr(value)
        if len(digits) > _EXCEL_DIGITS:
            raise _Bad(
                f"{label}存成了数字格式，Excel 只保留15位有效数字，末几位可能已丢失；请把该列设为文本后重新填写",
                "numeric_cell",
            )
        text = digits
    else:
        text = clean_text(value).upper()
    if not text:
        return None
    if registry is Registry.TECH_CONTRACT:
        if not _REGISTRATION_NUMBER.fullmatch(text):
            raise _Bad(f"登记编号应为16位数字（现为“{text}”，{len(text)}位）")
    elif not _LICENCE_NUMBER.fullmatch(text):
        raise _Bad(f"备案号应为6–30位字母或数字（现为“{text}”）")
    return text


def parse_outcome(value: Any) -> Outcome | None:
    text = clean_text(value).replace(" ", "").replace("\u3000", "")
    if not text:
        return None
    outcome = OUTCOME_WORDS.get(text)
    if outcome is None:
        raise _Bad(
            f"无法识别办理结果“{text}”：准予填写{'、'.join(FILED_WORDS)}之一，退回填写{'、'.join(REFUSED_WORDS)}之一"
        )
    return outcome


def parse_record_kind(value: Any) -> RecordKind | None:
    text = clean_text(value)
    if not text:
        return None
    kind = RECORD_KIND_WORDS.get(text)
    if kind is None:
        raise _Bad(f"记录类型应为新备案、变更或注销（现为“{text}”）")
    return kind


def parse_row(
    cells: dict[str, Any], *, row: int, layout: Layout, registry: Registry, on: date
) -> tuple[ResultRow | None, list[FieldError]]:
    """Read and check one data row (cells keyed by column). Returns the row (None without a contract
    number) and its problems, each naming the row, the column as headed in the file and a code."""
    found: list[tuple[int, FieldError]] = []
    values: dict[str, Any] = {}
    bad: set[str] = set()

    def error(key: str, message: str, code: str = "invalid") -> None:
        bad.add(key)
        column = layout.header.get(key) or default_header(key, registry)
        found.append((layout.index.get(key, len(layout.index)), FieldError(column, message, code, row)))

    def read(key: str, parse: Any, *args: Any) -> None:
        if key not in cells:
            return
        try:
            values[key] = parse(cells[key], *args)
        except _Bad as exc:
            error(key, exc.message, exc.code)

    contract_number = clean_text(cells.get(CONTRACT_NUMBER)).upper()
    if not contract_number:
        error(CONTRACT_NUMBER, "合同编号不能为空", "required")
    read(OUTCOME, parse_outcome)
    read(NUMBER, parse_number, registry)
    read(DECIDED_ON, parse_day)
    read(RECORD_KIND, parse_record_kind)
    for key in (*AMOUNT_KEYS, *DATE_KEYS):
        read(key, parse_amount if key in AMOUNT_KEYS else parse_day)
    reasons = clean_text(cells.get(REASONS)) or None

    outcome = values.get(OUTCOME)
    number = values.get(NUMBER)
    if outcome is None and OUTCOME not in bad:
        error(OUTCOME, "办理结果不能为空", "required")
    if outcome is Outcome.FILED and number is None and NUMBER not in bad:
        error(NUMBER, f"办理结果为准予时必须填写{registry.number_label}", "required")
    if outcome is Outcome.REFUSED:
        if reasons is None:
            error(REASONS, "办理结果为退回时必须填写退回原因", "required")
        elif len(reasons) > MAX_REASONS_LENGTH:
            error(REASONS, f"退回原因不能超过{MAX_REASONS_LENGTH}个字符", "too_long")
    decided_on = values.get(DECIDED_ON)
    if decided_on is not None and decided_on > on:
        error(DECIDED_ON, f"办理日期不能晚于今天（{on.isoformat()}）", "future")
    start, end = values.get("start"), values.get("end")
    if start is not None and end is not None and end < start:
        error("end", f"期限届满日（{end.isoformat()}）早于起始日（{start.isoformat()}）", "out_of_range")

    # Problems in the order of the file's columns.
    errors = [problem for _, problem in sorted(found, key=lambda item: item[0])]
    if not contract_number:
        return None, errors
    overrides = {key: values[key] for key in (*AMOUNT_KEYS, *DATE_KEYS) if values.get(key) is not None}
    overrides = {key: value.isoformat() if isinstance(value, date) else value for key, value in overrides.items()}
    return (
        ResultRow(
            row=row,
            contract_number=contract_number,
            outcome=outcome,
            number=number,
            reasons=reasons if outcome is Outcome.REFUSED else None,
            decided_on=decided_on or on,
            record_kind=values.get(RECORD_KIND),
            overrides=overrides,
            ok=not errors,
        ),
        errors,
    )


def parse_rows(
    rows: Iterable[tuple[int, Sequence[Any]]], *, layout: Layout, registry: Registry, on: date
) -> tuple[list[ResultRow], list[FieldError], int]:
    """Every data row read and checked on its own: the rows, their problems (a contract named twice
    is one), and how many data rows there were. Blank rows are skipped; too many rows or none at all
    is a problem of the file."""
    parsed: list[ResultRow] = []
    errors: list[FieldError] = []
    first_row: dict[str, int] = {}
    total = 0
    for row, cells in rows:
        if _is_blank(cells):
            continue
        total += 1
        if total > MAX_ROWS:
            raise _file_error(f"文件超过{MAX_ROWS}行数据，每次最多导入{MAX_ROWS}行，请拆分后分批导入", "too_many_rows")
        result, problems = parse_row(layout.cells(cells), row=row, layout=layout, registry=registry, on=on)
        errors += problems
        if result is None:
            continue
        earlier = first_row.get(result.contract_number)
        if earlier is not None:
            errors.append(
                FieldError(
                    layout.header[CONTRACT_NUMBER],
                    f"合同 {result.contract_number} 在第{earlier}行已出现，每个合同只能有一行结果",
                    "duplicate",
                    row,
                )
            )
            continue
        first_row[result.contract_number] = row
        parsed.append(result)
    if total == 0:
        raise _file_error("文件中没有数据行（第1行为表头，从第2行起每行一个合同的办理结果）", "no_rows")
    return parsed, errors, total


# ---------------------------------------------------------------------------------------------
# The rows against the filings they name (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilingState:
    """What the import needs of one contract's filing with the registry, and of the export that
    carried its pending record (``exported_*`` are None without one)."""

    contract_id: int
    contract_number: str
    licensor_id: int
    filing_id: int
    status: FilingStatus
    record_kind: RecordKind
    number: str | None
    refusal_reasons: str | None
    exported_on: date | None = None
    exported_kind: RecordKind | None = None
    exported_values: dict[str, Any] | None = None


@dataclass(frozen=True)
class Decision:
    """What a row does to its filing."""

    row: ResultRow
    state: FilingState
    result: RowResult
    recorded: dict[str, Any] | None = None

    @property
    def to_status(self) -> FilingStatus:
        return {
            RowResult.FILED: FilingStatus.FILED,
            RowResult.CANCELLED: FilingStatus.CANCELLED,
            RowResult.REFUSED: FilingStatus.REFUSED,
            RowResult.UNCHANGED: self.state.status,
        }[self.result]

    @property
    def kind(self) -> RecordKind:
        return self.state.exported_kind or self.state.record_kind

    def report(self) -> dict[str, Any]:
        row, state = self.row, self.state
        return {
            "row": row.row,
            "contract_id": state.contract_id,
            "contract_number": state.contract_number,
            "result": self.result.value,
            "from_status": state.status.value,
            "to_status": self.to_status.value,
            "record_kind": self.kind.value,
            "number": state.number if self.result is RowResult.REFUSED else row.number,
            "decided_on": row.decided_on.isoformat() if row.decided_on else None,
            "reasons": row.reasons,
        }


def _check(
    row: ResultRow,
    state: FilingState,
    *,
    registry: Registry,
    holders: dict[str, FilingState],
    number_rows: dict[str, ResultRow],
    column: Any,
) -> tuple[Decision | None, list[FieldError]]:
    problems: list[FieldError] = []

    def problem(key: str, message: str, code: str) -> None:
        problems.append(FieldError(column(key), message, code, row.row))

    label = registry.number_label
    if row.number is not None and state.number is not None and row.number != state.number:
        problem(
            NUMBER,
            f"{label} {row.number} 与该合同已记录的 {state.number} 不一致（变更、注销记录沿用首次办理的编号）",
            "number_mismatch",
        )
        return None, problems
    # A filed number already on record repeats an earlier result: the contract may since have moved on
    # (a change or cancellation due or refused), but only an exported record awaits a result.
    if row.outcome is Outcome.FILED and row.number == state.number and state.status is not FilingStatus.EXPORTED:
        return Decision(row, state, RowResult.UNCHANGED), []
    if row.outcome is Outcome.REFUSED and state.status is FilingStatus.REFUSED and row.reasons == state.refusal_reasons:
        return Decision(row, state, RowResult.UNCHANGED), []
    if state.status is not FilingStatus.EXPORTED:
        problem(
            CONTRACT_NUMBER,
            f"合同 {state.contract_number} 的{registry.short_label}当前为“{state.status.label}”，不在等待办理结果"
            f"（只有“{FilingStatus.EXPORTED.label}”的记录可以导入结果）",
            "not_awaiting",
        )
        return None, problems

    exported_kind = state.exported_kind or state.record_kind
    if row.record_kind is not None and row.record_kind is not exported_kind:
        problem(
            RECORD_KIND, f"记录类型为“{row.record_kind.label}”，但导出的是“{exported_kind.label}”记录", "kind_mismatch"
        )
    if state.exported_on is not None and row.decided_on is not None and row.decided_on < state.exported_on:
        problem(
            DECIDED_ON,
            f"办理日期 {row.decided_on.isoformat()} 早于该记录的导出日期 {state.exported_on.isoformat()}",
            "before_export",
        )
    if row.outcome is Outcome.REFUSED:
        return (None, problems) if problems else (Decision(row, state, RowResult.REFUSED), [])

    assert row.number is not None
    holder = holders.get(row.number)
    if holder is not None and holder.contract_id != state.contract_id:
        problem(NUMBER, f"{label} {row.number} 已属于合同 {holder.contract_number}", "number_taken")
    earlier = number_rows.setdefault(row.number, row)
    if earlier is not row:
        problem(
            NUMBER,
            f"{label} {row.number} 与第{earlier.row}行（合同 {earlier.contract_number}）重复",
            "duplicate_number",
        )
    recorded = None
    if state.exported_values is None:
        problem(CONTRACT_NUMBER, "找不到该合同最近一次导出的内容，无法记录登记机关备案的信息", "no_export")
    else:
        recorded = state.exported_values | row.overrides
        if str(recorded.get("end", "")) < str(recorded.get("start", "")):
            problem("end", "期限届满日早于起始日（与导出的期限合并后）", "out_of_range")
    if problems:
        return None, problems
    result = RowResult.CANCELLED if exported_kind is RecordKind.CANCELLATION else RowResult.FILED
    return Decision(row, state, result, recorded), []


def decide(
    rows: Sequence[ResultRow],
    *,
    registry: Registry,
    states: dict[str, FilingState],
    holders: dict[str, FilingState],
    headers: dict[str, str],
) -> tuple[list[Decision], list[FieldError]]:
    """Check each row against its contract's filing: the contract exists, its record awaits a result
    (or the row repeats what is recorded: unchanged), the record kind is the one exported, the number
    keeps the one already recorded and belongs to no other contract, the dates fit the export.
    ``holders`` are the filings of this registry that hold the numbers the rows carry."""
    decisions: list[Decision] = []
    errors: list[FieldError] = []
    number_rows: dict[str, ResultRow] = {}

    def column(key: str) -> str:
        return headers.get(key) or default_header(key, registry)

    for row in rows:
        state = states.get(row.contract_number)
        if state is None:
            message = f"合同编号 {row.contract_number} 不存在"
            errors.append(FieldError(column(CONTRACT_NUMBER), message, "unknown_contract", row.row))
            continue
        if not row.ok or row.outcome is None:
            continue
        decision, problems = _check(
            row, state, registry=registry, holders=holders, number_rows=number_rows, column=column
        )
        errors += problems
        if decision is not None:
            decisions.append(decision)
    return decisions, errors


# ---------------------------------------------------------------------------------------------
# The use case
# ---------------------------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _states(session: AsyncSession, registry: Registry, numbers: Sequence[str]) -> dict[str, FilingState]:
    """The filings the rows name, locked until the import commits (an export or another import of
    the same contracts waits, then sees this one's result)."""
    found: dict[str, FilingState] = {}
    for chunk in _chunks(numbers):
        rows = await session.execute(
            select(
                LicenceContract.id,
                LicenceContract.number,
                LicenceContract.licensor_organisation_id,
                ContractFiling.id,
                ContractFiling.status,
                ContractFiling.record_kind,
                ContractFiling.number,
                ContractFiling.refusal_reasons,
                FilingBatch.created_at,
                FilingBatchItem.record_kind,
                FilingBatchItem.values,
            )
            .join(
                ContractFiling,
                (ContractFiling.contract_id == LicenceContract.id) & (ContractFiling.registry == registry),
            )
            .outerjoin(FilingBatch, FilingBatch.id == ContractFiling.batch_id)
            .outerjoin(
                FilingBatchItem,
                (FilingBatchItem.batch_id == ContractFiling.batch_id)
                & (FilingBatchItem.contract_id == LicenceContract.id),
            )
            .where(LicenceContract.number.in_(list(chunk)))
            .with_for_update(of=ContractFiling)
        )
        for (contract_id, number, licensor_id, filing_id, status, kind, filed_number, reasons, exported_at,
             item_kind, item_values) in rows:  # fmt: skip
            found[number] = FilingState(
                contract_id=contract_id,
                contract_number=number,
                licensor_id=licensor_id,
                filing_id=filing_id,
                status=status,
                record_kind=kind,
                number=filed_number,
                refusal_reasons=reasons,
                exported_on=business_date(exported_at) if exported_at is not None else None,
                exported_kind=item_kind,
                exported_values=item_values,
            )
    return found


async def _holders(session: AsyncSession, registry: Registry, numbers: Sequence[str]) -> dict[str, FilingState]:
    """The filings of the registry that already hold these numbers."""
    found: dict[str, FilingState] = {}
    for chunk in _chunks(numbers):
        rows = await session.execute(
            select(
                LicenceContract.id,
                LicenceContract.number,
                LicenceContract.licensor_organisation_id,
                ContractFiling.id,
                ContractFiling.status,
                ContractFiling.record_kind,
                ContractFiling.number,
                ContractFiling.refusal_reasons,
            )
            .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
            .where(ContractFiling.registry == registry, ContractFiling.number.in_(list(chunk)))
        )
        for contract_id, number, licensor_id, filing_id, status, kind, filed_number, reasons in rows:
            found[filed_number] = FilingState(
                contract_id, number, licensor_id, filing_id, status, kind, filed_number, reasons
            )
    return found


def _summary(registry: Registry, decision: Decision) -> str:
    row, label = decision.row, registry.number_label
    if decision.result is RowResult.REFUSED:
        return f"退回：{row.reasons}"
    what = "注销已办结" if decision.result is RowResult.CANCELLED else f"{decision.kind.label}已办结"
    return f"{what}，{label} {row.number}"


def _move(registry: Registry, decision: Decision, filing_import: FilingImport) -> services.Move:
    row = decision.row
    if decision.result is RowResult.REFUSED:
        values: dict[str, Any] = {"refused_on": row.decided_on, "refusal_reasons": row.reasons}
    else:
        values = {
            "number": row.number,
            "filed_on": row.decided_on,
            "refused_on": None,
            "refusal_reasons": None,
            "recorded": decision.recorded,
        }
    return services.Move(
        decision.state.filing_id,
        decision.state.status,
        decision.to_status,
        f"导入办理结果 #{filing_import.id}（{filing_import.filename} 第{row.row}行）：{_summary(registry, decision)}",
        values,
        {"import_id": filing_import.id, "row": row.row, "number": row.number, "overrides": sorted(row.overrides)},
    )


def _mail(registry: Registry, decision: Decision) -> tuple[str, str]:
    number, row = decision.state.contract_number, decision.row
    on = row.decided_on.isoformat() if row.decided_on else ""
    if decision.result is RowResult.REFUSED:
        return (
            f"许可合同 {number} 的{registry.label}被退回",
            f"许可合同 {number} 的{registry.label}（{decision.kind.label}）于 {on} 被退回。\n"
            f"退回原因：{row.reasons}\n平台管理员将按退回原因核对、补正后重新报送；如需贵单位补充材料，平台会另行联系。",
        )
    if decision.result is RowResult.CANCELLED:
        return (
            f"许可合同 {number} 的{registry.label}已注销",
            f"许可合同 {number} 的{registry.label}已于 {on} 办理注销，{registry.number_label}：{row.number}。",
        )
    what = "已完成变更" if decision.kind is RecordKind.CHANGE else "已完成"
    return (
        f"许可合同 {number} 的{registry.label}{what}，{registry.number_label} {row.number}",
        f"许可合同 {number} 的{registry.label}{what}（办理日期 {on}）。\n{registry.number_label}：{row.number}",
    )


async def _notify(session: AsyncSession, registry: Registry, decisions: list[Decision], import_id: int) -> None:
    """Mail the licensor's admins each filing or refusal (deduplicated per import and filing)."""
    changed = [d for d in decisions if d.result is not RowResult.UNCHANGED]
    if not changed:
        return
    licensor_ids = sorted({d.state.licensor_id for d in changed})
    emails: dict[int, list[str]] = {}
    for chunk in _chunks(licensor_ids):
        organisations = list(await session.scalars(select(Organisation).where(Organisation.id.in_(list(chunk)))))
        emails |= await party_emails_for(session, organisations)
    mail = []
    for decision in changed:
        subject, body = _mail(registry, decision)
        key = f"filing-result:{import_id}:{decision.state.filing_id}"
        mail += [Email(to, subject, body, f"{key}:{to}") for to in emails.get(decision.state.licensor_id, [])]
    await queue_emails(session, mail)


def _require_platform_admin(actor: Principal) -> None:
    if not actor.is_platform_admin:
        raise Forbidden("仅平台管理员可以导入办理结果")


async def import_results(
    session: AsyncSession,
    actor: Principal,
    *,
    registry: str,
    filename: str,
    content: bytes | None,
) -> FilingImport:
    """Import a registry's results file: every problem is reported at once (ValidationFailed with
    row, column, message and code) and then nothing changes; otherwise every row is applied."""
    _require_platform_admin(actor)
    errors: list[FieldError] = []
    chosen: Registry | None = None
    try:
        chosen = parse_registry(registry)
    except ValidationFailed as exc:
        errors += exc.errors
    if not content:
        message = "文件为空" if content is not None else "请选择要上传的结果文件"
        errors.append(FieldError("file", message, "empty" if content is not None else "required"))
    if errors or chosen is None or content is None:
        raise ValidationFailed(errors, errors[0].message)

    on = today()
    headers, rows = read_table(filename, content)
    found = layout(headers, chosen)
    parsed, errors, rows_total = parse_rows(rows, layout=found, registry=chosen, on=on)
    # Bring every filing's state up to date first (a contract ended since the export, a new one …).
    await services.sync(session)
    states = await _states(session, chosen, [row.contract_number for row in parsed])
    holders = await _holders(session, chosen, sorted({row.number for row in parsed if row.number}))
    decisions, problems = decide(parsed, registry=chosen, states=states, holders=holders, headers=found.header)
    errors += problems
    if errors:
        errors.sort(key=lambda error: error.row or 0)
        rows_with_errors = len({error.row for error in errors})
        raise ValidationFailed(errors, f"{rows_with_errors}行有问题，未导入任何结果；请修改文件后重新上传")

    decisions.sort(key=lambda decision: decision.row.row)
    counts = {result: sum(1 for d in decisions if d.result is result) for result in RowResult}
    filing_import = FilingImport(
        registry=chosen,
        filename=(PurePath(filename or "").name or "results")[:255],
        sha256=hashlib.sha256(content).hexdigest(),
        created_by_user_id=actor.user_id,
        rows_total=rows_total,
        filed_count=counts[RowResult.FILED] + counts[RowResult.CANCELLED],
        refused_count=counts[RowResult.REFUSED],
        unchanged_count=counts[RowResult.UNCHANGED],
        report=[decision.report() for decision in decisions],
    )
    session.add(filing_import)
    await session.flush()
    changed = [d for d in decisions if d.result is not RowResult.UNCHANGED]
    await services.move(
        session, [_move(chosen, d, filing_import) for d in changed], actor=actor, action="result_imported"
    )
    # Reconcile the contracts in the file with their results in: one just filed is no longer overdue,
    # and a fee or term the registry recorded otherwise is a finding now, not after the hourly refresh.
    await reconciliation.detect(session, on, contract_ids=[decision.state.contract_id for decision in decisions])
    await record(
        session,
        entity_type="filing_import",
        entity_id=filing_import.id,
        action="import",
        actor=actor,
        details={
            "registry": chosen.value,
            "filename": filing_import.filename,
            "sha256": filing_import.sha256,
            "rows": rows_total,
            "filed": filing_import.filed_count,
            "refused": filing_import.refused_count,
            "unchanged": filing_import.unchanged_count,
        },
    )
    await _notify(session, chosen, decisions, filing_import.id)
    return filing_import


async def list_imports(
    session: AsyncSession, actor: Principal, *, page: int, per_page: int = PER_PAGE
) -> Page[FilingImport]:
    _require_platform_admin(actor)
    page, per_page = page_bounds(page, per_page)
    total = await session.scalar(select(func.count()).select_from(FilingImport)) or 0
    items = await session.scalars(
        select(FilingImport)
        .options(defer(FilingImport.report))  # a large file's per-row report is read on its own page only
        .order_by(FilingImport.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return Page(list(items), page, per_page, total)


async def get_import(session: AsyncSession, actor: Principal, import_id: int) -> FilingImport:
    _require_platform_admin(actor)
    found = await session.get(FilingImport, import_id) if 0 < import_id < 2**63 else None
    if found is None:
        raise NotFound("导入记录不存在")
    return found


REPORT_HEADERS = ("行号", "合同编号", "记录类型", "结果", "编号", "办理日期", "退回原因")


def report_csv(filing_import: FilingImport) -> bytes:
    """An import's per-row outcomes as CSV (UTF-8 with BOM, so Excel opens it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADERS)
    for item in filing_import.report:
        writer.writerow(
            [
                item["row"],
                item["contract_number"],
                RecordKind(item["record_kind"]).label,
                RowResult(item["result"]).label,
                item["number"] or "",
                item["decided_on"] or "",
                item["reasons"] or "",
            ]
        )
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------
# API shapes
# ---------------------------------------------------------------------------------------------


class ImportRowOut(msgspec.Struct):
    """One row of the file and what it did: ``result`` is filed, refused, cancelled or unchanged."""

    row: int
    contract_id: int
    contract_number: str
    result: str
    from_status: str
    to_status: str
    record_kind: str
    number: str | None
    decided_on: str | None
    reasons: str | None


class ImportOut(msgspec.Struct):
    id: int
    url: str
    registry: Registry
    filename: str
    sha256: str
    created_by_user_id: int | None
    created_at: datetime
    rows_total: int
    filed: int
    refused: int
    unchanged: int
    rows: list[ImportRowOut] | None = None

    @classmethod
    def of(cls, filing_import: FilingImport, *, with_rows: bool = True) -> ImportOut:
        return cls(
            id=filing_import.id,
            url=f"/admin/filings/results/{filing_import.id}",
            registry=filing_import.registry,
            filename=filing_import.filename,
            sha256=filing_import.sha256,
            created_by_user_id=filing_import.created_by_user_id,
            created_at=filing_import.created_at,
            rows_total=filing_import.rows_total,
            filed=filing_import.filed_count,
            refused=filing_import.refused_count,
            unchanged=filing_import.unchanged_count,
            rows=[msgspec.convert(item, ImportRowOut) for item in filing_import.report] if with_rows else None,
        )


class ImportPage(msgspec.Struct):
    items: list[ImportOut]
    total: int
    page: int
    per_page: int
    pages: int

    @classmethod
    def of(cls, found: Page[FilingImport]) -> ImportPage:
        return cls(
            items=[ImportOut.of(item, with_rows=False) for item in found.items],
            total=found.total,
            page=found.number,
            per_page=found.per_page,
            pages=found.pages,
        )
