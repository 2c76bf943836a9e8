"""Arranging the digest and pushes: enterprises with interest profiles, offers published recently."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from marketplace.accounts.models import OrganisationKind
from marketplace.matching import services
from marketplace.matching.models import InboxMessage, InterestProfile, MatchEvent
from tests.factories import Account, make_account


async def enterprise_with_profile(db, *, division_code: str = "110108", **values: Any) -> Account:
    """An enterprise whose profile holds ``values`` (industries, keywords, ipc_codes, province_codes,
    digest_enabled, push_enabled, digest_through …)."""
    account = await make_account(db, kind=OrganisationKind.ENTERPRISE, division_code=division_code)
    await set_profile(db, account.organisation.id, **values)
    return account


async def set_profile(db, organisation_id: int, **values: Any) -> InterestProfile:
    profile = await services.profile_for(db, organisation_id)
    for name, value in values.items():
        setattr(profile, name, value)
    await db.commit()
    return profile


async def profile_of(db, organisation_id: int) -> InterestProfile | None:
    db.expunge_all()
    return await db.scalar(select(InterestProfile).where(InterestProfile.organisation_id == organisation_id))


async def inbox_of(db, organisation_id: int) -> list[InboxMessage]:
    db.expunge_all()
    rows = await db.scalars(
        select(InboxMessage).where(InboxMessage.organisation_id == organisation_id).order_by(InboxMessage.id)
    )
    return list(rows)


async def events_of(db, organisation_id: int) -> set[tuple[int, str, str]]:
    rows = await db.execute(
        select(MatchEvent.patent_id, MatchEvent.stage, MatchEvent.channel).where(
            MatchEvent.organisation_id == organisation_id
        )
    )
    return {(patent_id, stage.value, channel.value) for patent_id, stage, channel in rows}


def unsubscribe_link(body: str) -> str:
    """The path and query of the unsubscribe link in a digest email."""
    match = re.search(r"https?://[^/\s]+(/digest/unsubscribe\?token=[0-9]+\.[A-Za-z0-9_-]+)", body)
    assert match, f"no unsubscribe link in: {body}"
    return match.group(1)


def ago(at: datetime, **delta: float) -> datetime:
    return at - timedelta(**delta)
