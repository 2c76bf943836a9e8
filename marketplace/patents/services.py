"""Patent use cases: the registry (专利盘点库) — register, edit, list and read an organisation's
patents — the bulk inventory upload (盘点入库) from CSV or XLSX with its stored report, the
inventory templates, and the open-licence candidates of a licensor."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePath
from typing import Any, TypeVar

import openpyxl
from openpyxl.styles import Alignment, Font, PatternFill
from python_calamine import CalamineError, CalamineWorkbook
from sqlalchemy import ColumnElement, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.rules import Principal
from marketplace.audit.services import record
from marketplace.catalogue.services import remove_entry, upsert_entry
from marketplace.clock import now_utc, today
from marketplace.errors import FieldError, Forbidden, NotFound, ValidationFailed
from marketplace.evaluations import tiers
from marketplace.evaluations.models import PatentTier
from marketplace.evaluations.tiers import TierFilters
from marketplace.licensing.services import end_for_patents
from marketplace.matching import inventory
from marketplace.offers import rules as offer_rules
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.offers.services import patent_facts
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.patents import rules
from marketplace.patents.models import InventoryUpload, LegalStatus, Patent, PatentType, UploadMode
from marketplace.settings import Settings

T = TypeVar("T")

#: Rows per IN (...) lookup and per executemany batch: below every driver's bound-parameter limit.
LOOKUP_CHUNK = 5_000
WRITE_CHUNK = 1_000
MAX_UPLOAD_ROWS = 200_000
#: How many problems the HTML report lists; the CSV download and the API carry all of them.
REPORT_PAGE_ERRORS = 500
DUPLICATE_OTHER_ORGANISATION = "该专利已由其他机构登记"


def design_cutover(settings: Settings) -> date:
    return date.fromisoformat(settings.design_term_cutover)


def _require_holder(actor: Principal) -> None:
    if not actor.can_hold_patents:
        raise Forbidden("仅专利权人机构（高校、科研机构、企业）可以登记专利")


# ---------------------------------------------------------------------------------------------
# Listing and reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PatentFilters:
    legal_status: LegalStatus | None = None
    patent_type: PatentType | None = None
    text: str = ""
    #: Tier filters (分层, 待重新评价): only tiered (catalogue) patents match them.
    tiers: TierFilters = field(default_factory=TierFilters)


def parse_filters(
    legal_status: str | None, patent_type: str | None, text: str | None, tier: str = "", flagged: str = ""
) -> PatentFilters:
    """Filters from query parameters; an unknown status, type or tier is a field error, not a silent no-op."""
    errors = []
    try:
        tier_filters = tiers.parse_filters(tier, flagged)
    except ValidationFailed as exc:
        errors += exc.errors
    status = kind = None
    if legal_status:
        try:
            status = LegalStatus(legal_status)
        except ValueError:
            errors.append(FieldError("status", "未知的法律状态"))
    if patent_type:
        try:
            kind = PatentType(patent_type)
        except ValueError:
            errors.append(FieldError("type", "未知的专利类型"))
    if errors:
        raise ValidationFailed(errors)
    return PatentFilters(
        legal_status=status, patent_type=kind, text=rules.clean_text(text)[:100], tiers=tier_filters
    )


async def list_patents(
    session: AsyncSession, actor: Principal, filters: PatentFilters, *, page: int = 1, per_page: int = PER_PAGE
) -> Page[Patent]:
    """The organisation's patents (every organisation's for a platform admin), newest first."""
    page, per_page = page_bounds(page, per_page)
    conditions = []
    if not actor.is_platform_admin:
        conditions.append(Patent.owner_organisation_id == actor.organisation_id)
    if filters.legal_status:
        conditions.append(Patent.legal_status == filters.legal_status)
    if filters.patent_type:
        conditions.append(Patent.patent_type == filters.patent_type)
    if filters.text:
        number = rules.clean_application_number(filters.text)
        conditions.append(
            or_(
                Patent.title.contains(filters.text, autoescape=True),
                Patent.application_number.contains(number or filters.text, autoescape=True),
            )
        )
    query = select(Patent)
    if filters.tiers.active:
        query = query.join(PatentTier, PatentTier.patent_id == Patent.id)
        conditions += tiers.conditions(filters.tiers)
    query = query.where(*conditions)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    items = await session.scalars(query.order_by(Patent.id.desc()).offset((page - 1) * per_page).limit(per_page))
    return Page(items=list(items), number=page, per_page=per_page, total=total)


async def get_patent(session: AsyncSession, actor: Principal, patent_id: int) -> Patent:
    """The patent, for its owner or a platform admin; anyone else gets NotFound."""
    patent = await session.get(Patent, patent_id) if 0 < patent_id < 2**63 else None
    if patent is None or not (actor.is_platform_admin or patent.owner_organisation_id == actor.organisation_id):
        raise NotFound("专利不存在")
    return patent


async def editable_patent(session: AsyncSession, actor: Principal, patent_id: int) -> Patent:
    """The patent, for a member of its owner; anyone else gets NotFound."""
    _require_holder(actor)
    patent = await session.get(Patent, patent_id) if 0 < patent_id < 2**63 else None
    if patent is None or patent.owner_organisation_id != actor.organisation_id:
        raise NotFound("专利不存在")
    return patent


async def has_published_offer(session: AsyncSession, patent_id: int) -> bool:
    query = select(OpenLicenceOffer.id).where(
        OpenLicenceOffer.patent_id == patent_id, OpenLicenceOffer.status == OfferStatus.PUBLISHED
    )
    return await session.scalar(query.limit(1)) is not None


@dataclass(frozen=True)
class PatentOverview:
    """What the detail page computes about a patent as of today."""

    statutory_expiry: date
    current_fee: rules.AnnualFee | None
    next_fee: rules.AnnualFee | None
    has_published_offer: bool
    candidate: bool
    state_licensable: bool
    #: Conditions of Implementing Regulations art. 86 the patent itself fails (the offer's own
    #: term, evaluation report and wording are checked when an offer is drafted).
    blockers: list[str]


async def overview(session: AsyncSession, patent: Patent, settings: Settings) -> PatentOverview:
    on = today()
    cutover = design_cutover(settings)
    published = await has_published_offer(session, patent.id)
    facts = _candidate_facts(patent, published)
    problems = offer_rules.check_eligibility(
        patent_facts(patent),
        # A neutral offer: no term to compare, report attached, no wording, so only the patent's facts count.
        offer_rules.OfferFacts(licence_term_months=0, has_evaluation_report=True),
        today=on,
        advertising_words=(),
    )
    return PatentOverview(
        statutory_expiry=rules.statutory_expiry(patent.patent_type, patent.filing_date, cutover),
        current_fee=rules.current_annual_fee(patent.patent_type, patent.filing_date, on, patent.expiry_date),
        next_fee=rules.next_annual_fee(patent.patent_type, patent.filing_date, on, patent.expiry_date),
        has_published_offer=published,
        candidate=rules.is_open_licence_candidate(facts, on),
        state_licensable=rules.is_state_licensable(facts, on),
        blockers=[problem.message for problem in problems],
    )


def _candidate_facts(patent: Patent, has_published_offer: bool) -> rules.CandidateFacts:
    return rules.CandidateFacts(
        legal_status=patent.legal_status,
        grant_date=patent.grant_date,
        implemented=patent.implemented,
        government_funded=patent.government_funded,
        has_published_offer=has_published_offer,
    )


# ---------------------------------------------------------------------------------------------
# Registering and editing one patent (form and API)
# ---------------------------------------------------------------------------------------------


def _validated(values: dict[str, Any], settings: Settings) -> rules.PatentInput:
    result = rules.validate_patent(values, today=today(), design_cutover=design_cutover(settings))
    if isinstance(result, list):
        raise ValidationFailed(result)
    return result


async def create_patent(
    session: AsyncSession, actor: Principal, values: dict[str, Any], settings: Settings
) -> Patent:
    _require_holder(actor)
    data = _validated(values, settings)
    owner = await session.scalar(
        select(Patent.owner_organisation_id).where(Patent.application_number == data.application_number)
    )
    if owner is not None:
        message = "本机构已登记该专利" if owner == actor.organisation_id else DUPLICATE_OTHER_ORGANISATION
        raise ValidationFailed.single("application_number", message, "duplicate")
    patent = Patent(owner_organisation_id=actor.organisation_id, **data.values(rules.column_names()))
    session.add(patent)
    try:
        await session.flush()
    except IntegrityError:
        # Another request registered the same number between the check and the insert.
        raise ValidationFailed.single("application_number", DUPLICATE_OTHER_ORGANISATION, "duplicate") from None
    await record(
        session, entity_type="patent", entity_id=patent.id, action="create", actor=actor,
        to_state=patent.legal_status.value,
    )
    inventory.queue_sync(session, [patent.id])
    return patent


async def update_patent(
    session: AsyncSession, actor: Principal, patent_id: int, values: dict[str, Any], settings: Settings
) -> Patent:
    patent = await editable_patent(session, actor, patent_id)
    data = _validated(values, settings)
    if data.application_number != patent.application_number:
        raise ValidationFailed.single("application_number", "申请号不可修改；如登记有误，请新增正确的专利")
    before = patent.legal_status
    changed = []
    for name, value in data.values(rules.column_names()).items():
        if getattr(patent, name) != value:
            setattr(patent, name, value)
            changed.append(name)
    await session.flush()
    await record(
        session, entity_type="patent", entity_id=patent.id, action="update", actor=actor,
        from_state=before.value, to_state=patent.legal_status.value, details={"changed": changed},
    )
    await _patents_changed(session, [patent.id], actor)
    return patent


def _among(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values`` for thousands of values. PostgreSQL gets one array parameter unnested
    into a semi-join: a generic plan searches a long list of parameters linearly for every row, and
    right after a bulk load (stale statistics) the planner scans the whole table that way."""
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return column.in_(select(func.unnest(array)).scalar_subquery())
    return column.in_(values)


