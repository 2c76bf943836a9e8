"""Keeping every contract's standing with both registries current.

``refresh`` (the worker, hourly; also the first step of every export and import) opens a
:class:`ContractFiling` per contract and registry, moves them as contracts take effect, end or
change, and mails licensors whose licence filing deadline approaches or passed. Every state change
goes through :func:`move` (checked against ``rules.FILING_TRANSITIONS`` and audited).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import BigInteger, and_, exists, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Organisation, VerificationStatus
from marketplace.accounts.rules import Principal
from marketplace.audit.models import AuditRecord
from marketplace.audit.services import system_record_row
from marketplace.clock import business_date, now_utc, today
from marketplace.db import DateTimeUTC, bulk_insert, ids_in
from marketplace.filings import rules
from marketplace.filings.models import ContractFiling, FilingStatus, RecordKind, Registry
from marketplace.licensing.models import ContractStatus, EndReason, LicenceContract
from marketplace.licensing.services import party_emails_for
from marketplace.offers import rules as offer_rules
from marketplace.outbox.services import Email, periodic_batches, queue_emails
from marketplace.patents.models import PatentType
from marketplace.settings import Settings

ENTITY = "contract_filing"
#: Advisory lock key serialising refreshes on PostgreSQL ("filings" as an integer).
REFRESH_LOCK = int.from_bytes(b"filings", "big")
CHUNK = 2000
#: Filings opened or moved by one sync beyond which their table's statistics are refreshed at once.
ANALYZE_AFTER = 10_000
_Licensor = aliased(Organisation, name="licensor_org")
_Licensee = aliased(Organisation, name="licensee_org")


# ---------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------


def _party_columns(org: Any) -> list[Any]:
    return [
        org.id,
        org.name,
        org.kind,
        org.address,
        org.uscc,
        org.division_code,
        org.nature_code,
        org.verification_status,
    ]


def _party(values: Sequence[Any]) -> rules.Party:
    org_id, name, kind, address, uscc, division, nature, verification = values
    return rules.Party(
        organisation_id=org_id,
        name=name,
        kind=kind,
        address=address,
        uscc=uscc,
        division_code=division,
        nature_code=nature,
        verified=verification is VerificationStatus.VERIFIED,
    )


_CONTRACT_COLUMNS = (
    LicenceContract.id,
    LicenceContract.number,
    LicenceContract.signed_on,
    LicenceContract.start_date,
    LicenceContract.end_date,
    LicenceContract.ended_on,
    LicenceContract.end_reason,
    LicenceContract.payment_mode,
    LicenceContract.first_revenue_on,
    LicenceContract.terms_snapshot,
)


def facts_statement(contract_ids: Iterable[int] | None = None) -> Any:
    """The one query :func:`facts_from_row` reads (contract, both parties, the stored contract value);
    callers add filters, ordering and streaming."""
    value = (
        select(ContractFiling.contract_value_fen)
        .where(ContractFiling.contract_id == LicenceContract.id, ContractFiling.registry == Registry.LICENCE_FILING)
        .scalar_subquery()
    )
    statement = (
        select(*_CONTRACT_COLUMNS, value, *_party_columns(_Licensor), *_party_columns(_Licensee))
        .join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
        .join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
    )
    if contract_ids is not None:
        statement = statement.where(LicenceContract.id.in_(list(contract_ids)))
    return statement


def _value(terms: offer_rules.FeeTerms, row: Sequence[Any]) -> int:
    snapshot = row[9]
    return rules.contract_value_fen(
        terms,
        start=row[3],
        end=row[4],
        term_months=snapshot["terms"]["licence_term_months"],
        first_revenue_on=row[8],
    )


@lru_cache(maxsize=4096)
def _terms_of(encoded: bytes) -> offer_rules.FeeTerms:
    return offer_rules.terms_from_json(msgspec.json.decode(encoded))


def fee_terms_of(snapshot: dict[str, Any]) -> offer_rules.FeeTerms:
    """The contract's fee terms. Contracts of one offer share them, so each distinct set is parsed
    once (the terms are immutable)."""
    return _terms_of(msgspec.json.encode(snapshot["terms"]["fee_terms"]))


def facts_from_row(row: Sequence[Any]) -> rules.ContractFacts:
    snapshot = row[9]
    terms_json = snapshot["terms"]
    patent = snapshot["patent"]
    terms = fee_terms_of(snapshot)
    stored_value = row[10]
    # A licence that waits on its first revenue has its plan (and value) fixed only once it is known.
    value = stored_value if stored_value is not None and not offer_rules.is_pay_after_use(terms) else _value(terms, row)
    n = len(_CONTRACT_COLUMNS) + 1
    return rules.ContractFacts(
        contract_id=row[0],
        number=row[1],
        signed_on=row[2],
        start_date=row[3],
        end_date=row[4],
        ended_on=row[5],
        end_reason=row[6],
        payment_mode=row[7],
        payment_mode_label=terms_json["payment_mode_label"],
        fee_description=terms_json["description"],
        territory=terms_json.get("territory") or "",
        announcement_number=snapshot["offer"].get("announcement_number"),
        patent_title=patent["title"],
        application_number=patent["application_number"],
        patent_type=PatentType(patent["patent_type"]),
        patent_filing_date=date.fromisoformat(patent["filing_date"]),
        patent_grant_date=date.fromisoformat(patent["grant_date"]) if patent.get("grant_date") else None,
        ipc_main=patent.get("ipc_main"),
        licensor=_party(row[n : n + 8]),
        licensee=_party(row[n + 8 : n + 16]),
        contract_value_fen=value,
        registry_payment_mode=rules.registry_payment_mode(row[7], terms),
    )


async def load_facts(session: AsyncSession, contract_ids: Iterable[int]) -> dict[int, rules.ContractFacts]:
    ids = list(contract_ids)
    found: dict[int, rules.ContractFacts] = {}
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(facts_statement(ids[start : start + CHUNK]))
        for row in rows:
            facts = facts_from_row(row)
            found[facts.contract_id] = facts
    return found


# ---------------------------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One filing's transition; ``values`` are further columns to set with it."""

    filing_id: int
    from_status: FilingStatus
    to_status: FilingStatus
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


