"""Export files: CSV and XLSX, written as rows arrive, every cell text.

XLSX is written with XlsxWriter in constant-memory mode (rows go to disk as they come, strings
inline). Formatting a spreadsheet costs about as much CPU as reading and recording the contracts, so
a render hands the XLSX rows to a child process (``python -m marketplace.filings.sheets``) through a
pipe and reads the next chunk from the database while the child writes: the two halves run on two
cores, and the pipe's back-pressure keeps both memories flat. Frames on the pipe are a 4-byte length
and a msgpack payload: first ``[path, title, headers]``, then lists of rows; end of input finishes the
file.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import re
import struct
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import msgspec
import xlsxwriter

#: Characters XML 1.0 forbids; the registries' systems reject files that carry them escaped.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_LENGTH = struct.Struct(">I")
#: What is kept of the child's error output for the error message.
_STDERR_TAIL = 4000


class RowFile(Protocol):
    """A file being written in this process."""

    def write(self, rows: Iterable[Sequence[str]]) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class CsvFile:
    """UTF-8 with a BOM (so Excel detects the encoding), CRLF, every cell quoted; values are written
    verbatim (codes keep their leading zeros in the file)."""

    def __init__(self, path: Path, headers: Sequence[str]) -> None:
        self._handle = path.open("w", encoding="utf-8-sig", newline="")
        self._csv = csv.writer(self._handle, quoting=csv.QUOTE_ALL)
        self._csv.writerow(headers)

    def write(self, rows: Iterable[Sequence[str]]) -> None:
        self._csv.writerows(rows)

    def finish(self) -> None:
        self._handle.close()

    def abort(self) -> None:
        self._handle.close()


class XlsxFile:
    """One worksheet: a bold header row, frozen, and every cell a text cell — values that look like
    numbers, formulas or error codes included; empty values leave the cell empty."""

    def __init__(self, path: Path, headers: Sequence[str], title: str) -> None:
        self._book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": str(path.parent),
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self._sheet = self._book.add_worksheet(title)
        bold = self._book.add_format({"bold": True})
        for column, header in enumerate(headers):
            self._sheet.set_column(column, column, min(40, max(12, 2 * len(header) + 2)))
            self._sheet.write_string(0, column, header, bold)
        self._sheet.freeze_panes(1, 0)
        self._row = 0

    def write(self, rows: Iterable[Sequence[str]]) -> None:
        write_string = self._sheet.write_string
        for values in rows:
            self._row += 1
            for column, value in enumerate(values):
                if value:
                    write_string(self._row, column, _ILLEGAL.sub("", value))

    def finish(self) -> None:
        self._book.close()

    def abort(self) -> None:
        # The file is discarded; whatever closing it would say adds nothing to the error being raised.
        with contextlib.suppress(Exception):
            self._book.close()


def write_whole(file: RowFile, rows: Iterable[Sequence[str]]) -> None:
    try:
        file.write(rows)
    except BaseException:
        file.abort()
        raise
    file.finish()


# ---------------------------------------------------------------------------------------------
# Writing from a render (async)
# ---------------------------------------------------------------------------------------------


class RowWriter(Protocol):
    async def write(self, rows: list[list[str]]) -> None: ...

    async def finish(self) -> None: ...

    async def abort(self) -> None: ...


class ThreadedWriter:
    """A :class:`RowFile` written in a worker thread, so the event loop stays free."""

    def __init__(self, file: RowFile) -> None:
        self._file = file

    async def write(self, rows: list[list[str]]) -> None:
        await asyncio.to_thread(self._file.write, rows)

    async def finish(self) -> None:
        await asyncio.to_thread(self._file.finish)

    async def abort(self) -> None:
        await asyncio.to_thread(self._file.abort)


class SheetWriterFailed(RuntimeError):
    pass


class XlsxProcess:
    """An :class:`XlsxFile` written by a child process fed through its standard input."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._encoder = msgspec.msgpack.Encoder()
        self._stderr = bytearray()
        self._reader = asyncio.ensure_future(self._read_stderr())
        #: The child's peak memory (kB), as it reported it when it finished.
        self.peak_rss_kb: int | None = None

    @classmethod
    async def start(cls, path: Path, headers: Sequence[str], title: str) -> XlsxProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        writer = cls(process)
        await writer._send([str(path), title, list(headers)])
        return writer

    async def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        while chunk := await self._process.stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-_STDERR_TAIL]

    async def _failure(self) -> SheetWriterFailed:
        code = await self._process.wait()
        await self._reader
        detail = self._stderr.decode(errors="replace").strip()
        reason = detail.splitlines()[-1] if detail else "no error output"
        return SheetWriterFailed(f"the XLSX writer process exited with {code}: {reason}\n{detail}")

    async def _send(self, payload: object) -> None:
        assert self._process.stdin is not None
        data = self._encoder.encode(payload)
        try:
            self._process.stdin.write(_LENGTH.pack(len(data)) + data)
            await self._process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise await self._failure() from None

    async def write(self, rows: list[list[str]]) -> None:
        if rows:
            await self._send(rows)

    async def finish(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self._process.stdin.wait_closed()
        assert self._process.stdout is not None
        report = await self._process.stdout.read()
        if await self._process.wait() != 0:
            raise await self._failure()
        await self._reader
        if report.strip().isdigit():
            self.peak_rss_kb = int(report)

    async def abort(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()
        await self._reader


def _read_frame(stream: object) -> object | None:
    head = stream.read(_LENGTH.size)  # type: ignore[attr-defined]
    if not head:
        return None
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)  # type: ignore[attr-defined]
    if len(data) != length:
        raise EOFError("the export's rows ended mid-frame")
    return msgspec.msgpack.decode(data)


def main() -> int:
    """The child: write the rows arriving on standard input, then finish the file."""
    stream = sys.stdin.buffer
    try:
        path, title, headers = _read_frame(stream)  # type: ignore[misc]
        file = XlsxFile(Path(path), headers, title)
        try:
            while (rows := _read_frame(stream)) is not None:
                file.write(rows)  # type: ignore[arg-type]
        except BaseException:
            file.abort()
            raise
        file.finish()
    except Exception:
        traceback.print_exc()
        return 1
    print(_peak_rss_kb(), flush=True)
    return 0


def _peak_rss_kb() -> int:
    """This process's peak resident memory (Linux; 0 elsewhere)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


if __name__ == "__main__":
    sys.exit(main())
