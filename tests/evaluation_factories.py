"""Arranging evaluation data: invited experts (评审专家) and every kind of person around one catalogue patent."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from marketplace.accounts.models import OrganisationKind, Role
from marketplace.accounts.services import create_user, ensure_platform_organisation
from marketplace.offers.models import OpenLicenceOffer
from tests.catalogue_factories import publish_offer
from tests.factories import PASSWORD, Account, add_member, make_account

_serial = itertools.count(1)

#: Everyone the role matrices try, in a stable order.
ROLES = (
    "anonymous",
    "enterprise_admin",
    "enterprise_member",
    "expert",
    "licensor",
    "licensor_member",
    "other_licensor",
    "platform_admin",
)
EVALUATORS = ("enterprise_admin", "enterprise_member", "expert")


async def make_expert(db) -> Account:
    """An expert as an accepted invitation leaves them: a user of the platform organisation."""
    n = next(_serial)
    platform = await ensure_platform_organisation(db)
    email = f"expert{n}@pingshen.example.cn"
    user = await create_user(
        db, organisation=platform, email=email, display_name=f"专家{n}", password=PASSWORD, role=Role.EXPERT
    )
    await db.commit()
    return Account(organisation=platform, user=user, email=email)


@dataclass
class World:
    accounts: dict[str, Account]
    offer: OpenLicenceOffer
    #: A patent of another licensor, also in the catalogue.
    other_offer: OpenLicenceOffer

    def account(self, role: str) -> Account | None:
        return self.accounts.get(role)

    @property
    def patent_id(self) -> int:
        return self.offer.patent_id


async def make_world(db) -> World:
    licensor = await make_account(db, kind=OrganisationKind.UNIVERSITY)
    other_licensor = await make_account(db, kind=OrganisationKind.INSTITUTE)
    enterprise = await make_account(db, kind=OrganisationKind.ENTERPRISE)
    accounts = {
        "enterprise_admin": enterprise,
        "enterprise_member": await add_member(db, enterprise),
        "expert": await make_expert(db),
        "licensor": licensor,
        "licensor_member": await add_member(db, licensor),
        "other_licensor": other_licensor,
        "platform_admin": await make_account(db, kind=OrganisationKind.PLATFORM),
    }
    offer = await publish_offer(db, licensor.organisation, "一种石墨烯改性锂电池负极材料")
    other_offer = await publish_offer(db, other_licensor.organisation, "高温合金叶片激光修复方法")
    return World(accounts=accounts, offer=offer, other_offer=other_offer)


def evaluation_form(**overrides: str) -> dict[str, str]:
    form = {
        "prospects": "4",
        "cooperation": "willing",
        "improvement_needs": "需要中试放大，提高循环寿命",
        "interested_now": "1",
    }
    return form | overrides
