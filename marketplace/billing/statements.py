"""The licensor's statement (对账单): per licensee and month, what was invoiced, received and refunded,
and what was still outstanding at the month's end; on the page, as CSV and XLSX, and in the API.

Amounts fall in Asia/Shanghai business months: invoices by ``issued_on`` (void ones left out),
payments by the business date they were received, refunds by the business date they completed.
"Outstanding" (期末未付) is the receivable on the ledger at the end of the month — what the
licensee's open, partly paid and overdue invoices still owed then — so a month keeps a row while a
licensee owes something, and the period's outstanding total is the ledger's receivable at its end.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

import msgspec
import openpyxl
from openpyxl.styles import Alignment, Font
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.accounts.rules import Principal
from marketplace.billing.models import Account, Invoice, InvoiceStatus, LedgerEntry, Payment, Refund, RefundStatus
from marketplace.clock import BUSINESS_TZ, business_date, now_utc, today
from marketplace.errors import FieldError, Forbidden, ValidationFailed
from marketplace.licensing.models import LicenceContract
from marketplace.money import FEN_PER_YUAN, format_yuan

MAX_MONTHS = 36
HEADERS = (
    "被许可方",
    "统一社会信用代码",
    "月份",
    "开具金额（元）",
    "到账金额（元）",
    "退款（元）",
    "期末未付（元）",
    "合同编号",
)
#: Organisations whose business is granting licences see their statement even before the first one.
LICENSOR_KINDS = frozenset({OrganisationKind.UNIVERSITY, OrganisationKind.INSTITUTE})
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# ---------------------------------------------------------------------------------------------
# Months and the period (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @classmethod
    def parse(cls, raw: str) -> Month | None:
        match = _MONTH.match(raw.strip())
        if match is None:
            return None
        year, month = int(match.group(1)), int(match.group(2))
        return cls(year, month) if 2000 <= year <= 2100 and 1 <= month <= 12 else None

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class Period:
    start: Month
    end: Month

    @property
    def months(self) -> Iterator[Month]:
        month = self.start
        while month <= self.end:
            yield month
            month = month.next()

    @property
    def first_day(self) -> date:
        return self.start.first_day

    @property
    def after(self) -> date:
        """The first day after the period."""
        return self.end.next().first_day


def _month_count(start: Month, end: Month) -> int:
    return (end.year - start.year) * 12 + end.month - start.month + 1


def parse_period(raw_from: str, raw_to: str, *, on: date) -> Period:
    """The months from ``raw_from`` to ``raw_to`` (``YYYY-MM``; empty means January of this year and
    this month). Every problem is reported at once, against the field to correct."""
    this_month = Month.of(on)
    start = Month.parse(raw_from) if raw_from.strip() else Month(on.year, 1)
    end = Month.parse(raw_to) if raw_to.strip() else this_month
    errors = []
    if start is None:
        errors.append(FieldError("from", "起始月份应为“年-月”格式，例如 2026-01", "invalid"))
    elif start > this_month:
        errors.append(FieldError("from", f"起始月份不能晚于本月（{this_month}）", "out_of_range"))
    if end is None:
        errors.append(FieldError("to", "截止月份应为“年-月”格式，例如 2026-12", "invalid"))
    if start is not None and end is not None:
        if end < start:
            errors.append(FieldError("to", "截止月份不能早于起始月份", "out_of_range"))
        elif _month_count(start, end) > MAX_MONTHS:
            errors.append(FieldError("to", f"一次最多查询{MAX_MONTHS}个月", "out_of_range"))
    if errors:
        raise ValidationFailed(errors)
    assert start is not None and end is not None
    return Period(start, end)


def optional_id(raw: str, field_name: str, what: str) -> int | None:
    """An id chosen in a filter (empty: none chosen)."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise ValidationFailed([FieldError(field_name, f"{what}无效", "invalid")])
    return int(raw)


# ---------------------------------------------------------------------------------------------
# The statement (pure assembly)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractRef:
    id: int
    number: str
    licensee_id: int


