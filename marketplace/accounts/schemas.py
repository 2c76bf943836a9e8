"""Shapes of the enterprise JSON API (``/api/v1/enterprises``), documented in the OpenAPI schema.

Input fields are plain strings with empty defaults, so a missing or malformed value is reported
by the sign-up rules as a field error (422) under the same name as the JSON field
(``admin.email`` for the admin's email), rather than as a bare parse error.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from marketplace.accounts import rules
from marketplace.accounts.models import Organisation
from marketplace.accounts.rules import EnterpriseSignUp
from marketplace.paging import Page


class AdminIn(msgspec.Struct, kw_only=True):
    """The enterprise's first user, who becomes its organisation admin."""

    display_name: str = ""
    email: str = ""
    password: str = ""


class EnterpriseIn(msgspec.Struct, kw_only=True):
    """An enterprise registering itself (企业注册). ``division_code``: GB/T 2260 six digits;
    ``enterprise_size``: micro | small | medium | large; ``industry_code``: GB/T 4754 section A–T;
    ``contact_phone``: a mobile (13812345678) or a landline with area code (010-12345678[-123])."""

    name: str = ""
    uscc: str = ""
    division_code: str = ""
    enterprise_size: str = ""
    industry_code: str = ""
    address: str = ""
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    admin: AdminIn = msgspec.field(default_factory=AdminIn)

    def to_sign_up(self) -> EnterpriseSignUp:
        return EnterpriseSignUp(
            name=self.name,
            uscc=self.uscc,
            division_code=self.division_code,
            enterprise_size=self.enterprise_size,
            industry_code=self.industry_code,
            address=self.address,
            contact_name=self.contact_name,
            contact_email=self.contact_email,
            contact_phone=self.contact_phone,
            admin_display_name=self.admin.display_name,
            admin_email=self.admin.email,
            admin_password=self.admin.password,
        )


class VerifyBody(msgspec.Struct):
    note: str = ""


class RejectBody(msgspec.Struct):
    reason: str = ""


class EnterpriseOut(msgspec.Struct):
    """A registered enterprise and where its verification stands. ``email_confirmation`` is "sent"
    on the sign-up response (a confirmation link went to the admin's email), absent otherwise."""

    id: int
    name: str
    uscc: str | None
    division_code: str | None
    division_name: str | None
    enterprise_size: str | None
    enterprise_size_label: str | None
    industry_code: str | None
    industry_name: str | None
    address: str | None
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    verification_status: str
    verification_status_label: str
    verification_note: str | None
    verified_at: datetime | None
    created_at: datetime
    email_confirmation: str | msgspec.UnsetType = msgspec.UNSET

    @classmethod
    def of(cls, organisation: Organisation, *, email_confirmation: str | None = None) -> EnterpriseOut:
        size = organisation.enterprise_size
        return cls(
            id=organisation.id,
            name=organisation.name,
            uscc=organisation.uscc,
            division_code=organisation.division_code,
            division_name=rules.division_name(organisation.division_code),
            enterprise_size=size.value if size else None,
            enterprise_size_label=size.label if size else None,
            industry_code=organisation.industry_code,
            industry_name=rules.INDUSTRIES.get(organisation.industry_code or ""),
            address=organisation.address,
            contact_name=organisation.contact_name,
            contact_email=organisation.contact_email,
            contact_phone=organisation.contact_phone,
            verification_status=organisation.verification_status.value,
            verification_status_label=organisation.verification_status.label,
            verification_note=organisation.verification_note,
            verified_at=organisation.verified_at,
            created_at=organisation.created_at,
            email_confirmation=email_confirmation if email_confirmation else msgspec.UNSET,
        )


class EnterprisePage(msgspec.Struct):
    items: list[EnterpriseOut]
    total: int
    page: int
    per_page: int
    pages: int

    @classmethod
    def of(cls, page: Page[Organisation]) -> EnterprisePage:
        return cls(
            items=[EnterpriseOut.of(o) for o in page.items],
            total=page.total,
            page=page.number,
            per_page=page.per_page,
            pages=page.pages,
        )
