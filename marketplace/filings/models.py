"""Filings of licence contracts with the two official registries: the patent-licence filing
(专利实施许可合同备案) and the technology-contract registration (技术合同认定登记).

Per contract and registry one :class:`ContractFiling` holds the sync state. Exports are immutable
:class:`FilingBatch` es with one :class:`FilingBatchItem` per contract (what was exported, so the
registry's answer can be compared with it). :class:`FilingImport` keeps each imported results file,
:class:`Discrepancy` each reconciliation finding.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import Base, DateTimeUTC, JsonB, Money, enum_type


class Registry(enum.StrEnum):
    LICENCE_FILING = "licence_filing"
    TECH_CONTRACT = "tech_contract"

    @property
    def label(self) -> str:
        return {"licence_filing": "专利实施许可合同备案", "tech_contract": "技术合同认定登记"}[self.value]

    @property
    def short_label(self) -> str:
        return {"licence_filing": "许可备案", "tech_contract": "技术合同登记"}[self.value]

    @property
    def number_label(self) -> str:
        return {"licence_filing": "备案号", "tech_contract": "登记编号"}[self.value]


class RecordKind(enum.StrEnum):
    NEW = "new"
    CHANGE = "change"
    CANCELLATION = "cancellation"

    @property
    def label(self) -> str:
        return {"new": "新备案", "change": "变更", "cancellation": "注销"}[self.value]


class FilingStatus(enum.StrEnum):
    """Where one contract stands with one registry (see ``rules.FILING_TRANSITIONS``)."""

    NOT_DUE = "not_due"
    DUE = "due"
    EXPORTED = "exported"
    FILED = "filed"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    NOT_REQUIRED = "not_required"

    @property
    def label(self) -> str:
        return {
            "not_due": "未到报送时间",
            "due": "待导出",
            "exported": "已导出，待结果",
            "filed": "已办结",
            "refused": "被退回",
            "cancelled": "已注销",
            "not_required": "无需报送",
        }[self.value]


class BatchStatus(enum.StrEnum):
    PREPARING = "preparing"
    READY = "ready"

    @property
    def label(self) -> str:
        return {"preparing": "生成中", "ready": "可下载"}[self.value]


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"

    @property
    def label(self) -> str:
        return {"csv": "CSV（UTF-8，Excel 可直接打开）", "xlsx": "Excel（XLSX）"}[self.value]


class ContractFiling(Base):
    """One contract's standing with one registry.

    ``record_kind`` is what the next (or the pending) record carries; ``number`` is the registry's
    number (备案号 / 16-digit 登记编号) once the first record was filed, kept through changes.
    ``recorded`` holds the values the registry has on record (those of the last filed record), which
    change detection and reconciliation compare with the contract. ``contract_value_fen`` is the
    contract value (合同成交额) the plan fixes at signing.
    """

    __tablename__ = "contract_filings"
    __table_args__ = (
        UniqueConstraint("contract_id", "registry", name="uq_contract_filing_registry"),
        Index("ix_contract_filings_registry_status", "registry", "status"),
        Index("ix_contract_filings_status_due", "status", "due_on"),
        Index("ix_contract_filings_registry_filed", "registry", "filed_on"),
        Index("ix_contract_filings_registry_number", "registry", "number"),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    registry: Mapped[Registry] = mapped_column(enum_type(Registry, "filing_registry"))
    status: Mapped[FilingStatus] = mapped_column(enum_type(FilingStatus, "filing_status"))
    record_kind: Mapped[RecordKind] = mapped_column(enum_type(RecordKind, "filing_record_kind"))
    #: The business date the contract took effect (None while it has not).
    effective_on: Mapped[date | None] = mapped_column()
    #: The licence filing's deadline: three months after the contract took effect.
    due_on: Mapped[date | None] = mapped_column()
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("filing_batches.id", ondelete="RESTRICT"), index=True)
    number: Mapped[str | None] = mapped_column(String(40))
    filed_on: Mapped[date | None] = mapped_column()
    refused_on: Mapped[date | None] = mapped_column()
    refusal_reasons: Mapped[str | None] = mapped_column(Text)
    recorded: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    contract_value_fen: Mapped[int] = mapped_column(Money, default=0)
    #: The last deadline notice mailed to the licensor ("approaching", "overdue").
    deadline_notice: Mapped[str | None] = mapped_column(String(20))


class FilingBatch(Base):
    """An export (导出批次): immutable once made. ``selection`` says how its contracts were chosen."""

    __tablename__ = "filing_batches"

    number: Mapped[str] = mapped_column(String(20), unique=True)
    registry: Mapped[Registry] = mapped_column(enum_type(Registry, "filing_registry"))
    file_format: Mapped[ExportFormat] = mapped_column(enum_type(ExportFormat, "filing_export_format"))
    status: Mapped[BatchStatus] = mapped_column(enum_type(BatchStatus, "filing_batch_status"))
    selection: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    contract_count: Mapped[int] = mapped_column(default=0)
    held_back_count: Mapped[int] = mapped_column(default=0)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("stored_files.id", ondelete="RESTRICT"))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column()
    ready_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class FilingBatchItem(Base):
    """A contract in a batch: the record it carries and the values exported, or why it was held back."""

    __tablename__ = "filing_batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "contract_id", name="uq_filing_batch_item"),
        Index("ix_filing_batch_items_contract", "contract_id"),
    )

    batch_id: Mapped[int] = mapped_column(ForeignKey("filing_batches.id", ondelete="CASCADE"))
    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    record_kind: Mapped[RecordKind] = mapped_column(enum_type(RecordKind, "filing_record_kind"))
    #: Set when the contract was held back rather than exported (e.g. an unverified enterprise).
    held_back_reason: Mapped[str | None] = mapped_column(String(200))
    values: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)


class FilingImport(Base):
    """A registry results file (办理结果) that was imported, and what it changed."""

    __tablename__ = "filing_imports"

    registry: Mapped[Registry] = mapped_column(enum_type(Registry, "filing_registry"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rows_total: Mapped[int] = mapped_column(default=0)
    filed_count: Mapped[int] = mapped_column(default=0)
    refused_count: Mapped[int] = mapped_column(default=0)
    unchanged_count: Mapped[int] = mapped_column(default=0)
    report: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, default=list)


class DiscrepancyKind(enum.StrEnum):
    MISSING_FILING = "missing_filing"
    TERMS_DIFFER = "terms_differ"
    VALUE_DIFFERS = "value_differs"
    PARTY_CODES = "party_codes"
    REFUSED_NOT_REEXPORTED = "refused_not_reexported"

    @property
    def label(self) -> str:
        return {
            "missing_filing": "逾期未备案",
            "terms_differ": "备案的使用费或期限与合同不一致",
            "value_differs": "登记金额与合同金额或到账金额不一致",
            "party_codes": "当事人代码缺失或不一致",
            "refused_not_reexported": "被退回后未重新报送",
        }[self.value]


class Severity(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def label(self) -> str:
        return {"high": "高", "medium": "中", "low": "低"}[self.value]

    @property
    def rank(self) -> int:
        return {"high": 0, "medium": 1, "low": 2}[self.value]


class DiscrepancyStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    CLEARED = "cleared"

    @property
    def label(self) -> str:
        return {"open": "待处理", "resolved": "已处理（附说明）", "cleared": "已消除"}[self.value]


class Discrepancy(Base):
    """A reconciliation finding (对账差异) for one contract, registry and kind.

    ``fingerprint`` hashes the finding's facts: a resolved finding reopens when they change, and one
    whose condition disappeared is cleared by the system.
    """

    __tablename__ = "filing_discrepancies"
    __table_args__ = (
        UniqueConstraint("contract_id", "registry", "kind", name="uq_discrepancy_contract_kind"),
        Index("ix_discrepancies_status_severity", "status", "severity"),
    )

    contract_id: Mapped[int] = mapped_column(ForeignKey("licence_contracts.id", ondelete="RESTRICT"))
    registry: Mapped[Registry] = mapped_column(enum_type(Registry, "filing_registry"))
    kind: Mapped[DiscrepancyKind] = mapped_column(enum_type(DiscrepancyKind, "discrepancy_kind"))
    severity: Mapped[Severity] = mapped_column(enum_type(Severity, "discrepancy_severity"))
    status: Mapped[DiscrepancyStatus] = mapped_column(enum_type(DiscrepancyStatus, "discrepancy_status"))
    detail: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    detected_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolution_note: Mapped[str | None] = mapped_column(Text)
