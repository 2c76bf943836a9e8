"""Reconciliation (对账): what the registries hold compared with the contracts, payments and parties as
they stand now; the licence filing deadlines; and the platform admin's view of the filings' standing.

:func:`detect` (the last step of ``services.refresh``) finds per contract and registry the
:class:`~marketplace.filings.models.Discrepancy` findings and keeps their table in step: a new finding
opens; one whose condition went away is cleared; a cleared one that comes back, or a resolved one whose
facts changed (``rules.fingerprint``), opens again. It reads contracts in chunks, a handful of
statements per chunk, and writes in bulk. :func:`resolve` closes an open finding with a note.
Every status change is audited (entity ``filing_discrepancy``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Organisation, User, VerificationStatus
from marketplace.accounts.rules import DIVISIONS, Principal, division_name
from marketplace.audit.models import AuditRecord
from marketplace.audit.services import record, system_record_row
from marketplace.billing.models import Payment, PaymentStatus
from marketplace.clock import now_utc, today
from marketplace.db import bulk_insert
from marketplace.errors import FieldError, InvalidTransition, NotFound, ValidationFailed
from marketplace.filings import codes, rules
from marketplace.filings.models import (
    ContractFiling,
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    FilingBatch,
    FilingStatus,
    Registry,
    Severity,
)
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.settings import Settings

ENTITY = "filing_discrepancy"
CHUNK = 2000
MAX_NOTE_LENGTH = 2000
DISCREPANCY_TRANSITIONS: dict[DiscrepancyStatus, frozenset[DiscrepancyStatus]] = {
    DiscrepancyStatus.OPEN: frozenset({DiscrepancyStatus.RESOLVED, DiscrepancyStatus.CLEARED}),
    DiscrepancyStatus.RESOLVED: frozenset({DiscrepancyStatus.OPEN, DiscrepancyStatus.CLEARED}),
    DiscrepancyStatus.CLEARED: frozenset({DiscrepancyStatus.OPEN}),
}
#: The registration's parties, as its form names them.
_ROLES = (("seller", "卖方"), ("buyer", "买方"))
_PARTY_CODE_FIELDS = (("country_code", "国别代码"), ("division_code", "行政区划代码"), ("nature_code", "单位性质代码"))
#: A filing in one of these states is over: nothing it holds needs reconciling any more.
_CLOSED = frozenset({FilingStatus.CANCELLED, FilingStatus.NOT_REQUIRED})
_Licensor = aliased(Organisation, name="licensor_org")
_Licensee = aliased(Organisation, name="licensee_org")


# ---------------------------------------------------------------------------------------------
# Findings of one contract (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilingState:
    """What the sync state of one contract with one registry says."""

    registry: Registry
    status: FilingStatus
    number: str | None = None
    due_on: date | None = None
    recorded: dict[str, Any] = field(default_factory=dict)
    refused_on: date | None = None
    refusal_reasons: str | None = None


@dataclass(frozen=True)
class Finding:
    """A discrepancy as found now; ``facts`` are what it is about (a change to them reopens a resolved one)."""

    registry: Registry
    kind: DiscrepancyKind
    severity: Severity
    detail: str
    facts: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return rules.fingerprint({"kind": self.kind.value, **self.facts})


def _yuan(fen: int) -> str:
    return f"{rules.yuan_plain(fen)} 元"


def missing_filing(filing: FilingState, on: date) -> Finding | None:
    """The licence filing's deadline (three months after the contract took effect) passed without a number."""
    if (
        filing.registry is not Registry.LICENCE_FILING
        or filing.number is not None
        or filing.status not in rules.UNFILED
        or filing.due_on is None
        or on <= filing.due_on
    ):
        return None
    detail = f"备案期限 {filing.due_on.isoformat()} 已过，尚未取得备案号（当前状态：{filing.status.label}）"
    facts = {"due_on": filing.due_on.isoformat()}
    return Finding(filing.registry, DiscrepancyKind.MISSING_FILING, Severity.HIGH, detail, facts)


def refused_not_reexported(filing: FilingState) -> Finding | None:
    if filing.status is not FilingStatus.REFUSED:
        return None
    reasons = (filing.refusal_reasons or "").strip() or "登记机关未说明原因"
    refused_on = filing.refused_on.isoformat() if filing.refused_on else "—"
    detail = f"{filing.registry.short_label}于 {refused_on} 被退回，尚未重新报送。退回原因：{reasons}"
    facts = {"refused_on": filing.refused_on.isoformat() if filing.refused_on else None, "reasons": reasons}
    return Finding(filing.registry, DiscrepancyKind.REFUSED_NOT_REEXPORTED, Severity.HIGH, detail, facts)


