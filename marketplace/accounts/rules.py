"""Pure account rules: who is acting, what they may do, organisation codes (USCC, GB/T 2260
divisions, GB/T 4754 industry sections), contact details, enterprise sign-up checks, emailed-link
lifetimes and the enterprise verification state machine."""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from stdnum.cn import uscc as stdnum_uscc

from marketplace.accounts.models import EnterpriseSize, OrganisationKind, Role, VerificationStatus
from marketplace.errors import FieldError

_DATA = Path(__file__).with_name("data")

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
MIN_PASSWORD_LENGTH = 10
MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 300
MAX_PERSON_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254
MAX_REASON_LENGTH = 2000


@dataclass(frozen=True)
class Principal:
    """The person (and organisation) behind a request, from a web session or an API token."""

    user_id: int
    organisation_id: int
    organisation_kind: OrganisationKind
    organisation_name: str
    role: Role
    display_name: str
    via: str = "web"
    token_id: int | None = None
    email_confirmed: bool = True

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN

    @property
    def is_org_admin(self) -> bool:
        # An API token acts for its whole organisation, so it carries the organisation admin's rights.
        return self.role is Role.ORG_ADMIN or (self.via == "api" and not self.is_platform_admin)

    @property
    def is_expert(self) -> bool:
        return self.role is Role.EXPERT

    @property
    def can_hold_patents(self) -> bool:
        return self.organisation_kind is not OrganisationKind.PLATFORM


def normalise_uscc(raw: str) -> str:
    return raw.strip().upper().replace(" ", "").replace("-", "")


def uscc_error(raw: str) -> str | None:
    """Why a unified social credit code (GB 32100-2015) is invalid, or None if it is valid.

    python-stdnum's ``validate`` also demands that characters 3–8 be digits, which rejects real
    codes; its check-character calculation is right, so only that is used.
    """
    code = normalise_uscc(raw)
    if len(code) != 18:
        return "统一社会信用代码应为18位"
    bad = [c for c in code if c not in USCC_ALPHABET]
    if bad:
        return f"统一社会信用代码含有无效字符“{bad[0]}”（不使用 I、O、S、V、Z）"
    if stdnum_uscc.calc_check_digit(code[:17]) != code[17]:
        return "统一社会信用代码校验位不正确"
    return None