async def _patents_changed(session: AsyncSession, patent_ids: Sequence[int], actor: Principal) -> None:
    """Keep what depends on changed patents in step: the catalogue, and licences on patents that are
    no longer in force (they end, and both parties are told)."""
    await _refresh_catalogue(session, patent_ids)
    await end_for_patents(session, list(patent_ids), actor)
    inventory.queue_sync(session, patent_ids)


async def _refresh_catalogue(session: AsyncSession, patent_ids: Sequence[int]) -> None:
    """Keep the catalogue rows of changed patents' published offers fresh; a patent no longer in
    force (lapsed, invalidated, expired) leaves the catalogue."""
    for start in range(0, len(patent_ids), LOOKUP_CHUNK):
        offers = await session.scalars(
            select(OpenLicenceOffer)
            .where(
                _among(session, OpenLicenceOffer.patent_id, patent_ids[start : start + LOOKUP_CHUNK]),
                OpenLicenceOffer.status == OfferStatus.PUBLISHED,
            )
            .execution_options(populate_existing=True)
        )
        for offer in offers.all():
            if offer.patent.legal_status is LegalStatus.GRANTED:
                await upsert_entry(session, offer)
            else:
                await remove_entry(session, offer.id)


# ---------------------------------------------------------------------------------------------
# Reading spreadsheets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    """A spreadsheet's header row and its data rows with their spreadsheet row numbers."""

    file_format: str
    headers: list[Any]
    rows: Iterator[tuple[int, Sequence[Any]]]


