"""Taking an open licence by written notice, through the pages and the API."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pypdf
from sqlalchemy import func, select

from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.licensing.models import ContractStatus, LicenceContract, PaymentObligation, WrittenNotice
from marketplace.outbox.models import OutboxMessage
from tests.factories import api_token, bearer, csrf_headers, login
from tests.licensing_factories import FREE, PAY_AFTER_USE, enterprise, notice_form, published_listing


async def _count(db, model) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


async def test_enterprise_takes_a_lump_sum_licence_from_the_offer_page(client, db):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    await login(client, licensee)

    page = await client.get(f"/catalogue/{listing.offer.id}/accept")
    assert page.status_code == 200
    assert "提交书面通知，取得许可" in page.text
    assert "¥50,000.00" in page.text

    form = notice_form()
    response = await client.post(
        f"/catalogue/{listing.offer.id}/accept", data=form, headers=await csrf_headers(client)
    )
    assert response.status_code in (302, 303), response.text
    contract = await db.scalar(select(LicenceContract))
    assert response.headers["location"] == f"/contracts/{contract.id}"
    assert contract.number == f"OL{today().year}000001"
    assert contract.status is ContractStatus.AWAITING_PAYMENT
    assert contract.start_date == today()
    assert contract.licensee_organisation_id == licensee.organisation.id
    assert contract.terms_snapshot["terms"]["fee_terms"]["amount_fen"] == 5_000_000

    lines = list(await db.scalars(select(PaymentObligation).where(PaymentObligation.contract_id == contract.id)))
    assert [(line.amount_fen, line.due_date) for line in lines] == [(5_000_000, today() + timedelta(days=30))]

    notice = await db.scalar(select(WrittenNotice))
    assert notice.sha256 == hashlib.sha256(notice.document_html.encode()).hexdigest()
    assert notice.user_id == licensee.user.id and notice.organisation_id == licensee.organisation.id
    served = await client.get(f"/contracts/{contract.id}/notice")
    assert hashlib.sha256(served.content).hexdigest() == notice.sha256
    assert listing.patent.title in served.text and "用于本公司储能电池热管理模组的生产" in served.text

    detail = await client.get(f"/contracts/{contract.id}")
    assert contract.number in detail.text and notice.sha256 in detail.text
    assert "待首付款" in detail.text

    kinds = [m.payload["to"] for m in await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email"))]
    assert listing.licensor.email in kinds and licensee.email in kinds
    actions = list(await db.scalars(select(AuditRecord.action).where(AuditRecord.entity_type == "licence_contract")))
    assert actions == ["accept"]


async def test_contract_pdf_carries_the_filing_fields_in_chinese(client, db):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    await login(client, licensee)
    await client.post(f"/catalogue/{listing.offer.id}/accept", data=notice_form(), headers=await csrf_headers(client))
    contract = await db.scalar(select(LicenceContract))

    response = await client.get(f"/contracts/{contract.id}/contract.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.content)).pages)
    for expected in (
        contract.number,
        listing.licensor.organisation.name,
        licensee.organisation.name,
        listing.patent.title,
        f"ZL{listing.patent.application_number}",
        "普通实施许可",
        "中国大陆",
    ):
        assert expected in text.replace("\n", ""), expected

    notice_pdf = await client.get(f"/contracts/{contract.id}/notice.pdf")
    notice_text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(notice_pdf.content)).pages)
    assert "专利开放许可实施书面通知" in notice_text


async def test_pay_after_use_and_free_licences_are_active_at_once(client, db):
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    for terms in (PAY_AFTER_USE, FREE):
        listing = await published_listing(db, fee_terms=terms)
        body = {k: v for k, v in notice_form().items() if v}
        response = await client.post(f"/api/v1/offers/{listing.offer.id}/accept", json=body, headers=bearer(token))
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "active"
    deferred = (await client.get("/api/v1/contracts?side=licensee", headers=bearer(token))).json()["items"][1]
    assert deferred["pay_after_use"] is True
    # The deferred lump sum falls due 30 days after the 12-month deferral ends.
    (line,) = deferred["obligations"]
    assert line["amount_fen"] == 3_000_000


async def test_repeated_submission_returns_the_same_contract(client, db):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    body = {k: v for k, v in notice_form().items() if v}
    first = await client.post(f"/api/v1/offers/{listing.offer.id}/accept", json=body, headers=bearer(token))
    again = await client.post(f"/api/v1/offers/{listing.offer.id}/accept", json=body, headers=bearer(token))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert await _count(db, LicenceContract) == 1
    assert await _count(db, WrittenNotice) == 1

    other_key = {**body, "idempotency_key": "another-key-123"}
    duplicate = await client.post(f"/api/v1/offers/{listing.offer.id}/accept", json=other_key, headers=bearer(token))
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "already_licensed"
    assert await _count(db, LicenceContract) == 1
