"""Acceptances racing each other and the offer's withdrawal, through the real application.

The requests run concurrently on this event loop through httpx's ASGI transport. (The
AsyncTestClient would not do: it hands each request to a portal thread and blocks the loop until the
response is complete, so ``asyncio.gather`` over it runs the requests one after another.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from sqlalchemy import func, select

from marketplace.accounts import services as account_services
from marketplace.accounts.models import OrganisationKind
from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.licensing.models import ContractNumberCounter, LicenceContract, WrittenNotice
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.models import OutboxMessage
from tests.factories import Account, api_token, bearer, make_account
from tests.licensing_factories import notice_form
from tests.offer_factories import make_offer, make_patent

pytestmark = pytest.mark.postgres_only

ROUNDS = 20
RACERS = 4


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and a client calling it on this loop. (Entered inside each test:
    an async fixture's teardown may run in another task, which anyio's cancel scopes refuse.)"""
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://race") as client:
        yield client


@pytest.fixture
def cheap_passwords(monkeypatch) -> None:
    """These tests call the API with tokens only, so the accounts' password hashes are never checked:
    skip hashing (a quarter of a second each) when making dozens of them."""
    monkeypatch.setattr(account_services, "hash_password", lambda _password: "not-a-usable-hash")


@dataclass
class Party:
    account: Account
    headers: dict[str, str]


async def _party(db, kind: OrganisationKind) -> Party:
    account = await make_account(db, kind=kind)
    return Party(account, bearer(await api_token(db, account)))


def _notice(key: str | None = None) -> dict[str, str]:
    return {k: v for k, v in notice_form(idempotency_key=key or uuid.uuid4().hex).items() if v}


async def _accept(http, party: Party, offer_id: int, *, after: float = 0.0, key: str | None = None):
    await asyncio.sleep(after)
    return await http.post(f"/api/v1/offers/{offer_id}/accept", json=_notice(key), headers=party.headers)


async def _accept_timed(http, party: Party, offer_id: int, *, after: float) -> tuple[float, httpx.Response]:
    """The acceptance's response and when its request was sent."""
    await asyncio.sleep(after)
    sent_at = time.monotonic()
    return sent_at, await _accept(http, party, offer_id)


async def _withdraw_timed(http, licensor: Party, offer_id: int, *, after: float) -> tuple[float, httpx.Response]:
    """The withdrawal's response and when it arrived (its transaction had committed by then)."""
    await asyncio.sleep(after)
    body = {"reason": "拟转让专利"}
    response = await http.post(f"/api/v1/offers/{offer_id}/withdraw", json=body, headers=licensor.headers)
    return time.monotonic(), response


async def _published_offer(db, licensor: Party) -> OpenLicenceOffer:
    patent = await make_patent(db, licensor.account)
    return await make_offer(db, licensor.account, patent, status=OfferStatus.PUBLISHED)


async def _count(db, model, *conditions) -> int:
    return int(await db.scalar(select(func.count()).select_from(model).where(*conditions)))


async def _emails_to(db, email: str) -> int:
    return len([m for m in await db.scalars(select(OutboxMessage)) if m.payload.get("to") == email])


@dataclass
class RoundResult:
    accepted: int
    refused: int


async def _race_round(http, db, licensor: Party, licensees: list[Party], number: int) -> RoundResult:
    offer = await _published_offer(db, licensor)
    # Acceptances start 50 ms apart; the withdrawal starts with the first of them, or up to 50 ms
    # after the last, so some rounds see it commit before late acceptances and others after them all.
    withdraw_after = (number % 5) * 0.05
    emails_before = {p.account.email: await _emails_to(db, p.account.email) for p in licensees}
    (withdrawn_by, withdrawal), *timed = await asyncio.gather(
        _withdraw_timed(http, licensor, offer.id, after=withdraw_after),
        *(_accept_timed(http, party, offer.id, after=0.05 * i) for i, party in enumerate(licensees)),
    )
    assert withdrawal.status_code == 200, withdrawal.text
    offer = await db.get(OpenLicenceOffer, offer.id, populate_existing=True)
    withdrawn_at: datetime = offer.withdrawn_at
    assert offer.status is OfferStatus.WITHDRAWN and withdrawn_at is not None

    result = RoundResult(0, 0)
    for party, (sent_at, response) in zip(licensees, timed, strict=True):
        organisation_id = party.account.organisation.id
        mine = (LicenceContract.offer_id == offer.id, LicenceContract.licensee_organisation_id == organisation_id)
        contracts = list(await db.scalars(select(LicenceContract).where(*mine)))
        new_emails = await _emails_to(db, party.account.email) - emails_before[party.account.email]
        if response.status_code == 201:
            assert sent_at < withdrawn_by, "an acceptance sent after the withdrawal had committed succeeded"
            (contract,) = contracts
            assert response.json()["id"] == contract.id
            notice = await db.scalar(select(WrittenNotice).where(WrittenNotice.contract_id == contract.id))
            assert notice.notified_at <= withdrawn_at
            assert contract.created_at <= withdrawn_at
            assert new_emails == 1
            result.accepted += 1
        else:
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "offer_withdrawn"
            assert contracts == []
            notices = WrittenNotice.offer_id == offer.id, WrittenNotice.organisation_id == organisation_id
            assert await _count(db, WrittenNotice, *notices) == 0
            assert new_emails == 0
            result.refused += 1
    assert await _count(db, LicenceContract, LicenceContract.offer_id == offer.id) == result.accepted
    accepts = (
        AuditRecord.entity_type == "licence_contract",
        AuditRecord.action == "accept",
        AuditRecord.entity_id.in_(select(LicenceContract.id).where(LicenceContract.offer_id == offer.id)),
    )
    assert await _count(db, AuditRecord, *accepts) == result.accepted
    return result


