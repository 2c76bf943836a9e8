"""Reading and checking a registry's results file, without a database: the file formats, the headers,
each row on its own, and the rows against the filings they name."""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from datetime import date, datetime

import openpyxl
import pytest

from marketplace.errors import ValidationFailed
from marketplace.filings import results
from marketplace.filings.models import FilingStatus, RecordKind, Registry
from marketplace.filings.results import FilingState, Outcome, RowResult

LICENCE, TECH = Registry.LICENCE_FILING, Registry.TECH_CONTRACT
ON = date(2026, 6, 15)


def csv_bytes(rows: list[list[object]], *, encoding: str = "utf-8", bom: bool = False) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return (codecs.BOM_UTF8 if bom else b"") + out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def file_problem(call) -> str:
    with pytest.raises(ValidationFailed) as caught:
        call()
    assert all(error.field == "file" for error in caught.value.errors)
    return caught.value.errors[0].message


def read(rows: list[list[object]], registry: Registry = LICENCE, **kwargs):
    """Parse a table (header row first) as the import does: the rows read and their problems."""
    headers, data = results.read_table("results.csv", csv_bytes(rows, **kwargs))
    layout = results.layout(headers, registry)
    parsed, errors, total = results.parse_rows(data, layout=layout, registry=registry, on=ON)
    return parsed, [(e.row, e.field, e.message, e.code) for e in errors], total


# ---------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------

TABLE = [["合同编号", "办理结果", "备案号"], ["OL2026000001", "准予备案", "2026110000123"]]


@pytest.mark.parametrize("bom", [False, True])
def test_csv_in_utf8_with_or_without_bom(bom):
    headers, rows = results.read_table("结果.csv", csv_bytes(TABLE, bom=bom))
    assert headers == TABLE[0]
    assert list(rows) == [(2, TABLE[1])]


def test_xlsx_rows_keep_their_spreadsheet_row_numbers():
    table = [TABLE[0], ["", "", ""], ["OL2026000002", "退回", None]]
    headers, rows = results.read_table("结果.xlsx", xlsx_bytes(table))
    assert headers == TABLE[0]
    assert list(rows)[1] == (3, ["OL2026000002", "退回", ""])


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_a_gbk_csv_is_refused_with_how_to_save_it(encoding):
    message = file_problem(lambda: results.read_table("结果.csv", csv_bytes(TABLE, encoding=encoding)))
    assert message == "文件编码不是 UTF-8，请在 Excel 中另存为“CSV UTF-8”或上传 XLSX"


def test_a_utf16_csv_is_refused_as_not_utf8():
    content = "合同编号,办理结果\n".encode("utf-16")
    assert file_problem(lambda: results.read_table("结果.csv", content)) == results.NOT_UTF8


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("结果.csv", b"", "文件为空"),
        ("结果.csv", codecs.BOM_UTF8 + b"\r\n", "文件为空"),
        ("结果.xlsx", b"not a workbook", "无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿"),
        ("结果.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "不支持旧版 Excel（.xls）文件，请另存为 XLSX 或“CSV UTF-8”"),
        ("结果.pdf", b"%PDF-1.7", "仅支持 CSV（UTF-8）或 XLSX 文件"),
        ("结果.csv", b"\x00\x01\x02binary", "文件不是 CSV 文本，也不是 XLSX 工作簿"),
    ],
)
def test_unreadable_files_are_named(filename, content, message):
    assert file_problem(lambda: results.read_table(filename, content)) == message


def test_a_zip_that_is_not_a_workbook_is_not_a_readable_xlsx():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "hello")
    message = file_problem(lambda: results.read_table("结果.xlsx", out.getvalue()))
    assert message == "无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿"


# ---------------------------------------------------------------------------------------------
# The headers
# ---------------------------------------------------------------------------------------------


