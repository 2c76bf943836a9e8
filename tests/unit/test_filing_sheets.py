"""The XLSX writer process a render feeds: the file it leaves, and what happens when it cannot write."""

from __future__ import annotations

import openpyxl
import pytest

from marketplace.filings import sheets

HEADERS = ["合同编号", "许可人名称", "统一社会信用代码", "备注"]


def _rows(start: int, count: int) -> list[list[str]]:
    return [
        [f"OL2026{n:06d}", f"浙江大学第{n}研究院", "123302004195074519", "=SUM(A1:A2)" if n % 2 else ""]
        for n in range(start, start + count)
    ]


async def test_rows_sent_in_chunks_arrive_in_order_as_text_under_the_header(tmp_path):
    path = tmp_path / "export.xlsx"
    writer = await sheets.XlsxProcess.start(path, HEADERS, "许可备案")
    await writer.write(_rows(1, 700))
    await writer.write([])
    await writer.write(_rows(701, 800))
    await writer.finish()
    assert writer.peak_rss_kb and 1_000 < writer.peak_rss_kb < 500_000

    sheet = openpyxl.load_workbook(path).active
    assert sheet.title == "许可备案" and sheet.freeze_panes == "A2"
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == HEADERS
    assert [list(row) for row in rows[1:]] == [[v or None for v in row] for row in _rows(1, 1500)]
    [cells] = sheet.iter_rows(min_row=2, max_row=2)
    assert {cell.data_type for cell in cells if cell.value is not None} == {"s"}


async def test_a_child_that_cannot_write_the_file_fails_the_render_with_its_reason(tmp_path):
    path = tmp_path / "missing-folder" / "export.xlsx"
    writer = await sheets.XlsxProcess.start(path, HEADERS, "许可备案")
    with pytest.raises(sheets.SheetWriterFailed, match=r"exited with 1: FileNotFoundError: .*No such file"):
        await writer.write(_rows(1, 10))
        await writer.finish()
    assert not path.exists()


async def test_abort_stops_the_child_and_leaves_no_finished_file(tmp_path):
    path = tmp_path / "export.xlsx"
    writer = await sheets.XlsxProcess.start(path, HEADERS, "许可备案")
    await writer.write(_rows(1, 100))
    await writer.abort()
    assert writer._process.returncode is not None
    assert not path.exists()


def test_control_characters_are_dropped_and_empty_values_leave_the_cell_empty(tmp_path):
    path = tmp_path / "export.xlsx"
    sheets.write_whole(sheets.XlsxFile(path, HEADERS, "x"), [["OL1\x01", "名\x0b称", "", "0012"]])
    [row] = openpyxl.load_workbook(path).active.iter_rows(min_row=2, values_only=True)
    assert row == ("OL1", "名称", None, "0012")
