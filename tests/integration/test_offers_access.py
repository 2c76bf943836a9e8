"""Who may use which offer route: anonymous, another organisation, member, organisation admin,
platform admin, and API tokens. Refused requests change nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.patents.models import Patent
from tests.factories import Account, add_member, api_token, bearer, csrf_headers, login, make_account
from tests.offer_factories import make_offer, make_patent, offer_json

ROLES = ("anonymous", "other_org", "member", "org_admin", "platform_admin")


@dataclass
class World:
    licensor: Account
    member: Account
    other: Account
    admin: Account
    patent: Patent
    offers: dict[str, OpenLicenceOffer]

    def __getattr__(self, name: str) -> OpenLicenceOffer:
        try:
            return self.offers[name]
        except KeyError:
            raise AttributeError(name) from None

    def account(self, role: str) -> Account | None:
        return {"other_org": self.other, "member": self.member, "org_admin": self.licensor,
                "platform_admin": self.admin}.get(role)


async def _world(db) -> World:
    licensor = await make_account(db)
    other = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM)
    member = await add_member(db, licensor)
    # One offer per action, each on its own patent, so every request of a test acts on fresh state.
    states = {
        "draft": OfferStatus.DRAFT,
        "draft_to_edit": OfferStatus.DRAFT,
        "draft_to_submit": OfferStatus.DRAFT,
        "submitted": OfferStatus.SUBMITTED,
        "submitted_to_approve": OfferStatus.SUBMITTED,
        "submitted_to_reject": OfferStatus.SUBMITTED,
        "published": OfferStatus.PUBLISHED,
        "published_to_version": OfferStatus.PUBLISHED,
        "published_to_withdraw": OfferStatus.PUBLISHED,
    }
    offers = {}
    first_patent = None
    for name, status in states.items():
        patent = await make_patent(db, licensor)
        first_patent = first_patent or patent
        offers[name] = await make_offer(db, licensor, patent, status=status)
    return World(licensor=licensor, member=member, other=other, admin=admin, patent=first_patent, offers=offers)


async def _as(client, world: World, role: str) -> None:
    account = world.account(role)
    if account is not None:
        await login(client, account)


def _ids(world: World, status: str) -> set[int]:
    return {offer.id for offer in world.offers.values() if offer.status.value == status}


async def _statuses(db) -> dict[int, OfferStatus]:
    return dict((await db.execute(select(OpenLicenceOffer.id, OpenLicenceOffer.status))).all())


LOGIN = "login"
PAGE_MATRIX = {
    # route: expected status for anonymous, other_org, member, org_admin, platform_admin
    "/offers": (LOGIN, 200, 200, 200, 403),
    "/offers/new": (LOGIN, 200, 200, 200, 403),
    "/offers/fee-fields?prefix=fee_terms&fee_terms.mode=royalty": (LOGIN, 200, 200, 200, 403),
    "/offers/{draft}": (LOGIN, 404, 200, 200, 403),
    "/offers/{draft}/edit": (LOGIN, 404, 200, 200, 403),
    "/admin/offers": (LOGIN, 403, 403, 403, 200),
    "/admin/offers/{draft}": (LOGIN, 403, 403, 403, 200),
    "/catalogue/{draft}": (404, 404, 404, 404, 404),
    "/catalogue/{submitted}": (404, 404, 404, 404, 404),
    "/catalogue/{published}": (200, 200, 200, 200, 200),
    "/catalogue/{published}/calculator": (200, 200, 200, 200, 200),
    "/catalogue/{draft}/calculator": (404, 404, 404, 404, 404),
}


@pytest.mark.parametrize("role", ROLES)
async def test_page_access(client, db, role):
    world = await _world(db)
    await _as(client, world, role)
    wrong = []
    for route, statuses in PAGE_MATRIX.items():
        path = route.format(draft=world.draft.id, submitted=world.submitted.id, published=world.published.id)
        response = await client.get(path)
        expected = statuses[ROLES.index(role)]
        if expected == LOGIN:
            if not (response.status_code in (302, 303) and response.headers["location"].startswith("/login?next=")):
                wrong.append((route, response.status_code))
        elif response.status_code != expected:
            wrong.append((route, response.status_code))
    assert wrong == []


async def test_offer_list_shows_only_the_organisations_own_offers(client, db):
    world = await _world(db)
    other_patent = await make_patent(db, world.other)
    await make_offer(db, world.other, other_patent)
    await login(client, world.other)
    page = await client.get("/offers")
    assert other_patent.title in page.text and world.patent.title not in page.text
    await login(client, world.member)
    page = await client.get("/offers")
    assert world.patent.title in page.text and other_patent.title not in page.text
    assert "草稿" in page.text and "待审核" in page.text and "已公告" in page.text


POST_MATRIX = {
    # (route, offer, form) → expected status for anonymous, other_org, member, org_admin, platform_admin
    ("/offers/{id}/submit", "draft_to_submit", ()): (LOGIN, 404, 302, 302, 403),
    ("/offers/{id}/new-version", "published_to_version", ()): (LOGIN, 404, 302, 302, 403),
    ("/offers/{id}/withdraw", "published_to_withdraw", (("reason", "不再许可"),)): (LOGIN, 404, 403, 302, 403),
    ("/admin/offers/{id}/reject", "submitted_to_reject", (("reason", "材料不全"),)): (LOGIN, 403, 403, 403, 302),
}


@pytest.mark.parametrize("role", ROLES)
async def test_page_actions_by_role_and_refusals_change_nothing(client, db, role):
    world = await _world(db)
    await _as(client, world, role)
    headers = await csrf_headers(client)
    wrong = []
    for (route, which, form), statuses in POST_MATRIX.items():
        offer = getattr(world, which)
        before = await _statuses(db)
        response = await client.post(route.format(id=offer.id), data=dict(form), headers=headers)
        expected = statuses[ROLES.index(role)]
        after = await _statuses(db)
        if expected == LOGIN:
            ok = response.status_code in (302, 303) and response.headers["location"].startswith("/login")
            ok = ok and after == before
        elif expected == 302:
            ok = response.status_code in (302, 303) and after != before
        else:
            ok = response.status_code == expected and after == before
        if not ok:
            wrong.append((route, response.status_code))
    assert wrong == []


API_ROLES = ("anonymous", "other_org", "licensor", "platform_admin")


async def _token(db, world: World, role: str) -> dict[str, str]:
    account = {"other_org": world.other, "licensor": world.member, "platform_admin": world.admin}.get(role)
    return {} if account is None else bearer(await api_token(db, account))


@pytest.mark.parametrize("role", API_ROLES)
async def test_api_list_scope(client, db, role):
    world = await _world(db)
    headers = await _token(db, world, role)
    listed = await client.get("/api/v1/offers", headers=headers)
    assert listed.status_code == 200
    ids = {item["id"] for item in listed.json()["items"]}
    everything = {offer.id for offer in world.offers.values()}
    expected = {
        "anonymous": _ids(world, "published"),
        "other_org": set(),
        "licensor": everything,
        "platform_admin": everything,
    }[role]
    assert ids == expected
    assert listed.json()["total"] == len(expected)
    filtered = await client.get("/api/v1/offers?status=submitted", headers=headers)
    assert {i["id"] for i in filtered.json()["items"]} == {i for i in expected if i in _ids(world, "submitted")}


API_MATRIX = [
    # (method, route, offer, json body), then the status for anonymous, other_org, licensor token, platform admin
    (("GET", "/api/v1/offers/{id}", "draft", None), (404, 404, 200, 200)),
    (("GET", "/api/v1/offers/{id}", "published", None), (200, 200, 200, 200)),
    (("GET", "/api/v1/offers/{id}/cost-estimate", "draft", None), (404, 404, 200, 200)),
    (("GET", "/api/v1/offers/{id}/cost-estimate", "published", None), (200, 200, 200, 200)),
    (("PUT", "/api/v1/offers/{id}", "draft_to_edit", {"fee_terms": {"mode": "free"}, "licence_term_months": 12}),
     (401, 404, 200, 404)),
    (("POST", "/api/v1/offers/{id}/submit", "draft_to_submit", None), (401, 404, 200, 404)),
    (("POST", "/api/v1/offers/{id}/new-version", "published_to_version", None), (401, 404, 201, 404)),
    (("POST", "/api/v1/offers/{id}/withdraw", "published_to_withdraw", {"reason": "技术转让"}), (401, 404, 200, 404)),
    (("POST", "/api/v1/offers/{id}/approve", "submitted_to_approve",
      {"announcement_number": "CN-OL-X", "announcement_date": "2024-01-05"}), (401, 403, 403, 200)),
    (("POST", "/api/v1/offers/{id}/reject", "submitted_to_reject", {"reason": "材料不全"}), (401, 403, 403, 200)),
]


@pytest.mark.parametrize("role", API_ROLES)
async def test_api_access(client, db, role):
    world = await _world(db)
    headers = await _token(db, world, role)
    wrong = []
    for (method, route, which, body), statuses in API_MATRIX:
        offer = getattr(world, which)
        before = await _statuses(db)
        response = await client.request(method, route.format(id=offer.id), json=body, headers=headers)
        expected = statuses[API_ROLES.index(role)]
        after = await _statuses(db)
        ok = response.status_code == expected
        if expected >= 400:
            ok = ok and response.headers["content-type"].startswith("application/problem+json") and after == before
        elif method == "GET" and route == "/api/v1/offers/{id}":
            # Eligibility is shown to the licensor and platform admins only.
            ok = ok and (response.json()["eligibility"] is None) == (role in ("anonymous", "other_org"))
        if not ok:
            wrong.append((method, route, which, response.status_code))
    assert wrong == []


async def test_api_create_needs_a_token_of_the_patents_owner(client, db):
    world = await _world(db)
    fresh = await make_patent(db, world.licensor)
    body = offer_json(fresh.id)
    assert (await client.post("/api/v1/offers", json=body)).status_code == 401
    assert (await client.post("/api/v1/offers", json=body, headers=await _token(db, world, "platform_admin"))
            ).status_code == 403
    foreign = await client.post("/api/v1/offers", json=body, headers=await _token(db, world, "other_org"))
    assert foreign.status_code == 422 and foreign.json()["errors"][0]["field"] == "patent_id"
    bad_token = await client.post("/api/v1/offers", json=body, headers=bearer("mpt_not-a-real-token"))
    assert bad_token.status_code == 401
    assert await db.scalar(select(func.count()).select_from(OpenLicenceOffer)) == len(world.offers)
    own = await client.post("/api/v1/offers", json=body, headers=await _token(db, world, "licensor"))
    assert own.status_code == 201


async def test_openapi_documents_the_offer_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/api/v1/offers", "/api/v1/offers/{offer_id}", "/api/v1/offers/{offer_id}/cost-estimate",
                 "/api/v1/offers/{offer_id}/approve", "/api/v1/offers/{offer_id}/withdraw"):
        assert path in paths
    assert not any(path.startswith("/offers") or path.startswith("/admin") for path in paths)
    assert "OfferOut" in str(schema["components"]["schemas"].keys())
