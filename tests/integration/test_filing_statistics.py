"""Quarterly statistics (季度统计): four licences spread over this quarter and the last, across regions,
licensor types, industries and payment modes, with filings filed and money received in either quarter;
read through the page, the CSV and XLSX downloads, the API and the dashboard summary."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import openpyxl
import pytest
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import select

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.billing.models import Payment, Refund
from marketplace.clock import BUSINESS_TZ, today
from marketplace.filings import statistics
from marketplace.filings.models import FilingStatus, Registry
from marketplace.licensing.models import LicenceContract
from marketplace.outbox.services import drain_once
from marketplace.settings import PROJECT_ROOT
from marketplace.web.templating import configure_environment
from tests.billing_factories import INSTALMENTS, LUMP_SUM, Licence, invoices_of, licence
from tests.factories import Account, api_token, bearer, login, make_account
from tests.filing_factories import filing_of, refreshed

HEADERS_BY_REGION = ["地区", "新增许可合同（份）", "许可合同备案（件）", "技术合同登记（件）", "合同成交额（元）",
                     "技术交易额（元）", "到账金额（元，扣除退款）"]  # fmt: skip
FIGURES = (
    "new_licences",
    "filings",
    "registrations",
    "contract_value_fen",
    "transaction_value_fen",
    "payments_received_fen",
)

# What a reader of this quarter's tables should see, per row: the figures in FIGURES' order (fen).
THIS_QUARTER = {
    "region": {
        "北京市": (1, 2, 1, 5_000_000, 4_000_000, 6_900_000),
        "广东省": (1, 1, 1, 10_000_000, 10_000_000, 0),
        "未填写": (1, 0, 0, 0, 0, 0),
    },
    "licensor_type": {
        "高等院校": (1, 1, 1, 5_000_000, 4_000_000, 4_900_000),
        "科研机构": (1, 2, 1, 10_000_000, 10_000_000, 2_000_000),
        "企业": (1, 0, 0, 0, 0, 0),
    },
    "industry": {
        "C 制造业": (1, 1, 1, 5_000_000, 4_000_000, 4_900_000),
        "I 信息传输、软件和信息技术服务业": (1, 1, 1, 10_000_000, 10_000_000, 0),
        "M 科学研究和技术服务业": (0, 1, 0, 0, 0, 2_000_000),
        "未填写": (1, 0, 0, 0, 0, 0),
    },
    "payment_mode": {
        "免费": (1, 0, 0, 0, 0, 0),
        "一次总算、一次总付": (1, 2, 1, 5_000_000, 4_000_000, 6_900_000),
        "一次总算、分期支付": (1, 1, 1, 10_000_000, 10_000_000, 0),
    },
}
THIS_QUARTER_TOTAL = (3, 3, 2, 15_000_000, 14_000_000, 6_900_000)
LAST_QUARTER_BY_REGION = {
    "北京市": (1, 0, 1, 5_000_000, 5_000_000, 0),
    "广东省": (0, 0, 0, 0, 0, 3_333_334),
}
LAST_QUARTER_TOTAL = (1, 0, 1, 5_000_000, 5_000_000, 3_333_334)


def _at(day, hour: int, minute: int) -> datetime:
    """A Beijing wall-clock time as the UTC instant the database stores."""
    return datetime.combine(day, time(hour, minute), tzinfo=BUSINESS_TZ).astimezone(UTC)


async def _drain(sessionmaker, settings) -> None:
    while await drain_once(sessionmaker, settings):
        pass


async def _pay(client, db, lic: Licence, amount_fen: int, key: str) -> int:
    """The licensee declares a bank transfer against its first invoice and the licensor confirms it."""
    invoice = (await invoices_of(db, lic.contract.id))[0]
    body = {
        "invoice_id": invoice.id,
        "amount_fen": amount_fen,
        "payer_name": lic.licensee.organisation.name,
        "remitted_on": today().isoformat(),
        "reference": f"HX-{key}",
        "idempotency_key": key,
    }
    declared = await client.post("/api/v1/payments", json=body, headers=bearer(await api_token(db, lic.licensee)))
    assert declared.status_code == 201, declared.text
    payment_id = declared.json()["id"]
    confirmed = await client.post(
        f"/api/v1/payments/{payment_id}/confirm", headers=bearer(await api_token(db, lic.licensor))
    )
    assert confirmed.status_code == 200, confirmed.text
    return payment_id


async def _set(db, model, row_id: int, **values) -> None:
    row = await db.get(model, row_id, populate_existing=True)
    for name, value in values.items():
        setattr(row, name, value)
    await db.commit()


async def _filed(db, contract_id: int, registry: Registry, on, number: str, recorded: dict | None = None) -> None:
    filing = await filing_of(db, contract_id, registry)
    filing.status, filing.filed_on, filing.number = FilingStatus.FILED, on, number
    filing.recorded = recorded or {}
    await db.commit()


@dataclass
class World:
    beijing_university: Licence  # lump sum, this quarter; paid in full, 1,000.00 refunded
    shenzhen_institute: Licence  # instalments, this quarter; its first instalment was received last quarter
    unplaced_company: Licence  # free, this quarter; no province, licensee without an industry
    beijing_institute: Licence  # lump sum signed last quarter; filed this quarter, registered last quarter
    admin: Account
    this: statistics.Quarter
    last: statistics.Quarter

    def query(self, quarter: statistics.Quarter | None = None, by: str = "region") -> str:
        quarter = quarter or self.this
        return f"year={quarter.year}&quarter={quarter.quarter}&by={by}"


@pytest.fixture
async def world(client, db, sessionmaker, settings) -> World:
    this = statistics.Quarter.of(today())
    last = this.previous()
    a = await licence(db, fee_terms=LUMP_SUM)
    b = await licence(db, fee_terms=INSTALMENTS)
    c = await licence(db, fee_terms={"mode": "free"})
    d = await licence(db, fee_terms=LUMP_SUM)
    await _set(db, Organisation, b.licensor.organisation.id, kind=OrganisationKind.INSTITUTE, division_code="440305")
    await _set(db, Organisation, b.licensee.organisation.id, industry_code="I")
    await _set(db, Organisation, c.licensor.organisation.id, kind=OrganisationKind.ENTERPRISE, division_code=None)
    await _set(db, Organisation, c.licensee.organisation.id, industry_code=None)
    await _set(db, Organisation, d.licensor.organisation.id, kind=OrganisationKind.INSTITUTE)
    await _set(db, Organisation, d.licensee.organisation.id, industry_code="M")
    await _set(db, LicenceContract, d.contract.id, signed_on=last.first_day + timedelta(days=10))
    await _drain(sessionmaker, settings)

    paid_a = await _pay(client, db, a, 5_000_000, "statistics-a")
    refund = await client.post(
        f"/api/v1/payments/{paid_a}/refunds",
        json={"amount_fen": 100_000, "reason": "多收款项退回", "reference": "HX-REFUND-A"},
        headers=bearer(await api_token(db, a.licensor)),
    )
    assert refund.status_code == 201, refund.text
    paid_b = await _pay(client, db, b, 3_333_334, "statistics-b")
    # 23:30 on the last day of last quarter in Beijing is still last quarter (15:30 UTC that day) …
    await _set(db, Payment, paid_b, received_at=_at(last.last_day, 23, 30))
    paid_d = await _pay(client, db, d, 2_000_000, "statistics-d")
    # … and 00:30 on this quarter's first day is this quarter, though UTC still says the day before.
    await _set(db, Payment, paid_d, received_at=_at(this.first_day, 0, 30))
    await _drain(sessionmaker, settings)

    await refreshed(db, settings)
    for filing_registry in Registry:
        assert (await filing_of(db, a.contract.id, filing_registry)).contract_value_fen == 5_000_000
        assert (await filing_of(db, b.contract.id, filing_registry)).contract_value_fen == 10_000_000
    await _filed(db, a.contract.id, Registry.LICENCE_FILING, this.first_day, "BA-A")
    # The registry recorded a technology transaction value below the contract value: it counts.
    await _filed(db, a.contract.id, Registry.TECH_CONTRACT, this.first_day, "1101000000000001",
                 {"transaction_value_fen": 4_000_000, "contract_value_fen": 5_000_000})  # fmt: skip
    await _filed(db, b.contract.id, Registry.LICENCE_FILING, this.last_day, "BA-B")
    await _filed(db, b.contract.id, Registry.TECH_CONTRACT, this.first_day, "4403000000000002")
    await _filed(db, d.contract.id, Registry.LICENCE_FILING, this.first_day, "BA-D")
    await _filed(db, d.contract.id, Registry.TECH_CONTRACT, last.last_day, "1101000000000003")
    assert (await filing_of(db, c.contract.id)).filed_on is None

    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    return World(a, b, c, d, admin, this, last)


def _api_rows(body: dict) -> dict[str, tuple[int, ...]]:
    return {row["label"]: tuple(row[name] for name in FIGURES) for row in body["rows"]}


def _fen(text: str) -> int:
    cleaned = text.replace(",", "").strip()
    yuan, _, cents = cleaned.partition(".")
    return int(yuan) * 100 + int(cents or 0)


def _as_figures(cells: list[str]) -> tuple[int, ...]:
    """Table or CSV cells (counts, then amounts in yuan) → figures in fen."""
    return (*(int(cell.replace(",", "")) for cell in cells[:3]), *(_fen(cell) for cell in cells[3:]))


def _page_rows(html: str) -> dict[str, tuple[int, ...]]:
    table = html.split('id="statistics"')[1].split("<tbody>")[1].split("</tbody>")[0]
    rows = {}
    for label, cells in re.findall(r'<th scope="row">([^<]+)</th>\s*((?:<td class="num"[^>]*>[^<]*</td>)+)', table):
        rows[label] = _as_figures(re.findall(r">([^<]*)</td>", cells))
    return rows


@pytest.mark.parametrize("by", list(THIS_QUARTER))
async def test_the_api_breaks_this_quarter_down_and_the_total_is_the_sum_of_the_rows(client, db, world, by):
    token = await api_token(db, world.admin)
    response = await client.get(f"/api/v1/statistics?{world.query(by=by)}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["year"], body["quarter"], body["by"]) == (world.this.year, world.this.quarter, by)
    assert _api_rows(body) == THIS_QUARTER[by]
    assert list(_api_rows(body)) == list(THIS_QUARTER[by])  # in the code table's order, "未填写" last
    total = tuple(body["total"][name] for name in FIGURES)
    assert total == THIS_QUARTER_TOTAL
    assert total == tuple(sum(column) for column in zip(*_api_rows(body).values(), strict=True))


async def test_the_api_defaults_to_this_quarter_by_region_and_reads_last_quarter_on_request(client, db, world):
    token = await api_token(db, world.admin)
    default = (await client.get("/api/v1/statistics", headers=bearer(token))).json()
    assert (default["year"], default["quarter"], default["by"]) == (world.this.year, world.this.quarter, "region")
    assert _api_rows(default) == THIS_QUARTER["region"]
    assert [row["key"] for row in default["rows"]] == ["11", "44", "unknown"]

    last = (await client.get(f"/api/v1/statistics?{world.query(world.last)}", headers=bearer(token))).json()
    assert _api_rows(last) == LAST_QUARTER_BY_REGION
    assert tuple(last["total"][name] for name in FIGURES) == LAST_QUARTER_TOTAL

    empty = (await client.get("/api/v1/statistics?year=2001&quarter=1", headers=bearer(token))).json()
    assert empty["rows"] == [] and set(empty["total"].values()) == {0}


async def test_the_page_shows_the_table_the_charts_and_the_download_links(client, db, world):
    await login(client, world.admin)
    page = await client.get(f"/admin/filings/statistics?{world.query(by='licensor_type')}")
    assert page.status_code == 200, page.text
    html = page.text
    assert f"{world.this.year}年第{world.this.quarter}季度" in html
    assert _page_rows(html) == {label: figures for label, figures in THIS_QUARTER["licensor_type"].items()}
    footer = html.split('id="statistics-total"')[1].split("</tr>")[0]
    assert _as_figures(re.findall(r">([^<]*)</td>", footer)) == THIS_QUARTER_TOTAL
    assert "15,000,000.00" not in html and "150,000.00" in html  # amounts in yuan
    # One chart per measure, drawn as SVG with a title; the longest bar belongs to the largest value.
    assert html.count("<svg") == len(statistics.MEASURES)
    chart = html.split('id="chart-contract_value_fen"')[1].split("</svg>")[0]
    assert "<title" in chart and "合同成交额" in chart
    bar = r'<title>([^：<]+)：[^<]*</title>\s*<text[^>]*>[^<]*</text>\s*<rect[^>]*width="([\d.]+)"'
    widths = dict(re.findall(bar, chart))
    assert float(widths["科研机构"]) > float(widths["高等院校"]) > float(widths["企业"]) == 0
    assert "<script" not in html.split("</header>")[1]
    query = world.query(by="licensor_type").replace("&", "&amp;")
    assert f'href="/admin/filings/statistics.csv?{query}"' in html
    assert f'href="/admin/filings/statistics.xlsx?{query}"' in html

    default = await client.get("/admin/filings/statistics")
    assert default.status_code == 200
    assert _page_rows(default.text) == THIS_QUARTER["region"]
    assert f'value="{world.this.year}"' in default.text


async def test_the_csv_is_utf8_with_bom_and_has_the_same_numbers(client, db, world):
    await login(client, world.admin)
    response = await client.get(f"/admin/filings/statistics.csv?{world.query()}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    filename = f"statistics-{world.this.year}Q{world.this.quarter}-region.csv"
    assert f'filename="{filename}"' in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == HEADERS_BY_REGION
    *lines, total = rows[1:]
    assert {line[0]: _as_figures(line[1:]) for line in lines} == THIS_QUARTER["region"]
    assert total[0] == "合计" and _as_figures(total[1:]) == THIS_QUARTER_TOTAL
    assert total[4:] == ["150000.00", "140000.00", "69000.00"]

    by_mode = await client.get(f"/admin/filings/statistics.csv?{world.query(by='payment_mode')}")
    mode_rows = list(csv.reader(io.StringIO(by_mode.content.decode("utf-8-sig"))))
    assert mode_rows[0][0] == "支付方式"
    assert {line[0]: _as_figures(line[1:]) for line in mode_rows[1:-1]} == THIS_QUARTER["payment_mode"]


async def test_the_xlsx_has_the_headers_and_numeric_amounts_in_yuan(client, db, world):
    await login(client, world.admin)
    response = await client.get(f"/admin/filings/statistics.xlsx?{world.query(by='industry')}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "-industry.xlsx" in response.headers["content-disposition"]
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = workbook["季度统计"]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["行业", *HEADERS_BY_REGION[1:]]
    for row in sheet.iter_rows(min_row=2):
        assert all(isinstance(cell.value, (int, float)) for cell in row[1:])
        assert [cell.number_format for cell in row[4:]] == ["#,##0.00"] * 3
    got = {row[0]: (*row[1:4], *(round(value * 100) for value in row[4:])) for row in values[1:-1]}
    assert got == THIS_QUARTER["industry"]
    assert values[-1][0] == "合计"
    assert (*values[-1][1:4], *(round(value * 100) for value in values[-1][4:])) == THIS_QUARTER_TOTAL
    about = [row[1] for row in workbook["说明"].iter_rows(values_only=True)]
    assert any(f"{world.this.year}年第{world.this.quarter}季度" in (value or "") for value in about)


async def test_the_dashboard_summary_gives_eight_quarters_oldest_first(db, world):
    summary = await statistics.dashboard_summary(db)
    assert [item.quarter for item in summary.quarters] == statistics.last_quarters(today(), 8)
    assert summary.quarters[-1].quarter == world.this and summary.quarters[-2].quarter == world.last
    figures = [tuple(getattr(item.figures, name) for name in FIGURES) for item in summary.quarters]
    assert figures[-1] == THIS_QUARTER_TOTAL
    assert figures[-2] == LAST_QUARTER_TOTAL
    assert set(figures[:-2]) == {(0, 0, 0, 0, 0, 0)}

    env = Environment(loader=FileSystemLoader(PROJECT_ROOT / "templates"), autoescape=True)
    configure_environment(env)
    html = env.get_template("filings/partials/statistics_summary.html.j2").render(statistics=summary)
    assert "<svg" in html and "<title" in html
    assert 'href="/admin/filings/statistics"' in html
    assert f"{world.this.year}Q{world.this.quarter}" in html and f"{world.last.year}Q{world.last.quarter}" in html
    # Three bars per quarter; this quarter's new licences (3) reach higher than last quarter's (1).
    heights = {
        (quarter, series): float(height)
        for height, quarter, series in re.findall(r'height="([\d.]+)" fill="#[0-9a-f]+"><title>(\S+) ([^：]+)：', html)
    }
    assert len(heights) == 8 * 3
    assert heights[(world.this.short_label, "新增许可合同")] > heights[(world.last.short_label, "新增许可合同")] > 0
    assert heights[(world.last.short_label, "许可合同备案")] == 0

    earlier = await statistics.dashboard_summary(db, on=world.last.first_day)
    assert earlier.quarters[-1].quarter == world.last
    assert earlier.quarters[-1].figures.payments_received_fen == 3_333_334


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("year=1999&quarter=1", {"year"}),
        ("year=2101&quarter=4", {"year"}),
        ("year=abc&quarter=0", {"year", "quarter"}),
        ("year=2026&quarter=5&by=city", {"quarter", "by"}),
        ("year=-2026&quarter=1.5", {"year", "quarter"}),
    ],
)
async def test_bad_parameters_are_422_with_chinese_field_errors(client, db, query, fields):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    api = await client.get(f"/api/v1/statistics?{query}", headers=bearer(await api_token(db, admin)))
    assert api.status_code == 422
    assert api.headers["content-type"].startswith("application/problem+json")
    errors = api.json()["errors"]
    assert {error["field"] for error in errors} == fields
    assert all(re.search(r"[\u4e00-\u9fff]", error["message"]) for error in errors)

    await login(client, admin)
    page = await client.get(f"/admin/filings/statistics?{query}")
    assert page.status_code == 422
    for name in fields:
        assert f'id="e-{name}"' in page.text
    assert 'id="statistics"' not in page.text
    for path in ("/admin/filings/statistics.csv", "/admin/filings/statistics.xlsx"):
        assert (await client.get(f"{path}?{query}")).status_code == 422


ROUTES = (
    "/admin/filings/statistics",
    "/admin/filings/statistics.csv",
    "/admin/filings/statistics.xlsx",
)


async def test_only_platform_admins_read_the_statistics(client, db, world):
    query = world.query()
    for account in (world.beijing_university.licensor, world.beijing_university.licensee):
        token = await api_token(db, account)
        api = await client.get(f"/api/v1/statistics?{query}", headers=bearer(token))
        assert api.status_code == 403
        assert api.headers["content-type"].startswith("application/problem+json")
        await login(client, account)
        for path in ROUTES:
            response = await client.get(f"{path}?{query}")
            assert response.status_code == 403, (path, response.status_code)
            assert "广东省" not in response.text

    client.cookies.clear()
    assert (await client.get(f"/api/v1/statistics?{query}")).status_code == 401
    for path in ROUTES:
        response = await client.get(f"{path}?{query}")
        assert response.status_code in (302, 303) and "/login" in response.headers["location"], path

    # A platform admin's session reads the pages; the platform organisation's API token reads the API.
    await login(client, world.admin)
    for path in ROUTES:
        assert (await client.get(f"{path}?{query}")).status_code == 200, path
    client.cookies.clear()
    api = await client.get(f"/api/v1/statistics?{query}", headers=bearer(await api_token(db, world.admin)))
    assert api.status_code == 200 and _api_rows(api.json()) == THIS_QUARTER["region"]


async def test_a_refund_completed_in_a_later_quarter_counts_there(client, db, world):
    refund_id = await db.scalar(select(Refund.id).where(Refund.contract_id == world.beijing_university.contract.id))
    await _set(db, Refund, refund_id, completed_at=_at(world.this.next().first_day, 9, 0))
    token = await api_token(db, world.admin)
    now = (await client.get(f"/api/v1/statistics?{world.query()}", headers=bearer(token))).json()
    assert _api_rows(now)["北京市"][5] == 7_000_000
    later = (await client.get(f"/api/v1/statistics?{world.query(world.this.next())}", headers=bearer(token))).json()
    assert _api_rows(later) == {"北京市": (0, 0, 0, 0, 0, -100_000)}
