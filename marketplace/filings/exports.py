"""Exports to the registries (导出批次): the licence filing (专利实施许可合同备案) and the technology-contract
registration (技术合同认定登记), as CSV or XLSX.

An export is an immutable :class:`FilingBatch`. Creating one only records the selection and queues
``filings.render_batch``; the worker renders it in one transaction: it syncs every contract's
standing (``services.sync``), takes the selected due or refused filings ``FOR UPDATE SKIP LOCKED``
(so two exports never share a contract) in chunks ordered by contract number, streams the rows into
a file (``sheets``: XLSX is formatted by a child process), writes one :class:`FilingBatchItem` per
contract (the values exported, or why it was held back) and moves the exported filings to
``exported``; the file is hashed and stored by its SHA-256, and ``filings.reconcile_batch`` is queued
for the batch's contracts. Memory stays flat whatever the number of contracts. Column mapping:
docs/filings.md."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from marketplace.accounts.models import Organisation, OrganisationKind, User
from marketplace.accounts.rules import Principal
from marketplace.accounts.services import principal_for
from marketplace.audit.services import apply_transition, record
from marketplace.billing.services import next_number
from marketplace.clock import now_utc, today
from marketplace.db import bulk_insert
from marketplace.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from marketplace.files.models import StoredFile
from marketplace.files.services import store_file_from_path
from marketplace.filings import reconciliation, rules, services, sheets
from marketplace.filings.models import (
    BatchStatus,
    ContractFiling,
    ExportFormat,
    FilingBatch,
    FilingBatchItem,
    FilingStatus,
    RecordKind,
    Registry,
)
from marketplace.licensing.models import LicenceContract
from marketplace.outbox.models import OutboxMessage
from marketplace.outbox.services import enqueue, handler
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.settings import Settings

RENDER_BATCH = "filings.render_batch"
RECONCILE_BATCH = "filings.reconcile_batch"
ENTITY = "filing_batch"
FILE_PURPOSE = "filing_export"
NUMBER_SERIES = "filing_export"
#: Contracts per chunk: read, itemised, moved and written together.
CHUNK = 1000
MAX_CONTRACT_NUMBERS = 5000
BATCH_TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.PREPARING: frozenset({BatchStatus.READY}),
    BatchStatus.READY: frozenset(),
}
MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER_SEPARATORS = re.compile(r"[\s,，、;；]+")


# ---------------------------------------------------------------------------------------------
# What to export (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    registry: Registry
    file_format: ExportFormat
    #: Contracts that took effect (``effective_on``) within these days, both included.
    period_from: date | None = None
    period_to: date | None = None
    #: Only these contracts (None: every due or refused one).
    contract_numbers: tuple[str, ...] | None = None

    def selection(self) -> dict[str, Any]:
        return {
            "period_from": self.period_from.isoformat() if self.period_from else None,
            "period_to": self.period_to.isoformat() if self.period_to else None,
            "contract_numbers": list(self.contract_numbers) if self.contract_numbers is not None else None,
        }


def contract_numbers_of(raw: str | Sequence[str] | None) -> list[str]:
    """Contract numbers as typed: one per line (commas and spaces also separate), or a list;
    blanks dropped, duplicates once, in the order given."""
    if raw is None:
        return []
    parts = _NUMBER_SEPARATORS.split(raw) if isinstance(raw, str) else [str(part).strip() for part in raw]
    return list(dict.fromkeys(part.strip().upper() for part in parts if part and part.strip()))


def _choice(enum_cls: Any, raw: str, field: str, what: str, errors: list[FieldError]) -> Any:
    raw = (raw or "").strip()
    if not raw:
        errors.append(FieldError(field, f"请选择{what}", "required"))
        return None
    chosen = enum_cls._value2member_map_.get(raw)
    if chosen is None:
        allowed = "、".join(f"{member.value}（{member.label}）" for member in enum_cls)
        errors.append(FieldError(field, f"{what}无效，应为：{allowed}", "invalid"))
    return chosen


def _day(raw: str | None, field: str, what: str, errors: list[FieldError]) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    if _DAY.match(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    errors.append(FieldError(field, f"{what}应为有效日期，格式“年-月-日”，例如 2026-01-31", "invalid"))
    return None


def parse_request(
    *,
    registry: str,
    file_format: str,
    period_from: str | None = None,
    period_to: str | None = None,
    contract_numbers: str | Sequence[str] | None = None,
) -> ExportRequest:
    """The export as a form or the API sends it; every problem is reported at once, by field
    (``registry``, ``format``, ``period_from``, ``period_to``, ``contract_numbers``)."""
    errors: list[FieldError] = []
    chosen_registry = _choice(Registry, registry, "registry", "报送类型", errors)
    chosen_format = _choice(ExportFormat, file_format, "format", "文件格式", errors)
    start = _day(period_from, "period_from", "生效日期（起）", errors)
    end = _day(period_to, "period_to", "生效日期（止）", errors)
    if start and end and start > end:
        errors.append(FieldError("period_to", "生效日期（止）不能早于生效日期（起）", "out_of_range"))
    numbers = contract_numbers_of(contract_numbers)
    if len(numbers) > MAX_CONTRACT_NUMBERS:
        errors.append(
            FieldError(
                "contract_numbers", f"一次最多指定{MAX_CONTRACT_NUMBERS}个合同编号（收到{len(numbers)}个）", "too_many"
            )
        )
    if errors:
        raise ValidationFailed(errors)
    return ExportRequest(chosen_registry, chosen_format, start, end, tuple(numbers) if numbers else None)


def unknown_numbers_error(unknown: Sequence[str]) -> FieldError:
    shown = "、".join(unknown[:20])
    more = f"等{len(unknown)}个" if len(unknown) > 20 else ""
    return FieldError("contract_numbers", f"以下合同编号不存在：{shown}{more}", "unknown")


# ---------------------------------------------------------------------------------------------
# Writing the file (sheets.py): rows go out as they come, every cell text
# ---------------------------------------------------------------------------------------------


def _file(file_format: ExportFormat, path: Path, registry: Registry) -> sheets.RowFile:
    if file_format is ExportFormat.CSV:
        return sheets.CsvFile(path, rules.headers(registry))
    return sheets.XlsxFile(path, rules.headers(registry), registry.short_label)


async def open_writer(file_format: ExportFormat, path: Path, registry: Registry) -> sheets.RowWriter:
    """Where a render writes: CSV in a thread, XLSX in a child process (see sheets.py)."""
    if file_format is ExportFormat.CSV:
        return sheets.ThreadedWriter(await asyncio.to_thread(_file, file_format, path, registry))
    return await sheets.XlsxProcess.start(path, rules.headers(registry), registry.short_label)


def write_file(file_format: ExportFormat, path: Path, registry: Registry, rows: Iterable[Sequence[str]]) -> None:
    """The whole file at once (header and rows), in this process, as a render writes it."""
    sheets.write_whole(_file(file_format, path, registry), rows)


def file_names(batch: FilingBatch) -> tuple[str, str]:
    """The download's ASCII name (``FE2026000001-licence_filing.csv``) and its Chinese one."""
    extension = batch.file_format.value
    return (
        f"{batch.number}-{batch.registry.value}.{extension}",
        f"{batch.number}-{batch.registry.label}.{extension}",
    )


