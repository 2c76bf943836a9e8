"""Evidence that goes with money: a royalty report's supporting PDF and a transfer's bank receipt
(回单), uploaded on the page or through the API, readable by both parties and nobody else; and a
bank-transfer refund recorded with its bank reference."""

from __future__ import annotations

from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.billing.models import InvoiceStatus, Payment, Refund, RefundStatus, RoyaltyReport
from marketplace.clock import today
from marketplace.files.models import StoredFile
from marketplace.outbox.services import drain_once
from tests.billing_factories import LUMP_SUM, ROYALTY, assert_ledger_consistent, invoices_of, licence
from tests.factories import api_token, bearer, csrf_headers, login, make_account
from tests.offer_factories import PDF


async def test_report_evidence_on_the_page_is_checked_and_shared_with_the_licensor(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=ROYALTY, months_ago=4)
    await login(client, lic.licensee)
    headers = await csrf_headers(client)
    form = {"period": "royalty:1:1", "base_amount": "", "client_report_id": "evidence-q1-01"}
    bad = await client.post(
        f"/contracts/{lic.contract.id}/royalty-reports",
        data=form,
        files={"attachment": ("sales.xlsx", b"PK\x03\x04not a pdf", "application/octet-stream")},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "请上传 PDF 格式的文件" in bad.text and "无销售请选择零报告" in bad.text  # both at once
    assert await db.scalar(select(StoredFile)) is None
    done = await client.post(
        f"/contracts/{lic.contract.id}/royalty-reports",
        data={**form, "base_amount": "100,000.00"},
        files={"attachment": ("销售台账.pdf", PDF, "application/pdf")},
        headers=headers,
    )
    assert done.status_code in (302, 303), done.text
    report = await db.scalar(select(RoyaltyReport))
    assert report.attachment_file_id is not None
    url = f"/files/{report.attachment_file_id}"
    assert (await client.get(url)).content == PDF
    await login(client, lic.licensor)
    page = await client.get(f"/contracts/{lic.contract.id}/billing")
    assert url in page.text
    assert (await client.get(url)).content == PDF
    await login(client, await make_account(db, kind=OrganisationKind.UNIVERSITY))
    assert (await client.get(url)).status_code == 404


async def test_receipt_through_the_api_and_a_bank_refund(client, db, sessionmaker, settings):
    lic = await licence(db, fee_terms=LUMP_SUM)
    await drain_once(sessionmaker, settings)
    [invoice] = await invoices_of(db, lic.contract.id)
    token = bearer(await api_token(db, lic.licensee))
    declared = await client.post(
        "/api/v1/payments",
        json={"invoice_id": invoice.id, "amount_fen": 5_200_000, "payer_name": lic.licensee.organisation.name,
              "remitted_on": today().isoformat(), "reference": "HX-RECEIPT", "idempotency_key": "receipt-transfer"},
        headers=token,
    )  # fmt: skip
    payment_id = declared.json()["id"]
    not_pdf = await client.put(
        f"/api/v1/payments/{payment_id}/receipt", files={"data": ("r.png", b"\x89PNG....", "image/png")}, headers=token
    )
    assert not_pdf.status_code == 422 and not_pdf.json()["errors"][0]["field"] == "receipt"
    attached = await client.put(
        f"/api/v1/payments/{payment_id}/receipt", files={"data": ("回单.pdf", PDF, "application/pdf")}, headers=token
    )
    assert attached.status_code == 200, attached.text
    again = await client.put(
        f"/api/v1/payments/{payment_id}/receipt", files={"data": ("回单.pdf", PDF, "application/pdf")}, headers=token
    )
    assert again.status_code == 409
    licensor = bearer(await api_token(db, lic.licensor))
    confirmed = await client.post(f"/api/v1/payments/{payment_id}/confirm", headers=licensor)
    assert confirmed.json()["excess_fen"] == 200_000

    # The licensor sends the over-payment back by bank transfer: it comes out of the credit.
    missing_reference = await client.post(
        f"/api/v1/payments/{payment_id}/refunds", json={"amount_fen": 200_000, "reason": "多付退回"}, headers=licensor
    )
    assert missing_reference.status_code == 422 and missing_reference.json()["errors"][0]["field"] == "reference"
    refunded = await client.post(
        f"/api/v1/payments/{payment_id}/refunds",
        json={"amount_fen": 200_000, "reason": "多付退回", "reference": "HX-BACK-1"},
        headers=licensor,
    )
    assert refunded.status_code == 201 and refunded.json()["status"] == "succeeded"
    refund = await db.scalar(select(Refund))
    assert refund.status is RefundStatus.SUCCEEDED and refund.reference == "HX-BACK-1"
    [invoice] = await invoices_of(db, lic.contract.id)
    assert invoice.status is InvoiceStatus.PAID  # the refund came from the credit, not the invoice
    payment = await db.get(Payment, payment_id, populate_existing=True)
    assert payment.refunded_fen == 200_000
    totals = await assert_ledger_consistent(db, lic.contract.id)
    assert totals["licensee_credit"] == 0 and totals["cash"] == 5_000_000
