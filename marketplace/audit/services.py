"""Writing the audit trail and applying state transitions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Organisation, User
from marketplace.accounts.rules import Principal
from marketplace.audit.models import AuditRecord
from marketplace.clock import now_utc
from marketplace.errors import InvalidTransition

S = TypeVar("S", bound=enum.Enum)


async def record(
    session: AsyncSession,
    *,
    entity_type: str,
    entity_id: int,
    action: str,
    actor: Principal | None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    entry = AuditRecord(
        entity_type=entity_type,
        entity_id=entity_id,
        action=action,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        actor_user_id=actor.user_id if actor else None,
        actor_organisation_id=actor.organisation_id if actor else None,
        via=actor.via if actor else "system",
        occurred_at=now_utc(),
        details=details or {},
    )
    session.add(entry)
    return entry


def system_record_row(
    entity_type: str,
    entity_id: int,
    action: str,
    at: datetime,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    actor: Principal | None = None,
) -> dict[str, Any]:
    """An audit record as a row for a bulk insert of many at once; written by the system unless an
    ``actor`` (whose request caused the change) is given."""
    return {
        "entity_type": entity_type,
        "entity_id": entity_id,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "actor_user_id": actor.user_id if actor else None,
        "actor_organisation_id": actor.organisation_id if actor else None,
        "via": actor.via if actor else "system",
        "occurred_at": at,
        "details": details or {},
        "created_at": at,
        "updated_at": at,
    }


async def apply_transition(
    session: AsyncSession,
    *,
    entity: Any,
    entity_type: str,
    to_state: S,
    allowed: Mapping[S, frozenset[S]],
    actor: Principal | None,
    action: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Move ``entity.status`` to ``to_state`` if the transition table allows it, and audit it."""
    from_state: S = entity.status
    if to_state not in allowed.get(from_state, frozenset()):
        raise InvalidTransition(f"当前状态“{_label(from_state)}”不能变更为“{_label(to_state)}”")
    entity.status = to_state
    await session.flush()
    await record(
        session,
        entity_type=entity_type,
        entity_id=entity.id,
        action=action,
        actor=actor,
        from_state=from_state.value,
        to_state=to_state.value,
        reason=reason,
        details=details,
    )


@dataclass(frozen=True)
class AuditLine:
    """One audit record as a page shows it: states as enum members (for their labels)."""

    occurred_at: datetime
    action: str
    from_state: Any
    to_state: Any
    reason: str | None
    actor_name: str
    actor_organisation: str | None
    via: str


async def trail(session: AsyncSession, entity_type: str, entity_id: int, states: type[enum.Enum]) -> list[AuditLine]:
    """An entity's audit records, oldest first, with who acted."""
    rows = await session.execute(
        select(AuditRecord, User.display_name, Organisation.name)
        .outerjoin(User, User.id == AuditRecord.actor_user_id)
        .outerjoin(Organisation, Organisation.id == AuditRecord.actor_organisation_id)
        .where(AuditRecord.entity_type == entity_type, AuditRecord.entity_id == entity_id)
        .order_by(AuditRecord.occurred_at, AuditRecord.id)
    )
    members = states._value2member_map_
    return [
        AuditLine(
            occurred_at=entry.occurred_at,
            action=entry.action,
            from_state=members.get(entry.from_state or ""),
            to_state=members.get(entry.to_state or ""),
            reason=entry.reason,
            actor_name=name or "系统",
            actor_organisation=organisation,
            via=entry.via,
        )
        for entry, name, organisation in rows
    ]


def _label(state: enum.Enum) -> str:
    return getattr(state, "label", state.value)
