"""The rules checked inside the acceptance transaction (offer published, not one's own, patent in
force, email confirmed, well-formed notice), what the accepted terms turn into (licence period,
payment obligations, contract number), and how contracts react to later events: the offer's
withdrawal, the patent lapsing or being invalidated, and the daily sweep of expired licences."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from marketplace.accounts.models import User
from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.licensing import services
from marketplace.licensing.models import (
    ContractNumberCounter,
    ContractStatus,
    EndReason,
    LicenceContract,
    PaymentObligation,
    WrittenNotice,
)
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.offers.rules import add_months, licence_end
from marketplace.outbox.models import MailMessage, OutboxMessage
from marketplace.outbox.services import drain_once
from marketplace.patents.models import LegalStatus, Patent
from marketplace.patents.schemas import PatentIn
from tests.factories import Account, add_member, api_token, bearer, csrf_headers, login
from tests.licensing_factories import FREE, PAY_AFTER_USE, enterprise, notice_form, published_listing
from tests.offer_factories import ROYALTY, make_offer, make_patent


async def _written(db) -> dict[str, int]:
    """Everything an acceptance writes, counted."""
    counts = {
        model.__name__: int(await db.scalar(select(func.count()).select_from(model)))
        for model in (LicenceContract, WrittenNotice, PaymentObligation, AuditRecord, OutboxMessage)
    }
    issued = select(func.coalesce(func.sum(ContractNumberCounter.last_value), 0))
    counts["numbers issued"] = int(await db.scalar(issued))
    return counts


def _body(**overrides: Any) -> dict[str, Any]:
    """The notice as an API client sends it (start date omitted: today)."""
    return {key: value for key, value in notice_form(**overrides).items() if value != ""}


async def _take(client, token: str, offer_id: int, **overrides: Any):
    return await client.post(f"/api/v1/offers/{offer_id}/accept", json=_body(**overrides), headers=bearer(token))


async def _contract(db, contract_id: int) -> LicenceContract:
    return await db.get(LicenceContract, contract_id, populate_existing=True)


# ---------------------------------------------------------------------------------------------
# Refusals: nothing is written
# ---------------------------------------------------------------------------------------------


async def test_withdrawn_offer_is_refused_by_page_and_api_and_nothing_is_written(client, db):
    listing = await published_listing(db)
    await db.execute(
        update(OpenLicenceOffer).where(OpenLicenceOffer.id == listing.offer.id).values(status=OfferStatus.WITHDRAWN)
    )
    await db.commit()
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    await login(client, licensee)
    headers = await csrf_headers(client)
    before = await _written(db)

    for response in (
        await _take(client, token, listing.offer.id),
        await client.post("/api/v1/contracts", json={**_body(), "offer_id": listing.offer.id}, headers=bearer(token)),
    ):
        assert response.status_code == 409
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "offer_withdrawn"
    page = await client.post(f"/catalogue/{listing.offer.id}/accept", data=notice_form(), headers=headers)
    assert page.status_code == 409
    assert "该开放许可声明已撤回" in page.text
    assert (await client.get(f"/catalogue/{listing.offer.id}/accept")).status_code == 404
    assert await _written(db) == before


@pytest.mark.parametrize("status", [OfferStatus.DRAFT, OfferStatus.SUBMITTED, OfferStatus.REJECTED])
async def test_unpublished_offer_is_not_found_and_nothing_is_written(client, db, status):
    listing = await published_listing(db)
    offer = await make_offer(db, listing.licensor, await make_patent(db, listing.licensor), status=status)
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    await login(client, licensee)
    before = await _written(db)
    response = await _take(client, token, offer.id)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert (await client.get(f"/catalogue/{offer.id}/accept")).status_code == 404
    page = await client.post(f"/catalogue/{offer.id}/accept", data=notice_form(), headers=await csrf_headers(client))
    assert page.status_code == 404
    missing = await _take(client, token, offer.id + 1000)
    assert missing.status_code == 404
    assert await _written(db) == before


async def test_own_organisations_offer_is_forbidden_to_its_admin_and_members(client, db):
    listing = await published_listing(db)
    member = await add_member(db, listing.licensor)
    token = await api_token(db, listing.licensor)
    before = await _written(db)
    response = await _take(client, token, listing.offer.id)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    await login(client, member)
    page = await client.get(f"/catalogue/{listing.offer.id}/accept")
    assert "这是本机构声明的专利，不能对自己取得许可" in page.text and 'id="accept-form"' not in page.text
    posted = await client.post(
        f"/catalogue/{listing.offer.id}/accept", data=notice_form(), headers=await csrf_headers(client)
    )
    assert posted.status_code == 403
    assert await _written(db) == before


NOT_IN_FORCE = {
    "lapsed": ({"legal_status": LegalStatus.LAPSED}, {}),
    "invalidated": ({"legal_status": LegalStatus.INVALIDATED}, {}),
    "expired": ({"legal_status": LegalStatus.EXPIRED, "expiry_date": date(2020, 1, 1)}, {}),
    "expires_before_start": (
        {"expiry_date": today() + timedelta(days=10)},
        {"start_date": (today() + timedelta(days=20)).isoformat()},
    ),
}


@pytest.mark.parametrize("case", NOT_IN_FORCE)
async def test_patent_not_in_force_on_the_start_date_is_refused(client, db, case):
    patent_values, notice = NOT_IN_FORCE[case]
    listing = await published_listing(db)
    await db.execute(update(Patent).where(Patent.id == listing.patent.id).values(**patent_values))
    await db.commit()
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    before = await _written(db)
    response = await _take(client, token, listing.offer.id, **notice)
    assert response.status_code == 409
    assert response.json()["code"] == "patent_not_in_force"
    assert await _written(db) == before


async def test_patent_expiring_on_the_start_date_still_gives_a_one_day_licence(client, db):
    start = today() + timedelta(days=5)
    listing = await published_listing(db, expiry_date=start)
    token = await api_token(db, await enterprise(db))
    response = await _take(client, token, listing.offer.id, start_date=start.isoformat())
    assert response.status_code == 201, response.text
    assert (response.json()["start_date"], response.json()["end_date"]) == (start.isoformat(), start.isoformat())


async def test_unconfirmed_email_is_asked_to_confirm_first(client, db):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    await db.execute(update(User).where(User.id == licensee.user.id).values(email_confirmed_at=None))
    await db.commit()
    before = await _written(db)

    response = await _take(client, token, listing.offer.id)
    assert response.status_code == 403
    assert response.json()["code"] == "email_unconfirmed"
    await login(client, licensee)
    page = await client.get(f"/catalogue/{listing.offer.id}/accept")
    assert page.status_code == 200
    assert "请先确认您的邮箱" in page.text and 'id="accept-form"' not in page.text
    posted = await client.post(
        f"/catalogue/{listing.offer.id}/accept", data=notice_form(), headers=await csrf_headers(client)
    )
    assert posted.status_code == 403
    assert "请先确认您的邮箱" in posted.text
    assert await _written(db) == before


USE, KEY = "intended_field_of_use", "idempotency_key"
BAD_INPUT = {
    # case: (form overrides, field, message)
    "empty field of use": ({"intended_field_of_use": "  "}, USE, "请填写拟实施的领域（产品或用途）"),
    "field of use too long": ({USE: "电" * 301}, USE, "实施领域不能超过300个字符"),
    "start in the past": (
        {"start_date": (today() - timedelta(days=1)).isoformat()},
        "start_date",
        "生效日期不能早于今天（书面通知不能追溯生效）",
    ),
    "start too late": (
        {"start_date": (today() + timedelta(days=91)).isoformat()},
        "start_date",
        "生效日期最晚为今天起90日内",
    ),
    "malformed start": ({"start_date": "2026-02-30"}, "start_date", "生效日期格式应为 YYYY-MM-DD"),
    "missing signatory name": ({"signatory_name": ""}, "signatory_name", "请填写签署人姓名"),
    "missing signatory title": ({"signatory_title": " "}, "signatory_title", "请填写签署人职务"),
    "tampered idempotency key": ({KEY: "x'><script>"}, KEY, "请求标识无效，请刷新页面后重新提交"),
}


def _hidden_key(page: str) -> str:
    match = re.search(r'name="idempotency_key" value="([^"]*)"', page)
    assert match, "the form carries its idempotency key"
    return html.unescape(match.group(1))


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_notice_form_rerenders_with_the_message_beside_the_field(client, db, case):
    overrides, field, message = BAD_INPUT[case]
    listing = await published_listing(db)
    licensee = await enterprise(db)
    await login(client, licensee)
    headers = await csrf_headers(client)
    before = await _written(db)
    form = notice_form(**overrides)
    response = await client.post(f"/catalogue/{listing.offer.id}/accept", data=form, headers=headers)
    assert response.status_code == 422
    if field == "idempotency_key":
        assert f'<p class="error">{message}</p>' in response.text
    else:
        assert f'<p class="error" id="e-{field}">{message}</p>' in response.text
        assert f'id="f-{field}"' in response.text and 'aria-invalid="true"' in response.text
    # What was typed is kept, so only the faulty field needs correcting.
    if field != "signatory_name":
        assert f'value="{form["signatory_name"]}"' in response.text
    assert await _written(db) == before

    # Correcting the field on the re-rendered form takes the licence.
    fixed = {**notice_form(), "idempotency_key": _hidden_key(response.text)}
    again = await client.post(f"/catalogue/{listing.offer.id}/accept", data=fixed, headers=headers)
    assert again.status_code in (302, 303), again.text
    assert (await _written(db))["LicenceContract"] == before["LicenceContract"] + 1


async def test_every_problem_of_the_form_is_reported_at_once(client, db):
    listing = await published_listing(db)
    await login(client, await enterprise(db))
    before = await _written(db)
    form = notice_form(intended_field_of_use="", start_date="明天", signatory_name="", signatory_title="")
    response = await client.post(
        f"/catalogue/{listing.offer.id}/accept", data=form, headers=await csrf_headers(client)
    )
    assert response.status_code == 422
    for field in ("intended_field_of_use", "start_date", "signatory_name", "signatory_title"):
        assert f'id="e-{field}"' in response.text, field
    assert await _written(db) == before


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_notice_through_the_api_is_a_problem_with_field_errors(client, db, case):
    overrides, field, message = BAD_INPUT[case]
    listing = await published_listing(db)
    token = await api_token(db, await enterprise(db))
    before = await _written(db)
    body = {**notice_form(), **overrides}
    for path, payload in (
        (f"/api/v1/offers/{listing.offer.id}/accept", body),
        ("/api/v1/contracts", {**body, "offer_id": listing.offer.id}),
    ):
        response = await client.post(path, json=payload, headers=bearer(token))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["code"] == "validation_failed" or problem["status"] == 422
        assert [(e["field"], e["message"]) for e in problem["errors"]] == [(field, message)]
    assert await _written(db) == before


async def test_malformed_api_bodies_are_bad_requests(client, db):
    listing = await published_listing(db)
    token = await api_token(db, await enterprise(db))
    before = await _written(db)
    for payload in ({**_body(), "start_date": 20260101}, {**_body(), "signatory_name": ["a"]}, []):
        response = await client.post(f"/api/v1/offers/{listing.offer.id}/accept", json=payload, headers=bearer(token))
        assert response.status_code == 400, payload
        assert response.json()["code"] == "bad_request"
    no_offer = await client.post("/api/v1/contracts", json=_body(), headers=bearer(token))
    assert no_offer.status_code == 400
    header_key = await client.post(
        f"/api/v1/offers/{listing.offer.id}/accept",
        json={k: v for k, v in _body().items() if k != "idempotency_key"},
        headers={**bearer(token), "Idempotency-Key": "no"},
    )
    assert header_key.status_code == 422
    assert [e["field"] for e in header_key.json()["errors"]] == ["idempotency_key"]
    assert await _written(db) == before


# ---------------------------------------------------------------------------------------------
# What the accepted terms become
# ---------------------------------------------------------------------------------------------


async def test_licence_never_outlasts_the_patent_nor_the_offers_term(client, db):
    start = today() + timedelta(days=30)
    token = await api_token(db, await enterprise(db))
    expiring = add_months(today(), 10)
    short = await published_listing(db, expiry_date=expiring)
    response = await _take(client, token, short.offer.id, start_date=start.isoformat())
    assert response.status_code == 201, response.text
    assert response.json()["end_date"] == expiring.isoformat()

    long = await published_listing(db)
    response = await _take(client, token, long.offer.id, start_date=start.isoformat())
    assert response.json()["end_date"] == (add_months(start, 36) - timedelta(days=1)).isoformat()
    assert date.fromisoformat(response.json()["end_date"]) < long.patent.expiry_date


def _lines(response) -> list[dict[str, Any]]:
    assert response.status_code == 201, response.text
    return response.json()["obligations"]


async def test_instalments_become_dated_amounts_that_sum_to_the_total(client, db):
    terms = {"mode": "instalments", "total_fen": 1_000_001, "count": 3, "interval_months": 6, "first_due_days": 15}
    listing = await published_listing(db, fee_terms=terms)
    token = await api_token(db, await enterprise(db))
    lines = _lines(await _take(client, token, listing.offer.id))
    start = today()
    assert [(line["kind"], line["amount_fen"], line["due_date"]) for line in lines] == [
        ("instalment", 333_334, (start + timedelta(days=15)).isoformat()),
        ("instalment", 333_334, (add_months(start, 6) + timedelta(days=15)).isoformat()),
        ("instalment", 333_333, (add_months(start, 12) + timedelta(days=15)).isoformat()),
    ]
    assert sum(line["amount_fen"] for line in lines) == terms["total_fen"]
    assert [line["sequence"] for line in lines] == [1, 2, 3]


def _quarters(start: date, count: int) -> list[tuple[str, str]]:
    return [
        (add_months(start, 3 * k).isoformat(), (add_months(start, 3 * (k + 1)) - timedelta(days=1)).isoformat())
        for k in range(count)
    ]


async def test_royalty_becomes_quarterly_periods_due_at_their_end_without_amounts(client, db):
    listing = await published_listing(db, fee_terms=ROYALTY)
    token = await api_token(db, await enterprise(db))
    start = today() + timedelta(days=3)
    everything = _lines(await _take(client, token, listing.offer.id, start_date=start.isoformat()))
    lines = [line for line in everything if line["kind"] == "royalty"]
    assert len(lines) == 12  # 36 months, quarterly
    # The annual minimum adds a true-up at the end of each contract year, after its last quarter.
    true_ups = [line for line in everything if line["kind"] == "true_up"]
    assert [line["due_date"] for line in true_ups] == [lines[k]["period_end"] for k in (3, 7, 11)]
    assert [line["sequence"] for line in everything if line["kind"] == "true_up"] == [5, 10, 15]
    assert all(line["amount_fen"] is None for line in everything)
    assert [(line["period_start"], line["period_end"]) for line in lines] == _quarters(start, 12)
    assert all(line["due_date"] == line["period_end"] for line in lines)
    assert lines[0]["description"].startswith("第1合同年度第1季度提成")


async def test_entry_fee_then_royalty(client, db):
    royalty = {key: value for key, value in ROYALTY.items() if key != "mode"}
    terms = {"mode": "entry_fee_royalty", "entry_fee_fen": 800_000, "entry_due_days": 20, "royalty": royalty}
    listing = await published_listing(db, fee_terms=terms)
    token = await api_token(db, await enterprise(db))
    response = await _take(client, token, listing.offer.id)
    lines = [line for line in _lines(response) if line["kind"] != "true_up"]
    assert response.json()["status"] == "awaiting_payment"
    entry, *periods = lines
    assert (entry["kind"], entry["amount_fen"], entry["due_date"]) == (
        "entry_fee",
        800_000,
        (today() + timedelta(days=20)).isoformat(),
    )
    assert [(line["period_start"], line["period_end"]) for line in periods] == _quarters(today(), 12)


async def test_pay_after_use_for_months_defers_the_first_payment(client, db):
    listing = await published_listing(db, fee_terms=PAY_AFTER_USE)
    token = await api_token(db, await enterprise(db))
    response = await _take(client, token, listing.offer.id)
    (line,) = _lines(response)
    deferred_until = add_months(today(), PAY_AFTER_USE["deferral_months"])
    assert line["due_date"] == (deferred_until + timedelta(days=30)).isoformat()
    assert (line["amount_fen"], line["after_first_revenue"]) == (3_000_000, False)
    assert response.json()["status"] == "active"

    royalty_later = {"mode": "pay_after_use", "deferral": "months", "deferral_months": 6, "then": ROYALTY}
    listing = await published_listing(db, fee_terms=royalty_later)
    everything = _lines(await _take(client, token, listing.offer.id))
    lines = [line for line in everything if line["kind"] == "royalty"]
    assert lines[0]["period_start"] == add_months(today(), 6).isoformat()
    assert len(lines) == 10  # the 30 months after the deferral, quarterly
    # Contract years of the deferred terms count from the deferral's end: two full years and a half.
    assert [line["kind"] for line in everything].count("true_up") == 3
    assert lines[-1]["period_end"] <= licence_end(today(), 36).isoformat()


async def test_pay_after_use_until_first_revenue_has_no_dates(client, db):
    token = await api_token(db, await enterprise(db))
    then = {"mode": "lump_sum", "amount_fen": 900_000, "due_days": 30}
    lump = {"mode": "pay_after_use", "deferral": "first_revenue", "then": then}
    listing = await published_listing(db, fee_terms=lump)
    (line,) = _lines(await _take(client, token, listing.offer.id))
    assert (line["amount_fen"], line["after_first_revenue"], line["due_date"]) == (900_000, True, None)

    royalty = {"mode": "pay_after_use", "deferral": "first_revenue", "then": ROYALTY}
    listing = await published_listing(db, fee_terms=royalty)
    response = await _take(client, token, listing.offer.id)
    (line,) = _lines(response)
    assert line["kind"] == "royalty" and line["after_first_revenue"] is True
    assert (line["due_date"], line["period_start"], line["period_end"], line["amount_fen"]) == (None, None, None, None)
    await login(client, await _account_of(db, response.json()["licensee"]["organisation_id"]))
    page = await client.get(f"/contracts/{response.json()['id']}")
    assert "取得首笔收入后" in page.text


async def _account_of(db, organisation_id: int) -> Account:
    user = await db.scalar(select(User).where(User.organisation_id == organisation_id).order_by(User.id))
    return Account(organisation=user.organisation, user=user, email=user.email)


async def test_free_licence_has_no_obligations(client, db):
    listing = await published_listing(db, fee_terms=FREE)
    token = await api_token(db, await enterprise(db))
    assert _lines(await _take(client, token, listing.offer.id)) == []


async def test_contract_numbers_run_per_year_without_gaps(client, db, monkeypatch):
    listing = await published_listing(db)
    year = today().year
    tokens = [await api_token(db, await enterprise(db)) for _ in range(4)]
    numbers = [(await _take(client, token, listing.offer.id)).json()["number"] for token in tokens[:2]]
    assert numbers == [f"OL{year}000001", f"OL{year}000002"]
    # A refused acceptance issues no number.
    assert (await _take(client, tokens[0], listing.offer.id)).status_code == 409

    new_year = date(year + 1, 1, 1)
    monkeypatch.setattr(services, "today", lambda: new_year)
    next_year = (await _take(client, tokens[2], listing.offer.id)).json()
    assert (next_year["number"], next_year["signed_on"]) == (f"OL{year + 1}000001", new_year.isoformat())
    monkeypatch.undo()
    assert (await _take(client, tokens[3], listing.offer.id)).json()["number"] == f"OL{year}000003"


# ---------------------------------------------------------------------------------------------
# Later events
# ---------------------------------------------------------------------------------------------


async def test_withdrawing_the_offer_leaves_taken_licences_unchanged(client, db):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    token = await api_token(db, licensee)
    taken = await _take(client, token, listing.offer.id)
    assert taken.status_code == 201
    before = taken.json()
    contract = await _contract(db, before["id"])
    snapshot = dict(contract.terms_snapshot)

    withdrawn = await client.post(
        f"/api/v1/offers/{listing.offer.id}/withdraw",
        json={"reason": "专利拟转让"},
        headers=bearer(await api_token(db, listing.licensor)),
    )
    assert withdrawn.status_code == 200, withdrawn.text
    after = (await client.get(f"/api/v1/contracts/{before['id']}", headers=bearer(token))).json()
    assert after == before
    contract = await _contract(db, before["id"])
    assert contract.status is ContractStatus.AWAITING_PAYMENT and contract.terms_snapshot == snapshot
    await login(client, licensee)
    page = await client.get(f"/contracts/{before['id']}")
    assert "声明已撤回，本合同不受影响" in page.text
    # New licences are refused from now on.
    other = await api_token(db, await enterprise(db))
    refused = await _take(client, other, listing.offer.id)
    assert (refused.status_code, refused.json()["code"]) == (409, "offer_withdrawn")


def _patent_body(current: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = {name: current[name] for name in PatentIn.__dataclass_fields__ if name in current}
    body.update(changes)
    return body


async def test_patent_lapsing_through_the_api_ends_live_licences_and_tells_both_parties(
    client, db, sessionmaker, settings
):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    taken = await _take(client, await api_token(db, licensee), listing.offer.id)
    licensor_token = bearer(await api_token(db, listing.licensor))
    current = (await client.get(f"/api/v1/patents/{listing.patent.id}", headers=licensor_token)).json()

    lapsed = _patent_body(current, legal_status="lapsed")
    response = await client.put(f"/api/v1/patents/{listing.patent.id}", json=lapsed, headers=licensor_token)
    assert response.status_code == 200, response.text
    contract = await _contract(db, taken.json()["id"])
    assert contract.status is ContractStatus.ENDED
    assert (contract.end_reason, contract.ended_on, contract.live_offer_id) == (EndReason.PATENT_LAPSED, today(), None)
    trail = list(
        await db.execute(
            select(AuditRecord.action, AuditRecord.actor_organisation_id).where(
                AuditRecord.entity_type == "licence_contract", AuditRecord.entity_id == contract.id
            )
        )
    )
    assert [tuple(row) for row in trail][-1] == ("end:patent_lapsed", listing.licensor.organisation.id)

    await drain_once(sessionmaker, settings, limit=500)
    ended = list(await db.scalars(select(MailMessage).where(MailMessage.subject.contains("已终止"))))
    assert {licensee.email, listing.licensor.email} <= {m.to_address for m in ended}
    mail = next(m for m in ended if m.to_address == licensee.email)
    assert contract.number in mail.subject and "专利权终止（未缴年费）" in mail.body


async def test_patent_invalidated_through_the_edit_form_ends_live_licences(client, db):
    listing = await published_listing(db)
    licensee = await enterprise(db)
    taken = await _take(client, await api_token(db, licensee), listing.offer.id)
    patent = listing.patent
    await login(client, listing.licensor)
    form = {
        "title": patent.title,
        "filing_date": patent.filing_date.isoformat(),
        "grant_date": patent.grant_date.isoformat(),
        "legal_status": "invalidated",
        "annual_fee_paid_until": patent.annual_fee_paid_until.isoformat(),
        "ipc_main": patent.ipc_main,
        "exclusive_or_sole_licence": "none",
    }
    response = await client.post(f"/patents/{patent.id}/edit", data=form, headers=await csrf_headers(client))
    assert response.status_code in (302, 303), response.text
    contract = await _contract(db, taken.json()["id"])
    assert (contract.status, contract.end_reason) == (ContractStatus.ENDED, EndReason.PATENT_INVALIDATED)
    page = await client.get(f"/contracts/{contract.id}")
    assert "专利权被宣告无效" in page.text


async def _sweep(sessionmaker, day: date) -> int:
    async with sessionmaker() as session:
        ended = await services.sweep(session, on=day)
        await session.commit()
    return ended


async def test_sweep_ends_licences_whose_term_or_patent_ran_out(client, db, sessionmaker):
    token = await api_token(db, await enterprise(db))
    one_year = await published_listing(db)
    await db.execute(
        update(OpenLicenceOffer).where(OpenLicenceOffer.id == one_year.offer.id).values(licence_term_months=12)
    )
    await db.commit()
    expiring = await published_listing(db, expiry_date=today() + timedelta(days=100))
    by_term = (await _take(client, token, one_year.offer.id)).json()
    by_patent = (await _take(client, token, expiring.offer.id)).json()
    term_end = licence_end(today(), 12)
    assert by_term["end_date"] == term_end.isoformat()
    assert by_patent["end_date"] == (today() + timedelta(days=100)).isoformat()

    assert await _sweep(sessionmaker, today() + timedelta(days=100)) == 0  # the last day is still covered
    emails = int(await db.scalar(select(func.count()).select_from(OutboxMessage)))
    assert await _sweep(sessionmaker, today() + timedelta(days=101)) == 1
    patent_ended = await _contract(db, by_patent["id"])
    assert (patent_ended.status, patent_ended.end_reason) == (ContractStatus.ENDED, EndReason.PATENT_EXPIRED)
    assert patent_ended.ended_on == today() + timedelta(days=100)
    assert int(await db.scalar(select(func.count()).select_from(OutboxMessage))) > emails

    assert await _sweep(sessionmaker, term_end) == 0
    assert await _sweep(sessionmaker, term_end + timedelta(days=1)) == 1
    term_ended = await _contract(db, by_term["id"])
    assert (term_ended.status, term_ended.end_reason, term_ended.ended_on) == (
        ContractStatus.ENDED,
        EndReason.TERM_EXPIRED,
        term_end,
    )
    assert await _sweep(sessionmaker, term_end + timedelta(days=400)) == 0
    actions = set(await db.scalars(select(AuditRecord.action).where(AuditRecord.entity_type == "licence_contract")))
    assert {"end:term_expired", "end:patent_expired"} <= actions
    # Once ended, the same enterprise may take the licence again.
    again = await _take(client, token, one_year.offer.id)
    assert again.status_code == 201