def _differs(recorded: dict[str, Any], current: dict[str, Any], key: str) -> bool:
    """A value the registry holds that is not the contract's (a value never recorded is not compared)."""
    return key in recorded and recorded[key] != current[key]


def terms_differ(filing: FilingState, facts: rules.ContractFacts) -> Finding | None:
    """A filed licence whose recorded fee or term is not the contract's now."""
    if filing.registry is not Registry.LICENCE_FILING or filing.number is None or filing.status in _CLOSED:
        return None
    recorded, current = filing.recorded, rules.recorded_values(Registry.LICENCE_FILING, facts)
    parts: list[str] = []
    found: dict[str, Any] = {}
    if _differs(recorded, current, "fee_fen"):
        parts.append(f"备案使用费 {_yuan(recorded['fee_fen'])}，合同 {_yuan(current['fee_fen'])}")
        found["fee_fen"] = [recorded["fee_fen"], current["fee_fen"]]
    if _differs(recorded, current, "start") or _differs(recorded, current, "end"):
        was = f"{recorded.get('start', current['start'])} 至 {recorded.get('end', current['end'])}"
        parts.append(f"备案许可期限 {was}，合同 {current['start']} 至 {current['end']}")
        found["term"] = [was, current["start"], current["end"]]
    if not parts:
        return None
    detail = f"备案号 {filing.number}：" + "；".join(parts)
    return Finding(filing.registry, DiscrepancyKind.TERMS_DIFFER, Severity.HIGH, detail, found)


def value_differs(filing: FilingState, facts: rules.ContractFacts, received_fen: int) -> Finding | None:
    """A registration whose recorded contract value or technology transaction value is not the contract's,
    or whose transaction value is below what the licensee has paid so far (royalties above the minimum)."""
    if filing.registry is not Registry.TECH_CONTRACT or filing.number is None or filing.status in _CLOSED:
        return None
    recorded, current = filing.recorded, rules.recorded_values(Registry.TECH_CONTRACT, facts)
    parts: list[str] = []
    found: dict[str, Any] = {}
    for key, label in (("contract_value_fen", "合同成交额"), ("transaction_value_fen", "技术交易额")):
        if _differs(recorded, current, key):
            parts.append(f"登记{label} {_yuan(recorded[key])}，合同 {_yuan(current[key])}")
            found[key] = [recorded[key], current[key]]
    transaction = recorded.get("transaction_value_fen")
    if transaction is not None and received_fen > transaction:
        parts.append(f"已到账 {_yuan(received_fen)}，超过登记技术交易额 {_yuan(transaction)}")
        found["received_fen"] = [transaction, received_fen]
    if not parts:
        return None
    detail = f"登记编号 {filing.number}：" + "；".join(parts)
    return Finding(filing.registry, DiscrepancyKind.VALUE_DIFFERS, Severity.MEDIUM, detail, found)


@dataclass(frozen=True)
class PartyProblem:
    role: str
    code: str
    severity: Severity
    message: str
    values: tuple[str | None, ...] = ()


def _province(code: str) -> str:
    return f"{code[:2]}0000"


@functools.lru_cache(maxsize=20_000)
def party_problems(role: str, label: str, party: rules.Party) -> tuple[PartyProblem, ...]:
    """What the registration's code columns would get wrong for one party (parties recur across many
    contracts, hence the cache)."""
    problems: list[PartyProblem] = []
    who = f"{label}“{party.name}”"

    def problem(code: str, message: str, *values: str | None, severity: Severity = Severity.MEDIUM) -> None:
        problems.append(PartyProblem(role, code, severity, f"{who}{message}", values))

    nature = codes.party_nature(party.kind, party.nature_code)
    if nature is None:
        problem("nature_missing", "没有单位性质代码（请在企业核验页设置）")
    elif nature not in codes.PARTY_NATURES:
        problem("nature_unknown", f"的单位性质代码 {nature} 不在代码表中", nature)
    elif not codes.nature_fits_kind(party.kind, nature):
        problem(
            "nature_kind",
            f"的单位性质代码 {nature}（{codes.PARTY_NATURES[nature]}）与机构类型“{party.kind.label}”不符",
            nature,
        )
    division = party.division_code
    if not division:
        problem("division_missing", "没有行政区划代码")
    elif division not in DIVISIONS:
        problem("division_unknown", f"的行政区划代码 {division} 不在 GB/T 2260 代码表中", division)
    elif party.uscc and len(party.uscc) == 18:
        region = party.uscc[2:8]
        if region.isdigit() and _province(region) in DIVISIONS and region[:2] != division[:2]:
            problem(
                "uscc_region",
                f"的统一社会信用代码登记地 {region}（{division_name(_province(region))}）"
                f"与行政区划代码 {division}（{division_name(division)}）不在同一省份",
                region,
                division,
                severity=Severity.LOW,
            )
    return tuple(problems)