def content_disposition(batch: FilingBatch) -> str:
    ascii_name, utf8_name = file_names(batch)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(utf8_name)}"


# ---------------------------------------------------------------------------------------------
# Creating a batch
# ---------------------------------------------------------------------------------------------


async def _unknown_numbers(session: AsyncSession, numbers: Sequence[str]) -> list[str]:
    known: set[str] = set()
    for start in range(0, len(numbers), 1000):
        part = list(numbers[start : start + 1000])
        known.update(await session.scalars(select(LicenceContract.number).where(LicenceContract.number.in_(part))))
    return [number for number in numbers if number not in known]


async def create_batch(
    session: AsyncSession,
    actor: Principal,
    *,
    registry: str,
    file_format: str,
    period_from: str | None = None,
    period_to: str | None = None,
    contract_numbers: str | Sequence[str] | None = None,
) -> FilingBatch:
    """Record an export (status ``preparing``) and queue its rendering. Every input problem, unknown
    contract numbers included, is reported at once and nothing is written."""
    if not actor.is_platform_admin:
        raise Forbidden("仅平台管理员可以导出报送文件")
    errors: list[FieldError] = []
    request = None
    try:
        request = parse_request(
            registry=registry,
            file_format=file_format,
            period_from=period_from,
            period_to=period_to,
            contract_numbers=contract_numbers,
        )
    except ValidationFailed as exc:
        errors += exc.errors
    numbers = contract_numbers_of(contract_numbers)
    if numbers and len(numbers) <= MAX_CONTRACT_NUMBERS:
        unknown = await _unknown_numbers(session, numbers)
        if unknown:
            errors.append(unknown_numbers_error(unknown))
    if errors or request is None:
        raise ValidationFailed(errors)

    year = today().year
    sequence = await next_number(session, NUMBER_SERIES, year)
    batch = FilingBatch(
        number=f"FE{year}{sequence:06d}",
        registry=request.registry,
        file_format=request.file_format,
        status=BatchStatus.PREPARING,
        selection=request.selection(),
        created_by_user_id=actor.user_id,
    )
    session.add(batch)
    await session.flush()
    await record(
        session,
        entity_type=ENTITY,
        entity_id=batch.id,
        action="created",
        actor=actor,
        to_state=BatchStatus.PREPARING.value,
        details={
            "number": batch.number,
            "registry": batch.registry.value,
            "format": batch.file_format.value,
            "selection": batch.selection,
        },
    )
    await enqueue(session, kind=RENDER_BATCH, payload={"batch_id": batch.id}, dedupe_key=f"{RENDER_BATCH}:{batch.id}")
    return batch


