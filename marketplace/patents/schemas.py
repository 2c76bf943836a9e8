"""Shapes of the patents JSON API (``/api/v1/patents``, ``/api/v1/inventory-uploads``), documented
in the OpenAPI schema. Dates are ISO 8601; the field names are the inventory table's column keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any

from litestar.datastructures import UploadFile

from marketplace.evaluations.models import PatentTier
from marketplace.evaluations.schemas import TierOut
from marketplace.patents.models import InventoryUpload, LegalStatus, Patent, PatentType, TransferIntent, UploadMode


class LicenceRestriction(enum.StrEnum):
    """存在独占或排他许可: none, an exclusive (独占) or a sole (排他) licence in force."""

    NONE = "none"
    EXCLUSIVE = "exclusive"
    SOLE = "sole"

    @property
    def label(self) -> str:
        return {"none": "无", "exclusive": "独占许可", "sole": "排他许可"}[self.value]

    @classmethod
    def of(cls, patent: Patent) -> LicenceRestriction:
        if patent.exclusive_licence:
            return cls.EXCLUSIVE
        return cls.SOLE if patent.sole_licence else cls.NONE


@dataclass
class PatentIn:
    """A patent to register or replace (PUT replaces every field). ``patent_type`` may be omitted:
    the application number's type digit decides it, and a given type must agree."""

    application_number: str
    title: str
    filing_date: date
    legal_status: LegalStatus
    patent_type: PatentType | None = None
    grant_date: date | None = None
    annual_fee_paid_until: date | None = None
    expiry_override: date | None = None
    ipc_main: str | None = None
    ipc_codes: list[str] = field(default_factory=list)
    abstract: str = ""
    inventors: list[str] = field(default_factory=list)
    co_owners: list[str] = field(default_factory=list)
    co_owner_consent: bool = False
    pledged: bool = False
    pledgee_consent: bool = False
    exclusive_or_sole_licence: LicenceRestriction = LicenceRestriction.NONE
    proceedings_suspended: bool = False
    government_funded: bool = False
    implemented: bool = False
    trl: int | None = None
    transfer_intents: list[TransferIntent] = field(default_factory=list)
    application_scenarios: str = ""
    claims_count: int | None = None

    def values(self) -> dict[str, Any]:
        """The raw fields for :func:`marketplace.patents.rules.validate_patent`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class PatentOut:
    """A registered patent. ``expiry_date`` is computed (filing date + term − 1 day) unless overridden."""

    id: int
    url: str
    application_number: str
    patent_number: str
    patent_type: PatentType
    patent_type_label: str
    is_pct: bool
    title: str
    owner_organisation_id: int
    filing_date: date
    grant_date: date | None
    legal_status: LegalStatus
    legal_status_label: str
    annual_fee_paid_until: date | None
    expiry_override: date | None
    expiry_date: date
    ipc_main: str | None
    ipc_codes: list[str]
    abstract: str
    inventors: list[str]
    co_owners: list[str]
    co_owner_consent: bool
    pledged: bool
    pledgee_consent: bool
    exclusive_or_sole_licence: LicenceRestriction
    proceedings_suspended: bool
    government_funded: bool
    implemented: bool
    trl: int | None
    transfer_intents: list[TransferIntent]
    application_scenarios: str
    claims_count: int | None
    created_at: datetime
    updated_at: datetime
    #: The tier (分层) of a catalogue patent; null until it is tiered (only catalogue patents are).
    tier: TierOut | None = None

    @classmethod
    def from_model(cls, patent: Patent, tier: PatentTier | None = None) -> PatentOut:
        return cls(
            id=patent.id,
            url=f"/patents/{patent.id}",
            application_number=patent.application_number,
            patent_number=patent.patent_number,
            patent_type=patent.patent_type,
            patent_type_label=patent.patent_type.label,
            is_pct=patent.is_pct,
            title=patent.title,
            owner_organisation_id=patent.owner_organisation_id,
            filing_date=patent.filing_date,
            grant_date=patent.grant_date,
            legal_status=patent.legal_status,
            legal_status_label=patent.legal_status.label,
            annual_fee_paid_until=patent.annual_fee_paid_until,
            expiry_override=patent.expiry_override,
            expiry_date=patent.expiry_date,
            ipc_main=patent.ipc_main,
            ipc_codes=list(patent.ipc_codes),
            abstract=patent.abstract,
            inventors=list(patent.inventors),
            co_owners=list(patent.co_owners),
            co_owner_consent=patent.co_owner_consent,
            pledged=patent.pledged,
            pledgee_consent=patent.pledgee_consent,
            exclusive_or_sole_licence=LicenceRestriction.of(patent),
            proceedings_suspended=patent.proceedings_suspended,
            government_funded=patent.government_funded,
            implemented=patent.implemented,
            trl=patent.trl,
            transfer_intents=[TransferIntent(value) for value in patent.transfer_intents],
            application_scenarios=patent.application_scenarios,
            claims_count=patent.claims_count,
            created_at=patent.created_at,
            updated_at=patent.updated_at,
            tier=TierOut.of(tier) if tier is not None else None,
        )


@dataclass(frozen=True)
class PatentPage:
    items: list[PatentOut]
    total: int
    page: int
    per_page: int
    pages: int


@dataclass
class InventoryUploadForm:
    """``multipart/form-data``: the inventory table (CSV in UTF-8 or GBK, or XLSX) and the import mode.
    ``valid_rows`` imports the valid rows and reports the others; ``all_or_nothing`` imports nothing
    unless every row is valid (otherwise 422 with every row's problems)."""

    file: UploadFile
    mode: UploadMode = UploadMode.VALID_ROWS


@dataclass(frozen=True)
class RowError:
    """One problem of one spreadsheet row: ``row`` counts the header as row 1, ``field`` is the column header."""

    row: int
    field: str
    message: str
    code: str


@dataclass(frozen=True)
class UploadReport:
    """What an inventory upload did: rows read, patents created and updated, rows rejected and why."""

    id: int
    url: str
    filename: str
    file_format: str
    mode: UploadMode
    rows: int
    created: int
    updated: int
    rejected: int
    errors: list[RowError]
    created_at: datetime

    @classmethod
    def from_model(cls, upload: InventoryUpload) -> UploadReport:
        return cls(
            id=upload.id,
            url=f"/inventory-uploads/{upload.id}",
            filename=upload.filename,
            file_format=upload.file_format,
            mode=upload.mode,
            rows=upload.rows_total,
            created=upload.created_count,
            updated=upload.updated_count,
            rejected=upload.rejected_count,
            errors=[RowError(e["row"], e["field"], e["message"], e.get("code", "invalid")) for e in upload.report],
            created_at=upload.created_at,
        )
