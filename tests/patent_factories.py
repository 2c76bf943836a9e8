"""Arranging patents and inventory tables for tests."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date
from typing import Any

import openpyxl

from marketplace.accounts.models import Organisation
from marketplace.patents import rules
from marketplace.patents.models import LegalStatus, Patent, PatentType

_serial = itertools.count(1)
_TYPE_DIGIT = {PatentType.INVENTION: "1", PatentType.UTILITY_MODEL: "2", PatentType.DESIGN: "3"}


def application_number(
    year: int = 2018, patent_type: PatentType = PatentType.INVENTION, serial: int | None = None
) -> str:
    serial = next(_serial) if serial is None else serial
    return rules.canonical_application_number(f"{year}{_TYPE_DIGIT[patent_type]}{serial:07d}")


async def make_patent(
    session,
    owner: Organisation,
    *,
    patent_type: PatentType = PatentType.INVENTION,
    filing_date: date = date(2016, 3, 10),
    grant_date: date | None = date(2018, 9, 4),
    legal_status: LegalStatus = LegalStatus.GRANTED,
    title: str = "一种锂电池负极材料的制备方法",
    **fields: Any,
) -> Patent:
    """A patent registered directly in the table (committed)."""
    patent = Patent(
        application_number=fields.pop("application_number", None)
        or application_number(filing_date.year, patent_type),
        patent_type=patent_type,
        title=title,
        owner_organisation_id=owner.id,
        filing_date=filing_date,
        grant_date=grant_date,
        legal_status=legal_status,
        expiry_date=rules.expiry_date(patent_type, filing_date),
        annual_fee_paid_until=fields.pop("annual_fee_paid_until", date(2099, 3, 9)),
        **fields,
    )
    session.add(patent)
    await session.commit()
    return patent


def row(**cells: Any) -> dict[str, Any]:
    """A valid inventory row keyed by the Chinese headers; keyword arguments are column keys."""
    values: dict[str, Any] = {
        "application_number": application_number(2019),
        "title": "一种石墨烯导热膜及其制备方法",
        "filing_date": "2019-04-02",
        "grant_date": "2021-07-16",
        "legal_status": "有效",
        "annual_fee_paid_until": "2099-04-01",
        "ipc_main": "H01M4/583",
        "inventors": "张三、李四",
        "government_funded": "是",
        "transfer_intents": "许可；转让",
        "trl": "6",
    }
    values.update(cells)
    return {rules.COLUMN_BY_KEY[key].header: value for key, value in values.items()}


def _table(rows: list[dict[str, Any]], headers: list[str] | None) -> tuple[list[str], list[list[Any]]]:
    headers = headers or [column.header for column in rules.COLUMNS]
    return headers, [[r.get(h, "") for h in headers] for r in rows]


def csv_bytes(rows: list[dict[str, Any]], *, encoding: str = "utf-8-sig", headers: list[str] | None = None) -> bytes:
    headers, body = _table(rows, headers)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(body)
    return out.getvalue().encode(encoding)


def xlsx_bytes(rows: list[dict[str, Any]], *, headers: list[str] | None = None) -> bytes:
    headers, body = _table(rows, headers)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for cells in body:
        sheet.append([None if cell == "" else cell for cell in cells])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
