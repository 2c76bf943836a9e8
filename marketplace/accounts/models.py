"""Organisations, their people, API tokens and server-side web sessions."""

from __future__ import annotations

import enum
from datetime import datetime

from advanced_alchemy.extensions.litestar.store import StoreModelMixin
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

from marketplace.db import Base, DateTimeUTC, enum_type


class OrganisationKind(enum.StrEnum):
    UNIVERSITY = "university"
    INSTITUTE = "institute"
    ENTERPRISE = "enterprise"
    PLATFORM = "platform"

    @property
    def label(self) -> str:
        return {"university": "高等院校", "institute": "科研机构", "enterprise": "企业", "platform": "平台运营方"}[
            self.value
        ]


class VerificationStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"

    @property
    def label(self) -> str:
        return {"pending": "待核验", "verified": "已核验", "rejected": "未通过核验"}[self.value]


class EnterpriseSize(enum.StrEnum):
    """Enterprise size class (企业规模) under the national SME classification."""

    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"

    @property
    def label(self) -> str:
        return {"micro": "微型", "small": "小型", "medium": "中型", "large": "大型"}[self.value]


class Role(enum.StrEnum):
    ORG_ADMIN = "org_admin"
    ORG_MEMBER = "org_member"
    PLATFORM_ADMIN = "platform_admin"
    #: An invited expert (评审专家): a user of the platform organisation who evaluates patents and
    #: does nothing else (docs/architecture.md, "Evaluations").
    EXPERT = "expert"

    @property
    def label(self) -> str:
        return {
            "org_admin": "机构管理员",
            "org_member": "机构成员",
            "platform_admin": "平台管理员",
            "expert": "评审专家",
        }[self.value]


class Organisation(Base):
    """An organisation (机构) identified by its unified social credit code (统一社会信用代码)."""

    __tablename__ = "organisations"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(enum_type(OrganisationKind, "organisation_kind"))
    uscc: Mapped[str | None] = mapped_column(String(18), unique=True)
    division_code: Mapped[str | None] = mapped_column(String(6))
    address: Mapped[str | None] = mapped_column(String(300))
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    verification_status: Mapped[VerificationStatus] = mapped_column(
        enum_type(VerificationStatus, "verification_status"), default=VerificationStatus.PENDING
    )
    verification_note: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    enterprise_size: Mapped[EnterpriseSize | None] = mapped_column(enum_type(EnterpriseSize, "enterprise_size"))
    #: GB/T 4754 section letter (A–T).
    industry_code: Mapped[str | None] = mapped_column(String(1))
    #: 技术合同认定登记 party nature code (单位性质, ``filings/data/party_natures.tsv``); universities and
    #: institutes default to 022 / 021 when it is not set.
    nature_code: Mapped[str | None] = mapped_column(String(3))

    users: Mapped[list[User]] = relationship(back_populates="organisation", lazy="noload")
    #: The verification state under the name ``audit.services.apply_transition`` expects.
    status: Mapped[VerificationStatus] = synonym("verification_status")

    @property
    def province_code(self) -> str | None:
        return self.division_code[:2] if self.division_code else None


class User(Base):
    """A person acting for one organisation."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    role: Mapped[Role] = mapped_column(enum_type(Role, "user_role"))
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    email_confirmed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    organisation: Mapped[Organisation] = relationship(back_populates="users", lazy="joined")


class ApiToken(Base):
    """A per-organisation bearer token for the JSON API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(12))
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class AccountTokenPurpose(enum.StrEnum):
    CONFIRM_EMAIL = "confirm_email"
    INVITATION = "invitation"


class AccountToken(Base):
    """A single-use emailed link: confirming a user's address, or inviting a colleague.

    Only the SHA-256 of the token is stored. An invitation carries the invitee's email, name and role;
    the account is created when the invitee sets a password.
    """

    __tablename__ = "account_tokens"

    purpose: Mapped[AccountTokenPurpose] = mapped_column(enum_type(AccountTokenPurpose, "account_token_purpose"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[Role | None] = mapped_column(enum_type(Role, "user_role"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class WebSession(StoreModelMixin):
    """Server-side session storage (Litestar session middleware via advanced-alchemy's store)."""

    __tablename__ = "web_sessions"
