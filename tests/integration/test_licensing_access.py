"""Who may use which licensing route: anonymous, the licensee's admin and member, the licensor's
admin and member, a foreign enterprise, a foreign university and a platform admin. Each party sees
only its own contracts; anyone else gets "not found" and none of the contract's data; refused
requests change nothing. Ends with termination by agreement from request to a new licence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from marketplace.accounts.models import OrganisationKind
from marketplace.accounts.services import principal_for
from marketplace.audit.models import AuditRecord
from marketplace.clock import today
from marketplace.licensing import services
from marketplace.licensing.models import ContractStatus, EndReason, LicenceContract
from marketplace.licensing.services import sweep
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.models import OutboxMessage
from tests.factories import Account, add_member, api_token, bearer, csrf_headers, login, make_account
from tests.licensing_factories import FREE, notice_form
from tests.offer_factories import make_offer, make_patent

LOGIN = "login"
PAGE_ROLES = (
    "anonymous",
    "licensee_admin",
    "licensee_member",
    "licensor_admin",
    "licensor_member",
    "foreign_enterprise",
    "foreign_university",
    "platform_admin",
)
# API tokens belong to an organisation (only its admins create them), so the API knows no members.
API_ROLES = ("anonymous", "licensee", "licensor", "foreign_enterprise", "foreign_university", "platform_admin")

# Names that are never substrings of one another, so "the page does not name X" means what it says.
NAMES = {
    "licensor": "北辰理工大学",
    "licensee": "青禾储能科技有限公司",
    "foreign_enterprise": "远山精密机械有限公司",
    "foreign_university": "南湖农业大学",
}


@dataclass
class World:
    accounts: dict[str, Account]
    offers: dict[str, OpenLicenceOffer]
    contracts: dict[str, LicenceContract]

    def __getattr__(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise AttributeError(name) from None

    def account(self, role: str) -> Account | None:
        return self.accounts.get(ROLE_ACCOUNTS.get(role, role))


ROLE_ACCOUNTS = {
    "licensee_admin": "licensee",
    "licensee_member": "licensee_member",
    "licensor_admin": "licensor",
    "licensor_member": "licensor_member",
    "platform_admin": "admin",
}


async def _offer(db, owner: Account, title: str, fee_terms: dict[str, Any] | None = None) -> OpenLicenceOffer:
    patent = await make_patent(db, owner, title=title)
    return await make_offer(db, owner, patent, status=OfferStatus.PUBLISHED, fee_terms=fee_terms)


async def _take(sessionmaker, account: Account, offer: OpenLicenceOffer) -> LicenceContract:
    """The account's organisation takes the offer's licence (the acceptance tests cover the routes)."""
    async with sessionmaker() as session:
        contract, created = await services.accept(
            session, actor=principal_for(account.user), offer_id=offer.id, values=notice_form()
        )
        await session.commit()
    assert created
    return contract


async def _ask_to_end(sessionmaker, account: Account, contract: LicenceContract, reason: str = "产品线调整") -> None:
    async with sessionmaker() as session:
        await services.request_termination(
            session, actor=principal_for(account.user), contract_id=contract.id, values={"reason": reason}
        )
        await session.commit()


async def _agree_to_end(sessionmaker, account: Account, contract: LicenceContract) -> None:
    async with sessionmaker() as session:
        await services.confirm_termination(session, actor=principal_for(account.user), contract_id=contract.id)
        await session.commit()


async def _parties(db, role: str, *needed: str) -> dict[str, Account]:
    """The licensor and the licensee, the accounts ``needed`` and the one acting as ``role``
    (each account costs a password hash, so only those a test uses are made)."""
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY, name=NAMES["licensor"])
    licensee = await make_account(db, kind=OrganisationKind.ENTERPRISE, name=NAMES["licensee"])
    accounts = {"licensor": licensor, "licensee": licensee}
    wanted = {*needed, ROLE_ACCOUNTS.get(role, role)} - {"anonymous", *accounts}
    makers = {
        "licensor_member": lambda: add_member(db, licensor),
        "licensee_member": lambda: add_member(db, licensee),
        "foreign_enterprise": lambda: make_account(
            db, kind=OrganisationKind.ENTERPRISE, name=NAMES["foreign_enterprise"]
        ),
        "foreign_university": lambda: make_account(
            db, kind=OrganisationKind.UNIVERSITY, name=NAMES["foreign_university"]
        ),
        "admin": lambda: make_account(db, kind=OrganisationKind.PLATFORM),
    }
    for name in sorted(wanted):
        accounts[name] = await makers[name]()
    return accounts


async def _reading_world(db, sessionmaker, role: str) -> World:
    """Three contracts: the licensee's (awaiting payment) on the licensor's offer; one the foreign
    enterprise ended with the foreign university; and one the licensor itself took (as licensee)
    from the foreign university. Three more published offers are left for acceptance requests."""
    parties = await _parties(db, role, "foreign_enterprise", "foreign_university")
    licensor, foreign_university = parties["licensor"], parties["foreign_university"]
    offers = {
        "ours": await _offer(db, licensor, "电池极片干法涂布装置"),
        "theirs": await _offer(db, foreign_university, "水稻抗倒伏栽培方法", FREE),
        "licensor_takes": await _offer(db, foreign_university, "温室滴灌智能控制系统", FREE),
        "page_accept": await _offer(db, licensor, "锂电池隔膜在线检测方法"),
        "api_accept": await _offer(db, licensor, "固态电解质薄膜制备工艺"),
        "api_create": await _offer(db, licensor, "储能柜液冷板焊接结构"),
    }
    contracts = {
        "ours": await _take(sessionmaker, parties["licensee"], offers["ours"]),
        "theirs": await _take(sessionmaker, parties["foreign_enterprise"], offers["theirs"]),
        "licensor_takes": await _take(sessionmaker, licensor, offers["licensor_takes"]),
    }
    await _ask_to_end(sessionmaker, parties["foreign_enterprise"], contracts["theirs"])
    await _agree_to_end(sessionmaker, foreign_university, contracts["theirs"])
    return World(parties, offers, contracts)


async def _as(client, world: World, role: str) -> None:
    account = world.account(role)
    if account is not None:
        await login(client, account)


async def _token(db, world: World, role: str) -> dict[str, str]:
    account = world.account(role)
    return {} if account is None else bearer(await api_token(db, account))


def _is_login_redirect(response) -> bool:
    return response.status_code in (302, 303) and response.headers["location"].startswith("/login?next=")


def _names_of(contract: LicenceContract) -> set[str]:
    return {contract.terms_snapshot["licensor"]["name"], contract.terms_snapshot["licensee"]["name"]}


# ---------------------------------------------------------------------------------------------
# Reading contracts
# ---------------------------------------------------------------------------------------------

CONTRACT = (LOGIN, 200, 200, 200, 200, 404, 404, 200)
PAGE_READS = {
    # route: expected status for each of PAGE_ROLES
    "/contracts": (LOGIN, 200, 200, 200, 200, 200, 200, 200),
    "/contracts/{ours}": CONTRACT,
    "/contracts/{ours}/notice": CONTRACT,
    "/contracts/{ours}/notice.pdf": CONTRACT,
    "/contracts/{ours}/contract": CONTRACT,
    "/contracts/{ours}/contract.pdf": CONTRACT,
    "/contracts/{missing}": (LOGIN, 404, 404, 404, 404, 404, 404, 404),
    "/admin/contracts": (LOGIN, 403, 403, 403, 403, 403, 403, 200),
    "/catalogue/{page_accept}/accept": (LOGIN, 200, 200, 200, 200, 200, 200, 200),
}


def _path(route: str, world: World) -> str:
    return route.format(
        ours=world.contracts["ours"].id,
        missing=max(c.id for c in world.contracts.values()) + 1000,
        page_accept=world.offers["page_accept"].id,
        api_accept=world.offers["api_accept"].id,
    )


def _body_problems(world: World, role: str, route: str, response) -> list[str]:
    """What a response's body reveals that this role should not see, or lacks that it should show."""
    ours = world.contracts["ours"]
    viewer = world.account(role)
    # The page header names the viewer's own organisation; only other names count.
    text = response.text.replace(viewer.organisation.name, "") if viewer else response.text
    problems = []
    if response.status_code == 404:
        for secret in (ours.number, NAMES["licensee"], ours.intended_field_of_use):
            if secret in text:
                problems.append(f"404 reveals {secret}")
    elif response.status_code == 200 and route.endswith(".pdf"):
        if response.headers["content-type"] != "application/pdf" or not response.content.startswith(b"%PDF"):
            problems.append("not a PDF")
    elif response.status_code == 200 and "{ours}" in route:
        if NAMES["licensee"] not in response.text:
            problems.append("licensee missing")
        for stranger in ("foreign_enterprise", "foreign_university"):
            if NAMES[stranger] in text:
                problems.append(f"names {stranger}")
    return problems