async def move(session: AsyncSession, moves: Sequence[Move], *, actor: Principal | None, action: str) -> None:
    """Apply many filing transitions at once, each checked against the transition table and audited
    (who, when, from, to, why). Callers hold the rows (locked, or in the transaction that read them)."""
    if not moves:
        return
    for change in moves:
        if change.to_status not in rules.FILING_TRANSITIONS[change.from_status]:
            raise ValueError(f"filing {change.filing_id}: {change.from_status} → {change.to_status} is not allowed")
    at = now_utc()
    # Rows moving with the same values (e.g. a whole export chunk) share one UPDATE … WHERE id IN (…).
    groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for change in moves:
        values = {"status": change.to_status, **change.values, "updated_at": at}
        key = json.dumps(values, sort_keys=True, default=str)
        groups.setdefault(key, (values, []))[1].append(change.filing_id)
    dialect = (await session.connection()).dialect.name
    for values, ids in groups.values():
        for start in range(0, len(ids), CHUNK):
            await session.execute(
                update(ContractFiling)
                .where(ids_in(dialect, ContractFiling.id, ids[start : start + CHUNK]))
                .values(values)
                .execution_options(synchronize_session=False)
            )
    audit = [
        system_record_row(
            ENTITY,
            change.filing_id,
            action,
            at,
            from_state=change.from_status.value,
            to_state=change.to_status.value,
            reason=change.reason,
            details=change.details,
            actor=actor,
        )
        for change in moves
    ]
    for start in range(0, len(audit), CHUNK):
        await bulk_insert(session, AuditRecord.__table__, audit[start : start + CHUNK])
    _expire_loaded(session, [change.filing_id for change in moves])


def _expire_loaded(session: AsyncSession, filing_ids: Iterable[int]) -> None:
    """Rows loaded earlier in this session must not keep their old state."""
    moved = set(filing_ids)
    for key in list(session.identity_map.keys()):
        if key[0] is ContractFiling and key[1][0] in moved and (loaded := session.identity_map.get(key)) is not None:
            session.expire(loaded)


def _json_object(dialect: str, pairs: dict[str, Any]) -> Any:
    arguments = [part for key, value in pairs.items() for part in (literal(key), value)]
    return func.jsonb_build_object(*arguments) if dialect == "postgresql" else func.json_object(*arguments)