def test_headers_are_found_in_any_order_by_any_accepted_name():
    headers = ["备注", "登记编号", "合同编号 ", "有效期止", "合同成交额(元)", "*办理结果"]
    found = results.layout(headers, TECH)
    assert found.index == {"number": 1, "contract_number": 2, "end": 3, "contract_value_fen": 4, "outcome": 5}
    assert found.header["number"] == "登记编号"
    assert results.layout(["合同编号", "办理结果", "编号", "使用费（元）"], LICENCE).index["fee_fen"] == 3


def test_missing_required_columns_are_listed_with_what_was_found():
    message = file_problem(lambda: results.layout(["合同号", "备案号", "结果"], LICENCE))
    assert message == "缺少必填列：合同编号、办理结果（第1行应为表头；文件中的列：合同号、备案号、结果）"


def test_a_column_given_twice_and_the_other_registrys_columns_are_refused_together():
    with pytest.raises(ValidationFailed) as caught:
        results.layout(["合同编号", "办理结果", "编号", "备案号", "有效期起"], LICENCE)
    assert [(e.code, e.message) for e in caught.value.errors] == [
        ("duplicate_column", "列“备案号”与列“编号”重复（含义相同），请只保留一列"),
        (
            "wrong_registry",
            "列“有效期起”属于技术合同认定登记的结果，与所选的“专利实施许可合同备案”不符，请确认登记机关是否选对",
        ),
    ]


def test_the_registry_must_be_chosen():
    with pytest.raises(ValidationFailed) as caught:
        results.parse_registry("")
    assert caught.value.errors[0].field == "registry"
    assert "专利实施许可合同备案（licence_filing）" in caught.value.errors[0].message
    assert results.parse_registry("tech_contract") is TECH


# ---------------------------------------------------------------------------------------------
# Each row on its own
# ---------------------------------------------------------------------------------------------

HEAD = ["合同编号", "办理结果", "编号", "退回原因", "办理日期", "记录类型"]


@pytest.mark.parametrize("word", results.FILED_WORDS)
def test_every_word_for_filed(word):
    parsed, errors, _ = read([HEAD, ["ol2026000001", word, "a2026b0001", "", "", ""]])
    assert errors == []
    assert (parsed[0].contract_number, parsed[0].outcome, parsed[0].number) == ("OL2026000001", Outcome.FILED,
                                                                                "A2026B0001")  # fmt: skip


@pytest.mark.parametrize("word", results.REFUSED_WORDS)
def test_every_word_for_refused(word):
    parsed, errors, _ = read([HEAD, ["OL2026000001", word, "", "许可期限超过专利剩余期限", "2026/6/1", "新备案"]])
    assert errors == []
    row = parsed[0]
    assert (row.outcome, row.reasons, row.decided_on, row.record_kind) == (
        Outcome.REFUSED,
        "许可期限超过专利剩余期限",
        date(2026, 6, 1),
        RecordKind.NEW,
    )


def test_the_decision_date_defaults_to_today():
    parsed, _, _ = read([HEAD, ["OL2026000001", "通过", "2026110000123", "", "", ""]])
    assert parsed[0].decided_on == ON


UNKNOWN_OUTCOME = (
    "无法识别办理结果“待定”：准予填写准予备案、已备案、备案成功、通过、准予登记、已登记、登记成功之一，"
    "退回填写不予备案、不予登记、退回、不予受理、驳回之一"
)