async def _page_reads(client, world: World, role: str) -> list:
    wrong = []
    for route, statuses in PAGE_READS.items():
        response = await client.get(_path(route, world))
        expected = statuses[PAGE_ROLES.index(role)]
        if expected == LOGIN:
            if not _is_login_redirect(response):
                wrong.append((route, response.status_code))
        elif response.status_code != expected:
            wrong.append((route, response.status_code))
        else:
            wrong.extend((route, problem) for problem in _body_problems(world, role, route, response))
    return wrong


# Contracts each role's organisation is party to, by list side; status filters narrow these.
VISIBLE = {
    "licensee": {"all": {"ours"}, "licensee": {"ours"}, "licensor": set()},
    "licensor": {"all": {"ours", "licensor_takes"}, "licensee": {"licensor_takes"}, "licensor": {"ours"}},
    "foreign_enterprise": {"all": {"theirs"}, "licensee": {"theirs"}, "licensor": set()},
    "foreign_university": {
        "all": {"theirs", "licensor_takes"},
        "licensee": set(),
        "licensor": {"theirs", "licensor_takes"},
    },
    # A platform admin sees every contract; its own organisation is party to none.
    "admin": {"all": {"ours", "theirs", "licensor_takes"}, "licensee": set(), "licensor": set()},
}
BY_STATUS = {"awaiting_payment": {"ours"}, "active": {"licensor_takes"}, "ended": {"theirs"}}
LISTS = [(side, status) for side in ("all", "licensee", "licensor") for status in ("", *BY_STATUS)]