@dataclass(frozen=True)
class Party:
    id: int
    name: str
    uscc: str | None


@dataclass(frozen=True)
class StatementRow:
    licensee: Party
    month: Month
    invoiced_fen: int
    received_fen: int
    refunded_fen: int
    outstanding_fen: int
    contracts: tuple[ContractRef, ...]

    @property
    def contract_numbers(self) -> list[str]:
        return [contract.number for contract in self.contracts]


@dataclass(frozen=True)
class Totals:
    invoiced_fen: int
    received_fen: int
    refunded_fen: int
    outstanding_fen: int


@dataclass(frozen=True)
class Statement:
    licensor: Party
    period: Period
    licensee_id: int | None
    rows: list[StatementRow]
    totals: Totals
    #: The licensees with a contract of the licensor, for the filter.
    licensees: list[Party]

    def filename(self, extension: str) -> str:
        start, end = self.period.start, self.period.end
        return f"statement-{start.year:04d}{start.month:02d}-{end.year:04d}{end.month:02d}.{extension}"


@dataclass(frozen=True)
class Movement:
    """An amount of a contract on a business date."""

    contract_id: int
    on: date
    amount_fen: int


def assemble(
    period: Period,
    *,
    current: Month,
    contracts: dict[int, ContractRef],
    licensees: dict[int, Party],
    invoiced: Iterable[Movement],
    received: Iterable[Movement],
    refunded: Iterable[Movement],
    opening: dict[int, int],
    receivable: Iterable[Movement],
) -> tuple[list[StatementRow], Totals]:
    """Rows per licensee × month and the totals. ``opening`` is each contract's receivable before the
    period, ``receivable`` its movements within it. A month without money moving keeps a row while
    the licensee still owes something, up to the current month."""
    sums: dict[tuple[int, Month], list[int]] = defaultdict(lambda: [0, 0, 0])
    involved: dict[tuple[int, Month], set[int]] = defaultdict(set)
    for column, movements in enumerate((invoiced, received, refunded)):
        for movement in movements:
            contract = contracts.get(movement.contract_id)
            if contract is None:
                continue
            key = (contract.licensee_id, Month.of(movement.on))
            sums[key][column] += movement.amount_fen
            involved[key].add(contract.id)
    moved: dict[tuple[int, Month], int] = defaultdict(int)
    for movement in receivable:
        moved[(movement.contract_id, Month.of(movement.on))] += movement.amount_fen
    balance = {contract_id: opening.get(contract_id, 0) for contract_id in contracts}
    rows = []
    for month in period.months:
        owed: dict[int, int] = defaultdict(int)
        for contract_id, contract in contracts.items():
            balance[contract_id] += moved.get((contract_id, month), 0)
            if balance[contract_id]:
                owed[contract.licensee_id] += balance[contract_id]
                involved[(contract.licensee_id, month)].add(contract_id)
        for licensee_id in {licensee for licensee, m in sums if m == month} | set(owed):
            key = (licensee_id, month)
            if key not in sums and month > current:
                continue
            invoiced_fen, received_fen, refunded_fen = sums.get(key, (0, 0, 0))
            refs = sorted((contracts[c] for c in involved[key]), key=lambda ref: ref.number)
            rows.append(
                StatementRow(
                    licensees[licensee_id],
                    month,
                    invoiced_fen,
                    received_fen,
                    refunded_fen,
                    owed.get(licensee_id, 0),
                    tuple(refs),
                )
            )
    rows.sort(key=lambda row: (row.licensee.name, row.licensee.id, row.month))
    totals = Totals(
        invoiced_fen=sum(row.invoiced_fen for row in rows),
        received_fen=sum(row.received_fen for row in rows),
        refunded_fen=sum(row.refunded_fen for row in rows),
        outstanding_fen=sum(balance.values()),
    )
    return rows, totals


# ---------------------------------------------------------------------------------------------
# Who may read whose statement
# ---------------------------------------------------------------------------------------------