def test_every_problem_of_a_row_is_reported_with_its_row_column_and_code():
    rows = [
        HEAD,
        ["OL2026000001", "已备案", "", "", "2026-02-30", "撤销"],
        ["OL2026000002", "不予备案", "", "", "2026-06-16", ""],
        ["", "待定", "2026-11", "", "15/06/2026", ""],
        ["OL2026000003", "", "", "", "", ""],
    ]
    parsed, errors, total = read(rows)
    assert total == 4
    assert errors == [
        (2, "编号", "办理结果为准予时必须填写备案号", "required"),
        (2, "办理日期", "日期不存在：2026-02-30", "invalid"),
        (2, "记录类型", "记录类型应为新备案、变更或注销（现为“撤销”）", "invalid"),
        (3, "退回原因", "办理结果为退回时必须填写退回原因", "required"),
        (3, "办理日期", "办理日期不能晚于今天（2026-06-15）", "future"),
        (4, "合同编号", "合同编号不能为空", "required"),
        (4, "办理结果", UNKNOWN_OUTCOME, "invalid"),
        (4, "编号", "备案号应为6–30位字母或数字（现为“2026-11”）", "invalid"),
        (4, "办理日期", "日期应为 YYYY-MM-DD 或 YYYY/MM/DD，例如 2026-03-05（现为“15/06/2026”）", "invalid"),
        (5, "办理结果", "办理结果不能为空", "required"),
    ]  # fmt: skip
    assert [row.ok for row in parsed] == [False, False, False]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("202611000012345", "登记编号应为16位数字（现为“202611000012345”，15位）"),
        ("2026110000123456X", "登记编号应为16位数字（现为“2026110000123456X”，17位）"),
        ("2026 1100 0012 3456", "登记编号应为16位数字（现为“2026 1100 0012 3456”，19位）"),
    ],
)
def test_a_registration_number_is_exactly_16_digits(number, message):
    _, errors, _ = read([["合同编号", "办理结果", "登记编号"], ["OL2026000001", "准予登记", number]], TECH)
    assert errors == [(2, "登记编号", message, "invalid")]


def test_a_registration_number_stored_as_an_excel_number_may_have_lost_digits():
    with pytest.raises(results._Bad) as caught:
        results.parse_number(2026110000123456.0, TECH)
    assert caught.value.code == "numeric_cell"
    assert "Excel 只保留15位有效数字" in caught.value.message
    assert results.parse_number(2026110000123.0, LICENCE) == "2026110000123"


def test_the_values_the_registry_recorded_override_in_fen_and_iso_dates():
    rows = [
        ["合同编号", "办理结果", "登记编号", "合同成交额（元）", "技术交易额（元）", "有效期起", "有效期止"],
        ["OL2026000001", "登记成功", "2026110000123456", "12,345.67", "12000", "2026/1/1", "2030-12-31"],
    ]
    parsed, errors, _ = read(rows, TECH)
    assert errors == []
    assert parsed[0].overrides == {
        "contract_value_fen": 1_234_567,
        "transaction_value_fen": 1_200_000,
        "start": "2026-01-01",
        "end": "2030-12-31",
    }


def test_amounts_and_periods_that_cannot_be_right_are_refused():
    rows = [
        ["合同编号", "办理结果", "备案号", "使用费（元）", "许可期限起始日", "许可期限届满日"],
        ["OL2026000001", "准予备案", "2026110000123", "100.005", "2027-01-01", "2026-12-31"],
        ["OL2026000002", "准予备案", "2026110000124", "-5", "", ""],
    ]
    _, errors, _ = read(rows)
    assert errors == [
        (2, "使用费（元）", "金额最多保留两位小数（现为“100.005”）", "invalid"),
        (2, "许可期限届满日", "期限届满日（2026-12-31）早于起始日（2027-01-01）", "out_of_range"),
        (3, "使用费（元）", "金额必须为非负数（现为“-5”）", "invalid"),
    ]


def test_xlsx_cells_arrive_as_dates_and_numbers():
    assert results.parse_day(datetime(2026, 3, 5, 0, 0)) == date(2026, 3, 5)
    assert results.parse_amount(1234.5) == 123_450
    assert results.parse_amount(100.0) == 10_000


def test_a_contract_named_twice_is_reported_on_the_second_row():
    rows = [HEAD, ["OL2026000001", "通过", "2026110000123", "", "", ""], ["", "", "", "", "", ""],
            ["ol2026000001", "退回", "", "材料不全", "", ""]]  # fmt: skip
    parsed, errors, total = read(rows)
    assert total == 2 and len(parsed) == 1
    assert errors == [(4, "合同编号", "合同 OL2026000001 在第2行已出现，每个合同只能有一行结果", "duplicate")]