def _expected(role: str, side: str, status: str) -> set[str]:
    seen = VISIBLE[ROLE_ACCOUNTS.get(role, role).removesuffix("_member")][side]
    return seen & BY_STATUS[status] if status else seen


async def _page_lists(client, world: World, role: str) -> list:
    numbers = {name: contract.number for name, contract in world.contracts.items()}
    own_name = world.account(role).organisation.name
    wrong = []
    for side, status in LISTS:
        response = await client.get(f"/contracts?side={side}&status={status}")
        shown = {name for name, number in numbers.items() if f">{number}</a>" in response.text}
        expected = _expected(role, side, status)
        if response.status_code != 200 or shown != expected:
            wrong.append((side, status, response.status_code, shown, expected))
        # Organisations that are party to none of the listed contracts are never named.
        named = set().union(*(_names_of(world.contracts[name]) for name in expected))
        for stranger in set(NAMES.values()) - named - {own_name}:
            if stranger in response.text:
                wrong.append((side, status, "names", stranger))
    for bad in ("status=bogus", "side=everyone"):
        response = await client.get(f"/contracts?{bad}")
        if response.status_code != 422:
            wrong.append((bad, response.status_code))
    return wrong


async def _contracts_of(db, world: World, role: str) -> int:
    account = world.account(role)
    query = select(func.count()).select_from(LicenceContract)
    if account is not None:
        query = query.where(LicenceContract.licensee_organisation_id == account.organisation.id)
    return int(await db.scalar(query))


async def _page_accept(client, db, world: World, role: str) -> None:
    """Anyone signed in but the licensor's own people and platform admins may take the licence."""
    offer = world.offers["page_accept"]
    page = await client.get(f"/catalogue/{offer.id}/accept")
    before = await _contracts_of(db, world, role)
    response = await client.post(
        f"/catalogue/{offer.id}/accept", data=notice_form(), headers=await csrf_headers(client)
    )
    after = await _contracts_of(db, world, role)
    expected = {"anonymous": LOGIN, "licensor_admin": 403, "licensor_member": 403, "platform_admin": 403}
    if expected.get(role) == LOGIN:
        assert _is_login_redirect(page) and _is_login_redirect(response)
        assert after == before
    elif expected.get(role) == 403:
        assert 'id="accept-form"' not in page.text
        assert response.status_code == 403
        assert after == before
    else:
        assert 'id="accept-form"' in page.text
        assert response.status_code in (302, 303)
        assert after == before + 1
        created = await db.scalar(select(LicenceContract).order_by(LicenceContract.id.desc()).limit(1))
        assert response.headers["location"] == f"/contracts/{created.id}"
        assert created.licensee_organisation_id == world.account(role).organisation.id


