"""The licensor's statement (对账单): the page, the CSV and XLSX downloads and the API, arranged through
the real billing services (invoices by the sweep, transfers declared and confirmed, a refund)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import openpyxl
import pytest

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.accounts.services import principal_for
from marketplace.billing.models import Account as LedgerAccount
from marketplace.billing.models import Payment, Refund
from marketplace.billing.services import balances
from marketplace.billing.sweep import run as sweep
from marketplace.clock import today
from marketplace.licensing import services as licensing
from marketplace.offers.models import OfferStatus
from marketplace.offers.rules import add_months
from marketplace.outbox.services import drain_once
from tests.billing_factories import INSTALMENTS, LUMP_SUM, Licence, assert_ledger_consistent, invoices_of, licence
from tests.factories import Account, add_member, api_token, bearer, login, make_account
from tests.licensing_factories import Listing, enterprise, notice_form
from tests.offer_factories import make_offer, make_patent

HEADERS = ["被许可方", "统一社会信用代码", "月份", "开具金额（元）", "到账金额（元）", "退款（元）", "期末未付（元）",
           "合同编号"]  # fmt: skip


async def _another_licence(db, licensor: Account, *, fee_terms: dict, licensee: Account) -> Licence:
    """A second licence granted by the same licensor (``licence`` makes a new licensor each time)."""
    patent = await make_patent(db, licensor)
    offer = await make_offer(db, licensor, patent, status=OfferStatus.PUBLISHED, fee_terms=fee_terms)
    contract, _ = await licensing.accept(
        db, actor=principal_for(licensee.user), offer_id=offer.id, values=notice_form(), client=licensing.ClientInfo()
    )
    await db.commit()
    return Licence(Listing(licensor, patent, offer), licensee, contract)


async def _drain(sessionmaker, settings) -> None:
    while await drain_once(sessionmaker, settings):
        pass


async def _pay(client, db, lic: Licence, invoice_id: int, amount_fen: int, key: str) -> int:
    """The licensee declares a bank transfer and the licensor confirms it arrived."""
    body = {
        "invoice_id": invoice_id,
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


@dataclass
class Books:
    a: Licence  # licensee A: instalments since 6 months ago
    b: Licence  # licensee B: a lump sum from today, same licensor
    elsewhere: Licence  # licensee A again, with another licensor
    first_month: str
    this_month: str
    months: list[str]

    @property
    def licensor(self) -> Account:
        return self.a.licensor

    def query(self, **extra: str) -> str:
        params = {"from": self.first_month, "to": self.this_month, **extra}
        return "&".join(f"{key}={value}" for key, value in params.items())


@pytest.fixture
async def books(client, db, sessionmaker, settings) -> Books:
    """Licensee A was invoiced instalment 1 six months ago and instalment 2 today, paid instalment 1
    this month and got 1,000.00 of it back; licensee B was invoiced 50,000.00 today and paid 20,000.00.
    A also pays a lump sum to another licensor, which the first must never see."""
    a = await licence(db, fee_terms=INSTALMENTS, months_ago=6)
    await sweep(sessionmaker, settings, on=a.contract.start_date)
    b = await _another_licence(db, a.licensor, fee_terms=LUMP_SUM, licensee=await enterprise(db))
    elsewhere = await licence(db, fee_terms=LUMP_SUM, licensee=a.licensee)
    await _drain(sessionmaker, settings)

    first, second = await invoices_of(db, a.contract.id)
    assert (first.issued_on, first.total_fen) == (a.contract.start_date, 3_333_334)
    assert (second.issued_on, second.total_fen) == (today(), 3_333_333)
    payment_id = await _pay(client, db, a, first.id, 3_333_334, "a-instalment-1")
    refund = await client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"amount_fen": 100_000, "reason": "多收款项退回", "reference": "HX-REFUND-1"},
        headers=bearer(await api_token(db, a.licensor)),
    )
    assert refund.status_code == 201, refund.text
    [invoice_b] = await invoices_of(db, b.contract.id)
    await _pay(client, db, b, invoice_b.id, 2_000_000, "b-lump-sum")
    [invoice_elsewhere] = await invoices_of(db, elsewhere.contract.id)
    await _pay(client, db, elsewhere, invoice_elsewhere.id, 5_000_000, "a-elsewhere")
    await _drain(sessionmaker, settings)

    first_month, this_month = f"{a.contract.start_date:%Y-%m}", f"{today():%Y-%m}"
    months = [f"{add_months(a.contract.start_date.replace(day=1), n):%Y-%m}" for n in range(7)]
    assert months[-1] == this_month
    return Books(a, b, elsewhere, first_month, this_month, months)


def _expected_rows(books: Books) -> dict[tuple[str, str], tuple[int, int, int, int, list[str]]]:
    """(licensee, month) → (invoiced, received, refunded, outstanding, contract numbers), in fen."""
    a, b = books.a, books.b
    rows = {(a.licensee.organisation.name, month): (0, 0, 0, 3_333_334, [a.contract.number]) for month in books.months}
    rows[(a.licensee.organisation.name, books.first_month)] = (3_333_334, 0, 0, 3_333_334, [a.contract.number])
    rows[(a.licensee.organisation.name, books.this_month)] = (3_333_333, 3_333_334, 100_000, 3_433_333,
                                                              [a.contract.number])  # fmt: skip
    rows[(b.licensee.organisation.name, books.this_month)] = (5_000_000, 2_000_000, 0, 3_000_000, [b.contract.number])
    return rows


TOTALS = {"invoiced_fen": 11_666_667, "received_fen": 5_333_334, "refunded_fen": 100_000, "outstanding_fen": 6_433_333}


def _fen(text: str) -> int:
    """``¥64,333.33`` (as a page shows it) or ``64333.33`` (as the CSV has it) → fen."""
    cleaned = text.replace("¥", "").replace(",", "").strip()
    yuan, _, cents = cleaned.partition(".")
    return int(yuan) * 100 + int(cents or 0)


def _cells(html: str, cell_id: str) -> int:
    match = re.search(rf'id="{cell_id}">([^<]+)<', html)
    assert match, cell_id
    return _fen(match.group(1))


async def test_the_api_gives_each_licensee_and_month_and_totals_that_match_the_ledger(client, db, books):
    response = await client.get(
        f"/api/v1/statements?{books.query()}", headers=bearer(await api_token(db, books.licensor))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"], body["licensee_id"]) == (books.first_month, books.this_month, None)
    assert body["licensor"]["name"] == books.licensor.organisation.name
    got = {
        (row["licensee"]["name"], row["month"]): (
            row["invoiced_fen"],
            row["received_fen"],
            row["refunded_fen"],
            row["outstanding_fen"],
            row["contract_numbers"],
        )
        for row in body["rows"]
    }
    assert got == _expected_rows(books)
    assert len(body["rows"]) == 8
    assert {row["licensee"]["uscc"] for row in body["rows"]} == {
        books.a.licensee.organisation.uscc,
        books.b.licensee.organisation.uscc,
    }
    assert body["totals"] == TOTALS

    # The totals are the ledger's: what is still receivable, and the cash kept (received less refunded).
    ledgers = [await assert_ledger_consistent(db, lic.contract.id) for lic in (books.a, books.b)]
    assert sum(ledger[LedgerAccount.RECEIVABLE] for ledger in ledgers) == TOTALS["outstanding_fen"]
    assert sum(ledger[LedgerAccount.CASH] for ledger in ledgers) == TOTALS["received_fen"] - TOTALS["refunded_fen"]
    receivable_a = (await balances(db, books.a.contract.id))[LedgerAccount.RECEIVABLE]
    assert receivable_a == sum(invoice.outstanding_fen for invoice in await invoices_of(db, books.a.contract.id))
    assert receivable_a == _expected_rows(books)[(books.a.licensee.organisation.name, books.this_month)][3]

    # One licensee: only its rows, only this licensor's contract with it.
    one = await client.get(
        f"/api/v1/statements?{books.query(licensee_id=str(books.a.licensee.organisation.id))}",
        headers=bearer(await api_token(db, books.licensor)),
    )
    assert one.status_code == 200
    assert {row["licensee"]["id"] for row in one.json()["rows"]} == {books.a.licensee.organisation.id}
    assert {n for row in one.json()["rows"] for n in row["contract_numbers"]} == {books.a.contract.number}
    assert one.json()["totals"] == {
        "invoiced_fen": 6_666_667,
        "received_fen": 3_333_334,
        "refunded_fen": 100_000,
        "outstanding_fen": 3_433_333,
    }

    # A period before anything happened: only what was owed then carries over.
    earlier = await client.get(
        f"/api/v1/statements?from={books.months[1]}&to={books.months[2]}",
        headers=bearer(await api_token(db, books.licensor)),
    )
    assert [(r["month"], r["invoiced_fen"], r["outstanding_fen"]) for r in earlier.json()["rows"]] == [
        (books.months[1], 0, 3_333_334),
        (books.months[2], 0, 3_333_334),
    ]
    assert earlier.json()["totals"]["outstanding_fen"] == 3_333_334


async def test_the_page_shows_the_table_and_totals_and_links_the_downloads(client, db, books):
    member = await add_member(db, books.licensor)
    await login(client, member)
    page = await client.get(f"/billing/statement?{books.query()}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "对账单" in html and books.licensor.organisation.name in html
    assert _cells(html, "total-invoiced") == TOTALS["invoiced_fen"]
    assert _cells(html, "total-received") == TOTALS["received_fen"]
    assert _cells(html, "total-refunded") == TOTALS["refunded_fen"]
    assert _cells(html, "total-outstanding") == TOTALS["outstanding_fen"]
    table = html.split('id="statement"')[1].split("<tfoot>")[0]
    assert table.count("<tr>") == 1 + 8
    assert books.a.licensee.organisation.name in table and books.b.licensee.organisation.name in table
    assert books.b.licensee.organisation.uscc in table
    assert f'href="/contracts/{books.b.contract.id}/billing">{books.b.contract.number}</a>' in table
    assert "¥34,333.33" in table and "¥50,000.00" in table and "¥1,000.00" in table
    assert books.elsewhere.contract.number not in html
    assert f'href="/billing/statement.csv?from={books.first_month}&amp;to={books.this_month}"' in html
    assert f'href="/billing/statement.xlsx?from={books.first_month}&amp;to={books.this_month}"' in html
    # The licensee filter lists this licensor's licensees.
    assert f'<option value="{books.b.licensee.organisation.id}">' in html
    nav = await client.get("/invoices")
    assert 'href="/billing/statement"' in nav.text

    filtered = await client.get(f"/billing/statement?{books.query(licensee=str(books.b.licensee.organisation.id))}")
    assert filtered.status_code == 200
    assert books.a.licensee.organisation.name not in filtered.text.split('id="statement"')[1]
    assert _cells(filtered.text, "total-outstanding") == 3_000_000


async def test_the_csv_is_utf8_with_bom_and_reads_back_to_the_same_figures(client, db, books):
    await login(client, books.licensor)
    response = await client.get(f"/billing/statement.csv?{books.query()}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    start, end = books.first_month.replace("-", ""), books.this_month.replace("-", "")
    assert f'filename="statement-{start}-{end}.csv"' in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == HEADERS
    *lines, totals = rows[1:]
    got = {(r[0], r[2]): (_fen(r[3]), _fen(r[4]), _fen(r[5]), _fen(r[6]), r[7].split("、")) for r in lines}
    assert got == _expected_rows(books)
    assert all(re.fullmatch(r"-?\d+\.\d{2}", value) for r in lines for value in r[3:7])
    uscc = {r[0]: r[1] for r in lines}
    assert uscc[books.a.licensee.organisation.name] == books.a.licensee.organisation.uscc
    assert totals == [
        "合计",
        "",
        f"{books.first_month}至{books.this_month}",
        "116666.67",
        "53333.34",
        "1000.00",
        "64333.33",
        "",
    ]


async def test_the_xlsx_has_chinese_headers_and_numeric_amounts(client, db, books):
    await login(client, books.licensor)
    response = await client.get(f"/billing/statement.xlsx?{books.query()}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert ".xlsx" in response.headers["content-disposition"]
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = workbook["对账单"]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == HEADERS
    *lines, totals = values[1:]
    for row in sheet.iter_rows(min_row=2):
        for cell in row[3:7]:
            assert isinstance(cell.value, (int, float)), cell.coordinate
            assert cell.number_format == "#,##0.00"
    got = {
        (r[0], r[2]): (*(round(value * 100) for value in r[3:7]), r[7].split("、"))
        for r in lines
    }
    assert got == _expected_rows(books)
    assert totals[0] == "合计"
    assert [round(value * 100) for value in totals[3:7]] == list(TOTALS.values())
    assert books.licensor.organisation.name in [row[1] for row in workbook["说明"].iter_rows(values_only=True)]


async def test_a_licensee_gets_403_and_anonymous_is_sent_to_log_in(client, db, books):
    licensee = books.a.licensee
    token = await api_token(db, licensee)
    api = await client.get(f"/api/v1/statements?{books.query()}", headers=bearer(token))
    assert api.status_code == 403
    assert api.headers["content-type"].startswith("application/problem+json")
    # Even naming the licensor it pays does not open the licensor's statement.
    named = await client.get(
        f"/api/v1/statements?{books.query(licensor_id=str(books.licensor.organisation.id))}", headers=bearer(token)
    )
    assert named.status_code == 403

    member = await add_member(db, licensee)
    for account in (licensee, member):
        await login(client, account)
        for path in ("/billing/statement", "/billing/statement.csv", "/billing/statement.xlsx"):
            response = await client.get(f"{path}?{books.query()}")
            assert response.status_code == 403, (path, response.status_code)
            assert books.b.licensee.organisation.name not in response.text
        assert 'href="/billing/statement"' not in (await client.get("/invoices")).text

    client.cookies.clear()
    assert (await client.get(f"/api/v1/statements?{books.query()}")).status_code == 401
    page = await client.get(f"/billing/statement?{books.query()}")
    assert page.status_code in (302, 303) and "/login" in page.headers["location"]
    download = await client.get(f"/billing/statement.csv?{books.query()}")
    assert download.status_code in (302, 303)


async def test_another_licensor_sees_only_its_own_contracts(client, db, books):
    other = books.elsewhere.licensor
    token = await api_token(db, other)
    own = await client.get(f"/api/v1/statements?{books.query()}", headers=bearer(token))
    assert own.status_code == 200
    assert {n for row in own.json()["rows"] for n in row["contract_numbers"]} == {books.elsewhere.contract.number}
    assert own.json()["totals"] == {
        "invoiced_fen": 5_000_000,
        "received_fen": 5_000_000,
        "refunded_fen": 0,
        "outstanding_fen": 0,
    }
    # Naming the first licensor, or filtering by its licensee B, opens nothing.
    named = await client.get(
        f"/api/v1/statements?{books.query(licensor_id=str(books.licensor.organisation.id))}", headers=bearer(token)
    )
    assert named.status_code == 403
    not_theirs = await client.get(
        f"/api/v1/statements?{books.query(licensee_id=str(books.b.licensee.organisation.id))}", headers=bearer(token)
    )
    assert not_theirs.status_code == 422
    assert [e["field"] for e in not_theirs.json()["errors"]] == ["licensee_id"]

    await login(client, other)
    page = await client.get(f"/billing/statement?{books.query()}")
    assert page.status_code == 200
    for foreign in (books.a.contract.number, books.b.contract.number, books.b.licensee.organisation.name):
        assert foreign not in page.text
    csv_text = (await client.get(f"/billing/statement.csv?{books.query()}")).content.decode("utf-8-sig")
    assert books.a.contract.number not in csv_text and books.b.licensee.organisation.name not in csv_text

    # A university that granted nothing yet has an empty statement (not someone else's).
    newcomer = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    await login(client, newcomer)
    empty = await client.get(f"/billing/statement?{books.query()}")
    assert empty.status_code == 200 and 'id="statement-empty"' in empty.text
    assert books.a.licensee.organisation.name not in empty.text


async def test_a_platform_admin_chooses_the_licensor(client, db, books):
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    token = await api_token(db, admin)
    missing = await client.get(f"/api/v1/statements?{books.query()}", headers=bearer(token))
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "licensor_id"
    licensor_id = books.licensor.organisation.id
    chosen = await client.get(f"/api/v1/statements?{books.query(licensor_id=str(licensor_id))}", headers=bearer(token))
    assert chosen.status_code == 200 and chosen.json()["totals"] == TOTALS
    not_a_licensor = await client.get(
        f"/api/v1/statements?{books.query(licensor_id=str(books.b.licensee.organisation.id))}", headers=bearer(token)
    )
    assert not_a_licensor.status_code == 422
    assert not_a_licensor.json()["errors"][0]["field"] == "licensor_id"

    await login(client, admin)
    prompt = await client.get("/billing/statement")
    assert prompt.status_code == 200 and "请选择许可方" in prompt.text
    assert f'<option value="{licensor_id}">' in prompt.text
    assert f'<option value="{books.elsewhere.licensor.organisation.id}">' in prompt.text
    assert 'id="statement"' not in prompt.text
    page = await client.get(f"/billing/statement?{books.query(licensor=str(licensor_id))}")
    assert page.status_code == 200
    assert _cells(page.text, "total-outstanding") == TOTALS["outstanding_fen"]
    assert f"licensor={licensor_id}" in page.text
    download = await client.get(f"/billing/statement.xlsx?{books.query(licensor=str(licensor_id))}")
    assert download.status_code == 200
    assert (await client.get(f"/billing/statement.csv?{books.query()}")).status_code == 422


@pytest.mark.parametrize(
    ("date_from", "date_to", "fields"),
    [
        ("2026-13", "2026-12", {"from"}),
        ("abc", "2026/01", {"from", "to"}),
        ("2025-05", "2025-01", {"to"}),
        ("2022-01", "2025-01", {"to"}),  # 37 months
        (f"{today().year + 1}-01", f"{today().year + 1}-02", {"from"}),  # after this month
        ("1999-12", "2000-01", {"from"}),
    ],
)
async def test_bad_ranges_are_field_errors(client, db, date_from, date_to, fields):
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    response = await client.get(
        f"/api/v1/statements?from={date_from}&to={date_to}", headers=bearer(await api_token(db, licensor))
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {error["field"] for error in response.json()["errors"]} == fields
    assert all(re.search(r"[\u4e00-\u9fff]", error["message"]) for error in response.json()["errors"])


async def test_the_page_shows_range_errors_beside_the_fields(client, db):
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    await login(client, licensor)
    backwards = await client.get("/billing/statement?from=2025-05&to=2025-01")
    assert backwards.status_code == 422
    assert 'id="e-to"' in backwards.text and "截止月份不能早于起始月份" in backwards.text
    assert 'value="2025-05"' in backwards.text  # what was typed stays in the form
    too_long = await client.get("/billing/statement?from=2022-01&to=2025-01")
    assert too_long.status_code == 422 and "一次最多查询36个月" in too_long.text
    garbled = await client.get("/billing/statement?from=2026-1&to=x")
    assert garbled.status_code == 422
    assert 'id="e-from"' in garbled.text and 'id="e-to"' in garbled.text
    tampered = await client.get("/billing/statement?licensee=abc")
    assert tampered.status_code == 422 and "被许可方无效" in tampered.text
    assert (await client.get("/billing/statement.csv?from=2025-05&to=2025-01")).status_code == 422
    assert (await client.get("/billing/statement.xlsx?from=2022-01&to=2025-01")).status_code == 422
    fine = await client.get("/billing/statement")
    assert fine.status_code == 200 and f'value="{today():%Y-%m}"' in fine.text


async def test_money_falls_in_the_beijing_business_month(client, db, sessionmaker, settings):
    """A transfer confirmed at 00:30 Beijing time on 1 February is February's, though it is still
    31 January in UTC; a refund completed at 23:59:59 Beijing time on 31 January is January's."""
    lic = await licence(db, fee_terms=LUMP_SUM)
    await _drain(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    payment_id = await _pay(client, db, lic, invoice.id, 5_000_000, "boundary")
    refunded = await client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"amount_fen": 100_000, "reason": "多收款项退回", "reference": "HX-REFUND-2"},
        headers=bearer(await api_token(db, lic.licensor)),
    )
    assert refunded.status_code == 201
    payment = await db.get(Payment, payment_id)
    payment.received_at = datetime(2025, 1, 31, 16, 30, tzinfo=UTC)
    refund = await db.get(Refund, refunded.json()["id"])
    refund.completed_at = datetime(2025, 1, 31, 15, 59, 59, tzinfo=UTC)
    await db.commit()

    response = await client.get(
        "/api/v1/statements?from=2025-01&to=2025-02", headers=bearer(await api_token(db, lic.licensor))
    )
    assert response.status_code == 200
    assert [(r["month"], r["received_fen"], r["refunded_fen"]) for r in response.json()["rows"]] == [
        ("2025-01", 0, 100_000),
        ("2025-02", 5_000_000, 0),
    ]