# ---------------------------------------------------------------------------------------------
# Rendering a batch (the worker)
# ---------------------------------------------------------------------------------------------

_Filing = aliased(ContractFiling, name="exported_filing")
_LicenceFiling = aliased(ContractFiling, name="licence_filing")


def _candidates(batch: FilingBatch, after: str) -> Any:
    """The next chunk of the batch's contracts: the selected filings of its registry that are due or
    refused, after ``after`` in contract-number order, locked (others' locked rows are skipped)."""
    licence_filing_number = (
        select(_LicenceFiling.number)
        .where(_LicenceFiling.contract_id == LicenceContract.id, _LicenceFiling.registry == Registry.LICENCE_FILING)
        .scalar_subquery()
    )
    statement = (
        services.facts_statement()
        .add_columns(_Filing.id, _Filing.status, _Filing.record_kind, _Filing.number, licence_filing_number)
        .join(_Filing, _Filing.contract_id == LicenceContract.id)
        .where(
            _Filing.registry == batch.registry,
            _Filing.status.in_(rules.EXPORTABLE),
            LicenceContract.number > after,
        )
    )
    selection = batch.selection or {}
    if selection.get("period_from"):
        statement = statement.where(_Filing.effective_on >= date.fromisoformat(selection["period_from"]))
    if selection.get("period_to"):
        statement = statement.where(_Filing.effective_on <= date.fromisoformat(selection["period_to"]))
    if selection.get("contract_numbers") is not None:
        statement = statement.where(LicenceContract.number.in_(selection["contract_numbers"]))
    return statement.order_by(LicenceContract.number).limit(CHUNK).with_for_update(of=_Filing, skip_locked=True)


def _file_row(
    registry: Registry, facts: rules.ContractFacts, kind: RecordKind, number: str | None, licence_number: str | None
) -> list[str]:
    if registry is Registry.LICENCE_FILING:
        return rules.licence_filing_row(facts, kind, number)
    return rules.registration_row(facts, kind, number, licence_number)


@dataclass
class Rendered:
    exported: int = 0
    held_back: int = 0