@pytest.mark.parametrize("role", PAGE_ROLES)
async def test_pages_by_role(client, db, sessionmaker, role):
    world = await _reading_world(db, sessionmaker, role)
    await _as(client, world, role)
    assert await _page_reads(client, world, role) == []
    if role != "anonymous":
        assert await _page_lists(client, world, role) == []
    await _page_accept(client, db, world, role)


async def test_admin_contract_list_shows_every_contract_and_filters(client, db, sessionmaker):
    world = await _reading_world(db, sessionmaker, "platform_admin")
    await login(client, world.admin)
    page = await client.get("/admin/contracts")
    assert page.status_code == 200
    for contract in world.contracts.values():
        assert contract.number in page.text
    ended = await client.get("/admin/contracts?status=ended")
    assert world.contracts["theirs"].number in ended.text
    assert world.contracts["ours"].number not in ended.text
    search = await client.get("/admin/contracts", params={"q": NAMES["licensee"]})
    assert world.contracts["ours"].number in search.text
    assert world.contracts["licensor_takes"].number not in search.text
    assert (await client.get("/admin/contracts?verified=maybe")).status_code == 422


API_CONTRACT = (401, 200, 200, 404, 404, 200)
API_READS = {
    # route: expected status for each of API_ROLES
    "/api/v1/contracts": (401, 200, 200, 200, 200, 200),
    "/api/v1/contracts/{ours}": API_CONTRACT,
    "/api/v1/contracts/{ours}/notice.html": API_CONTRACT,
    "/api/v1/contracts/{ours}/notice.pdf": API_CONTRACT,
    "/api/v1/contracts/{ours}/contract.pdf": API_CONTRACT,
    "/api/v1/contracts/{missing}": (401, 404, 404, 404, 404, 404),
}


async def _api_reads(client, world: World, role: str, headers: dict[str, str]) -> list:
    wrong = []
    for route, statuses in API_READS.items():
        response = await client.get(_path(route, world), headers=headers)
        expected = statuses[API_ROLES.index(role)]
        if response.status_code != expected:
            wrong.append((route, response.status_code))
            continue
        if expected >= 400:
            if not response.headers["content-type"].startswith("application/problem+json"):
                wrong.append((route, "not problem+json"))
        elif route == "/api/v1/contracts/{ours}":
            body = response.json()
            if (body["id"], body["licensee"]["name"]) != (world.contracts["ours"].id, NAMES["licensee"]):
                wrong.append((route, body["id"]))
        wrong.extend((route, problem) for problem in _body_problems(world, role, route, response))
    return wrong


async def _api_lists(client, world: World, role: str, headers: dict[str, str]) -> list:
    ids = {contract.id: name for name, contract in world.contracts.items()}
    wrong = []
    for side, status in LISTS:
        response = await client.get("/api/v1/contracts", params={"side": side, "status": status}, headers=headers)
        body = response.json()
        listed = {ids[item["id"]] for item in body["items"]}
        expected = _expected(role, side, status)
        if response.status_code != 200 or listed != expected or body["total"] != len(expected):
            wrong.append((side, status, listed, expected))
        named = {item[party]["name"] for item in body["items"] for party in ("licensor", "licensee")}
        if not named <= set().union(*(_names_of(world.contracts[name]) for name in expected)):
            wrong.append((side, status, named))
    bad = await client.get("/api/v1/contracts?status=bogus", headers=headers)
    if bad.status_code != 422 or [e["field"] for e in bad.json()["errors"]] != ["status"]:
        wrong.append(("status=bogus", bad.status_code))
    return wrong


async def _api_accept(client, db, world: World, role: str, headers: dict[str, str]) -> None:
    expected = {"anonymous": 401, "licensor": 403, "platform_admin": 403}.get(role, 201)
    body = {k: v for k, v in notice_form().items() if v}
    routes = [
        (f"/api/v1/offers/{world.offers['api_accept'].id}/accept", body),
        ("/api/v1/contracts", {**notice_form(), "start_date": None, "offer_id": world.offers["api_create"].id}),
    ]
    for path, payload in routes:
        before = await _contracts_of(db, world, role)
        response = await client.post(path, json=payload, headers=headers)
        after = await _contracts_of(db, world, role)
        assert response.status_code == expected, (path, response.text)
        if expected == 201:
            assert after == before + 1
            assert response.json()["licensee"]["organisation_id"] == world.account(role).organisation.id
        else:
            assert after == before
            assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", API_ROLES)