def _file_error(message: str) -> ValidationFailed:
    return ValidationFailed([FieldError("file", message, "bad_file")], message)


def _decode(content: bytes) -> tuple[str, str]:
    """Text and the encoding found: UTF-8 (with or without BOM), UTF-16 with BOM, else GB18030 (⊃ GBK)."""
    if content.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", "UTF-8")]
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", "UTF-16")]
    else:
        if b"\x00" in content[:4096]:
            raise _file_error("文件不是 CSV 文本，也不是 XLSX 工作簿")
        candidates = [("utf-8", "UTF-8"), ("gb18030", "GBK/GB18030")]
    for codec, label in candidates:
        try:
            return content.decode(codec), label
        except UnicodeDecodeError:
            continue
    raise _file_error("无法识别文件编码，请另存为 UTF-8 或 GBK 编码的 CSV 文件")


def _csv_rows(content: bytes) -> tuple[str, list[Any], Iterator[tuple[int, Sequence[Any]]]]:
    text, encoding = _decode(content)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        headers = next(reader, [])
    except csv.Error as exc:
        raise _file_error(f"CSV 格式不正确：{exc}") from None

    def rows() -> Iterator[tuple[int, Sequence[Any]]]:
        try:
            for cells in reader:
                yield reader.line_num, cells
        except csv.Error as exc:
            raise _file_error(f"CSV 第{reader.line_num}行格式不正确：{exc}") from None

    return f"CSV（{encoding}）", headers, rows()