def test_a_file_without_data_rows_or_with_too_many(monkeypatch):
    assert file_problem(lambda: read([HEAD, ["", "", "", "", "", ""]])) == (
        "文件中没有数据行（第1行为表头，从第2行起每行一个合同的办理结果）"
    )
    monkeypatch.setattr(results, "MAX_ROWS", 2)
    rows = [HEAD, *(([f"OL202600000{n}", "通过", f"20261100001{n}", "", "", ""]) for n in range(1, 4))]
    assert file_problem(lambda: read(rows)) == "文件超过2行数据，每次最多导入2行，请拆分后分批导入"


# ---------------------------------------------------------------------------------------------
# The rows against the filings they name
# ---------------------------------------------------------------------------------------------

EXPORTED_VALUES = {"start": "2026-01-01", "end": "2030-12-31", "fee_fen": 0, "payment_mode": "free"}


def state(n: int, status: FilingStatus = FilingStatus.EXPORTED, **kw) -> FilingState:
    values = {
        "contract_id": n,
        "contract_number": f"OL202600000{n}",
        "licensor_id": 100 + n,
        "filing_id": 1000 + n,
        "status": status,
        "record_kind": RecordKind.NEW,
        "number": None,
        "refusal_reasons": None,
        "exported_on": date(2026, 6, 1),
        "exported_kind": RecordKind.NEW,
        "exported_values": EXPORTED_VALUES,
    }
    return FilingState(**(values | kw))


def row(n: int, outcome: Outcome = Outcome.FILED, number: str | None = None, **kw) -> results.ResultRow:
    values = {"row": n + 1, "contract_number": f"OL202600000{n}", "outcome": outcome, "decided_on": ON}
    if outcome is Outcome.FILED:
        values["number"] = number or f"202611000012{n}"
    else:
        values |= {"number": number, "reasons": "材料不全"}
    return results.ResultRow(**(values | kw))


def decide(rows, states, holders=None):
    decisions, errors = results.decide(
        rows,
        registry=LICENCE,
        states={s.contract_number: s for s in states},
        holders=holders or {},
        headers={
            "contract_number": "合同编号",
            "number": "备案号",
            "decided_on": "办理日期",
            "record_kind": "记录类型",
        },
    )
    return decisions, [(e.row, e.field, e.message, e.code) for e in errors]


def test_exported_records_are_filed_refused_or_cancelled():
    decisions, errors = decide(
        [row(1, overrides={"fee_fen": 50_000}), row(2, Outcome.REFUSED), row(3, number="2026110000999")],
        [
            state(1),
            state(2),
            state(
                3, record_kind=RecordKind.CANCELLATION, exported_kind=RecordKind.CANCELLATION, number="2026110000999"
            ),
        ],
    )
    assert errors == []
    assert [(d.result, d.to_status) for d in decisions] == [
        (RowResult.FILED, FilingStatus.FILED),
        (RowResult.REFUSED, FilingStatus.REFUSED),
        (RowResult.CANCELLED, FilingStatus.CANCELLED),
    ]
    assert decisions[0].recorded == EXPORTED_VALUES | {"fee_fen": 50_000}
    assert decisions[1].recorded is None


def test_a_row_that_repeats_what_is_recorded_is_unchanged():
    decisions, errors = decide(
        [row(1), row(2, Outcome.REFUSED), row(3, number="2026110000123"), row(4)],
        [
            state(1, FilingStatus.FILED, number="2026110000121"),
            state(2, FilingStatus.REFUSED, refusal_reasons="材料不全"),
            state(3, FilingStatus.CANCELLED, number="2026110000123"),
            state(4, FilingStatus.DUE, number="2026110000124", record_kind=RecordKind.CHANGE),
        ],
    )
    assert errors == []
    assert [(d.result, d.to_status) for d in decisions] == [
        (RowResult.UNCHANGED, FilingStatus.FILED),
        (RowResult.UNCHANGED, FilingStatus.REFUSED),
        (RowResult.UNCHANGED, FilingStatus.CANCELLED),
        (RowResult.UNCHANGED, FilingStatus.DUE),
    ]