async def test_withdrawal_racing_acceptances_never_grants_a_licence_on_a_withdrawn_offer(app, db, cheap_passwords):
    licensor = await _party(db, OrganisationKind.UNIVERSITY)
    licensees = [await _party(db, OrganisationKind.ENTERPRISE) for _ in range(RACERS)]
    async with serving(app) as http:
        results = [await _race_round(http, db, licensor, licensees, number) for number in range(ROUNDS)]
    assert sum(r.accepted for r in results) > 0, "some acceptances committed before the withdrawal"
    assert sum(r.refused for r in results) > 0, "some acceptances arrived after the withdrawal"
    # Contract numbers stayed gapless through every refusal.
    issued = await db.scalar(select(ContractNumberCounter.last_value).where(ContractNumberCounter.year == today().year))
    assert (issued or 0) == sum(r.accepted for r in results) == await _count(db, LicenceContract)


async def test_identical_concurrent_submissions_create_one_contract(app, db):
    licensor = await _party(db, OrganisationKind.UNIVERSITY)
    licensee = await _party(db, OrganisationKind.ENTERPRISE)
    offer = await _published_offer(db, licensor)
    key = uuid.uuid4().hex
    async with serving(app) as http:
        responses = await asyncio.gather(*(_accept(http, licensee, offer.id, key=key) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201], [r.text for r in responses]
    (contract,) = list(await db.scalars(select(LicenceContract)))
    assert {r.json()["id"] for r in responses} == {contract.id}
    assert {r.json()["number"] for r in responses} == {contract.number}
    assert await _count(db, WrittenNotice) == 1
    assert contract.sequence == 1
    counter = await db.scalar(select(ContractNumberCounter.last_value))
    assert counter == 1


async def test_concurrent_submissions_with_different_keys_create_one_contract(app, db):
    licensor = await _party(db, OrganisationKind.UNIVERSITY)
    licensee = await _party(db, OrganisationKind.ENTERPRISE)
    offer = await _published_offer(db, licensor)
    async with serving(app) as http:
        responses = await asyncio.gather(*(_accept(http, licensee, offer.id) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9, [r.text for r in responses]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_licensed"}
    (contract,) = list(await db.scalars(select(LicenceContract)))
    assert [r.json()["id"] for r in responses if r.status_code == 201] == [contract.id]
    assert await _count(db, WrittenNotice) == 1
    assert await db.scalar(select(ContractNumberCounter.last_value)) == 1


async def test_fifty_concurrent_acceptances_get_gapless_distinct_numbers(app, db, cheap_passwords):
    licensor = await _party(db, OrganisationKind.UNIVERSITY)
    offer = await _published_offer(db, licensor)
    licensees = [await _party(db, OrganisationKind.ENTERPRISE) for _ in range(50)]
    async with serving(app) as http:
        responses = await asyncio.gather(*(_accept(http, party, offer.id) for party in licensees))
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses if r.status_code != 201]
    year = today().year
    numbers = sorted(r.json()["number"] for r in responses)
    assert numbers == [f"OL{year}{n:06d}" for n in range(1, 51)]
    stored = sorted(await db.scalars(select(LicenceContract.sequence)))
    assert stored == list(range(1, 51))
    assert await db.scalar(select(ContractNumberCounter.last_value)) == 50
