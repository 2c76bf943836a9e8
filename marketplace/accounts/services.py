"""Account use cases: organisations, users, passwords, API tokens, principals."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import ApiToken, Organisation, OrganisationKind, Role, User, VerificationStatus
from marketplace.accounts.rules import Principal, normalise_uscc, password_error, uscc_error
from marketplace.audit.services import record
from marketplace.clock import now_utc
from marketplace.errors import FieldError, NotFound, ValidationFailed

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a failed login costs the same either way.
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")
TOKEN_PREFIX = "mpt_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def principal_for(user: User, *, via: str = "web", token_id: int | None = None) -> Principal:
    return Principal(
        user_id=user.id,
        organisation_id=user.organisation_id,
        organisation_kind=user.organisation.kind,
        organisation_name=user.organisation.name,
        role=user.role,
        display_name=user.display_name,
        via=via,
        token_id=token_id,
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now_utc()
    return user


async def load_principal(session: AsyncSession, user_id: int) -> Principal | None:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    return principal_for(user)


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


async def principal_for_token(session: AsyncSession, raw: str) -> Principal | None:
    token = await session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _token_hash(raw), ApiToken.revoked_at.is_(None))
    )
    if token is None:
        return None
    user = await session.get(User, token.created_by_user_id)
    if user is None or not user.is_active or user.organisation_id != token.organisation_id:
        return None
    return principal_for(user, via="api", token_id=token.id)


async def create_organisation(
    session: AsyncSession,
    *,
    name: str,
    kind: OrganisationKind,
    uscc: str | None,
    division_code: str | None = None,
    address: str | None = None,
    contact_name: str | None = None,
    contact_email: str | None = None,
    contact_phone: str | None = None,
    verification_status: VerificationStatus = VerificationStatus.PENDING,
    actor: Principal | None = None,
) -> Organisation:
    errors: list[FieldError] = []
    name = name.strip()
    if not name:
        errors.append(FieldError("name", "请填写机构名称", "required"))
    elif await session.scalar(select(Organisation.id).where(Organisation.name == name)):
        errors.append(FieldError("name", "该机构名称已注册", "duplicate"))
    code = normalise_uscc(uscc) if uscc else None
    if code is None and kind is not OrganisationKind.PLATFORM:
        errors.append(FieldError("uscc", "请填写统一社会信用代码", "required"))
    elif code is not None:
        problem = uscc_error(code)
        if problem:
            errors.append(FieldError("uscc", problem))
        elif await session.scalar(select(Organisation.id).where(Organisation.uscc == code)):
            errors.append(FieldError("uscc", "该统一社会信用代码已注册", "duplicate"))
    if division_code is not None and not (len(division_code) == 6 and division_code.isdigit()):
        errors.append(FieldError("division_code", "行政区划代码应为6位数字"))
    if errors:
        raise ValidationFailed(errors)
    organisation = Organisation(
        name=name,
        kind=kind,
        uscc=code,
        division_code=division_code,
        address=address,
        contact_name=contact_name,
        contact_email=contact_email,
        contact_phone=contact_phone,
        verification_status=verification_status,
    )
    session.add(organisation)
    await session.flush()
    await record(
        session,
        entity_type="organisation",
        entity_id=organisation.id,
        action="create",
        actor=actor,
        to_state=verification_status.value,
    )
    return organisation


async def create_user(
    session: AsyncSession,
    *,
    organisation: Organisation,
    email: str,
    display_name: str,
    password: str,
    role: Role,
    actor: Principal | None = None,
) -> User:
    errors: list[FieldError] = []
    email = normalise_email(email)
    if "@" not in email or "." not in email.rsplit("@", 1)[-1] or len(email) > 254:
        errors.append(FieldError("email", "请输入有效的电子邮箱"))
    elif await session.scalar(select(User.id).where(User.email == email)):
        errors.append(FieldError("email", "该邮箱已被使用", "duplicate"))
    if not display_name.strip():
        errors.append(FieldError("display_name", "请填写姓名", "required"))
    problem = password_error(password)
    if problem:
        errors.append(FieldError("password", problem))
    if role is Role.PLATFORM_ADMIN and organisation.kind is not OrganisationKind.PLATFORM:
        errors.append(FieldError("role", "只有平台运营方的用户可以是平台管理员"))
    if role is not Role.PLATFORM_ADMIN and organisation.kind is OrganisationKind.PLATFORM:
        errors.append(FieldError("role", "平台运营方的用户必须是平台管理员"))
    if errors:
        raise ValidationFailed(errors)
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=hash_password(password),
        organisation_id=organisation.id,
        role=role,
    )
    user.organisation = organisation
    session.add(user)
    await session.flush()
    await record(session, entity_type="user", entity_id=user.id, action="create", actor=actor, to_state=role.value)
    return user


async def list_users(session: AsyncSession, organisation_id: int) -> list[User]:
    return list(await session.scalars(select(User).where(User.organisation_id == organisation_id).order_by(User.id)))


async def create_api_token(session: AsyncSession, *, actor: Principal, name: str) -> tuple[str, ApiToken]:
    """Returns the plaintext token (shown once) and its record."""
    name = name.strip()
    if not name:
        raise ValidationFailed.single("name", "请为令牌命名（例如：盘点系统对接）", "required")
    if len(name) > 100:
        raise ValidationFailed.single("name", "名称不能超过100个字符")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        organisation_id=actor.organisation_id,
        name=name,
        token_hash=_token_hash(raw),
        token_prefix=raw[: len(TOKEN_PREFIX) + 6],
        created_by_user_id=actor.user_id,
    )
    session.add(token)
    await session.flush()
    await record(session, entity_type="api_token", entity_id=token.id, action="create", actor=actor)
    return raw, token


async def list_api_tokens(session: AsyncSession, organisation_id: int) -> list[ApiToken]:
    return list(
        await session.scalars(
            select(ApiToken).where(ApiToken.organisation_id == organisation_id).order_by(ApiToken.id.desc())
        )
    )


async def revoke_api_token(session: AsyncSession, *, actor: Principal, token_id: int) -> None:
    token = await session.get(ApiToken, token_id)
    if token is None or token.organisation_id != actor.organisation_id:
        raise NotFound("令牌不存在")
    if token.revoked_at is None:
        token.revoked_at = now_utc()
        await record(session, entity_type="api_token", entity_id=token.id, action="revoke", actor=actor)


async def count_platform_admins(session: AsyncSession) -> int:
    query = select(func.count()).select_from(User).where(User.role == Role.PLATFORM_ADMIN)
    return int(await session.scalar(query) or 0)


async def ensure_platform_organisation(session: AsyncSession, name: str = "平台运营中心") -> Organisation:
    existing = await session.scalar(select(Organisation).where(Organisation.kind == OrganisationKind.PLATFORM))
    if existing is not None:
        return existing
    return await create_organisation(
        session, name=name, kind=OrganisationKind.PLATFORM, uscc=None, verification_status=VerificationStatus.VERIFIED
    )