async def _export_contracts(
    session: AsyncSession, batch: FilingBatch, actor: Principal | None, writer: sheets.RowWriter
) -> Rendered:
    counts = Rendered()
    after = ""
    # Plain rows, no ORM entities: read on the connection, without the ORM's result processing.
    connection = await session.connection()
    while True:
        rows = (await connection.execute(_candidates(batch, after))).all()
        if not rows:
            return counts
        after = rows[-1][1]
        at = now_utc()
        items: list[dict[str, Any]] = []
        lines: list[list[str]] = []
        exported: list[int] = []
        for row in rows:
            facts = services.facts_from_row(row)
            filing_id, _status, kind, number, licence_number = row[-5:]
            item = {
                "batch_id": batch.id,
                "contract_id": facts.contract_id,
                "record_kind": kind.value,
                "held_back_reason": rules.held_back_reason(facts),
                "values": {},
                "created_at": at,
                "updated_at": at,
            }
            items.append(item)
            if item["held_back_reason"]:
                counts.held_back += 1
                continue
            item["values"] = rules.recorded_values(batch.registry, facts)
            lines.append(_file_row(batch.registry, facts, kind, number, licence_number))
            exported.append(filing_id)
        counts.exported += len(exported)
        # The file's rows first: the XLSX writer process formats them while the database records them.
        await writer.write(lines)
        await bulk_insert(session, FilingBatchItem.__table__, items)
        await services.move_in_database(
            session,
            exported,
            from_statuses=rules.EXPORTABLE,
            to_status=FilingStatus.EXPORTED,
            values={"batch_id": batch.id},
            actor=actor,
            action="exported",
            reason=f"导出批次 {batch.number}",
            details={"batch_id": batch.id, "batch_number": batch.number},
        )
        if len(rows) < CHUNK:
            return counts


async def _creator(session: AsyncSession, batch: FilingBatch) -> tuple[Principal | None, int]:
    """Who the export acts for, and the organisation its file belongs to (the platform's when the
    creator's account is gone)."""
    user = await session.get(User, batch.created_by_user_id) if batch.created_by_user_id else None
    if user is not None:
        return principal_for(user), user.organisation_id
    platform = await session.scalar(select(Organisation.id).where(Organisation.kind == OrganisationKind.PLATFORM))
    if platform is None:
        raise LookupError("no platform organisation to own the export file")
    return None, platform


