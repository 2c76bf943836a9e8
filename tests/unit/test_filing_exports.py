"""The export files, byte for byte: contracts of every payment mode, Chinese names and addresses with
full-width punctuation, a change record naming the number it changes and a cancellation with its
date, written by the export writers and compared with the committed golden files
(tests/golden/filings/). Also the XLSX (same rows, every cell text) and the export form's input."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import replace
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from marketplace.accounts.models import OrganisationKind
from marketplace.errors import ValidationFailed
from marketplace.filings import exports, rules
from marketplace.filings.models import ExportFormat, RecordKind, Registry
from marketplace.licensing.models import EndReason
from marketplace.patents.models import PatentType

GOLDEN = Path(__file__).parent.parent / "golden" / "filings"

SCUT = rules.Party(
    organisation_id=1,
    name="华南理工大学",
    kind=OrganisationKind.UNIVERSITY,
    address="广东省广州市天河区五山路381号",
    uscc="12440000455416208C",
    division_code="440106",
    nature_code=None,  # a university's default: 022
    verified=True,
)
NIMTE = rules.Party(
    organisation_id=2,
    name="中国科学院宁波材料技术与工程研究所",
    kind=OrganisationKind.INSTITUTE,
    address="浙江省宁波市镇海区中官西路1219号",
    uscc="123302004195074519",  # all digits: must stay text, not 1.23E+17
    division_code="330211",
    nature_code=None,  # an institute's default: 021
    verified=True,
)
QIANHAI = rules.Party(
    organisation_id=3,
    name="深圳市（前海）智能储能科技有限公司",
    kind=OrganisationKind.ENTERPRISE,
    address="广东省深圳市南山区粤海街道科苑路15号（科兴科学园B栋3单元，1201室）",
    uscc="91440300MA5G7TQ41B",
    division_code="440305",
    nature_code="150",
    verified=True,
)
GREEN = rules.Party(
    organisation_id=4,
    name="苏州“绿能”新材料股份有限公司",
    kind=OrganisationKind.ENTERPRISE,
    address="江苏省苏州市工业园区星湖街328号；创意产业园7-501",
    uscc="91320594MA1N2K8P38",
    division_code="320571",
    nature_code="160",
    verified=True,
)
HAIDIAN = rules.Party(
    organisation_id=5,
    name="北京海淀·星河医疗器械有限公司",
    kind=OrganisationKind.ENTERPRISE,
    address="北京市海淀区中关村大街1号 海龙大厦 8层",
    uscc="91110108MA01C3RX71",
    division_code="110108",
    nature_code=None,  # not declared yet: the code cell stays empty
    verified=True,
)


def _facts(number: str, **values) -> rules.ContractFacts:
    base = {
        "contract_id": int(number[-3:]),
        "number": number,
        "signed_on": date(2026, 3, 2),
        "start_date": date(2026, 3, 2),
        "end_date": date(2029, 3, 1),
        "ended_on": None,
        "end_reason": None,
        "territory": "中华人民共和国境内（不含港澳台地区）",
        "announcement_number": "KF2026000123",
        "patent_title": "一种高导热复合相变储能材料及其制备方法",
        "application_number": "202110123456.7",
        "patent_type": PatentType.INVENTION,
        "patent_filing_date": date(2021, 1, 28),
        "patent_grant_date": date(2023, 6, 9),
        "ipc_main": "C09K5/06",
        "licensor": SCUT,
        "licensee": QIANHAI,
    }
    return rules.ContractFacts(**(base | values))


# One contract per payment mode; the values and descriptions are what the offer rules give for the
# terms named in each comment (a 36-month licence).
FREE = _facts(
    "OL2026000001",
    payment_mode="free",
    payment_mode_label="免费",
    fee_description="免费许可，无需支付许可使用费。",
    contract_value_fen=0,
    registry_payment_mode=("05", "其他"),
    patent_type=PatentType.UTILITY_MODEL,
    application_number="202220567890.4",
    patent_filing_date=date(2022, 5, 16),
    patent_grant_date=date(2022, 11, 8),
    patent_title="一种电池模组用液冷板",
    ipc_main="H01M10/613",
)
LUMP_SUM = _facts(  # ¥50,000 within 30 days of the notice; the licensee moved since it was filed
    "OL2026000002",
    payment_mode="lump_sum",
    payment_mode_label="一次总算、一次总付",
    fee_description="许可使用费一次总算、一次总付：¥50,000.00，于书面通知后30日内支付。",
    contract_value_fen=5_000_000,
    registry_payment_mode=("01", "一次总付"),
    licensee=GREEN,
)
INSTALMENTS = _facts(  # ¥100,000 in 3 instalments; ended early by agreement on 2026-09-30
    "OL2026000003",
    payment_mode="instalments",
    payment_mode_label="一次总算、分期支付",
    fee_description=(
        "许可使用费一次总算、分期支付：总额¥100,000.00，分3期支付（首期¥33,333.34，其余每期¥33,333.33），"
        "首期于许可生效后30日内支付，其后每隔6个月支付一期。"
    ),
    contract_value_fen=10_000_000,
    registry_payment_mode=("02", "分期支付"),
    ended_on=date(2026, 9, 30),
    end_reason=EndReason.AGREEMENT,
    licensor=NIMTE,
)
ROYALTY = _facts(  # 3.5 % of sales, quarterly, at least ¥50,000 a year: the minimums make the value
    "OL2026000004",
    payment_mode="royalty",
    payment_mode_label="提成支付",
    fee_description="许可使用费按销售额的3.5%提成，按季度报告并支付；每个合同年度最低支付¥50,000.00。",
    contract_value_fen=15_000_000,
    registry_payment_mode=("03", "提成支付"),
    licensee=HAIDIAN,
    patent_title="一种可降解心血管支架涂层药物组合物",
    application_number="201910987654.0",
    patent_filing_date=date(2019, 8, 20),
    patent_grant_date=date(2022, 3, 15),
    ipc_main="A61K31/00",
)
ENTRY_FEE = _facts(
    "OL2026000005",
    payment_mode="entry_fee_royalty",
    payment_mode_label="提成支付附加预付入门费",
    fee_description=(
        "预付入门费¥10,000.00，于书面通知后30日内支付；此外，许可使用费按销售额的2%提成，按季度报告并支付。"
    ),
    contract_value_fen=1_000_000,
    registry_payment_mode=("04", "提成支付附加预付入门费"),
    licensor=NIMTE,
    licensee=GREEN,
)
PAY_AFTER_MONTHS = _facts(
    "OL2026000006",
    payment_mode="pay_after_use",
    payment_mode_label="先用后付",
    fee_description=(
        "先用后付：许可生效后12个月内无需付款，期满后按以下标准支付，合同年度自期满之日起算——"
        "许可使用费一次总算、一次总付：¥30,000.00，于先用后付期满后30日内支付。"
    ),
    contract_value_fen=3_000_000,
    registry_payment_mode=("01", "一次总付"),
    patent_type=PatentType.DESIGN,
    patent_title="储能柜（户外型）",
    application_number="202330112233.0",
    patent_filing_date=date(2023, 2, 27),
    patent_grant_date=date(2023, 7, 4),
    ipc_main=None,
    announcement_number=None,
)
PAY_AFTER_REVENUE = _facts(
    "OL2026000007",
    payment_mode="pay_after_use",
    payment_mode_label="先用后付",
    fee_description=(
        "先用后付：实施该专利取得首笔收入之前无需付款，此后按以下标准支付，合同年度自取得首笔收入之日起算——"
        "许可使用费按销售额的3%提成，按季度报告并支付。"
    ),
    contract_value_fen=0,
    registry_payment_mode=("03", "提成支付"),
    territory="广东省",
)

# (facts, record kind, this registry's number, the licence filing's number)
LICENCE_RECORDS = [
    (FREE, RecordKind.NEW, None),
    (LUMP_SUM, RecordKind.CHANGE, "2026440000123"),
    (INSTALMENTS, RecordKind.CANCELLATION, "2026330000456"),
    (ROYALTY, RecordKind.NEW, None),
    (ENTRY_FEE, RecordKind.NEW, None),
    (PAY_AFTER_MONTHS, RecordKind.NEW, None),
    (PAY_AFTER_REVENUE, RecordKind.NEW, None),
]
REGISTRATION_RECORDS = [
    (FREE, RecordKind.NEW, None, "2026110000045"),
    (LUMP_SUM, RecordKind.CHANGE, "4401062026000123", "2026440000123"),
    (INSTALMENTS, RecordKind.CANCELLATION, "3302112026000456", "2026330000456"),
    (ROYALTY, RecordKind.NEW, None, None),
    (ENTRY_FEE, RecordKind.NEW, None, None),
    (PAY_AFTER_MONTHS, RecordKind.NEW, None, None),
    (PAY_AFTER_REVENUE, RecordKind.NEW, None, None),
]


def licence_rows() -> list[list[str]]:
    return [rules.licence_filing_row(facts, kind, number) for facts, kind, number in LICENCE_RECORDS]


def registration_rows() -> list[list[str]]:
    return [rules.registration_row(facts, kind, number, cross) for facts, kind, number, cross in REGISTRATION_RECORDS]


ROWS = {Registry.LICENCE_FILING: licence_rows, Registry.TECH_CONTRACT: registration_rows}


@pytest.mark.parametrize("registry", list(Registry))
def test_the_csv_matches_the_golden_file_byte_for_byte(tmp_path, registry):
    path = tmp_path / "export.csv"
    exports.write_file(ExportFormat.CSV, path, registry, ROWS[registry]())
    assert path.read_bytes() == (GOLDEN / f"{registry.value}.csv").read_bytes()


@pytest.mark.parametrize("registry", list(Registry))
def test_the_golden_csv_opens_with_a_bom_and_the_registry_header(registry):
    raw = (GOLDEN / f"{registry.value}.csv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert b"\r\n" in raw
    parsed = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert parsed[0] == list(rules.headers(registry))
    assert parsed[1:] == ROWS[registry]()
    assert all(len(row) == len(parsed[0]) for row in parsed)


def _cells(parsed_row: list[str], registry: Registry) -> dict[str, str]:
    return dict(zip(rules.headers(registry), parsed_row, strict=True))


def test_licence_filing_rows_carry_each_record_as_the_form_asks():
    rows = {row[1]: _cells(row, Registry.LICENCE_FILING) for row in licence_rows()}
    free = rows["OL2026000001"]
    assert free["记录类型"] == "新备案" and free["原备案号"] == "" and free["注销日期"] == ""
    assert free["专利号"] == "ZL202220567890.4" and free["许可种类"] == "普通实施许可"
    assert free["使用费（元）"] == "0.00" and free["支付方式"] == "免费"
    change = rows["OL2026000002"]
    assert change["记录类型"] == "变更" and change["原备案号"] == "2026440000123"
    assert change["被许可人名称"] == "苏州“绿能”新材料股份有限公司"
    assert change["被许可人地址"] == "江苏省苏州市工业园区星湖街328号；创意产业园7-501"
    cancelled = rows["OL2026000003"]
    assert cancelled["记录类型"] == "注销" and cancelled["注销日期"] == "2026-09-30"
    assert cancelled["许可期限届满日"] == "2026-09-30"  # the term as it ended
    assert cancelled["使用费（元）"] == "100000.00"
    assert rows["OL2026000004"]["使用费（元）"] == "150000.00"
    assert rows["OL2026000006"]["授权公告日"] == "2023-07-04" and rows["OL2026000006"]["开放许可声明公告号"] == ""


def test_registration_rows_carry_codes_with_their_leading_zeros():
    rows = {row[2]: _cells(row, Registry.TECH_CONTRACT) for row in registration_rows()}
    free = rows["OL2026000001"]
    assert (free["卖方单位性质代码"], free["买方单位性质代码"]) == ("022", "150")
    assert (free["卖方国别代码"], free["卖方行政区划代码"]) == ("156", "440106")
    assert (free["知识产权类型代码"], free["知识产权类型"]) == ("02", "实用新型专利")
    assert (free["技术领域代码"], free["支付方式代码"]) == ("06", "05")
    assert free["专利实施许可合同备案号"] == "2026110000045" and free["原登记编号"] == ""
    royalty = rows["OL2026000004"]
    assert royalty["买方单位性质代码"] == "" and royalty["技术领域代码"] == "04"
    assert royalty["合同成交额（元）"] == royalty["技术交易额（元）"] == "150000.00"
    entry = rows["OL2026000005"]
    assert (entry["卖方单位性质代码"], entry["卖方统一社会信用代码"]) == ("021", "123302004195074519")
    assert entry["支付方式"] == "提成支付附加预付入门费"
    design = rows["OL2026000006"]
    assert (design["知识产权类型代码"], design["技术领域代码"], design["支付方式代码"]) == ("03", "03", "01")
    cancelled = rows["OL2026000003"]
    assert (cancelled["登记类型"], cancelled["原登记编号"], cancelled["注销日期"]) == (
        "注销",
        "3302112026000456",
        "2026-09-30",
    )
    assert rows["OL2026000007"]["合同成交额（元）"] == "0.00"


@pytest.mark.parametrize("registry", list(Registry))
def test_the_xlsx_holds_the_same_rows_as_text_under_a_bold_header(tmp_path, registry):
    path = tmp_path / "export.xlsx"
    exports.write_file(ExportFormat.XLSX, path, registry, ROWS[registry]())
    sheet = openpyxl.load_workbook(path).active
    assert sheet.title == registry.short_label
    rows = list(sheet.iter_rows())
    assert [cell.value for cell in rows[0]] == list(rules.headers(registry))
    assert all(cell.font.bold for cell in rows[0])
    assert sheet.freeze_panes == "A2"
    body = [[cell.value if cell.value is not None else "" for cell in row] for row in rows[1:]]
    assert body == ROWS[registry]()
    assert all(cell.data_type == "s" for row in rows[1:] for cell in row if cell.value is not None)


def test_xlsx_cells_that_look_like_formulas_error_codes_or_numbers_stay_text(tmp_path):
    odd = replace(FREE, licensor=NIMTE, licensee=replace(QIANHAI, name='=HYPERLINK("http://x")', address="#N/A"))
    rows = [
        rules.licence_filing_row(odd, RecordKind.NEW, None),
        rules.registration_row(odd, RecordKind.NEW, None, None),
    ]
    for registry, row in zip(Registry, rows, strict=True):
        path = tmp_path / f"{registry.value}.xlsx"
        exports.write_file(ExportFormat.XLSX, path, registry, [row])
        [cells] = openpyxl.load_workbook(path).active.iter_rows(min_row=2)
        by_header = {header: cell for header, cell in zip(rules.headers(registry), cells, strict=True)}
        assert [cell.value for cell in cells] == [value or None for value in row]
        assert {cell.data_type for cell in cells if cell.value is not None} == {"s"}
        if registry is Registry.LICENCE_FILING:
            assert by_header["被许可人名称"].value == '=HYPERLINK("http://x")'
            assert by_header["被许可人地址"].value == "#N/A"
            assert by_header["许可人统一社会信用代码"].value == "123302004195074519"
        else:
            assert by_header["卖方单位性质代码"].value == "021"
            assert by_header["有效期起"].value == "2026-03-02"


# ---------------------------------------------------------------------------------------------
# The export form
# ---------------------------------------------------------------------------------------------


def test_a_complete_request_is_parsed_with_its_selection():
    request = exports.parse_request(
        registry="tech_contract",
        file_format="xlsx",
        period_from="2026-01-01",
        period_to="2026-03-31",
        contract_numbers="OL2026000002\n ol2026000001，OL2026000002\n\n",
    )
    assert (request.registry, request.file_format) == (Registry.TECH_CONTRACT, ExportFormat.XLSX)
    assert request.selection() == {
        "period_from": "2026-01-01",
        "period_to": "2026-03-31",
        "contract_numbers": ["OL2026000002", "OL2026000001"],
    }
    plain = exports.parse_request(registry="licence_filing", file_format="csv", contract_numbers=[])
    assert plain.selection() == {"period_from": None, "period_to": None, "contract_numbers": None}


def _errors(**values) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        exports.parse_request(**({"registry": "licence_filing", "file_format": "csv"} | values))
    return caught.value.by_field()


def test_every_problem_with_a_request_is_reported_by_field():
    errors = _errors(registry="patent_office", file_format="pdf", period_from="2026-02-30", period_to="31/03/2026")
    assert set(errors) == {"registry", "format", "period_from", "period_to"}
    assert "licence_filing" in errors["registry"] and "xlsx" in errors["format"]
    assert _errors(registry="")["registry"] == "请选择报送类型"
    assert "不能早于" in _errors(period_from="2026-04-01", period_to="2026-03-31")["period_to"]
    too_many = [f"OL2026{n:06d}" for n in range(exports.MAX_CONTRACT_NUMBERS + 1)]
    assert "最多" in _errors(contract_numbers=too_many)["contract_numbers"]


def test_unknown_contract_numbers_are_listed_in_the_message():
    error = exports.unknown_numbers_error(["OL2026999998", "OL2026999999"])
    assert (error.field, error.code) == ("contract_numbers", "unknown")
    assert "OL2026999998、OL2026999999" in error.message


def test_the_download_names_are_ascii_with_a_chinese_alternative():
    from marketplace.filings.models import FilingBatch

    batch = FilingBatch(number="FE2026000001", registry=Registry.LICENCE_FILING, file_format=ExportFormat.CSV)
    assert exports.file_names(batch) == ("FE2026000001-licence_filing.csv", "FE2026000001-专利实施许可合同备案.csv")
    disposition = exports.content_disposition(batch)
    assert disposition.startswith("attachment; filename=\"FE2026000001-licence_filing.csv\"; filename*=UTF-8''")
    assert disposition.isascii()