NOT_AWAITING = "不在等待办理结果（只有“已导出，待结果”的记录可以导入结果）"


def test_rows_that_match_no_contract_or_contradict_one_are_reported():
    change = state(4, record_kind=RecordKind.CHANGE, exported_kind=RecordKind.CHANGE, number="2026110000999")
    decisions, errors = decide(
        [
            row(1),
            row(2),
            row(3, Outcome.REFUSED, reasons="另一个原因"),
            row(4, number="2026110000555"),
            row(5, record_kind=RecordKind.CHANGE, decided_on=date(2026, 5, 31)),
            row(6, number="2026110000777"),
            row(7, number="2026110000777"),
            row(8),
        ],
        [
            state(2, FilingStatus.DUE),
            state(3, FilingStatus.REFUSED, refusal_reasons="材料不全"),
            change,
            state(5),
            state(6),
            state(7),
            state(8, exported_values=None),
        ],
        holders={"2026110000777": state(9, FilingStatus.FILED, number="2026110000777")},
    )
    assert decisions == []
    assert errors == [
        (2, "合同编号", "合同编号 OL2026000001 不存在", "unknown_contract"),
        (3, "合同编号", f"合同 OL2026000002 的许可备案当前为“待导出”，{NOT_AWAITING}", "not_awaiting"),
        (4, "合同编号", f"合同 OL2026000003 的许可备案当前为“被退回”，{NOT_AWAITING}", "not_awaiting"),
        (5, "备案号", "备案号 2026110000555 与该合同已记录的 2026110000999 不一致（变更、注销记录沿用首次办理的编号）",
         "number_mismatch"),
        (6, "记录类型", "记录类型为“变更”，但导出的是“新备案”记录", "kind_mismatch"),
        (6, "办理日期", "办理日期 2026-05-31 早于该记录的导出日期 2026-06-01", "before_export"),
        (7, "备案号", "备案号 2026110000777 已属于合同 OL2026000009", "number_taken"),
        (8, "备案号", "备案号 2026110000777 已属于合同 OL2026000009", "number_taken"),
        (8, "备案号", "备案号 2026110000777 与第7行（合同 OL2026000006）重复", "duplicate_number"),
        (9, "合同编号", "找不到该合同最近一次导出的内容，无法记录登记机关备案的信息", "no_export"),
    ]  # fmt: skip


def test_a_filed_number_that_differs_from_the_recorded_one_is_not_unchanged():
    _, errors = decide([row(1, number="2026110000888")], [state(1, FilingStatus.FILED, number="2026110000121")])
    assert [code for *_, code in errors] == ["number_mismatch"]


def test_the_number_already_held_by_the_same_contract_is_not_taken():
    change = state(1, record_kind=RecordKind.CHANGE, exported_kind=RecordKind.CHANGE, number="2026110000121")
    decisions, errors = decide([row(1)], [change], holders={"2026110000121": change})
    assert errors == [] and decisions[0].result is RowResult.FILED


def test_a_column_the_file_lacks_is_named_in_chinese_for_its_registry():
    _, errors, _ = read([["合同编号", "办理结果"], ["OL2026000001", "登记成功"], ["OL2026000002", "退回"]], TECH)
    assert errors == [
        (2, "登记编号", "办理结果为准予时必须填写登记编号", "required"),
        (3, "退回原因", "办理结果为退回时必须填写退回原因", "required"),
    ]
    _, errors, _ = read([["合同编号", "办理结果", "有效期起", "登记编号"], ["OL2026000001", "通过", "2099-01-01",
                                                                         "2026110100000001"]], TECH)  # fmt: skip
    assert errors == []
    decisions, problems = results.decide(
        [row(1, overrides={"start": "2031-01-01"})], registry=TECH, states={"OL2026000001": state(1)}, holders={},
        headers={"contract_number": "合同编号", "number": "登记编号"},
    )  # fmt: skip
    assert decisions == []
    assert [(e.field, e.code) for e in problems] == [("有效期止", "out_of_range")]
