"""Pure filing rules: the sync state machine, deadlines, the contract value, what each registry holds
on record, and the two export column sets mapped to the official forms (docs/filings.md).

Nothing here touches the database: :class:`ContractFacts` is read by ``services.load_facts``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from marketplace.accounts.models import OrganisationKind
from marketplace.billing.rules import payment_plan, prorated_minimum
from marketplace.filings import codes
from marketplace.filings.models import FilingStatus, RecordKind, Registry
from marketplace.licensing.models import EndReason, ObligationKind
from marketplace.money import FEN_PER_YUAN
from marketplace.offers.rules import FeeTerms, PayAfterUseTerms, add_months, royalty_of
from marketplace.patents.models import PatentType

#: Patent Law implementing rules: the licence contract is filed within three months of taking effect.
FILING_DEADLINE_MONTHS = 3
LICENCE_TYPE = "普通实施许可"
CONTRACT_CATEGORY = "技术许可"
CONTRACT_SUBCATEGORY = "专利实施许可"

FILING_TRANSITIONS: dict[FilingStatus, frozenset[FilingStatus]] = {
    FilingStatus.NOT_DUE: frozenset({FilingStatus.DUE, FilingStatus.NOT_REQUIRED}),
    FilingStatus.DUE: frozenset({FilingStatus.EXPORTED, FilingStatus.NOT_REQUIRED}),
    FilingStatus.EXPORTED: frozenset({FilingStatus.FILED, FilingStatus.REFUSED, FilingStatus.CANCELLED}),
    FilingStatus.REFUSED: frozenset({FilingStatus.EXPORTED, FilingStatus.NOT_REQUIRED}),
    # A filed record needs a change or a cancellation record when the contract changes or ends early.
    FilingStatus.FILED: frozenset({FilingStatus.DUE}),
    FilingStatus.CANCELLED: frozenset(),
    FilingStatus.NOT_REQUIRED: frozenset(),
}
#: States in which the next export picks the contract up.
EXPORTABLE = frozenset({FilingStatus.DUE, FilingStatus.REFUSED})
#: States in which the registry holds nothing for the contract yet (the deadline still runs).
UNFILED = frozenset({FilingStatus.DUE, FilingStatus.EXPORTED, FilingStatus.REFUSED})


def filing_due_on(effective_on: date) -> date:
    return add_months(effective_on, FILING_DEADLINE_MONTHS)


def deadline_flag(due_on: date | None, today: date, warning_days: int) -> str | None:
    """``"overdue"`` past the filing deadline, ``"approaching"`` within ``warning_days`` of it."""
    if due_on is None:
        return None
    if today > due_on:
        return "overdue"
    if (due_on - today).days <= warning_days:
        return "approaching"
    return None


def record_after_end(end_reason: EndReason | None) -> RecordKind | None:
    """What a filed record needs when its contract ends: a cancellation (注销) when the parties ended it
    early; nothing when the term ran out or the patent ended (the filing lapses with them)."""
    return RecordKind.CANCELLATION if end_reason is EndReason.AGREEMENT else None


# ---------------------------------------------------------------------------------------------
# The contract value (合同成交额)
# ---------------------------------------------------------------------------------------------


def contract_value_fen(
    terms: FeeTerms, *, start: date, end: date, term_months: int, first_revenue_on: date | None
) -> int:
    """What the contract fixes at signing: its fixed payments (lump sum, instalments, entry fee) plus
    the guaranteed annual minimums of its royalties (pro-rated for a short year, within the cap).
    Royalties above the minimum are not known when signing; they show in the payments received."""
    plan = payment_plan(terms, start=start, end=end, term_months=term_months, first_revenue_on=first_revenue_on)
    fixed = sum(item.amount_fen or 0 for item in plan if item.kind is not ObligationKind.TRUE_UP)
    royalty = royalty_of(terms)
    minimums = 0
    if royalty is not None and royalty.annual_minimum_fen:
        minimums = sum(
            prorated_minimum(royalty.annual_minimum_fen, item.months or 12)
            for item in plan
            if item.kind is ObligationKind.TRUE_UP
        )
        if royalty.cap_fen is not None:
            minimums = min(minimums, royalty.cap_fen)
    return fixed + minimums


def transaction_value_fen(contract_value: int) -> int:
    """技术交易额: the part of the contract value paid for the technology itself. A patent licence on
    this platform sells nothing else (no equipment, materials or services), so it is the whole value."""
    return contract_value


def registry_payment_mode(payment_mode: str, terms: FeeTerms) -> tuple[str, str]:
    if isinstance(terms, PayAfterUseTerms):
        return codes.payment_mode(terms.then.mode.value)
    return codes.payment_mode(payment_mode)


# ---------------------------------------------------------------------------------------------
# Facts of a contract, as the registries see them
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    organisation_id: int
    name: str
    kind: OrganisationKind
    address: str | None
    uscc: str | None
    division_code: str | None
    nature_code: str | None
    verified: bool
    country_code: str = codes.CHINA

    @property
    def is_enterprise(self) -> bool:
        return self.kind is OrganisationKind.ENTERPRISE


@dataclass(frozen=True)
class ContractFacts:
    """A contract as both registries need it. Parties are as they stand now (a renamed or moved party
    needs a change record); the patent and the terms are the snapshot the licence was granted on."""

    contract_id: int
    number: str
    signed_on: date
    start_date: date
    end_date: date
    ended_on: date | None
    end_reason: EndReason | None
    payment_mode: str
    payment_mode_label: str
    fee_description: str
    territory: str
    announcement_number: str | None
    patent_title: str
    application_number: str
    patent_type: PatentType
    patent_filing_date: date
    patent_grant_date: date | None
    ipc_main: str | None
    licensor: Party
    licensee: Party
    contract_value_fen: int
    registry_payment_mode: tuple[str, str]

    @property
    def patent_number(self) -> str:
        return f"ZL{self.application_number}"

    @property
    def term_end(self) -> date:
        """The last day of the licence as filed: the agreed end, or the earlier day it was ended."""
        if self.ended_on is not None and self.end_reason is EndReason.AGREEMENT:
            return min(self.ended_on, self.end_date)
        return self.end_date

    @property
    def project_name(self) -> str:
        return f"专利实施许可合同（{self.patent_title}）"


def _party_record(party: Party, *, codes_too: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"name": party.name, "uscc": party.uscc}
    if codes_too:
        record |= {
            "country_code": party.country_code,
            "division_code": party.division_code,
            "nature_code": codes.party_nature(party.kind, party.nature_code),
        }
    else:
        record["address"] = party.address
    return record


def recorded_values(registry: Registry, facts: ContractFacts) -> dict[str, Any]:
    """The values a registry holds on record for the contract: exported with each record, compared
    with the contract to find what changed and what differs."""
    common = {"start": facts.start_date.isoformat(), "end": facts.end_date.isoformat()}
    if registry is Registry.LICENCE_FILING:
        return common | {
            "licensor": _party_record(facts.licensor, codes_too=False),
            "licensee": _party_record(facts.licensee, codes_too=False),
            "fee_fen": facts.contract_value_fen,
            "payment_mode": facts.payment_mode,
        }
    return common | {
        "seller": _party_record(facts.licensor, codes_too=True),
        "buyer": _party_record(facts.licensee, codes_too=True),
        "contract_value_fen": facts.contract_value_fen,
        "transaction_value_fen": transaction_value_fen(facts.contract_value_fen),
        "payment_mode_code": facts.registry_payment_mode[0],
    }


def fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def changed_fields(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted names of the values that differ (``licensee.address``, ``end`` …)."""
    changed: list[str] = []
    for key in sorted(set(recorded) | set(current)):
        before, after = recorded.get(key), current.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changed += [f"{key}.{name}" for name in changed_fields(before, after)]
        elif before != after:
            changed.append(key)
    return changed