async def _grants_licences(session: AsyncSession, organisation: Organisation) -> bool:
    if organisation.kind in LICENSOR_KINDS:
        return True
    if organisation.kind is OrganisationKind.PLATFORM:
        return False
    granted = exists().where(LicenceContract.licensor_organisation_id == organisation.id)
    return bool(await session.scalar(select(granted)))


async def licensor_for(session: AsyncSession, actor: Principal, licensor_id: int | None) -> Organisation:
    """The organisation whose statement ``actor`` reads: its own (members of a licensor), or the one a
    platform admin chose. An organisation that only takes licences has no statement."""
    if actor.is_platform_admin:
        if licensor_id is None:
            raise ValidationFailed([FieldError("licensor_id", "请选择许可方", "required")])
        chosen = await session.get(Organisation, licensor_id) if licensor_id < 2**63 else None
        if chosen is None or not await _grants_licences(session, chosen):
            raise ValidationFailed([FieldError("licensor_id", "所选机构不是许可方", "invalid")])
        return chosen
    if licensor_id is not None and licensor_id != actor.organisation_id:
        raise Forbidden("只能查看本单位的对账单")
    own = await session.get(Organisation, actor.organisation_id)
    if own is None or not await _grants_licences(session, own):
        raise Forbidden("对账单仅向许可方提供：贵单位没有作为许可方的许可合同")
    return own


async def licensor_choices(session: AsyncSession) -> list[Party]:
    """Organisations that granted at least one licence (for a platform admin's filter)."""
    rows = await session.execute(
        select(Organisation.id, Organisation.name, Organisation.uscc)
        .where(exists().where(LicenceContract.licensor_organisation_id == Organisation.id))
        .order_by(Organisation.name)
    )
    return [Party(*row) for row in rows]


async def licensee_choices(session: AsyncSession, licensor_id: int) -> list[Party]:
    rows = await session.execute(
        select(Organisation.id, Organisation.name, Organisation.uscc)
        .where(
            exists().where(
                LicenceContract.licensee_organisation_id == Organisation.id,
                LicenceContract.licensor_organisation_id == licensor_id,
            )
        )
        .order_by(Organisation.name)
    )
    return [Party(*row) for row in rows]


# ---------------------------------------------------------------------------------------------
# Reading the statement
# ---------------------------------------------------------------------------------------------


def _instant(day: date) -> datetime:
    """Midnight of a business date, as a UTC instant."""
    return datetime.combine(day, time.min, tzinfo=BUSINESS_TZ).astimezone(UTC)


async def statement(
    session: AsyncSession,
    actor: Principal,
    *,
    date_from: str,
    date_to: str,
    licensee_id: int | None = None,
    licensor_id: int | None = None,
) -> Statement:
    """The statement of a licensor for the months ``date_from``–``date_to`` (``YYYY-MM``), optionally of
    one licensee. Members of the licensor read their own; a platform admin names the licensor."""
    licensor = await licensor_for(session, actor, licensor_id)
    choices = await licensee_choices(session, licensor.id)
    errors: list[FieldError] = []
    period = None
    try:
        period = parse_period(date_from, date_to, on=today())
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if licensee_id is not None and licensee_id not in {party.id for party in choices}:
        errors.append(FieldError("licensee_id", "所选被许可方与本单位没有许可合同", "invalid"))
    if errors or period is None:
        raise ValidationFailed(errors)

    contract_query = select(LicenceContract.id, LicenceContract.number, LicenceContract.licensee_organisation_id).where(
        LicenceContract.licensor_organisation_id == licensor.id
    )
    if licensee_id is not None:
        contract_query = contract_query.where(LicenceContract.licensee_organisation_id == licensee_id)
    contracts = {
        contract_id: ContractRef(contract_id, number, licensee)
        for contract_id, number, licensee in await session.execute(contract_query)
    }
    ids = list(contracts)
    start, after = period.first_day, period.after
    rows, totals = assemble(
        period,
        current=Month.of(today()),
        contracts=contracts,
        licensees={party.id: party for party in choices},
        invoiced=await _invoiced(session, ids, start, after),
        received=await _received(session, ids, start, after),
        refunded=await _refunded(session, ids, start, after),
        opening=await _opening(session, ids, start),
        receivable=await _receivable(session, ids, start, after),
    )
    return Statement(
        licensor=Party(licensor.id, licensor.name, licensor.uscc),
        period=period,
        licensee_id=licensee_id,
        rows=rows,
        totals=totals,
        licensees=choices,
    )