async def move_in_database(
    session: AsyncSession,
    filing_ids: Sequence[int],
    *,
    from_statuses: Iterable[FilingStatus],
    to_status: FilingStatus,
    values: dict[str, Any],
    actor: Principal | None,
    action: str,
    reason: str,
    details: dict[str, str | int],
) -> None:
    """:func:`move` for many filings that take one transition with the same values (an export's
    chunk), with the audit rows written by the database from the rows themselves (each filing's
    state before and record kind), not built one by one here. Every filing must be in one of
    ``from_statuses`` (the caller holds them locked); if one is not, nothing is written."""
    sources = frozenset(from_statuses)
    for status in sources:
        if to_status not in rules.FILING_TRANSITIONS[status]:
            raise ValueError(f"filings: {status} → {to_status} is not allowed")
    if not filing_ids:
        return
    connection = await session.connection()
    dialect = connection.dialect.name
    at = now_utc()
    chosen = and_(ids_in(dialect, ContractFiling.id, filing_ids), ContractFiling.status.in_(sources))
    audit = select(
        literal(ENTITY),
        ContractFiling.id,
        literal(action),
        ContractFiling.status,
        literal(to_status.value),
        literal(reason),
        literal(actor.user_id if actor else None, BigInteger),
        literal(actor.organisation_id if actor else None, BigInteger),
        literal(actor.via if actor else "system"),
        literal(at, DateTimeUTC(timezone=True)),
        _json_object(
            dialect,
            {key: literal(value) for key, value in details.items()} | {"record_kind": ContractFiling.record_kind},
        ),
        literal(at, DateTimeUTC(timezone=True)),
        literal(at, DateTimeUTC(timezone=True)),
    ).where(chosen)
    columns = [
        "entity_type",
        "entity_id",
        "action",
        "from_state",
        "to_state",
        "reason",
        "actor_user_id",
        "actor_organisation_id",
        "via",
        "occurred_at",
        "details",
        "created_at",
        "updated_at",
    ]
    written = await connection.execute(insert(AuditRecord.__table__).from_select(columns, audit))
    moved = await connection.execute(
        update(ContractFiling.__table__)
        .where(
            ids_in(dialect, ContractFiling.__table__.c.id, filing_ids), ContractFiling.__table__.c.status.in_(sources)
        )
        .values({"status": to_status, **values, "updated_at": at})
    )
    if written.rowcount != len(filing_ids) or moved.rowcount != len(filing_ids):
        raise RuntimeError(
            f"filings: {len(filing_ids)} to move to {to_status}, but {moved.rowcount} were in {sorted(sources)}"
        )
    _expire_loaded(session, filing_ids)


# ---------------------------------------------------------------------------------------------
# Refresh
# ---------------------------------------------------------------------------------------------


@dataclass
class RefreshResult:
    opened: int = 0
    became_due: int = 0
    not_required: int = 0
    cancellations: int = 0
    changes: int = 0
    reminders: int = 0
    #: Reconciliation findings opened or reopened (``reconciliation.detect``).
    discrepancies: int = 0


def _effective_on(status: ContractStatus, activated_at: Any, start: date) -> date | None:
    if activated_at is not None:
        return business_date(activated_at)
    return start if status is ContractStatus.ACTIVE else None