def _xlsx_rows(content: bytes) -> tuple[list[Any], Iterator[tuple[int, Sequence[Any]]]]:
    """The first worksheet, read by calamine (Rust): date cells arrive as dates, numbers as numbers,
    empty cells as "" — about ten times faster than openpyxl on a 100,000-row table."""
    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(content)).get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
    except (CalamineError, ValueError, IndexError):
        raise _file_error("无法读取 XLSX 文件：文件已损坏或不是 Excel 工作簿") from None
    if not rows:
        return [], iter(())
    return list(rows[0]), enumerate(rows[1:], start=2)


def read_sheet(filename: str, content: bytes) -> Sheet:
    """Open an uploaded inventory table, deciding the format by its content (and refusing others)."""
    suffix = PurePath(filename or "").suffix.lower()
    if not content:
        raise _file_error("文件为空")
    if content.startswith(b"\xd0\xcf\x11\xe0") or suffix == ".xls":
        raise _file_error("不支持旧版 Excel（.xls）文件，请另存为 .xlsx 或 CSV")
    if suffix not in ("", ".csv", ".txt", ".xlsx", ".xlsm"):
        raise _file_error("仅支持 CSV 或 XLSX 文件")
    if content.startswith(b"PK\x03\x04"):
        headers, rows = _xlsx_rows(content)
        return Sheet("XLSX", headers, rows)
    if suffix in (".xlsx", ".xlsm"):
        raise _file_error("文件内容不是 XLSX 工作簿")
    file_format, headers, rows = _csv_rows(content)
    return Sheet(file_format, headers, rows)


def _canonical_headers(headers: list[Any]) -> list[str]:
    """Each column's canonical header (a placeholder for columns the platform does not know),
    refusing missing required or repeated columns."""
    canonical: list[str] = []
    for index, raw in enumerate(headers):
        key = rules.HEADER_KEYS.get(rules.normalise_header(raw if raw is not None else ""))
        header = rules.COLUMN_BY_KEY[key].header if key else f"#{index}"
        if header in canonical:
            raise _file_error(f"列“{header}”重复")
        canonical.append(header)
    missing = [header for header in rules.REQUIRED_HEADERS if header not in canonical]
    if missing:
        raise _file_error(f"缺少必填列：{'、'.join(missing)}（第1行应为表头，请使用平台模板）")
    return canonical