# ---------------------------------------------------------------------------------------------
# Export columns, field by field to the official forms (docs/filings.md has the mapping table)
# ---------------------------------------------------------------------------------------------


def yuan_plain(fen: int) -> str:
    """``1234567`` → ``12345.67``: what the forms' amount fields take (no grouping)."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{cents:02d}"


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _cancelled_on(facts: ContractFacts, kind: RecordKind) -> str:
    return _day(facts.ended_on) if kind is RecordKind.CANCELLATION else ""


LICENCE_FILING_HEADERS: tuple[str, ...] = (
    "记录类型",
    "合同编号",
    "原备案号",
    "许可人名称",
    "许可人地址",
    "许可人统一社会信用代码",
    "被许可人名称",
    "被许可人地址",
    "被许可人统一社会信用代码",
    "专利数量",
    "专利名称",
    "专利号",
    "专利申请日",
    "授权公告日",
    "许可种类",
    "许可期限起始日",
    "许可期限届满日",
    "实施地域范围",
    "使用费（元）",
    "支付方式",
    "使用费及支付方式说明",
    "合同签订日",
    "开放许可声明公告号",
    "注销日期",
)


def licence_filing_row(facts: ContractFacts, kind: RecordKind, filing_number: str | None) -> list[str]:
    """One row of the licence filing (专利实施许可合同备案) export; every cell is text."""
    return [
        kind.label,
        facts.number,
        filing_number or "",
        facts.licensor.name,
        facts.licensor.address or "",
        facts.licensor.uscc or "",
        facts.licensee.name,
        facts.licensee.address or "",
        facts.licensee.uscc or "",
        "1",
        facts.patent_title,
        facts.patent_number,
        _day(facts.patent_filing_date),
        _day(facts.patent_grant_date),
        LICENCE_TYPE,
        _day(facts.start_date),
        _day(facts.term_end),
        facts.territory,
        yuan_plain(facts.contract_value_fen),
        facts.payment_mode_label,
        facts.fee_description,
        _day(facts.signed_on),
        facts.announcement_number or "",
        _cancelled_on(facts, kind),
    ]


REGISTRATION_HEADERS: tuple[str, ...] = (
    "登记类型",
    "项目名称",
    "合同编号",
    "合同类别",
    "合同子类",
    "签订日期",
    "有效期起",
    "有效期止",
    "卖方名称",
    "卖方统一社会信用代码",
    "卖方国别代码",
    "卖方行政区划代码",
    "卖方单位性质代码",
    "买方名称",
    "买方统一社会信用代码",
    "买方国别代码",
    "买方行政区划代码",
    "买方单位性质代码",
    "技术领域代码",
    "技术领域",
    "知识产权类型代码",
    "知识产权类型",
    "专利号",
    "支付方式代码",
    "支付方式",
    "合同成交额（元）",
    "技术交易额（元）",
    "专利实施许可合同备案号",
    "原登记编号",
    "注销日期",
)


def _party_cells(party: Party) -> list[str]:
    return [
        party.name,
        party.uscc or "",
        party.country_code,
        party.division_code or "",
        codes.party_nature(party.kind, party.nature_code) or "",
    ]


def registration_row(
    facts: ContractFacts, kind: RecordKind, registration_number: str | None, licence_filing_number: str | None
) -> list[str]:
    """One row of the technology-contract registration (技术合同认定登记) export; every cell is text.
    ``licence_filing_number`` cross-references the licence filing (empty until it is filed)."""
    field = codes.technology_field(facts.ipc_main)
    ip_type = codes.ip_type(facts.patent_type)
    mode_code, mode_name = facts.registry_payment_mode
    return [
        kind.label,
        facts.project_name,
        facts.number,
        CONTRACT_CATEGORY,
        CONTRACT_SUBCATEGORY,
        _day(facts.signed_on),
        _day(facts.start_date),
        _day(facts.term_end),
        *_party_cells(facts.licensor),
        *_party_cells(facts.licensee),
        field,
        codes.TECHNOLOGY_FIELDS[field],
        ip_type,
        codes.IP_TYPES[ip_type],
        facts.patent_number,
        mode_code,
        mode_name,
        yuan_plain(facts.contract_value_fen),
        yuan_plain(transaction_value_fen(facts.contract_value_fen)),
        licence_filing_number or "",
        registration_number or "",
        _cancelled_on(facts, kind),
    ]


def headers(registry: Registry) -> tuple[str, ...]:
    return LICENCE_FILING_HEADERS if registry is Registry.LICENCE_FILING else REGISTRATION_HEADERS


def held_back_reason(facts: ContractFacts) -> str | None:
    """Why a contract cannot be exported yet: an enterprise party the platform has not verified."""
    for role, party in (("被许可人", facts.licensee), ("许可人", facts.licensor)):
        if party.is_enterprise and not party.verified:
            return f"{role}“{party.name}”尚未通过企业核验"
    return None
