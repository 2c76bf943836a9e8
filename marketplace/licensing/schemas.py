"""Request and response shapes of the contracts API (``/api/v1/contracts``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from marketplace.licensing.models import LicenceContract, PaymentObligation, WrittenNotice


class AcceptBody(msgspec.Struct, kw_only=True):
    """The written notice's fields. ``idempotency_key`` (8–64 letters, digits, ``-`` or ``_``) may
    instead come in the ``Idempotency-Key`` header; repeating it returns the same contract."""

    intended_field_of_use: str = ""
    start_date: str | None = None
    signatory_name: str = ""
    signatory_title: str = ""
    idempotency_key: str | None = None

    def values(self, header_key: str | None) -> dict[str, Any]:
        return {
            "intended_field_of_use": self.intended_field_of_use,
            "start_date": self.start_date,
            "signatory_name": self.signatory_name,
            "signatory_title": self.signatory_title,
            "idempotency_key": self.idempotency_key or header_key or "",
        }


class ContractCreate(AcceptBody, kw_only=True):
    offer_id: int


class TerminationBody(msgspec.Struct, kw_only=True):
    reason: str = ""
    end_date: str | None = None


class ObligationOut(msgspec.Struct):
    sequence: int
    kind: str
    description: str
    amount_fen: int | None
    due_date: date | None
    period_start: date | None
    period_end: date | None
    after_first_revenue: bool

    @classmethod
    def of(cls, line: PaymentObligation) -> ObligationOut:
        return cls(
            line.sequence,
            line.kind.value,
            line.description,
            line.amount_fen,
            line.due_date,
            line.period_start,
            line.period_end,
            line.after_first_revenue,
        )


class NoticeOut(msgspec.Struct):
    notified_at: datetime
    sha256: str
    html_url: str
    pdf_url: str


class TerminationOut(msgspec.Struct):
    requested_by_organisation_id: int
    requested_at: datetime
    end_date: date | None
    reason: str | None


class PartyOut(msgspec.Struct):
    organisation_id: int
    name: str
    uscc: str | None
    verification_status: str


class ContractOut(msgspec.Struct):
    id: int
    number: str
    status: str
    offer_id: int
    offer_version: int
    patent_id: int
    patent_number: str
    patent_title: str
    licensor: PartyOut
    licensee: PartyOut
    licence_type: str
    payment_mode: str
    pay_after_use: bool
    terms_description: str
    fee_terms: dict[str, Any]
    territory: str
    intended_field_of_use: str
    signatory_name: str
    signatory_title: str
    signed_on: date
    start_date: date
    end_date: date
    ended_on: date | None
    end_reason: str | None
    end_note: str | None
    held_from_filing: bool
    termination_request: TerminationOut | None
    obligations: list[ObligationOut]
    notice: NoticeOut | None
    contract_pdf_url: str

    @classmethod
    def of(cls, contract: LicenceContract, notice: WrittenNotice | None = None) -> ContractOut:
        frozen = contract.terms_snapshot
        request = None
        if contract.termination_requested_at is not None:
            assert contract.termination_requested_by_organisation_id is not None
            request = TerminationOut(
                contract.termination_requested_by_organisation_id,
                contract.termination_requested_at,
                contract.termination_end_date,
                contract.termination_reason,
            )
        base = f"/api/v1/contracts/{contract.id}"
        return cls(
            id=contract.id,
            number=contract.number,
            status=contract.status.value,
            offer_id=contract.offer_id,
            offer_version=frozen["offer"]["version"],
            patent_id=contract.patent_id,
            patent_number=frozen["patent"]["patent_number"],
            patent_title=frozen["patent"]["title"],
            licensor=_party(contract.licensor, frozen["licensor"]),
            licensee=_party(contract.licensee, frozen["licensee"]),
            licence_type=frozen["licence_type"],
            payment_mode=contract.payment_mode,
            pay_after_use=contract.pay_after_use,
            terms_description=frozen["terms"]["description"],
            fee_terms=frozen["terms"]["fee_terms"],
            territory=frozen["terms"]["territory"],
            intended_field_of_use=contract.intended_field_of_use,
            signatory_name=contract.signatory_name,
            signatory_title=contract.signatory_title,
            signed_on=contract.signed_on,
            start_date=contract.start_date,
            end_date=contract.end_date,
            ended_on=contract.ended_on,
            end_reason=contract.end_reason.value if contract.end_reason else None,
            end_note=contract.end_note,
            held_from_filing=contract.licensee.verification_status.value != "verified",
            termination_request=request,
            obligations=[ObligationOut.of(line) for line in contract.obligations],
            notice=(
                NoticeOut(notice.notified_at, notice.sha256, f"{base}/notice.html", f"{base}/notice.pdf")
                if notice
                else None
            ),
            contract_pdf_url=f"{base}/contract.pdf",
        )


def _party(organisation: Any, frozen: dict[str, Any]) -> PartyOut:
    return PartyOut(organisation.id, frozen["name"], frozen["uscc"], organisation.verification_status.value)


class ContractPage(msgspec.Struct):
    items: list[ContractOut]
    total: int
    page: int
    per_page: int