def _temporary_file(folder: Path) -> Path:
    """Where the file is written: beside the stored files, so storing it is a rename."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".export-")
    os.close(fd)
    return Path(temporary)


async def render_batch(session: AsyncSession, settings: Settings, batch_id: int) -> FilingBatch:
    """Render a preparing batch in the caller's transaction (idempotent: a ready batch is returned as
    it is). See the module docstring for the steps."""
    batch = await session.scalar(select(FilingBatch).where(FilingBatch.id == batch_id).with_for_update())
    if batch is None:
        raise LookupError(f"filing batch {batch_id} does not exist")
    if batch.status is BatchStatus.READY:
        return batch
    await services.sync(session)
    actor, organisation_id = await _creator(session, batch)

    path = await asyncio.to_thread(_temporary_file, settings.upload_dir)
    try:
        writer = await open_writer(batch.file_format, path, batch.registry)
        try:
            counts = await _export_contracts(session, batch, actor, writer)
        except BaseException:
            await writer.abort()
            raise
        await writer.finish()
        ascii_name, _ = file_names(batch)
        stored = await store_file_from_path(
            session,
            settings=settings,
            organisation_id=organisation_id,
            user_id=batch.created_by_user_id,
            purpose=FILE_PURPOSE,
            filename=ascii_name,
            content_type=MEDIA_TYPES[batch.file_format],
            path=path,
        )
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)

    batch.contract_count, batch.held_back_count = counts.exported, counts.held_back
    batch.file_id, batch.sha256, batch.size_bytes = stored.id, stored.sha256, stored.size_bytes
    batch.ready_at = now_utc()
    await apply_transition(
        session,
        entity=batch,
        entity_type=ENTITY,
        to_state=BatchStatus.READY,
        allowed=BATCH_TRANSITIONS,
        actor=None,
        action="rendered",
        details={
            "contract_count": counts.exported,
            "held_back_count": counts.held_back,
            "sha256": stored.sha256,
            "size_bytes": stored.size_bytes,
        },
    )
    # The findings on the exported contracts (overdue, refused and not re-exported …) are brought up to
    # date by the worker right after this commits, so the export itself stays as short as it can be.
    await enqueue(
        session, kind=RECONCILE_BATCH, payload={"batch_id": batch.id}, dedupe_key=f"{RECONCILE_BATCH}:{batch.id}"
    )
    return batch


@handler(RENDER_BATCH)
async def _render_message(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    await render_batch(session, settings, int(message.payload["batch_id"]))


async def reconcile_batch(session: AsyncSession, batch_id: int) -> reconciliation.DetectResult:
    """Reconcile the contracts a batch exported or held back."""
    items = select(FilingBatchItem.contract_id).where(FilingBatchItem.batch_id == batch_id)
    return await reconciliation.detect(session, contract_ids=list(await session.scalars(items)))


@handler(RECONCILE_BATCH)
async def _reconcile_message(session: AsyncSession, message: OutboxMessage, settings: Settings) -> None:
    await reconcile_batch(session, int(message.payload["batch_id"]))


async def export_now(
    sessionmaker: async_sessionmaker, settings: Settings, actor: Principal, **values: Any
) -> FilingBatch:
    """Create a batch and render it straight away, each in its own transaction, as a request and then
    the worker would (for scripts and benchmarks; ``values`` are :func:`create_batch`'s). The queued
    render message stays and finds the batch ready."""
    async with sessionmaker() as session, session.begin():
        batch_id = (await create_batch(session, actor, **values)).id
    async with sessionmaker() as session, session.begin():
        batch = await render_batch(session, settings, batch_id)
        session.expunge(batch)
    return batch


# ---------------------------------------------------------------------------------------------
# Reading batches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRow:
    batch: FilingBatch
    created_by: str | None


@dataclass(frozen=True)
class ItemRow:
    contract_id: int
    contract_number: str
    record_kind: RecordKind
    held_back_reason: str | None
    licensor: str
    licensee: str


async def list_batches(session: AsyncSession, *, page: int = 1, per_page: int = PER_PAGE) -> Page[BatchRow]:
    """Every export, newest first."""
    page, per_page = page_bounds(page, per_page)
    total = await session.scalar(select(func.count()).select_from(FilingBatch)) or 0
    rows = await session.execute(
        select(FilingBatch, User.display_name)
        .outerjoin(User, User.id == FilingBatch.created_by_user_id)
        .order_by(FilingBatch.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return Page([BatchRow(batch, name) for batch, name in rows], page, per_page, int(total))


async def get_batch(session: AsyncSession, batch_id: int) -> BatchRow:
    row = (
        await session.execute(
            select(FilingBatch, User.display_name)
            .outerjoin(User, User.id == FilingBatch.created_by_user_id)
            .where(FilingBatch.id == batch_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise NotFound("导出批次不存在")
    return BatchRow(row[0], row[1])


_Licensor = aliased(Organisation, name="item_licensor")
_Licensee = aliased(Organisation, name="item_licensee")


def _party_name(values: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        if isinstance(values.get(key), dict) and values[key].get("name"):
            return str(values[key]["name"])
    return None


async def batch_items(
    session: AsyncSession, batch_id: int, *, held_back: bool, page: int = 1, per_page: int = PER_PAGE
) -> Page[ItemRow]:
    """The batch's exported contracts (``held_back=False``) or those it held back, by contract number.
    Parties are named as exported (as they are now, for a held-back contract)."""
    page, per_page = page_bounds(page, per_page)
    condition = (
        FilingBatchItem.held_back_reason.is_not(None) if held_back else FilingBatchItem.held_back_reason.is_(None)
    )
    total = await session.scalar(
        select(func.count()).select_from(FilingBatchItem).where(FilingBatchItem.batch_id == batch_id, condition)
    )
    rows = await session.execute(
        select(
            FilingBatchItem.contract_id,
            LicenceContract.number,
            FilingBatchItem.record_kind,
            FilingBatchItem.held_back_reason,
            FilingBatchItem.values,
            _Licensor.name,
            _Licensee.name,
        )
        .join(LicenceContract, LicenceContract.id == FilingBatchItem.contract_id)
        .join(_Licensor, _Licensor.id == LicenceContract.licensor_organisation_id)
        .join(_Licensee, _Licensee.id == LicenceContract.licensee_organisation_id)
        .where(FilingBatchItem.batch_id == batch_id, condition)
        .order_by(LicenceContract.number)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    items = [
        ItemRow(
            contract_id,
            number,
            kind,
            reason,
            _party_name(values, "licensor", "seller") or licensor,
            _party_name(values, "licensee", "buyer") or licensee,
        )
        for contract_id, number, kind, reason, values, licensor, licensee in rows
    ]
    return Page(items, page, per_page, int(total or 0))


async def held_back(session: AsyncSession, batch_id: int) -> list[tuple[str, str]]:
    """Every held-back contract of the batch: (contract number, reason)."""
    rows = await session.execute(
        select(LicenceContract.number, FilingBatchItem.held_back_reason)
        .join(LicenceContract, LicenceContract.id == FilingBatchItem.contract_id)
        .where(FilingBatchItem.batch_id == batch_id, FilingBatchItem.held_back_reason.is_not(None))
        .order_by(LicenceContract.number)
    )
    return [(number, reason) for number, reason in rows]


async def file_of(session: AsyncSession, settings: Settings, batch_id: int) -> tuple[FilingBatch, Path]:
    """The batch and its file on disk; 409 while it is still being prepared."""
    batch = (await get_batch(session, batch_id)).batch
    if batch.status is not BatchStatus.READY or batch.file_id is None:
        raise Conflict(f"导出批次 {batch.number} 仍在生成中，请稍后再下载", code="batch_preparing")
    stored = await session.get(StoredFile, batch.file_id)
    path = settings.upload_dir / (stored.sha256 if stored else "")
    if stored is None or not path.is_file():
        raise NotFound("导出文件缺失，请联系平台技术人员")
    return batch, path


# ---------------------------------------------------------------------------------------------
# API shapes
# ---------------------------------------------------------------------------------------------


class ExportBody(msgspec.Struct):
    """``registry``: licence_filing | tech_contract; ``format``: csv | xlsx; the period bounds the
    contracts' effective date (YYYY-MM-DD, both optional); ``contract_numbers`` limits the export."""

    registry: str = ""
    format: str = ""
    period_from: str | None = None
    period_to: str | None = None
    contract_numbers: list[str] | None = None


class SelectionOut(msgspec.Struct):
    period_from: str | None
    period_to: str | None
    contract_numbers: list[str] | None


class HeldBackOut(msgspec.Struct):
    contract_number: str
    reason: str


class BatchOut(msgspec.Struct):
    id: int
    number: str
    registry: str
    registry_label: str
    format: str
    status: str
    status_label: str
    selection: SelectionOut
    contract_count: int
    held_back_count: int
    sha256: str | None
    size_bytes: int | None
    created_by_user_id: int | None
    created_by: str | None
    created_at: datetime
    ready_at: datetime | None
    download_url: str | None

    @classmethod
    def fields_of(cls, row: BatchRow) -> dict[str, Any]:
        batch = row.batch
        selection = batch.selection or {}
        ready = batch.status is BatchStatus.READY
        return {
            "id": batch.id,
            "number": batch.number,
            "registry": batch.registry.value,
            "registry_label": batch.registry.label,
            "format": batch.file_format.value,
            "status": batch.status.value,
            "status_label": batch.status.label,
            "selection": SelectionOut(
                selection.get("period_from"), selection.get("period_to"), selection.get("contract_numbers")
            ),
            "contract_count": batch.contract_count,
            "held_back_count": batch.held_back_count,
            "sha256": batch.sha256,
            "size_bytes": batch.size_bytes,
            "created_by_user_id": batch.created_by_user_id,
            "created_by": row.created_by,
            "created_at": batch.created_at,
            "ready_at": batch.ready_at,
            "download_url": f"/api/v1/filing-exports/{batch.id}/download" if ready else None,
        }

    @classmethod
    def of(cls, row: BatchRow) -> BatchOut:
        return cls(**cls.fields_of(row))


class BatchDetailOut(BatchOut):
    held_back: list[HeldBackOut]

    @classmethod
    def with_held_back(cls, row: BatchRow, held: list[tuple[str, str]]) -> BatchDetailOut:
        return cls(**cls.fields_of(row), held_back=[HeldBackOut(number, reason) for number, reason in held])


class BatchPage(msgspec.Struct):
    items: list[BatchOut]
    total: int
    page: int
    per_page: int
    pages: int

    @classmethod
    def of(cls, page: Page[BatchRow]) -> BatchPage:
        return cls([BatchOut.of(row) for row in page.items], page.total, page.number, page.per_page, page.pages)