def _is_blank(cells: Sequence[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def _is_note(cells: Sequence[Any]) -> bool:
    """The CSV template's format-note row starts with ``#``."""
    return bool(cells) and isinstance(cells[0], str) and cells[0].lstrip().startswith("#")


# ---------------------------------------------------------------------------------------------
# Bulk inventory upload (盘点入库)
# ---------------------------------------------------------------------------------------------


def parse_mode(raw: Any) -> UploadMode:
    try:
        return UploadMode(str(raw or UploadMode.VALID_ROWS.value))
    except ValueError:
        raise ValidationFailed.single("mode", "导入方式应为 valid_rows 或 all_or_nothing") from None


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def import_inventory(
    session: AsyncSession,
    actor: Principal,
    *,
    filename: str,
    content: bytes,
    mode: UploadMode,
    settings: Settings,
) -> InventoryUpload:
    """Validate every row, then insert new patents and update the organisation's existing ones in
    bulk. In ``all_or_nothing`` mode any bad row raises ValidationFailed (row, column, reason) and
    nothing is written. Another organisation's patent and repeats of a number are refused per row."""
    _require_holder(actor)
    sheet = read_sheet(filename, content)
    headers = _canonical_headers(sheet.headers)
    present_keys = frozenset(rules.HEADER_KEYS[h] for h in headers if h in rules.HEADER_KEYS)
    on, cutover = today(), design_cutover(settings)

    errors: list[FieldError] = []
    rejected: set[int] = set()
    first_row: dict[str, int] = {}
    valid: list[tuple[int, rules.PatentInput]] = []
    rows_total = 0
    number_header = rules.COLUMN_BY_KEY["application_number"].header
    for row, cells in sheet.rows:
        if _is_blank(cells) or _is_note(cells):
            continue
        rows_total += 1
        if rows_total > MAX_UPLOAD_ROWS:
            raise _file_error(f"每次最多上传{MAX_UPLOAD_ROWS}行，请拆分文件后分批上传")
        # Rows may be shorter than the header (trailing empty cells) or carry extra cells.
        cells_by_header = dict(zip(headers, cells, strict=False))
        result = rules.validate_inventory_row(cells_by_header, row=row, today=on, design_cutover=cutover)
        if isinstance(result, list):
            errors.extend(result)
            rejected.add(row)
            continue
        earlier = first_row.get(result.application_number)
        if earlier is not None:
            errors.append(FieldError(number_header, f"与第{earlier}行的申请号重复", "duplicate", row))
            rejected.add(row)
            continue
        first_row[result.application_number] = row
        valid.append((row, result))
    if rows_total == 0:
        raise _file_error("文件中没有数据行（第1行为表头，从第2行起每行一件专利）")

    existing: dict[str, tuple[int, int, date | None]] = {}
    for chunk in _chunks(list(first_row), LOOKUP_CHUNK):
        found = await session.execute(
            select(
                Patent.application_number, Patent.id, Patent.owner_organisation_id, Patent.expiry_override
            ).where(_among(session, Patent.application_number, chunk))
        )
        for number, patent_id, owner, override in found:
            existing[number] = (patent_id, owner, override)

    now = now_utc()
    all_names = rules.column_names()
    update_names = rules.column_names(present_keys)
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    for row, data in valid:
        match = existing.get(data.application_number)
        if match is None:
            values = data.values(all_names)
            values.update(owner_organisation_id=actor.organisation_id, created_at=now, updated_at=now)
            new_rows.append(values)
            continue
        patent_id, owner, stored_override = match
        if owner != actor.organisation_id:
            errors.append(FieldError(number_header, DUPLICATE_OTHER_ORGANISATION, "duplicate", row))
            rejected.add(row)
            continue
        values = data.values(update_names)
        if "expiry_override" not in present_keys and stored_override is not None:
            # The file does not carry the override column: keep the registered term extension.
            values["expiry_date"] = stored_override
        values.update(patent_id=patent_id, updated_at=now)
        changed_rows.append(values)

    errors.sort(key=lambda error: error.row or 0)
    if mode is UploadMode.ALL_OR_NOTHING and errors:
        raise ValidationFailed(errors, f"{len(rejected)}行有错误，未导入任何数据；请修改后重新上传")

    # Core statements over the table run as plain executemany batches: no ORM bookkeeping per row.
    table = Patent.__table__
    for chunk in _chunks(new_rows, WRITE_CHUNK):
        await session.execute(insert(table), list(chunk))
    by_id = update(table).where(table.c.id == bindparam("patent_id"))
    for chunk in _chunks(changed_rows, WRITE_CHUNK):
        await session.execute(by_id, list(chunk))
    await _patents_changed(session, [values["patent_id"] for values in changed_rows], actor)
    if new_rows:
        inventory.queue_sync(session, organisation_id=actor.organisation_id)

    upload = InventoryUpload(
        organisation_id=actor.organisation_id,
        uploaded_by_user_id=actor.user_id,
        filename=(PurePath(filename or "").name or "upload")[:255],
        file_format=sheet.file_format,
        mode=mode,
        rows_total=rows_total,
        created_count=len(new_rows),
        updated_count=len(changed_rows),
        rejected_count=len(rejected),
        report=[{"row": e.row, "field": e.field, "message": e.message, "code": e.code} for e in errors],
    )
    session.add(upload)
    await session.flush()
    await record(
        session, entity_type="inventory_upload", entity_id=upload.id, action="import", actor=actor,
        details={
            "filename": upload.filename, "mode": mode.value, "rows": rows_total, "created": upload.created_count,
            "updated": upload.updated_count, "rejected": upload.rejected_count,
        },
    )
    return upload


async def get_upload(session: AsyncSession, actor: Principal, upload_id: int) -> InventoryUpload:
    upload = await session.get(InventoryUpload, upload_id) if 0 < upload_id < 2**63 else None
    if upload is None or not (actor.is_platform_admin or upload.organisation_id == actor.organisation_id):
        raise NotFound("上传记录不存在")
    return upload


def report_csv(upload: InventoryUpload) -> bytes:
    """The rejected rows of an upload as a CSV (UTF-8 with BOM so Excel opens it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["行号", "列", "原因"])
    for item in upload.report:
        writer.writerow([item["row"], item["field"], item["message"]])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

TEMPLATE_GUIDE = (
    "第1行为表头，请勿修改列名；从第2行起每行填写一件专利。",
    "带 * 的列必填；其余列可留空，也可删除整列（重新上传时，缺少的列不会改动已登记的内容）。",
    "“是/否”列填写“是”或“否”；留空按“否”处理。",
    "同一申请号重复上传时，更新本机构已登记的专利；已由其他机构登记的专利会被拒绝。",
    "示例行的专利名称以“【示例】”开头，上传前请删除或替换。",
)


def template_headers() -> list[str]:
    return [column.header + ("*" if column.required else "") for column in rules.COLUMNS]


def template_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(template_headers())
    notes = [("必填。" if column.required else "选填。") + column.note for column in rules.COLUMNS]
    notes[0] = "#填写说明（本行以#开头，上传时自动跳过）：" + notes[0]
    writer.writerow(notes)
    writer.writerow([column.example for column in rules.COLUMNS])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


_DATE_KEYS = frozenset({"filing_date", "grant_date", "annual_fee_paid_until", "expiry_override"})


def template_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "专利盘点"
    sheet.append(template_headers())
    example: list[Any] = []
    for column in rules.COLUMNS:
        if column.key in _DATE_KEYS and column.example:
            example.append(date.fromisoformat(column.example))
        elif column.key in ("trl", "claims_count"):
            example.append(int(column.example))
        else:
            example.append(column.example)
    sheet.append(example)
    required_fill = PatternFill("solid", fgColor="FDE2E1")
    for index, column in enumerate(rules.COLUMNS, start=1):
        cell = sheet.cell(row=1, column=index)
        cell.font = Font(bold=True)
        if column.required:
            cell.fill = required_fill
        letter = cell.column_letter
        sheet.column_dimensions[letter].width = max(12, min(40, len(column.header) * 2 + 4))
        if column.key in _DATE_KEYS:
            sheet.cell(row=2, column=index).number_format = "yyyy-mm-dd"
    # Typed as text, an application number keeps its check character and is never shown as 2.0201E+11.
    sheet.cell(row=2, column=1).number_format = "@"
    sheet.freeze_panes = "A2"

    guide = workbook.create_sheet("填写说明")
    guide.append(["列名", "是否必填", "格式说明", "示例"])
    for cell in guide[1]:
        cell.font = Font(bold=True)
    for column in rules.COLUMNS:
        guide.append([column.header, "必填" if column.required else "选填", column.note, column.example])
    guide.append([])
    for line in TEMPLATE_GUIDE:
        guide.append([line])
    guide.column_dimensions["A"].width = 22
    guide.column_dimensions["B"].width = 10
    guide.column_dimensions["C"].width = 70
    guide.column_dimensions["D"].width = 40
    for row in guide.iter_rows(min_row=2):
        row[2 if len(row) > 2 else 0].alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Open-licence candidates (存量专利盘活)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    patent: Patent
    state_licensable: bool
    next_fee: rules.AnnualFee | None

    @property
    def saving_fen(self) -> int:
        return self.next_fee.open_licence_saving_fen if self.next_fee else 0


@dataclass(frozen=True)
class Candidates:
    page: Page[Candidate]
    total_saving_fen: int
    state_licensable_count: int


async def list_candidates(
    session: AsyncSession, actor: Principal, *, page: int = 1, per_page: int = PER_PAGE
) -> Candidates:
    """The licensor's granted patents that are at least 3 years old, unexploited and not offered,
    with the 15 % saving on the next annual fee an open licence would bring; totals cover them all."""
    _require_holder(actor)
    page, per_page = page_bounds(page, per_page)
    on = today()
    published = exists().where(
        OpenLicenceOffer.patent_id == Patent.id, OpenLicenceOffer.status == OfferStatus.PUBLISHED
    )
    patents = await session.scalars(
        select(Patent)
        .where(
            Patent.owner_organisation_id == actor.organisation_id,
            Patent.legal_status == LegalStatus.GRANTED,
            Patent.implemented.is_(False),
            Patent.grant_date <= rules.latest_grant_date(on, rules.CANDIDATE_YEARS_AFTER_GRANT),
            ~published,
        )
        .order_by(Patent.grant_date, Patent.id)
    )
    candidates = []
    for patent in patents.all():
        facts = _candidate_facts(patent, has_published_offer=False)
        if not rules.is_open_licence_candidate(facts, on):
            continue
        candidates.append(
            Candidate(
                patent=patent,
                state_licensable=rules.is_state_licensable(facts, on),
                next_fee=rules.next_annual_fee(patent.patent_type, patent.filing_date, on, patent.expiry_date),
            )
        )
    start = (page - 1) * per_page
    return Candidates(
        page=Page(items=candidates[start : start + per_page], number=page, per_page=per_page, total=len(candidates)),
        total_saving_fen=sum(candidate.saving_fen for candidate in candidates),
        state_licensable_count=sum(candidate.state_licensable for candidate in candidates),
    )
