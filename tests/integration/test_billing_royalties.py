"""Royalty reports (提成报告): reporting, retries, corrections, nil reports, the annual minimum,
missing reports and reminders, first revenue, through the pages and the API."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from marketplace.billing.models import Invoice, LineKind, RoyaltyReport
from marketplace.billing.sweep import run as sweep
from marketplace.clock import today
from marketplace.licensing.models import ObligationKind, PaymentObligation
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import drain_once
from tests.billing_factories import (
    FIRST_REVENUE,
    ROYALTY,
    UNITS,
    assert_ledger_consistent,
    invoices_of,
    licence,
    obligation,
)
from tests.factories import api_token, bearer, csrf_headers, login

FIVE_PERCENT = {**ROYALTY, "rate": "0.05"}


def _report(contract_id: int, period: str, base: int | None, key: str, **extra) -> dict:
    return {"contract_id": contract_id, "period": period, "base_amount": base, "client_report_id": key, **extra}


async def test_licensee_reports_a_quarter_on_the_page_and_is_invoiced_rate_times_base(
    client, db, sessionmaker, settings
):
    lic = await licence(db, fee_terms=ROYALTY, months_ago=4)
    await drain_once(sessionmaker, settings)
    await login(client, lic.licensee)
    page = await client.get(f"/contracts/{lic.contract.id}/billing")
    assert page.status_code == 200 and "提交报告" in page.text and "第1合同年度第1季度" in page.text
    headers = await csrf_headers(client)
    bad = await client.post(
        f"/contracts/{lic.contract.id}/royalty-reports",
        data={"period": "royalty:1:1", "base_amount": "12.345", "client_report_id": "report-q1-0001"},
        headers=headers,
    )
    assert bad.status_code == 422 and "最多两位小数" in bad.text
    not_yet = await client.post(
        f"/contracts/{lic.contract.id}/royalty-reports",
        data={"period": "royalty:1:2", "base_amount": "100", "client_report_id": "report-q2-0001"},
        headers=headers,
    )
    assert not_yet.status_code == 422 and "结束后方可报告" in not_yet.text
    assert await db.scalar(select(RoyaltyReport)) is None

    form = {
        "period": "royalty:1:1",
        "base_amount": "1,234,567.89",
        "client_report_id": "report-q1-0001",
        "breakdown": "储能模组: 1,000,000.00\n热管理配件: 234,567.89",
    }
    done = await client.post(f"/contracts/{lic.contract.id}/royalty-reports", data=form, headers=headers)
    assert done.status_code in (302, 303), done.text
    retry = await client.post(f"/contracts/{lic.contract.id}/royalty-reports", data=form, headers=headers)
    assert retry.status_code in (302, 303)
    [report] = list(await db.scalars(select(RoyaltyReport)))
    assert report.royalty_fen == 4_320_988  # 123,456,789 fen × 3.5 %, rounded once, half-up
    assert report.breakdown == [
        {"label": "储能模组", "amount": 100_000_000},
        {"label": "热管理配件", "amount": 23_456_789},
    ]
    [invoice] = await invoices_of(db, lic.contract.id)
    assert [(line.kind, line.item_key, line.amount_fen) for line in invoice.lines] == [
        (LineKind.ROYALTY, "royalty:1:1", 4_320_988)
    ]
    assert invoice.due_date == today() + timedelta(days=settings.invoice_due_days)
    page = await client.get(f"/contracts/{lic.contract.id}/billing")
    assert "43,209.88" in page.text
    await assert_ledger_consistent(db, lic.contract.id)


async def test_correction_is_a_new_version_and_the_difference_goes_on_the_next_invoice(
    client, db, sessionmaker, settings
):
    lic = await licence(db, fee_terms=FIVE_PERCENT, months_ago=4)
    token = await api_token(db, lic.licensee)
    first = await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:1", 20_000_000, "api-q1-aaaa"),
        headers=bearer(token),
    )
    assert first.status_code == 201, first.text
    assert first.json()["royalty_fen"] == 1_000_000 and first.json()["version"] == 1
    no_note = await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:1", 30_000_000, "api-q1-bbbb"),
        headers=bearer(token),
    )
    assert no_note.status_code == 422 and no_note.json()["errors"][0]["field"] == "note"
    up = await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:1", 30_000_000, "api-q1-cccc", note="漏报一笔订单"),
        headers=bearer(token),
    )
    assert up.status_code == 201 and up.json()["version"] == 2
    down = await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:1", 10_000_000, "api-q1-dddd", note="退货冲减"),
        headers=bearer(token),
    )
    assert down.json()["version"] == 3 and down.json()["royalty_fen"] == 500_000
    invoices = await invoices_of(db, lic.contract.id)
    # Issued invoices are never edited: 1,000,000, then +500,000, then −1,000,000 as a credit notice.
    assert [[line.amount_fen for line in i.lines] for i in invoices] == [[1_000_000], [500_000], [-1_000_000]]
    assert invoices[2].total_fen == -1_000_000
    reports = list(await db.scalars(select(RoyaltyReport).order_by(RoyaltyReport.version)))
    assert [(r.version, r.is_current) for r in reports] == [(1, False), (2, False), (3, True)]
    totals = await assert_ledger_consistent(db, lic.contract.id)
    assert -totals["licensee_credit"] == 1_000_000 - 0  # the credit waits for the next invoice


async def test_nil_report_and_annual_minimum_true_up_once_the_year_is_reported(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=FIVE_PERCENT, months_ago=12)
    token = await api_token(db, lic.licensee)
    nil = await client.post(
        "/api/v1/royalty-reports",
        json={**_report(lic.contract.id, "royalty:1:1", None, "nil-q1-0001"), "nil_report": True},
        headers=bearer(token),
    )
    assert nil.status_code == 201 and nil.json()["royalty_fen"] == 0 and nil.json()["nil_report"] is True
    assert await invoices_of(db, lic.contract.id) == []
    # Quarters of 1,200,000, 800,000 and 900,000 royalty; with the nil quarter the year makes 2,900,000.
    for n, base in ((2, 24_000_000), (3, 16_000_000), (4, 18_000_000)):
        response = await client.post(
            "/api/v1/royalty-reports",
            json=_report(lic.contract.id, f"royalty:1:{n}", base, f"year1-q{n}-x"),
            headers=bearer(token),
        )
        assert response.status_code == 201
    lines = [(line.item_key, line.amount_fen) for i in await invoices_of(db, lic.contract.id) for line in i.lines]
    assert ("true_up:1", 2_100_000) in lines  # 5,000,000 minimum − 2,900,000 reported
    # A sweep later on changes nothing: the true-up is never counted twice.
    before = len(await invoices_of(db, lic.contract.id))
    await sweep(sessionmaker, settings)
    await sweep(sessionmaker, settings)
    after = await invoices_of(db, lic.contract.id)
    assert [i for i in after[before:] if any(line.item_key == "true_up:1" for line in i.lines)] == []
    # A late correction upward shrinks the true-up by the same amount: the year still totals the minimum.
    await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:4", 28_000_000, "year1-q4-fix", note="补报"),
        headers=bearer(token),
    )
    billed: dict[str, int] = {}
    for invoice in await invoices_of(db, lic.contract.id):
        for line in invoice.lines:
            billed[line.item_key] = billed.get(line.item_key, 0) + line.amount_fen
    year1 = sum(amount for key, amount in billed.items() if key.startswith(("royalty:1:", "true_up:1")))
    assert year1 == 5_000_000 and billed["true_up:1"] == 1_600_000
    await assert_ledger_consistent(db, lic.contract.id)


async def test_licensor_sees_missing_reports_and_the_sweep_reminds_the_licensee(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=ROYALTY, months_ago=6)
    q1 = await obligation(db, lic.contract.id, "royalty:1:1")
    await login(client, lic.licensor)
    page = await client.get(f"/contracts/{lic.contract.id}/billing")
    assert "逾期未报" in page.text and "提交报告" not in page.text

    due = q1.period_end + timedelta(days=settings.royalty_report_days)
    for day, kind in ((due - timedelta(days=7), "before"), (due, "due"), (due + timedelta(days=1), "overdue")):
        result = await sweep(sessionmaker, settings, on=day)
        assert result.reminders >= 1, kind
    query = select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.like(f"email:report_reminder:{q1.id}:%"))
    keys = list(await db.scalars(query))
    assert sorted({key.split(":")[3] for key in keys}) == ["before", "due", "overdue"]
    assert {key.split(":")[-1] for key in keys} == {lic.licensee.email, lic.licensee.organisation.contact_email}
    await sweep(sessionmaker, settings, on=due)  # the same day again sends nothing new
    assert len(list(await db.scalars(query))) == len(keys)


async def test_units_royalty_and_only_the_licensee_may_report(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=UNITS, months_ago=4)
    licensor_token = await api_token(db, lic.licensor)
    refused = await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:1", 100, "units-by-licensor"),
        headers=bearer(licensor_token),
    )
    assert refused.status_code == 403
    token = await api_token(db, lic.licensee)
    done = await client.post(
        "/api/v1/royalty-reports",
        json=_report(lic.contract.id, "royalty:1:1", 1_234, "units-q1-0001"),
        headers=bearer(token),
    )
    assert done.status_code == 201 and done.json()["royalty_fen"] == 1_234 * 250
    listed = await client.get(f"/api/v1/royalty-reports?contract_id={lic.contract.id}", headers=bearer(licensor_token))
    assert [r["royalty_fen"] for r in listed.json()] == [308_500]


async def test_first_revenue_starts_the_deferred_royalty_plan(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=FIRST_REVENUE, months_ago=5)
    items = list(await db.scalars(select(PaymentObligation).where(PaymentObligation.contract_id == lic.contract.id)))
    assert all(item.after_first_revenue and item.due_date is None for item in items)
    await login(client, lic.licensee)
    page = await client.get(f"/contracts/{lic.contract.id}/billing")
    assert "申报首笔收入" in page.text
    headers = await csrf_headers(client)
    too_early = (lic.contract.start_date - timedelta(days=1)).isoformat()
    bad = await client.post(
        f"/contracts/{lic.contract.id}/first-revenue", data={"first_revenue_on": too_early}, headers=headers
    )
    assert bad.status_code == 422 and "首笔收入日期应在" in bad.text
    first = today() - timedelta(days=100)
    done = await client.post(
        f"/contracts/{lic.contract.id}/first-revenue", data={"first_revenue_on": first.isoformat()}, headers=headers
    )
    assert done.status_code in (302, 303), done.text
    royalties = list(
        await db.scalars(
            select(PaymentObligation)
            .where(PaymentObligation.contract_id == lic.contract.id, PaymentObligation.kind == ObligationKind.ROYALTY)
            .order_by(PaymentObligation.period_start)
            .execution_options(populate_existing=True)
        )
    )
    assert royalties[0].period_start == first and royalties[0].key == "royalty:1:1"
    assert not any(item.after_first_revenue for item in royalties)
    again = await client.post(
        f"/contracts/{lic.contract.id}/first-revenue", data={"first_revenue_on": first.isoformat()}, headers=headers
    )
    assert again.status_code == 409
    assert await db.scalar(select(Invoice)) is None