async def _open_missing(session: AsyncSession) -> int:
    """A filing per registry for every contract that has none yet, in its current state."""
    opened = 0
    while True:
        missing = (
            await session.execute(
                select(
                    LicenceContract.id,
                    LicenceContract.status,
                    LicenceContract.activated_at,
                    LicenceContract.start_date,
                    LicenceContract.end_date,
                    LicenceContract.first_revenue_on,
                    LicenceContract.terms_snapshot,
                )
                .where(~exists().where(ContractFiling.contract_id == LicenceContract.id))
                .order_by(LicenceContract.id)
                .limit(CHUNK)
            )
        ).all()
        if not missing:
            return opened
        at = now_utc()
        rows = []
        for contract_id, status, activated_at, start, end, first_revenue_on, snapshot in missing:
            terms = fee_terms_of(snapshot)
            value = rules.contract_value_fen(
                terms,
                start=start,
                end=end,
                term_months=snapshot["terms"]["licence_term_months"],
                first_revenue_on=first_revenue_on,
            )
            effective_on = _effective_on(status, activated_at, start)
            if status is ContractStatus.ENDED:
                filing_status = FilingStatus.NOT_REQUIRED
            elif effective_on is not None:
                filing_status = FilingStatus.DUE
            else:
                filing_status = FilingStatus.NOT_DUE
            for registry in Registry:
                due_on = (
                    rules.filing_due_on(effective_on)
                    if effective_on and registry is Registry.LICENCE_FILING and filing_status is FilingStatus.DUE
                    else None
                )
                rows.append(
                    {
                        "contract_id": contract_id,
                        "registry": registry.value,
                        "status": filing_status.value,
                        "record_kind": RecordKind.NEW.value,
                        "effective_on": effective_on,
                        "due_on": due_on,
                        "recorded": {},
                        "contract_value_fen": value,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
        await bulk_insert(session, ContractFiling.__table__, rows)
        opened += len(missing)


async def _newly_effective(session: AsyncSession) -> list[Move]:
    rows = await session.execute(
        select(
            ContractFiling.id,
            ContractFiling.registry,
            LicenceContract.status,
            LicenceContract.activated_at,
            LicenceContract.start_date,
        )
        .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
        .where(
            ContractFiling.status == FilingStatus.NOT_DUE,
            LicenceContract.status == ContractStatus.ACTIVE,
        )
    )
    moves = []
    for filing_id, registry, status, activated_at, start in rows:
        effective_on = _effective_on(status, activated_at, start)
        values: dict[str, Any] = {"effective_on": effective_on}
        if registry is Registry.LICENCE_FILING and effective_on is not None:
            values["due_on"] = rules.filing_due_on(effective_on)
        moves.append(Move(filing_id, FilingStatus.NOT_DUE, FilingStatus.DUE, "合同已生效", values))
    return moves


async def _ended(session: AsyncSession) -> tuple[list[Move], list[Move], list[tuple[int, str]]]:
    """Filings of ended contracts: nothing filed yet → not required; filed and ended by agreement →
    a cancellation record is due; a pending record of a contract ended by agreement becomes one."""
    rows = await session.execute(
        select(
            ContractFiling.id,
            ContractFiling.status,
            ContractFiling.number,
            ContractFiling.record_kind,
            LicenceContract.end_reason,
        )
        .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
        .where(
            LicenceContract.status == ContractStatus.ENDED,
            or_(
                and_(
                    ContractFiling.number.is_(None),
                    ContractFiling.status.in_([FilingStatus.NOT_DUE, FilingStatus.DUE, FilingStatus.REFUSED]),
                ),
                and_(
                    ContractFiling.number.is_not(None),
                    ContractFiling.record_kind != RecordKind.CANCELLATION,
                    ContractFiling.status.in_([FilingStatus.FILED, FilingStatus.DUE, FilingStatus.REFUSED]),
                ),
            ),
        )
    )
    not_required: list[Move] = []
    cancellations: list[Move] = []
    rekinded: list[tuple[int, str]] = []
    for filing_id, status, number, _kind, end_reason in rows:
        if number is None:
            not_required.append(Move(filing_id, status, FilingStatus.NOT_REQUIRED, "合同在报送前已终止"))
            continue
        if rules.record_after_end(end_reason) is not RecordKind.CANCELLATION:
            continue
        if status is FilingStatus.FILED:
            cancellations.append(
                Move(
                    filing_id,
                    status,
                    FilingStatus.DUE,
                    f"合同提前终止（{EndReason.AGREEMENT.label}），需办理注销",
                    {"record_kind": RecordKind.CANCELLATION.value},
                )
            )
        else:
            rekinded.append((filing_id, status.value))
    return not_required, cancellations, rekinded


async def _rekind(session: AsyncSession, rows: list[tuple[int, str]]) -> None:
    """A pending change record of a contract that was then ended by agreement becomes a cancellation."""
    if not rows:
        return
    at = now_utc()
    await session.execute(
        update(ContractFiling)
        .where(ContractFiling.id.in_([filing_id for filing_id, _ in rows]))
        .values(record_kind=RecordKind.CANCELLATION, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    audit = [
        system_record_row(
            ENTITY,
            filing_id,
            "record_kind_changed",
            at,
            from_state=status,
            to_state=status,
            reason="合同提前终止，待报送的记录改为注销",
            details={"record_kind": RecordKind.CANCELLATION.value},
        )
        for filing_id, status in rows
    ]
    await bulk_insert(session, AuditRecord.__table__, audit)


async def _changed(session: AsyncSession) -> list[Move]:
    """Filed records whose contract or parties changed since: a change record (变更) is due."""
    moves: list[Move] = []
    after = 0
    while True:
        filings = (
            await session.execute(
                select(ContractFiling.id, ContractFiling.contract_id, ContractFiling.registry, ContractFiling.recorded)
                .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
                .where(
                    ContractFiling.status == FilingStatus.FILED,
                    ContractFiling.id > after,
                    LicenceContract.status != ContractStatus.ENDED,
                )
                .order_by(ContractFiling.id)
                .limit(CHUNK)
            )
        ).all()
        if not filings:
            return moves
        after = filings[-1][0]
        facts = await load_facts(session, {row[1] for row in filings})
        for filing_id, contract_id, registry, recorded in filings:
            changed = rules.changed_fields(recorded, rules.recorded_values(registry, facts[contract_id]))
            if changed:
                moves.append(
                    Move(
                        filing_id,
                        FilingStatus.FILED,
                        FilingStatus.DUE,
                        "合同或当事人信息已变更，需办理变更：" + "、".join(changed),
                        {"record_kind": RecordKind.CHANGE.value},
                        {"changed": changed},
                    )
                )


async def _remind(session: AsyncSession, settings: Settings, on: date) -> int:
    """Mail the licensor once when its licence filing deadline approaches and once when it passed
    (``deadline_notice`` remembers the last notice, so each refresh only reads the filings owed one)."""
    window_end = on + timedelta(days=settings.filing_warning_days)
    rows = (
        await session.execute(
            select(
                ContractFiling.id,
                ContractFiling.contract_id,
                ContractFiling.due_on,
                LicenceContract.number,
                LicenceContract.licensor_organisation_id,
            )
            .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
            .where(
                ContractFiling.registry == Registry.LICENCE_FILING,
                ContractFiling.status.in_(rules.UNFILED),
                ContractFiling.number.is_(None),
                or_(
                    and_(ContractFiling.due_on < on, ContractFiling.deadline_notice.is_distinct_from("overdue")),
                    and_(ContractFiling.due_on <= window_end, ContractFiling.deadline_notice.is_(None)),
                ),
            )
        )
    ).all()
    if not rows:
        return 0
    organisations = list(
        await session.scalars(select(Organisation).where(Organisation.id.in_({row[4] for row in rows})))
    )
    addresses = await party_emails_for(session, organisations)
    emails: list[Email] = []
    notified: dict[str, list[int]] = {}
    for filing_id, contract_id, due_on, number, licensor_id in rows:
        flag = rules.deadline_flag(due_on, on, settings.filing_warning_days)
        if flag is None:
            continue
        if flag == "overdue":
            subject = f"许可合同 {number} 已超过备案期限"
            body = (
                f"许可合同 {number} 应于 {due_on.isoformat()} 前办理专利实施许可合同备案，现已逾期。"
                "平台管理员将尽快报送；如需补充材料，请与平台联系。"
            )
        else:
            subject = f"许可合同 {number} 的备案期限临近"
            body = f"许可合同 {number} 应于 {due_on.isoformat()} 前办理专利实施许可合同备案（合同生效后三个月内）。"
        key = f"filing-deadline:{contract_id}:{flag}"
        emails += [Email(to, subject, body, f"{key}:{to}") for to in addresses[licensor_id]]
        notified.setdefault(flag, []).append(filing_id)
    await queue_emails(session, emails)
    for flag, ids in notified.items():
        for start in range(0, len(ids), CHUNK):
            await session.execute(
                update(ContractFiling)
                .where(ContractFiling.id.in_(ids[start : start + CHUNK]))
                .values(deadline_notice=flag)
                .execution_options(synchronize_session=False)
            )
    return sum(len(ids) for ids in notified.values())


async def sync(session: AsyncSession) -> RefreshResult:
    """Open and move filings as their contracts took effect, ended or changed (what an export needs
    before it selects; idempotent). Serialised on PostgreSQL by a transaction advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        # One at a time (the worker's hourly run, an export, an import): each reads, then moves.
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})
    result = RefreshResult(opened=await _open_missing(session))
    due = await _newly_effective(session)
    await move(session, due, actor=None, action="became_due")
    not_required, cancellations, rekinded = await _ended(session)
    await move(session, not_required, actor=None, action="not_required")
    await move(session, cancellations, actor=None, action="cancellation_due")
    await _rekind(session, rekinded)
    changes = await _changed(session)
    await move(session, changes, actor=None, action="change_due")
    result.became_due, result.not_required = len(due), len(not_required)
    result.cancellations, result.changes = len(cancellations) + len(rekinded), len(changes)
    changed = result.opened + len(due) + len(not_required) + result.cancellations + result.changes
    if changed >= ANALYZE_AFTER and session.get_bind().dialect.name == "postgresql":
        # The planner must know at once that many filings are due: with the statistics of before (say,
        # an empty table after a bulk load) an export's chunk query sorts every due filing per chunk —
        # measured 124 s instead of 25 s for 150,000 contracts — until autovacuum analyses the table.
        await session.execute(text("ANALYZE contract_filings"))
    return result


async def refresh(session: AsyncSession, settings: Settings, *, on: date | None = None) -> RefreshResult:
    """:func:`sync`, then deadline notices to licensors and reconciliation (the hourly run; imports)."""
    from marketplace.filings import reconciliation  # it reads contracts through load_facts here

    on = on or today()
    result = await sync(session)
    result.reminders = await _remind(session, settings, on)
    result.discrepancies = (await reconciliation.detect(session, on)).raised
    return result


@periodic_batches("filings.refresh", 3600)
async def refresh_job(sessionmaker: async_sessionmaker, settings: Settings) -> RefreshResult:
    async with sessionmaker() as session, session.begin():
        return await refresh(session, settings)