def _batches(ids: list[int], size: int = 5000) -> Iterator[list[int]]:
    """Contract ids in slices small enough for one ``IN (…)`` on either database."""
    for offset in range(0, len(ids), size):
        yield ids[offset : offset + size]


async def _invoiced(session: AsyncSession, ids: list[int], start: date, after: date) -> list[Movement]:
    found = []
    for batch in _batches(ids):
        rows = await session.execute(
            select(Invoice.contract_id, Invoice.issued_on, Invoice.total_fen).where(
                Invoice.contract_id.in_(batch),
                Invoice.status != InvoiceStatus.VOID,
                Invoice.issued_on >= start,
                Invoice.issued_on < after,
            )
        )
        found += [Movement(contract_id, on, amount) for contract_id, on, amount in rows]
    return found


async def _received(session: AsyncSession, ids: list[int], start: date, after: date) -> list[Movement]:
    """Payments received in the period: the whole amount, applied to the invoice or kept as credit."""
    found = []
    for batch in _batches(ids):
        rows = await session.execute(
            select(Payment.contract_id, Payment.received_at, Payment.amount_fen).where(
                Payment.contract_id.in_(batch),
                Payment.received_at.is_not(None),
                Payment.received_at >= _instant(start),
                Payment.received_at < _instant(after),
            )
        )
        found += [Movement(contract_id, business_date(at), amount) for contract_id, at, amount in rows]
    return found


async def _refunded(session: AsyncSession, ids: list[int], start: date, after: date) -> list[Movement]:
    found = []
    for batch in _batches(ids):
        rows = await session.execute(
            select(Refund.contract_id, Refund.completed_at, Refund.amount_fen).where(
                Refund.contract_id.in_(batch),
                Refund.status == RefundStatus.SUCCEEDED,
                Refund.completed_at >= _instant(start),
                Refund.completed_at < _instant(after),
            )
        )
        found += [Movement(contract_id, business_date(at), amount) for contract_id, at, amount in rows]
    return found


async def _opening(session: AsyncSession, ids: list[int], start: date) -> dict[int, int]:
    """Each contract's receivable before the period."""
    found: dict[int, int] = {}
    for batch in _batches(ids):
        rows = await session.execute(
            select(LedgerEntry.contract_id, func.sum(LedgerEntry.amount_fen))
            .where(
                LedgerEntry.contract_id.in_(batch),
                LedgerEntry.account == Account.RECEIVABLE,
                LedgerEntry.occurred_on < start,
            )
            .group_by(LedgerEntry.contract_id)
        )
        found.update({contract_id: int(amount or 0) for contract_id, amount in rows})
    return found


async def _receivable(session: AsyncSession, ids: list[int], start: date, after: date) -> list[Movement]:
    found = []
    for batch in _batches(ids):
        rows = await session.execute(
            select(LedgerEntry.contract_id, LedgerEntry.occurred_on, func.sum(LedgerEntry.amount_fen))
            .where(
                LedgerEntry.contract_id.in_(batch),
                LedgerEntry.account == Account.RECEIVABLE,
                LedgerEntry.occurred_on >= start,
                LedgerEntry.occurred_on < after,
            )
            .group_by(LedgerEntry.contract_id, LedgerEntry.occurred_on)
        )
        found += [Movement(contract_id, on, int(amount or 0)) for contract_id, on, amount in rows]
    return found