def _codes(party: rules.Party) -> dict[str, str | None]:
    """A party's code columns as the registration holds them."""
    return {
        "country_code": party.country_code,
        "division_code": party.division_code,
        "nature_code": codes.party_nature(party.kind, party.nature_code),
    }


def recorded_code_problems(
    recorded: dict[str, Any], licensor: rules.Party, licensee: rules.Party
) -> list[PartyProblem]:
    """Party codes the registry holds that are not ours now."""
    problems = []
    for (role, label), party in zip(_ROLES, (licensor, licensee), strict=True):
        held, ours = recorded.get(role), _codes(party)
        if not isinstance(held, dict):
            continue
        for key, name in _PARTY_CODE_FIELDS:
            if key in held and held[key] != ours[key]:
                message = f"登记的{label}{name}为 {held[key] or '（空）'}，现为 {ours[key] or '（空）'}"
                problems.append(PartyProblem(role, f"recorded_{key}", Severity.MEDIUM, message, (held[key], ours[key])))
    return problems


def party_codes(filing: FilingState, licensor: rules.Party, licensee: rules.Party, *, live: bool) -> Finding | None:
    """The registration of a live or filed contract: party nature and division codes missing, unknown or
    not fitting, a USCC registered in another province (low on its own), or recorded codes not ours."""
    if filing.registry is not Registry.TECH_CONTRACT or filing.status in _CLOSED:
        return None
    if not (live or filing.number is not None or filing.status is FilingStatus.FILED):
        return None
    problems = [*party_problems("seller", "卖方", licensor), *party_problems("buyer", "买方", licensee)]
    if filing.recorded:
        problems += recorded_code_problems(filing.recorded, licensor, licensee)
    if not problems:
        return None
    severity = min((p.severity for p in problems), key=lambda s: s.rank)
    detail = "；".join(p.message for p in problems)
    found = {"problems": [[p.role, p.code, *p.values] for p in problems]}
    return Finding(filing.registry, DiscrepancyKind.PARTY_CODES, severity, detail, found)


def needs_facts(filing: FilingState) -> bool:
    """Whether the contract's facts (its terms, read from the snapshot) are needed: only to compare what
    a registry has on record with the contract."""
    return filing.number is not None and filing.status not in _CLOSED


def findings(
    filings: Iterable[FilingState],
    parties: tuple[rules.Party, rules.Party],
    facts: rules.ContractFacts | None,
    *,
    received_fen: int = 0,
    live: bool,
    on: date,
) -> list[Finding]:
    """Every discrepancy of one contract: ``parties`` (licensor, licensee) as they stand, ``facts`` when a
    filing holds a record (:func:`needs_facts`), ``live`` when the contract has not ended."""
    found: list[Finding | None] = []
    for filing in filings:
        found += [
            missing_filing(filing, on),
            refused_not_reexported(filing),
            party_codes(filing, *parties, live=live),
        ]
        if facts is not None:
            found += [terms_differ(filing, facts), value_differs(filing, facts, received_fen)]
    return [finding for finding in found if finding is not None]


# ---------------------------------------------------------------------------------------------
# Keeping the table in step (pure plan, bulk writes)
# ---------------------------------------------------------------------------------------------

Key = tuple[int, Registry, DiscrepancyKind]


@dataclass(frozen=True)
class Stored:
    """A discrepancy row as reconciliation reads it."""

    id: int
    status: DiscrepancyStatus
    severity: Severity
    detail: str
    fingerprint: str


@dataclass(frozen=True)
class StatusChange:
    discrepancy_id: int
    from_status: DiscrepancyStatus
    to_status: DiscrepancyStatus
    action: str
    reason: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    new: list[tuple[int, Finding]] = field(default_factory=list)
    changes: list[StatusChange] = field(default_factory=list)
    #: Open or resolved rows whose wording or severity moved while their status stays.
    rewordings: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _finding_values(finding: Finding) -> dict[str, Any]:
    return {"severity": finding.severity.value, "detail": finding.detail, "fingerprint": finding.fingerprint}


