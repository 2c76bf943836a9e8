"""Pure account rules: who is acting, what they may do, and organisation codes."""

from __future__ import annotations

from dataclasses import dataclass

from stdnum.cn import uscc as stdnum_uscc

from marketplace.accounts.models import OrganisationKind, Role

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
MIN_PASSWORD_LENGTH = 10


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

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN

    @property
    def is_org_admin(self) -> bool:
        # An API token acts for its whole organisation, so it carries the organisation admin's rights.
        return self.role is Role.ORG_ADMIN or (self.via == "api" and not self.is_platform_admin)

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