async def test_api_by_role(client, db, sessionmaker, role):
    world = await _reading_world(db, sessionmaker, role)
    headers = await _token(db, world, role)
    assert await _api_reads(client, world, role, headers) == []
    if role != "anonymous":
        assert await _api_lists(client, world, role, headers) == []
    await _api_accept(client, db, world, role, headers)


# ---------------------------------------------------------------------------------------------
# Termination by agreement
# ---------------------------------------------------------------------------------------------


async def _termination_world(db, sessionmaker, role: str, *needed: str) -> World:
    """The licensee holds three contracts with the licensor: one without a termination request
    and two with a request the licensee made."""
    parties = await _parties(db, role, *needed)
    offers = {
        name: await _offer(db, parties["licensor"], title)
        for name, title in (("request", "正极材料烧结窑炉"), ("confirm", "负极石墨化炉"), ("cancel", "电解液注液机"))
    }
    contracts = {name: await _take(sessionmaker, parties["licensee"], offer) for name, offer in offers.items()}
    await _ask_to_end(sessionmaker, parties["licensee"], contracts["confirm"])
    await _ask_to_end(sessionmaker, parties["licensee"], contracts["cancel"])
    return World(parties, offers, contracts)


async def _states(db, world: World) -> dict[str, tuple]:
    rows = await db.execute(
        select(
            LicenceContract.id,
            LicenceContract.status,
            LicenceContract.termination_requested_by_organisation_id,
            LicenceContract.end_reason,
        ).where(LicenceContract.id.in_([c.id for c in world.contracts.values()]))
    )
    by_id = {row[0]: tuple(row[1:]) for row in rows}
    return {name: by_id[contract.id] for name, contract in world.contracts.items()}


def _changed_as_expected(action: str, before: tuple, after: tuple, actor: Account) -> bool:
    if action == "request":
        return after == (before[0], actor.organisation.id, None)
    if action == "confirm":
        return after[0] is ContractStatus.ENDED and after[2] is EndReason.AGREEMENT
    return after == (before[0], None, None)


TERMINATION_PAGES = {
    # (route, contract, form) → expected status for each of PAGE_ROLES
    ("/contracts/{id}/termination", "request", (("reason", "产品停产"),)): (LOGIN, 302, 403, 302, 403, 404, 404, 403),
    ("/contracts/{id}/termination/confirm", "confirm", ()): (LOGIN, 403, 403, 302, 403, 404, 404, 403),
    ("/contracts/{id}/termination/cancel", "cancel", ()): (LOGIN, 302, 403, 302, 403, 404, 404, 403),
}


@pytest.mark.parametrize("role", PAGE_ROLES)
async def test_termination_pages_by_role_and_refusals_change_nothing(client, db, sessionmaker, role):
    world = await _termination_world(db, sessionmaker, role)
    await _as(client, world, role)
    headers = await csrf_headers(client)
    wrong = []
    for (route, which, form), statuses in TERMINATION_PAGES.items():
        contract = world.contracts[which]
        before = await _states(db, world)
        response = await client.post(route.format(id=contract.id), data=dict(form), headers=headers)
        after = await _states(db, world)
        expected = statuses[PAGE_ROLES.index(role)]
        if expected == LOGIN:
            ok = _is_login_redirect(response) and after == before
        elif expected == 302:
            others_unchanged = all(after[name] == before[name] for name in after if name != which)
            ok = (
                response.status_code in (302, 303)
                and response.headers["location"] == f"/contracts/{contract.id}"
                and _changed_as_expected(which, before[which], after[which], world.account(role))
                and others_unchanged
            )
        else:
            ok = response.status_code == expected and after == before
            ok = ok and not (expected == 404 and contract.number in response.text)
        if not ok:
            wrong.append((route, response.status_code))
    assert wrong == []


