"""Synthetic inventory tables (盘点表) in the upload template's format, for demo data and benchmarks."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta

from marketplace.demo.vocabulary import FIELDS, abstract_for, inventors_for, title_for
from marketplace.patents.rules import COLUMNS, canonical_application_number
from marketplace.patents.services import template_headers

LOCARNO = ("14-03", "10-02", "12-08", "24-01", "13-03")


def patent_row(
    rng: random.Random,
    *,
    serial: int,
    filing: date,
    type_digit: str = "1",
    status: str = "有效",
    today: date,
) -> dict[str, str]:
    """One valid inventory row. ``status`` is the sheet's word: 审中, 有效, 失效, 无效 or 届满."""
    field = rng.choice(FIELDS)
    title = title_for(rng, field)
    if type_digit == "3":
        title = title.removeprefix("一种").removeprefix("用于") + "（外观）"
        ipc_main, others = rng.choice(LOCARNO), ""
    else:
        ipc_main = rng.choice(field.ipc)
        others = "；".join(code for code in rng.sample(field.ipc, 2) if code != ipc_main)
    granted = status != "审中"
    grant = filing + timedelta(days=rng.randrange(180, 1000)) if granted else None
    if grant and grant > today:
        grant = today - timedelta(days=1)
    if status == "有效":
        anniversary = date(today.year, filing.month, min(filing.day, 28))
        paid_until = anniversary if anniversary > today else date(today.year + 1, filing.month, min(filing.day, 28))
    elif status == "失效":
        paid_until = date(today.year - 1, filing.month, min(filing.day, 28))
    else:
        paid_until = None
    return {
        "application_number": canonical_application_number(f"{filing.year}{type_digit}{serial:07d}"),
        "title": title,
        "patent_type": {"1": "发明", "2": "实用新型", "3": "外观设计"}[type_digit],
        "filing_date": filing.isoformat(),
        "grant_date": grant.isoformat() if grant else "",
        "legal_status": status,
        "annual_fee_paid_until": paid_until.isoformat() if paid_until else "",
        "expiry_override": "",
        "ipc_main": ipc_main,
        "ipc_codes": others,
        "abstract": abstract_for(rng, field, title),
        "inventors": "；".join(inventors_for(rng)),
        "co_owners": "",
        "co_owner_consent": "否",
        "pledged": "否",
        "pledgee_consent": "否",
        "exclusive_or_sole_licence": "否",
        "proceedings_suspended": "否",
        "government_funded": "是" if rng.random() < 0.6 else "否",
        "implemented": "是" if rng.random() < 0.15 else "否",
        "trl": str(rng.randint(3, 9)),
        "transfer_intents": rng.choice(("许可", "许可；转让", "转让；作价入股", "许可；自行实施")),
        "application_scenarios": rng.choice(field.scenarios),
        "claims_count": str(rng.randint(3, 20)) if type_digit != "3" else "",
    }


def to_csv(rows: list[dict[str, str]]) -> bytes:
    """The rows under the template's Chinese headers, UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(template_headers())
    keys = [column.key for column in COLUMNS]
    for row in rows:
        writer.writerow([row.get(key, "") for key in keys])
    return out.getvalue().encode("utf-8")