def plan(found: dict[Key, Finding], stored: dict[Key, Stored], at: datetime) -> Plan:
    """What to write so the table says what ``found`` says, given what it says now (``stored``)."""
    result = Plan()
    for key, finding in found.items():
        row = stored.get(key)
        if row is None:
            result.new.append((key[0], finding))
            continue
        values = _finding_values(finding)
        reopen_values = {
            **values,
            "detected_at": at,
            "resolved_at": None,
            "resolved_by_user_id": None,
            "resolution_note": None,
        }
        if row.status is DiscrepancyStatus.CLEARED:
            result.changes.append(
                StatusChange(row.id, row.status, DiscrepancyStatus.OPEN, "reopened", "差异再次出现", reopen_values)
            )
        elif row.status is DiscrepancyStatus.RESOLVED and row.fingerprint != finding.fingerprint:
            result.changes.append(
                StatusChange(row.id, row.status, DiscrepancyStatus.OPEN, "reopened", "差异内容已变化", reopen_values)
            )
        elif (row.severity, row.detail, row.fingerprint) != (finding.severity, finding.detail, finding.fingerprint):
            result.rewordings.append((row.id, values))
    for key, row in stored.items():
        if key not in found and row.status is not DiscrepancyStatus.CLEARED:
            result.changes.append(StatusChange(row.id, row.status, DiscrepancyStatus.CLEARED, "cleared", "差异已消除"))
    return result


@dataclass
class DetectResult:
    opened: int = 0
    reopened: int = 0
    cleared: int = 0

    @property
    def raised(self) -> int:
        """Findings that need an admin's attention since the last run."""
        return self.opened + self.reopened


def _filing_state(row: Sequence[Any]) -> FilingState:
    _contract_id, registry, status, number, due_on, recorded, refused_on, reasons = row
    return FilingState(registry, status, number, due_on, recorded or {}, refused_on, reasons)


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
    return rules.Party(org_id, name, kind, address, uscc, division, nature, verification is VerificationStatus.VERIFIED)


#: A chunk of contracts: an id range ``(after, last]`` (a full pass), or the chosen ids.
Chunk = tuple[int, int] | list[int]


def _in_chunk(column: Any, chunk: Chunk) -> Any:
    """Contracts of the chunk: by id range in a full pass (cheaper than a long ``IN`` list)."""
    if isinstance(chunk, list):
        return column.in_(chunk)
    return and_(column > chunk[0], column <= chunk[1])


async def _received(session: AsyncSession, bounds: Chunk) -> dict[int, int]:
    """Money received to date per contract (applied to invoices or kept as credit, less refunds)."""
    received = [status for status in PaymentStatus if status.received]
    rows = await session.execute(
        select(Payment.contract_id, func.sum(Payment.applied_fen + Payment.excess_fen - Payment.refunded_fen))
        .where(_in_chunk(Payment.contract_id, bounds), Payment.status.in_(received))
        .group_by(Payment.contract_id)
    )
    return {contract_id: int(total or 0) for contract_id, total in rows}


async def _stored(session: AsyncSession, bounds: Chunk) -> dict[Key, Stored]:
    rows = await session.execute(
        select(
            Discrepancy.contract_id,
            Discrepancy.registry,
            Discrepancy.kind,
            Discrepancy.id,
            Discrepancy.status,
            Discrepancy.severity,
            Discrepancy.detail,
            Discrepancy.fingerprint,
        )
        .where(_in_chunk(Discrepancy.contract_id, bounds))
        .with_for_update()
    )
    return {(row[0], row[1], row[2]): Stored(*row[3:]) for row in rows}


async def _filing_states(session: AsyncSession, bounds: Chunk) -> dict[int, list[FilingState]]:
    states: dict[int, list[FilingState]] = {}
    rows = await session.execute(
        select(
            ContractFiling.contract_id,
            ContractFiling.registry,
            ContractFiling.status,
            ContractFiling.number,
            ContractFiling.due_on,
            ContractFiling.recorded,
            ContractFiling.refused_on,
            ContractFiling.refusal_reasons,
        ).where(_in_chunk(ContractFiling.contract_id, bounds))
    )
    for row in rows:
        states.setdefault(row[0], []).append(_filing_state(row))
    return states


