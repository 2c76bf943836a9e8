"""Patents in an organisation's inventory (专利盘点库)."""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.accounts.models import Organisation
from marketplace.db import Base, JsonB, enum_type


class PatentType(enum.StrEnum):
    INVENTION = "invention"
    UTILITY_MODEL = "utility_model"
    DESIGN = "design"

    @property
    def label(self) -> str:
        return {"invention": "发明", "utility_model": "实用新型", "design": "外观设计"}[self.value]


class LegalStatus(enum.StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    LAPSED = "lapsed"
    INVALIDATED = "invalidated"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return {
            "pending": "审中",
            "granted": "有效（已授权）",
            "lapsed": "失效（未缴年费）",
            "invalidated": "已宣告无效",
            "expired": "期限届满",
        }[self.value]


class TransferIntent(enum.StrEnum):
    ASSIGNMENT = "assignment"
    LICENCE = "licence"
    EQUITY = "equity"
    OWN_USE = "own_use"

    @property
    def label(self) -> str:
        return {"assignment": "转让", "licence": "许可", "equity": "作价入股", "own_use": "自行实施"}[self.value]


class Patent(Base):
    """A patent (专利) owned by one organisation, identified by its canonical application number."""

    __tablename__ = "patents"
    __table_args__ = (
        Index("ix_patents_owner_status", "owner_organisation_id", "legal_status"),
    )

    application_number: Mapped[str] = mapped_column(String(16), unique=True)
    patent_type: Mapped[PatentType] = mapped_column(enum_type(PatentType, "patent_type"))
    is_pct: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str] = mapped_column(String(300))
    abstract: Mapped[str] = mapped_column(Text, default="")
    owner_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    filing_date: Mapped[date] = mapped_column()
    grant_date: Mapped[date | None] = mapped_column()
    expiry_override: Mapped[date | None] = mapped_column()
    expiry_date: Mapped[date] = mapped_column(index=True)
    legal_status: Mapped[LegalStatus] = mapped_column(enum_type(LegalStatus, "legal_status"))
    annual_fee_paid_until: Mapped[date | None] = mapped_column()
    ipc_main: Mapped[str | None] = mapped_column(String(20))
    ipc_codes: Mapped[list[str]] = mapped_column(JsonB, default=list)
    claims_count: Mapped[int | None] = mapped_column()
    inventors: Mapped[list[str]] = mapped_column(JsonB, default=list)
    co_owners: Mapped[list[str]] = mapped_column(JsonB, default=list)
    co_owner_consent: Mapped[bool] = mapped_column(default=False)
    pledged: Mapped[bool] = mapped_column(default=False)
    pledgee_consent: Mapped[bool] = mapped_column(default=False)
    exclusive_licence: Mapped[bool] = mapped_column(default=False)
    sole_licence: Mapped[bool] = mapped_column(default=False)
    proceedings_suspended: Mapped[bool] = mapped_column(default=False)
    government_funded: Mapped[bool] = mapped_column(default=False)
    implemented: Mapped[bool] = mapped_column(default=False)
    trl: Mapped[int | None] = mapped_column()
    transfer_intents: Mapped[list[str]] = mapped_column(JsonB, default=list)
    application_scenarios: Mapped[str] = mapped_column(Text, default="")

    owner: Mapped[Organisation] = relationship(lazy="joined")

    @property
    def patent_number(self) -> str:
        """专利号 = ZL + application number."""
        return f"ZL{self.application_number}"


class UploadMode(enum.StrEnum):
    VALID_ROWS = "valid_rows"
    ALL_OR_NOTHING = "all_or_nothing"

    @property
    def label(self) -> str:
        return {"valid_rows": "导入有效行，报告错误行", "all_or_nothing": "全部有效才导入"}[self.value]


class InventoryUpload(Base):
    """One bulk inventory upload (盘点入库) and its per-row report, kept so it can be read again."""

    __tablename__ = "inventory_uploads"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    file_format: Mapped[str] = mapped_column(String(20))
    mode: Mapped[UploadMode] = mapped_column(enum_type(UploadMode, "upload_mode"))
    rows_total: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    rejected_count: Mapped[int] = mapped_column(default=0)
    #: The rejected rows' problems: ``[{"row", "field", "message", "code"}]``, in row order.
    report: Mapped[list[dict[str, Any]]] = mapped_column(JsonB, default=list)