# ---------------------------------------------------------------------------------------------
# Exports: CSV (UTF-8 with BOM, for Excel) and XLSX
# ---------------------------------------------------------------------------------------------


def _plain_yuan(fen: int) -> str:
    """``1234567`` → ``12345.67``: a number a spreadsheet reads, without thousands separators."""
    return format_yuan(fen).replace(",", "")


def _yuan_number(fen: int) -> Decimal:
    return Decimal(fen) / FEN_PER_YUAN


def _lines(st: Statement) -> Iterator[list[object]]:
    """The export's rows after the header, amounts in fen, ending with the totals."""
    for row in st.rows:
        yield [
            row.licensee.name,
            row.licensee.uscc or "",
            str(row.month),
            row.invoiced_fen,
            row.received_fen,
            row.refunded_fen,
            row.outstanding_fen,
            "、".join(row.contract_numbers),
        ]
    t = st.totals
    period = f"{st.period.start}至{st.period.end}"
    yield ["合计", "", period, t.invoiced_fen, t.received_fen, t.refunded_fen, t.outstanding_fen, ""]


def to_csv(st: Statement) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    for line in _lines(st):
        writer.writerow([_plain_yuan(value) if isinstance(value, int) else value for value in line])
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def to_xlsx(st: Statement) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "对账单"
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for line in _lines(st):
        sheet.append([_yuan_number(value) if isinstance(value, int) else value for value in line])
        for cell in sheet[sheet.max_row][3:7]:
            cell.number_format = "#,##0.00"
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)
    for letter, width in zip("ABCDEFGH", (30, 22, 10, 16, 16, 14, 16, 40), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"

    about = workbook.create_sheet("说明")
    for label, value in (
        ("许可方", st.licensor.name),
        ("统一社会信用代码", st.licensor.uscc or ""),
        ("期间", f"{st.period.start} 至 {st.period.end}"),
        ("生成时间", now_utc().astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")),
        ("口径", "开具金额按付款通知书开具日期（不含已作废）；到账金额按到账日期；退款按退款完成日期；"),
        ("", "期末未付为当月月末各付款通知书尚未支付的金额；合计行的期末未付为期间末的未付总额。"),
    ):
        about.append([label, value])
    about.column_dimensions["A"].width = 18
    about.column_dimensions["B"].width = 90
    for row in about.iter_rows():
        row[1].alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# API shape (amounts in fen)
# ---------------------------------------------------------------------------------------------


class PartyOut(msgspec.Struct):
    id: int
    name: str
    uscc: str | None


class StatementRowOut(msgspec.Struct):
    licensee: PartyOut
    month: str
    invoiced_fen: int
    received_fen: int
    refunded_fen: int
    outstanding_fen: int
    contract_numbers: list[str]


class TotalsOut(msgspec.Struct):
    invoiced_fen: int
    received_fen: int
    refunded_fen: int
    outstanding_fen: int


class StatementOut(msgspec.Struct):
    licensor: PartyOut
    date_from: str = msgspec.field(name="from")
    date_to: str = msgspec.field(name="to")
    licensee_id: int | None
    rows: list[StatementRowOut]
    totals: TotalsOut

    @classmethod
    def of(cls, st: Statement) -> StatementOut:
        def party(p: Party) -> PartyOut:
            return PartyOut(p.id, p.name, p.uscc)

        t = st.totals
        return cls(
            licensor=party(st.licensor),
            date_from=str(st.period.start),
            date_to=str(st.period.end),
            licensee_id=st.licensee_id,
            rows=[
                StatementRowOut(
                    party(row.licensee),
                    str(row.month),
                    row.invoiced_fen,
                    row.received_fen,
                    row.refunded_fen,
                    row.outstanding_fen,
                    row.contract_numbers,
                )
                for row in st.rows
            ],
            totals=TotalsOut(t.invoiced_fen, t.received_fen, t.refunded_fen, t.outstanding_fen),
        )