TERMINATION_API = {
    # (route, contract, body) → expected status for each of API_ROLES
    ("/api/v1/contracts/{id}/termination", "request", (("reason", "产品停产"),)): (401, 200, 200, 404, 404, 403),
    ("/api/v1/contracts/{id}/termination/confirm", "confirm", ()): (401, 403, 200, 404, 404, 403),
    ("/api/v1/contracts/{id}/termination/cancel", "cancel", ()): (401, 200, 200, 404, 404, 403),
}


@pytest.mark.parametrize("role", API_ROLES)
async def test_termination_api_by_role_and_refusals_change_nothing(client, db, sessionmaker, role):
    world = await _termination_world(db, sessionmaker, role)
    headers = await _token(db, world, role)
    wrong = []
    for (route, which, body), statuses in TERMINATION_API.items():
        contract = world.contracts[which]
        before = await _states(db, world)
        response = await client.post(route.format(id=contract.id), json=dict(body), headers=headers)
        after = await _states(db, world)
        expected = statuses[API_ROLES.index(role)]
        if expected == 200:
            ok = (
                response.status_code == 200
                and response.json()["id"] == contract.id
                and _changed_as_expected(which, before[which], after[which], world.account(role))
            )
        else:
            ok = response.status_code == expected and after == before
            ok = ok and response.headers["content-type"].startswith("application/problem+json")
            ok = ok and contract.number not in response.text
        if not ok:
            wrong.append((route, response.status_code, response.text[:200]))
    assert wrong == []


async def _trail(db, contract: LicenceContract) -> list[tuple[str, int | None]]:
    rows = await db.execute(
        select(AuditRecord.action, AuditRecord.actor_organisation_id)
        .where(AuditRecord.entity_type == "licence_contract", AuditRecord.entity_id == contract.id)
        .order_by(AuditRecord.id)
    )
    return [tuple(row) for row in rows]


async def _fresh(db, contract: LicenceContract) -> LicenceContract:
    return await db.get(LicenceContract, contract.id, populate_existing=True)


async def _emails(db) -> list[tuple[str, str]]:
    rows = await db.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email").order_by(OutboxMessage.id))
    return [(m.payload["to"], m.payload["subject"]) for m in rows]