async def _insert(session: AsyncSession, new: list[tuple[int, Finding]], at: datetime) -> list[dict[str, Any]]:
    """Insert new findings (a concurrent run that got there first wins); returns their audit rows."""
    if not new:
        return []
    table = Discrepancy.__table__
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=["contract_id", "registry", "kind"])
        .returning(table.c.id, table.c.detail)
    )
    rows = [
        {
            "contract_id": contract_id,
            "registry": finding.registry.value,
            "kind": finding.kind.value,
            "status": DiscrepancyStatus.OPEN.value,
            "detected_at": at,
            **_finding_values(finding),
            "created_at": at,
            "updated_at": at,
        }
        for contract_id, finding in new
    ]
    inserted = (await session.execute(statement, rows)).all()
    return [
        system_record_row(ENTITY, discrepancy_id, "detected", at, to_state=DiscrepancyStatus.OPEN.value, reason=detail)
        for discrepancy_id, detail in inserted
    ]


async def _update(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Update many rows by id (``_id``), one executemany per set of columns."""
    table = Discrepancy.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(key for key in row if key != "_id")), []).append(row)
    for keys, group in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values({key: bindparam(key) for key in keys})
            .execution_options(synchronize_session=False)
        )
        await session.execute(statement, group)
    for row in rows:
        loaded = session.identity_map.get(session.identity_key(Discrepancy, row["_id"]))  # type: ignore[arg-type]
        if loaded is not None:
            session.expire(loaded)


async def _write(session: AsyncSession, todo: Plan, at: datetime, result: DetectResult) -> None:
    audit = await _insert(session, todo.new, at)
    result.opened += len(audit)
    updates = [
        {"_id": change.discrepancy_id, "status": change.to_status.value, **change.values, "updated_at": at}
        for change in todo.changes
    ]
    updates += [{"_id": discrepancy_id, **values, "updated_at": at} for discrepancy_id, values in todo.rewordings]
    await _update(session, updates)
    for change in todo.changes:
        audit.append(
            system_record_row(
                ENTITY,
                change.discrepancy_id,
                change.action,
                at,
                from_state=change.from_status.value,
                to_state=change.to_status.value,
                reason=change.reason,
            )
        )
        if change.to_status is DiscrepancyStatus.CLEARED:
            result.cleared += 1
        else:
            result.reopened += 1
    if audit:
        await bulk_insert(session, AuditRecord.__table__, audit)


def _contract_chunks(contract_ids: Iterable[int] | None) -> Iterator[list[int] | None]:
    if contract_ids is None:
        while True:
            yield None
    ids = sorted(set(contract_ids))
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


async def detect(
    session: AsyncSession, on: date | None = None, *, contract_ids: Iterable[int] | None = None
) -> DetectResult:
    """Reconcile every contract's filings, or only ``contract_ids``' (idempotent; in the caller's
    transaction), ``CHUNK`` contracts at a time: their parties, filings, findings so far (locked) and,
    where a registry holds a record, the contract's facts and the payments received, one statement each."""
    from marketplace.filings.services import load_facts  # services.refresh calls this module

    on = on or today()
    result = DetectResult()
    after = 0
    for chosen in _contract_chunks(contract_ids):
        statement = (
            select(LicenceContract.id, LicenceContract.status, *_party_columns(_Licensor), *_party_columns(_Licensee))
            .join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
            .join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
            .order_by(LicenceContract.id)
        )
        if chosen is None:
            statement = statement.where(LicenceContract.id > after).limit(CHUNK)
        else:
            statement = statement.where(LicenceContract.id.in_(chosen))
        contracts = (await session.execute(statement)).all()
        if not contracts:
            if chosen is None:
                return result
            continue
        chunk: Chunk = (after, contracts[-1][0]) if chosen is None else chosen
        after = contracts[-1][0]
        states = await _filing_states(session, chunk)
        recorded = {contract_id for contract_id, filings in states.items() if any(needs_facts(f) for f in filings)}
        facts = await load_facts(session, recorded)
        registered = any(
            f.registry is Registry.TECH_CONTRACT and f.number is not None
            for filings in states.values()
            for f in filings
        )
        received = await _received(session, chunk) if registered else {}
        found: dict[Key, Finding] = {}
        for row in contracts:
            contract_id, status = row[0], row[1]
            parties = (_party(row[2:10]), _party(row[10:18]))
            for finding in findings(
                states.get(contract_id, []),
                parties,
                facts.get(contract_id),
                received_fen=received.get(contract_id, 0),
                live=status is not ContractStatus.ENDED,
                on=on,
            ):
                found[(contract_id, finding.registry, finding.kind)] = finding
        stored = await _stored(session, chunk)
        at = now_utc()
        await _write(session, plan(found, stored, at), at, result)
    return result


# ---------------------------------------------------------------------------------------------
# Resolving a finding
# ---------------------------------------------------------------------------------------------


def note_error(note: str) -> FieldError | None:
    text = note.strip()
    if not text:
        return FieldError("note", "请填写处理说明（例如已与登记机关核实的情况）", "required")
    if len(text) > MAX_NOTE_LENGTH:
        return FieldError("note", f"处理说明不能超过{MAX_NOTE_LENGTH}个字符", "too_long")
    return None


async def resolve(session: AsyncSession, actor: Principal, discrepancy_id: int, note: str) -> DiscrepancyRow:
    """A platform admin closes an open finding with a note (处理说明). It reopens by itself if its facts
    change, and is cleared once its condition goes away."""
    problem = note_error(note or "")
    row = (
        await session.scalar(
            select(Discrepancy)
            .where(Discrepancy.id == discrepancy_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if 0 < discrepancy_id < 2**63
        else None
    )
    if row is None:
        raise NotFound("差异记录不存在")
    if problem is not None:
        raise ValidationFailed([problem])
    if DiscrepancyStatus.RESOLVED not in DISCREPANCY_TRANSITIONS[row.status]:
        raise InvalidTransition(f"该差异当前为“{row.status.label}”，只有待处理的差异可以标记为已处理")
    at = now_utc()
    text = note.strip()
    from_status = row.status
    row.status = DiscrepancyStatus.RESOLVED
    row.resolved_at = at
    row.resolved_by_user_id = actor.user_id
    row.resolution_note = text
    await session.flush()
    await record(
        session,
        entity_type=ENTITY,
        entity_id=row.id,
        action="resolved",
        actor=actor,
        from_state=from_status.value,
        to_state=DiscrepancyStatus.RESOLVED.value,
        reason=text,
    )
    await session.flush()
    return await get_discrepancy(session, discrepancy_id)


# ---------------------------------------------------------------------------------------------
# Reading findings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscrepancyRow:
    id: int
    contract_id: int
    contract_number: str
    licensor: str
    licensee: str
    registry: Registry
    kind: DiscrepancyKind
    severity: Severity
    status: DiscrepancyStatus
    detail: str
    detected_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None

    @property
    def is_open(self) -> bool:
        return self.status is DiscrepancyStatus.OPEN


@dataclass(frozen=True)
class DiscrepancyFilters:
    """``status`` None: every status."""

    status: DiscrepancyStatus | None = DiscrepancyStatus.OPEN
    severity: Severity | None = None
    kind: DiscrepancyKind | None = None
    registry: Registry | None = None

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links and the pager)."""
        return {
            "status": self.status.value if self.status else "all",
            "severity": self.severity.value if self.severity else "",
            "kind": self.kind.value if self.kind else "",
            "registry": self.registry.value if self.registry else "",
        }


def _choice(raw: str | None, enum: Any, name: str, what: str) -> Any:
    text = (raw or "").strip()
    if not text:
        return None
    member = enum._value2member_map_.get(text)
    if member is None:
        raise ValidationFailed([FieldError(name, f"{what}取值无效", "invalid")])
    return member


def parse_filters(
    *, status: str | None = "", severity: str | None = "", kind: str | None = "", registry: str | None = ""
) -> DiscrepancyFilters:
    """Filters as typed in a query string: status empty means open, ``all`` every status."""
    errors: list[FieldError] = []
    chosen: dict[str, Any] = {}
    raw_status = (status or "").strip()
    for name, raw, enum, what in (
        ("status", "" if raw_status == "all" else raw_status, DiscrepancyStatus, "处理状态"),
        ("severity", severity, Severity, "严重程度"),
        ("kind", kind, DiscrepancyKind, "差异类型"),
        ("registry", registry, Registry, "登记类别"),
    ):
        try:
            chosen[name] = _choice(raw, enum, name, what)
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    if chosen["status"] is None and raw_status != "all":
        chosen["status"] = DiscrepancyStatus.OPEN
    return DiscrepancyFilters(**chosen)


def _rows_statement() -> Any:
    return (
        select(
            Discrepancy.id,
            Discrepancy.contract_id,
            LicenceContract.number,
            _Licensor.name,
            _Licensee.name,
            Discrepancy.registry,
            Discrepancy.kind,
            Discrepancy.severity,
            Discrepancy.status,
            Discrepancy.detail,
            Discrepancy.detected_at,
            Discrepancy.resolved_at,
            User.display_name,
            Discrepancy.resolution_note,
        )
        .join(LicenceContract, LicenceContract.id == Discrepancy.contract_id)
        .join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
        .join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
        .outerjoin(User, User.id == Discrepancy.resolved_by_user_id)
    )


_SEVERITY_ORDER = case(
    (Discrepancy.severity == Severity.HIGH, 0), (Discrepancy.severity == Severity.MEDIUM, 1), else_=2
)


async def list_discrepancies(
    session: AsyncSession, filters: DiscrepancyFilters, *, page: int = 1, per_page: int = PER_PAGE
) -> Page[DiscrepancyRow]:
    """Findings, the most severe first, then the longest-standing."""
    page, per_page = page_bounds(page, per_page)
    conditions = []
    if filters.status is not None:
        conditions.append(Discrepancy.status == filters.status)
    if filters.severity is not None:
        conditions.append(Discrepancy.severity == filters.severity)
    if filters.kind is not None:
        conditions.append(Discrepancy.kind == filters.kind)
    if filters.registry is not None:
        conditions.append(Discrepancy.registry == filters.registry)
    total = await session.scalar(select(func.count()).select_from(Discrepancy).where(*conditions))
    rows = await session.execute(
        _rows_statement()
        .where(*conditions)
        .order_by(_SEVERITY_ORDER, Discrepancy.detected_at, Discrepancy.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return Page([DiscrepancyRow(*row) for row in rows], page, per_page, int(total or 0))


async def get_discrepancy(session: AsyncSession, discrepancy_id: int) -> DiscrepancyRow:
    row = (
        (await session.execute(_rows_statement().where(Discrepancy.id == discrepancy_id))).one_or_none()
        if 0 < discrepancy_id < 2**63
        else None
    )
    if row is None:
        raise NotFound("差异记录不存在")
    return DiscrepancyRow(*row)


async def open_by_severity(session: AsyncSession) -> dict[Severity, int]:
    rows = await session.execute(
        select(Discrepancy.severity, func.count())
        .where(Discrepancy.status == DiscrepancyStatus.OPEN)
        .group_by(Discrepancy.severity)
    )
    counts = dict.fromkeys(Severity, 0)
    counts.update({severity: int(count) for severity, count in rows})
    return counts


async def contract_discrepancies(session: AsyncSession, contract_id: int) -> list[DiscrepancyRow]:
    """The open findings of one contract (for its detail page)."""
    rows = await session.execute(
        _rows_statement()
        .where(Discrepancy.contract_id == contract_id, Discrepancy.status == DiscrepancyStatus.OPEN)
        .order_by(_SEVERITY_ORDER, Discrepancy.id)
    )
    return [DiscrepancyRow(*row) for row in rows]


# ---------------------------------------------------------------------------------------------
# Deadlines and the filings' standing (the admin dashboard)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineFlag:
    """A licence filing not yet filed whose deadline is near (``approaching``) or past (``overdue``)."""

    contract_id: int
    contract_number: str
    licensor: str
    licensee: str
    effective_on: date | None
    due_on: date
    status: FilingStatus
    flag: str
    #: Days left (≥ 0) or, when overdue, days past the deadline.
    days: int

    @property
    def overdue(self) -> bool:
        return self.flag == "overdue"

    @property
    def days_label(self) -> str:
        if self.overdue:
            return f"已逾期 {self.days} 天"
        return "今天到期" if self.days == 0 else f"剩余 {self.days} 天"


def _flagged(settings: Settings, on: date) -> list[Any]:
    return [
        ContractFiling.registry == Registry.LICENCE_FILING,
        ContractFiling.status.in_(rules.UNFILED),
        ContractFiling.number.is_(None),
        ContractFiling.due_on <= on + timedelta(days=settings.filing_warning_days),
    ]


async def deadline_flags(
    session: AsyncSession, settings: Settings, *, on: date | None = None, limit: int | None = None
) -> list[DeadlineFlag]:
    """Licence filings approaching (within ``FILING_WARNING_DAYS``) or past their deadline and not yet
    filed, the most overdue first."""
    on = on or today()
    statement = (
        select(
            ContractFiling.contract_id,
            LicenceContract.number,
            _Licensor.name,
            _Licensee.name,
            ContractFiling.effective_on,
            ContractFiling.due_on,
            ContractFiling.status,
        )
        .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
        .join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
        .join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
        .where(*_flagged(settings, on))
        .order_by(ContractFiling.due_on, LicenceContract.number)
    )
    if limit is not None:
        statement = statement.limit(limit)
    flags = []
    for contract_id, number, licensor, licensee, effective_on, due_on, status in await session.execute(statement):
        flag = rules.deadline_flag(due_on, on, settings.filing_warning_days)
        if flag is None:
            continue
        days = (on - due_on).days if flag == "overdue" else (due_on - on).days
        flags.append(DeadlineFlag(contract_id, number, licensor, licensee, effective_on, due_on, status, flag, days))
    return flags


async def deadline_counts(session: AsyncSession, settings: Settings, *, on: date | None = None) -> dict[str, int]:
    """How many licence filings are overdue and how many approach their deadline."""
    on = on or today()
    overdue = func.sum(case((ContractFiling.due_on < on, 1), else_=0))
    row = (
        await session.execute(select(overdue, func.count()).select_from(ContractFiling).where(*_flagged(settings, on)))
    ).one()
    return {"overdue": int(row[0] or 0), "approaching": int(row[1]) - int(row[0] or 0)}


async def status_counts(session: AsyncSession) -> dict[Registry, dict[FilingStatus, int]]:
    """Filings per registry and status."""
    counts = {registry: dict.fromkeys(FilingStatus, 0) for registry in Registry}
    rows = await session.execute(
        select(ContractFiling.registry, ContractFiling.status, func.count()).group_by(
            ContractFiling.registry, ContractFiling.status
        )
    )
    for registry, status, count in rows:
        counts[registry][status] = int(count)
    return counts


@dataclass(frozen=True)
class FilingRow:
    """A contract's standing with one registry, as the dashboard's list shows it."""

    contract_id: int
    contract_number: str
    licensor: str
    licensee: str
    registry: Registry
    status: FilingStatus
    number: str | None
    effective_on: date | None
    due_on: date | None
    batch_number: str | None


@dataclass(frozen=True)
class FilingFilters:
    registry: Registry | None = None
    status: FilingStatus | None = None
    #: ``overdue`` / ``approaching``: licence filings flagged for their deadline.
    deadline: str | None = None

    def query(self) -> dict[str, str]:
        return {
            "registry": self.registry.value if self.registry else "",
            "status": self.status.value if self.status else "",
            "deadline": self.deadline or "",
        }


def parse_filing_filters(
    *, registry: str | None = "", status: str | None = "", deadline: str | None = ""
) -> FilingFilters:
    errors: list[FieldError] = []
    chosen: dict[str, Any] = {}
    for name, raw, enum, what in (
        ("registry", registry, Registry, "登记类别"),
        ("status", status, FilingStatus, "报送状态"),
    ):
        try:
            chosen[name] = _choice(raw, enum, name, what)
        except ValidationFailed as exc:
            errors += exc.errors
    flag = (deadline or "").strip()
    if flag and flag not in ("overdue", "approaching"):
        errors.append(FieldError("deadline", "期限筛选取值无效", "invalid"))
    if errors:
        raise ValidationFailed(errors)
    return FilingFilters(chosen["registry"], chosen["status"], flag or None)


def _filing_rows() -> Any:
    return (
        select(
            ContractFiling.contract_id,
            LicenceContract.number,
            _Licensor.name,
            _Licensee.name,
            ContractFiling.registry,
            ContractFiling.status,
            ContractFiling.number,
            ContractFiling.effective_on,
            ContractFiling.due_on,
            FilingBatch.number,
        )
        .join(LicenceContract, LicenceContract.id == ContractFiling.contract_id)
        .join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
        .join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
        .outerjoin(FilingBatch, FilingBatch.id == ContractFiling.batch_id)
    )


async def list_filings(
    session: AsyncSession,
    settings: Settings,
    filters: FilingFilters,
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
    on: date | None = None,
) -> Page[FilingRow]:
    """Contracts' filings in a state, the nearest deadline first."""
    page, per_page = page_bounds(page, per_page)
    on = on or today()
    conditions: list[Any] = []
    if filters.registry is not None:
        conditions.append(ContractFiling.registry == filters.registry)
    if filters.status is not None:
        conditions.append(ContractFiling.status == filters.status)
    if filters.deadline is not None:
        conditions += _flagged(settings, on)
        conditions.append(ContractFiling.due_on < on if filters.deadline == "overdue" else ContractFiling.due_on >= on)
    total = await session.scalar(select(func.count()).select_from(ContractFiling).where(*conditions))
    rows = await session.execute(
        _filing_rows()
        .where(*conditions)
        .order_by(ContractFiling.due_on.is_(None), ContractFiling.due_on, LicenceContract.number, ContractFiling.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return Page([FilingRow(*row) for row in rows], page, per_page, int(total or 0))


async def contract_standing(session: AsyncSession, contract_id: int) -> list[FilingRow]:
    """One contract's standing with both registries (for its detail page)."""
    rows = await session.execute(
        _filing_rows().where(ContractFiling.contract_id == contract_id).order_by(ContractFiling.registry)
    )
    return [FilingRow(*row) for row in rows]