def password_error(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少需要{MIN_PASSWORD_LENGTH}个字符"
    if password.isdigit() or password.isalpha():
        return "密码需同时包含字母和数字或符号"
    return None


def email_error(email: str) -> str | None:
    """Why an (already normalised) email address is unusable, or None."""
    if not email:
        return "请填写电子邮箱"
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        return "请输入有效的电子邮箱"
    if len(email) > MAX_EMAIL_LENGTH or any(c.isspace() for c in email):
        return "请输入有效的电子邮箱"
    return None


# ---------------------------------------------------------------------------------------------
# Code tables
# ---------------------------------------------------------------------------------------------


def _code_table(name: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for line in (_DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            code, label = line.split("\t", 1)
            table[code.strip()] = label.strip()
    return table


#: GB/T 2260 administrative divisions: six-digit code → full name (province, city, county).
DIVISIONS = _code_table("divisions.tsv")
#: GB/T 4754-2017 industry sections: letter A–T → name.
INDUSTRIES = _code_table("industries.tsv")
DIVISION_MATCHES = 20


def division_name(code: str | None) -> str | None:
    return DIVISIONS.get(code.strip()) if code else None


def division_error(code: str) -> str | None:
    code = code.strip()
    if not code:
        return "请填写行政区划代码"
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return "行政区划代码应为6位数字（GB/T 2260），例如 110108"
    if code not in DIVISIONS:
        return f"行政区划代码“{code}”不存在（GB/T 2260）"
    return None


def division_matches(query: str, limit: int = DIVISION_MATCHES) -> list[tuple[str, str]]:
    """Divisions whose code starts with ``query`` (digits) or whose name contains it, in code order."""
    text = query.strip()
    if not text:
        return []
    if text.isascii() and text.isdigit():
        found = ((code, name) for code, name in DIVISIONS.items() if code.startswith(text))
    else:
        found = ((code, name) for code, name in DIVISIONS.items() if text in name)
    matches = []
    for match in found:
        matches.append(match)
        if len(matches) == limit:
            break
    return matches


def industry_label(code: str | None) -> str:
    if not code:
        return "—"
    name = INDUSTRIES.get(code)
    return f"{code} {name}" if name else code


def industry_error(code: str) -> str | None:
    if not code.strip():
        return "请选择所属行业门类"
    if code.strip().upper() not in INDUSTRIES:
        return "所属行业门类应为 GB/T 4754 的门类字母 A–T"
    return None


def enterprise_size_error(value: str) -> str | None:
    if not value.strip():
        return "请选择企业规模"
    if value.strip() not in EnterpriseSize._value2member_map_:
        return "企业规模应为微型、小型、中型或大型"
    return None


# ---------------------------------------------------------------------------------------------
# Phone numbers
# ---------------------------------------------------------------------------------------------

_MOBILE = re.compile(r"1[3-9]\d{9}")
# Area code 0 + 2–3 digits, a 7–8 digit local number, and an optional extension (-123, 转123, ext123).
_LANDLINE = re.compile(r"0\d{2,3}-\d{7,8}(?:(?:-|转|ext\.?|#)\d{1,6})?", re.IGNORECASE)


def normalise_phone(raw: str) -> str:
    """Full-width characters folded (０７５５－…); "(010) 1234…" and "010 1234…" become "010-1234…";
    other spaces removed."""
    text = unicodedata.normalize("NFKC", raw).strip()
    text = re.sub(r"^\((0\d{2,3})\)\s*", r"\1-", text)
    text = re.sub(r"^(0\d{2,3})\s+(?=\d)", r"\1-", text)
    return re.sub(r"\s+", "", text)


def phone_error(raw: str) -> str | None:
    phone = normalise_phone(raw)
    if not phone:
        return "请填写联系电话"
    if _MOBILE.fullmatch(phone) or _LANDLINE.fullmatch(phone):
        return None
    return (
        "联系电话应为11位手机号（如 13812345678）"
        "或带区号的固定电话（如 010-12345678、0755-1234567，可加分机号 -123）"
    )


# ---------------------------------------------------------------------------------------------
# Enterprise sign-up (企业注册)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnterpriseSignUp:
    """What an enterprise submits to register: itself and its first user (the organisation admin).

    Field names are the JSON API's; the admin's fields are reported as ``admin.<field>``.
    ``password_confirm`` is the form's second password entry (None on the API, which has none).
    """

    name: str
    uscc: str
    division_code: str
    enterprise_size: str
    industry_code: str
    address: str
    contact_name: str
    contact_email: str
    contact_phone: str
    admin_display_name: str
    admin_email: str
    admin_password: str
    admin_password_confirm: str | None = None


def _text_error(value: str, *, missing: str, limit: int, what: str) -> str | None:
    if not value.strip():
        return missing
    if len(value.strip()) > limit:
        return f"{what}不能超过{limit}个字符"
    return None


def display_name_error(name: str) -> str | None:
    return _text_error(name, missing="请填写姓名", limit=MAX_PERSON_NAME_LENGTH, what="姓名")


def sign_up_errors(data: EnterpriseSignUp) -> list[FieldError]:
    """Every problem of a sign-up that can be seen without the database, field by field.

    Emails are expected normalised (trimmed, lower case)."""
    checks: list[tuple[str, str | None]] = [
        ("name", _text_error(data.name, missing="请填写企业名称", limit=MAX_NAME_LENGTH, what="企业名称")),
        ("uscc", "请填写统一社会信用代码" if not data.uscc.strip() else uscc_error(data.uscc)),
        ("division_code", division_error(data.division_code)),
        ("enterprise_size", enterprise_size_error(data.enterprise_size)),
        ("industry_code", industry_error(data.industry_code)),
        ("address", _text_error(data.address, missing="请填写企业地址", limit=MAX_ADDRESS_LENGTH, what="地址")),
        (
            "contact_name",
            _text_error(data.contact_name, missing="请填写联系人", limit=MAX_PERSON_NAME_LENGTH, what="联系人"),
        ),
        ("contact_email", email_error(data.contact_email)),
        ("contact_phone", phone_error(data.contact_phone)),
        ("admin.display_name", display_name_error(data.admin_display_name)),
        ("admin.email", email_error(data.admin_email)),
        ("admin.password", password_error(data.admin_password)),
    ]
    errors = [FieldError(field, message) for field, message in checks if message]
    if data.admin_password_confirm is not None and data.admin_password_confirm != data.admin_password:
        errors.append(FieldError("admin.password_confirm", "两次输入的密码不一致", "mismatch"))
    return errors


# ---------------------------------------------------------------------------------------------
# Emailed links (确认邮箱、邀请)
# ---------------------------------------------------------------------------------------------

CONFIRMATION_LIFETIME = timedelta(hours=72)
INVITATION_LIFETIME = timedelta(days=7)
#: Unexpired confirmation links one user may hold: resending stops there, so the button cannot spam.
MAX_LIVE_CONFIRMATIONS = 5


class LinkState(enum.StrEnum):
    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"


def link_state(*, expires_at: datetime, used_at: datetime | None, now: datetime) -> LinkState:
    if used_at is not None:
        return LinkState.USED
    if now >= expires_at:
        return LinkState.EXPIRED
    return LinkState.VALID


# ---------------------------------------------------------------------------------------------
# Enterprise verification (企业信息核验)
# ---------------------------------------------------------------------------------------------

#: The platform admin checks a registered enterprise against the national enterprise credit
#: register. A rejected enterprise may be verified after a re-check; a verified one may be
#: rejected later (deregistered, or the check was wrong), which holds its contracts back from
#: filing exports again. Nothing goes back to pending: the audit trail keeps every decision.
VERIFICATION_TRANSITIONS: dict[VerificationStatus, frozenset[VerificationStatus]] = {
    VerificationStatus.PENDING: frozenset({VerificationStatus.VERIFIED, VerificationStatus.REJECTED}),
    VerificationStatus.REJECTED: frozenset({VerificationStatus.VERIFIED}),
    VerificationStatus.VERIFIED: frozenset({VerificationStatus.REJECTED}),
}


def verification_actions(status: VerificationStatus) -> frozenset[VerificationStatus]:
    """The decisions a platform admin can take on an enterprise in this state (buttons on its page)."""
    return VERIFICATION_TRANSITIONS.get(status, frozenset())


def reason_error(reason: str, what: str) -> str | None:
    if not reason.strip():
        return f"请填写{what}"
    if len(reason.strip()) > MAX_REASON_LENGTH:
        return f"{what}不能超过{MAX_REASON_LENGTH}个字符"
    return None