async def test_termination_by_agreement_from_request_to_a_new_licence(client, db, sessionmaker):
    world = await _termination_world(db, sessionmaker, "licensee", "licensee_member")
    contract = world.contracts["request"]
    licensee, licensor = world.licensee, world.licensor
    path = f"/contracts/{contract.id}"
    end_on = today() + timedelta(days=14)

    # A member sees the contract but no termination forms.
    await login(client, world.licensee_member)
    page = await client.get(path)
    assert "协商解除由机构管理员办理" in page.text and "申请协商解除</button>" not in page.text

    # The licensee asks; the licensor's admins are told; the licensee cannot agree with itself.
    await login(client, licensee)
    headers = await csrf_headers(client)
    sent = len(await _emails(db))
    bad = await client.post(f"{path}/termination", data={"reason": "", "end_date": "2001-01-01"}, headers=headers)
    assert bad.status_code == 422
    assert "请说明解除原因" in bad.text and "解除日期不能早于今天" in bad.text
    assert len(await _emails(db)) == sent
    asked = await client.post(
        f"{path}/termination", data={"reason": "产品停产", "end_date": end_on.isoformat()}, headers=headers
    )
    assert asked.status_code in (302, 303)
    new = (await _emails(db))[sent:]
    assert new and all("解除申请待您确认" in subject for _, subject in new)
    assert licensor.email in {to for to, _ in new} and licensee.email not in {to for to, _ in new}
    page = await client.get(path)
    assert "我方于" in page.text and "撤回申请" in page.text and "同意解除" not in page.text
    assert (await client.post(f"{path}/termination/confirm", headers=headers)).status_code == 403
    again = await client.post(f"{path}/termination", data={"reason": "再次申请"}, headers=headers)
    assert again.status_code == 409

    # The requester withdraws it, and the licensor is told.
    sent = len(await _emails(db))
    assert (await client.post(f"{path}/termination/cancel", headers=headers)).status_code in (302, 303)
    assert (licensor.email, f"合同 {contract.number} 的解除申请已被撤回") in (await _emails(db))[sent:]
    contract = await _fresh(db, contract)
    assert contract.termination_requested_at is None and contract.status is ContractStatus.AWAITING_PAYMENT

    # The licensor asks; the licensee declines.
    await login(client, licensor)
    headers = await csrf_headers(client)
    sent = len(await _emails(db))
    asked = await client.post(
        f"{path}/termination", data={"reason": "专利组合调整", "end_date": end_on.isoformat()}, headers=headers
    )
    assert asked.status_code in (302, 303)
    assert {to for to, _ in (await _emails(db))[sent:]} >= {licensee.email}
    assert licensor.email not in {to for to, _ in (await _emails(db))[sent:]}
    await login(client, licensee)
    headers = await csrf_headers(client)
    page = await client.get(path)
    assert "对方于" in page.text and "同意解除" in page.text and "拒绝解除" in page.text
    assert (await client.post(f"{path}/termination/cancel", headers=headers)).status_code in (302, 303)

    # The licensee asks once more and the licensor agrees: the licence runs until the agreed day,
    # and the worker's sweep ends it after that day.
    asked = await client.post(
        f"{path}/termination", data={"reason": "产品停产", "end_date": end_on.isoformat()}, headers=headers
    )
    assert asked.status_code in (302, 303)
    await login(client, licensor)
    headers = await csrf_headers(client)
    assert (await client.post(f"{path}/termination/confirm", headers=headers)).status_code in (302, 303)
    contract = await _fresh(db, contract)
    assert contract.status is ContractStatus.AWAITING_PAYMENT and contract.end_date == end_on
    assert contract.live_offer_id == contract.offer_id and contract.termination_requested_at is None
    page = await client.get(path)
    assert f"合同将于 {end_on.isoformat()} 解除" in page.text and "申请协商解除</button>" not in page.text
    sent = len(await _emails(db))
    async with sessionmaker() as session, session.begin():
        assert await sweep(session, on=end_on) == 0
        assert await sweep(session, on=end_on + timedelta(days=1)) == 1
    contract = await _fresh(db, contract)
    assert contract.status is ContractStatus.ENDED
    assert contract.end_reason is EndReason.AGREEMENT
    assert contract.ended_on == end_on
    assert contract.end_note == "产品停产"
    assert contract.live_offer_id is None
    told = {to for to, subject in (await _emails(db))[sent:] if "已终止" in subject}
    assert {licensee.email, licensor.email} <= told
    page = await client.get(path)
    assert "已终止" in page.text and "双方协商一致解除" in page.text and "申请协商解除</button>" not in page.text
    assert (await client.post(f"{path}/termination", data={"reason": "x"}, headers=headers)).status_code == 409

    assert await _trail(db, contract) == [
        ("accept", licensee.organisation.id),
        ("termination_requested", licensee.organisation.id),
        ("termination_withdrawn", licensee.organisation.id),
        ("termination_requested", licensor.organisation.id),
        ("termination_declined", licensee.organisation.id),
        ("termination_requested", licensee.organisation.id),
        ("termination_agreed", licensor.organisation.id),
        ("end:agreement", None),
    ]

    # The offer still stands, so the enterprise may take the licence again.
    await login(client, licensee)
    retaken = await client.post(
        f"/catalogue/{contract.offer_id}/accept", data=notice_form(), headers=await csrf_headers(client)
    )
    assert retaken.status_code in (302, 303), retaken.text
    fresh = await db.scalar(select(LicenceContract).order_by(LicenceContract.id.desc()).limit(1))
    assert fresh.id != contract.id and fresh.offer_id == contract.offer_id
    assert fresh.status is ContractStatus.AWAITING_PAYMENT and fresh.number > contract.number


async def test_termination_actions_on_an_ended_contract_or_without_a_request_conflict(client, db, sessionmaker):
    world = await _termination_world(db, sessionmaker, "licensee")
    contract = world.contracts["confirm"]
    await _agree_to_end(sessionmaker, world.licensor, contract)
    token = bearer(await api_token(db, world.licensee))
    for action in ("termination", "termination/confirm", "termination/cancel"):
        response = await client.post(f"/api/v1/contracts/{contract.id}/{action}", json={"reason": "x"}, headers=token)
        assert response.status_code == 409, action
        assert response.json()["code"] == "contract_ended"
    # A request on a contract with none pending is a conflict, not a crash.
    pending_free = world.contracts["request"]
    for action in ("termination/confirm", "termination/cancel"):
        response = await client.post(f"/api/v1/contracts/{pending_free.id}/{action}", headers=token)
        assert (response.status_code, response.json()["code"]) == (409, "no_termination_request")
