"""Account use cases: organisations, users, passwords, API tokens, principals; enterprise sign-up
(企业注册) with email confirmation, invitations of colleagues, and the platform admin's enterprise
verification (企业信息核验).

Emailed links are single-use ``AccountToken`` rows of which only the SHA-256 is stored; their mail
is queued through the outbox in the same transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import rules
from marketplace.accounts.models import (
    AccountToken,
    AccountTokenPurpose,
    ApiToken,
    EnterpriseSize,
    Organisation,
    OrganisationKind,
    Role,
    User,
    VerificationStatus,
)
from marketplace.accounts.rules import (
    EnterpriseSignUp,
    LinkState,
    Principal,
    normalise_uscc,
    password_error,
    uscc_error,
)
from marketplace.audit.services import AuditLine, apply_transition, record, trail
from marketplace.clock import BUSINESS_TZ, now_utc
from marketplace.errors import Conflict, DomainError, FieldError, NotFound, ValidationFailed
from marketplace.filings import codes
from marketplace.matching.services import WARM_LIST
from marketplace.outbox.services import add_side_effect, queue_email
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.settings import Settings

ORGANISATION = "organisation"

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
        email_confirmed=user.email_confirmed_at is not None,
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


EMAIL_TAKEN = "该邮箱已被使用"


async def _email_taken(session: AsyncSession, email: str) -> bool:
    return await session.scalar(select(User.id).where(User.email == email)) is not None


async def _duplicates(session: AsyncSession, *, name: str | None, uscc: str | None) -> list[FieldError]:
    """An organisation name or USCC already registered (both are unique)."""
    errors = []
    if name and await session.scalar(select(Organisation.id).where(Organisation.name == name)):
        errors.append(FieldError("name", "该机构名称已注册", "duplicate"))
    if uscc and await session.scalar(select(Organisation.id).where(Organisation.uscc == uscc)):
        errors.append(FieldError("uscc", "该统一社会信用代码已注册", "duplicate"))
    return errors


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
    # One statement: every API call pays for this look-up.
    row = (
        await session.execute(
            select(ApiToken.id, User)
            .join(User, User.id == ApiToken.created_by_user_id)
            .where(
                ApiToken.token_hash == _token_hash(raw),
                ApiToken.revoked_at.is_(None),
                User.organisation_id == ApiToken.organisation_id,
                User.is_active.is_(True),
            )
        )
    ).first()
    if row is None:
        return None
    token_id, user = row
    return principal_for(user, via="api", token_id=token_id)


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
    enterprise_size: EnterpriseSize | None = None,
    industry_code: str | None = None,
    verification_status: VerificationStatus = VerificationStatus.PENDING,
    actor: Principal | None = None,
) -> Organisation:
    errors: list[FieldError] = []
    name = name.strip()
    if not name:
        errors.append(FieldError("name", "请填写机构名称", "required"))
    code = normalise_uscc(uscc) if uscc else None
    if code is None and kind is not OrganisationKind.PLATFORM:
        errors.append(FieldError("uscc", "请填写统一社会信用代码", "required"))
    elif code is not None:
        problem = uscc_error(code)
        if problem:
            errors.append(FieldError("uscc", problem))
    if division_code is not None:
        problem = rules.division_error(division_code)
        if problem:
            errors.append(FieldError("division_code", problem))
    problem = rules.industry_error(industry_code) if industry_code is not None else None
    if problem:
        errors.append(FieldError("industry_code", problem))
    errors += await _duplicates(session, name=name, uscc=code if code and not uscc_error(code) else None)
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
        enterprise_size=enterprise_size,
        industry_code=industry_code.upper() if industry_code else None,
        verification_status=verification_status,
        verified_at=now_utc() if verification_status is VerificationStatus.VERIFIED else None,
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
    email_confirmed: bool = True,
) -> User:
    """A new user. Accounts made by an administrator or through an emailed invitation count as
    confirmed; self-registered ones (``email_confirmed=False``) must confirm their address."""
    errors: list[FieldError] = []
    email = normalise_email(email)
    problem = rules.email_error(email)
    if problem:
        errors.append(FieldError("email", problem))
    elif await _email_taken(session, email):
        errors.append(FieldError("email", EMAIL_TAKEN, "duplicate"))
    problem = rules.display_name_error(display_name)
    if problem:
        errors.append(FieldError("display_name", problem))
    problem = password_error(password)
    if problem:
        errors.append(FieldError("password", problem))
    platform_roles = (Role.PLATFORM_ADMIN, Role.EXPERT)
    if role in platform_roles and organisation.kind is not OrganisationKind.PLATFORM:
        errors.append(FieldError("role", "只有平台运营方的用户可以是平台管理员或评审专家"))
    if role not in platform_roles and organisation.kind is OrganisationKind.PLATFORM:
        errors.append(FieldError("role", "平台运营方的用户必须是平台管理员或评审专家"))
    if errors:
        raise ValidationFailed(errors)
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=hash_password(password),
        organisation_id=organisation.id,
        role=role,
        email_confirmed_at=now_utc() if email_confirmed else None,
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


# ---------------------------------------------------------------------------------------------
# Enterprise sign-up (企业注册)
# ---------------------------------------------------------------------------------------------


def normalised_sign_up(data: EnterpriseSignUp) -> EnterpriseSignUp:
    """The submission as it will be stored: codes upper-cased, emails lower-cased, phone tidied."""
    return EnterpriseSignUp(
        name=data.name.strip(),
        uscc=normalise_uscc(data.uscc),
        division_code=data.division_code.strip(),
        enterprise_size=data.enterprise_size.strip(),
        industry_code=data.industry_code.strip().upper(),
        address=data.address.strip(),
        contact_name=data.contact_name.strip(),
        contact_email=normalise_email(data.contact_email),
        contact_phone=rules.normalise_phone(data.contact_phone),
        admin_display_name=data.admin_display_name.strip(),
        admin_email=normalise_email(data.admin_email),
        admin_password=data.admin_password,
        admin_password_confirm=data.admin_password_confirm,
    )


async def register_enterprise(
    session: AsyncSession, *, settings: Settings, data: EnterpriseSignUp
) -> tuple[Organisation, User]:
    """An enterprise registers itself and its first user, the organisation admin.

    The enterprise waits for a platform admin's verification; the admin's email is unconfirmed
    until they follow the link mailed here. Every problem is reported at once, field by field.
    """
    data = normalised_sign_up(data)
    errors = rules.sign_up_errors(data)
    bad = {error.field for error in errors}
    errors += await _duplicates(
        session,
        name=data.name if "name" not in bad else None,
        uscc=data.uscc if "uscc" not in bad else None,
    )
    if "admin.email" not in bad and await _email_taken(session, data.admin_email):
        errors.append(FieldError("admin.email", "该邮箱已注册，请直接登录", "duplicate"))
    if errors:
        raise ValidationFailed(errors)
    organisation = await create_organisation(
        session,
        name=data.name,
        kind=OrganisationKind.ENTERPRISE,
        uscc=data.uscc,
        division_code=data.division_code,
        address=data.address,
        contact_name=data.contact_name,
        contact_email=data.contact_email,
        contact_phone=data.contact_phone,
        enterprise_size=EnterpriseSize(data.enterprise_size),
        industry_code=data.industry_code,
        verification_status=VerificationStatus.PENDING,
    )
    user = await create_user(
        session,
        organisation=organisation,
        email=data.admin_email,
        display_name=data.admin_display_name,
        password=data.admin_password,
        role=Role.ORG_ADMIN,
        email_confirmed=False,
    )
    await record(
        session,
        entity_type=ORGANISATION,
        entity_id=organisation.id,
        action="sign_up",
        actor=principal_for(user),
        to_state=VerificationStatus.PENDING.value,
        details={"uscc": organisation.uscc, "admin_user_id": user.id},
    )
    await send_confirmation(session, settings=settings, user=user)
    # Its recommendations, computed by the worker from the sign-up's industry and province, so that
    # the first visit to 为我推荐 does not rank the whole catalogue (marketplace.matching.lists).
    add_side_effect(session, kind=WARM_LIST, payload={"organisation_id": organisation.id}, key=f"{organisation.id}")
    return organisation, user


# ---------------------------------------------------------------------------------------------
# Emailed links: email confirmation and invitations
# ---------------------------------------------------------------------------------------------


class LinkUnusable(DomainError):
    """An emailed link that was already used, or has expired (or was revoked)."""

    status = 400
    code = "link_unusable"

    def __init__(self, message: str, state: LinkState) -> None:
        super().__init__(message)
        self.state = state


def _link(settings: Settings, path: str) -> str:
    return settings.public_base_url + path


def _until(moment: datetime) -> str:
    return moment.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")


async def _issue_link(
    session: AsyncSession,
    *,
    purpose: AccountTokenPurpose,
    organisation_id: int,
    email: str,
    lifetime: timedelta,
    user_id: int | None = None,
    display_name: str | None = None,
    role: Role | None = None,
    created_by_user_id: int | None = None,
) -> tuple[str, AccountToken]:
    raw = secrets.token_urlsafe(32)
    token = AccountToken(
        purpose=purpose,
        token_hash=_token_hash(raw),
        organisation_id=organisation_id,
        user_id=user_id,
        email=email,
        display_name=display_name,
        role=role,
        created_by_user_id=created_by_user_id,
        expires_at=now_utc() + lifetime,
    )
    session.add(token)
    await session.flush()
    return raw, token


async def send_confirmation(session: AsyncSession, *, settings: Settings, user: User) -> AccountToken:
    """Mail ``user`` a single-use link that confirms their address (valid 72 hours)."""
    raw, token = await _issue_link(
        session,
        purpose=AccountTokenPurpose.CONFIRM_EMAIL,
        organisation_id=user.organisation_id,
        email=user.email,
        lifetime=rules.CONFIRMATION_LIFETIME,
        user_id=user.id,
    )
    link = _link(settings, f"/confirm-email/{raw}")
    await queue_email(
        session,
        to=user.email,
        subject="请确认您的邮箱 · 专利开放许可平台",
        body=(
            f"{user.display_name}，您好：\n\n"
            f"您在专利开放许可平台以“{user.organisation.name}”的名义注册了账号。"
            f"请在 {_until(token.expires_at)}（北京时间）前打开下面的链接确认您的邮箱：\n\n{link}\n\n"
            "确认后即可接受开放许可。该链接只能使用一次。如果这不是您本人的操作，请忽略本邮件。"
        ),
        dedupe_key=f"account_token:{token.id}",
    )
    return token


async def resend_confirmation(session: AsyncSession, *, settings: Settings, actor: Principal) -> User:
    """Another confirmation link for the signed-in user; earlier links stay valid until they expire."""
    user = await session.get(User, actor.user_id)
    if user is None:
        raise NotFound("用户不存在")
    if user.email_confirmed_at is not None:
        raise Conflict("您的邮箱已确认，无需再次发送")
    live = await session.scalar(
        select(func.count())
        .select_from(AccountToken)
        .where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == AccountTokenPurpose.CONFIRM_EMAIL,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now_utc(),
        )
    )
    if (live or 0) >= rules.MAX_LIVE_CONFIRMATIONS:
        raise Conflict("确认邮件已多次发送，请先查收邮箱（含垃圾邮件箱）中的链接")
    token = await send_confirmation(session, settings=settings, user=user)
    await record(session, entity_type="user", entity_id=user.id, action="resend_confirmation", actor=actor,
                 details={"account_token_id": token.id})
    return user


async def _usable_link(session: AsyncSession, raw: str, purpose: AccountTokenPurpose) -> AccountToken:
    token = await session.scalar(
        select(AccountToken).where(AccountToken.token_hash == _token_hash(raw), AccountToken.purpose == purpose)
    )
    if token is None:
        raise NotFound("链接无效：请检查是否完整复制了邮件中的链接")
    state = rules.link_state(expires_at=token.expires_at, used_at=token.used_at, now=now_utc())
    if state is LinkState.VALID:
        return token
    if purpose is AccountTokenPurpose.CONFIRM_EMAIL:
        message = {
            LinkState.USED: "该确认链接已经使用过。如您的邮箱尚未确认，请登录后重新发送确认邮件。",
            LinkState.EXPIRED: "该确认链接已过期（有效期72小时）。请登录后重新发送确认邮件。",
        }[state]
    else:
        message = {
            LinkState.USED: "该邀请已被接受，请直接登录。",
            LinkState.EXPIRED: "该邀请已过期或已被撤销，请联系贵机构的管理员重新邀请。",
        }[state]
    raise LinkUnusable(message, state)


async def confirm_email(session: AsyncSession, raw: str) -> User:
    """Follow a confirmation link: the user's address is confirmed and the link is spent."""
    token = await _usable_link(session, raw, AccountTokenPurpose.CONFIRM_EMAIL)
    user = await session.get(User, token.user_id) if token.user_id else None
    if user is None or user.email != token.email:
        raise NotFound("链接无效：该账号或邮箱已不存在")
    now = now_utc()
    token.used_at = now
    if user.email_confirmed_at is None:
        user.email_confirmed_at = now
        await record(session, entity_type="user", entity_id=user.id, action="confirm_email",
                     actor=principal_for(user), details={"email": user.email})
    await session.flush()
    return user


async def invite(
    session: AsyncSession, *, settings: Settings, actor: Principal, email: str, display_name: str, role: str
) -> AccountToken:
    """An organisation admin invites a colleague, or a platform admin an expert (评审专家): a link
    valid 7 days lets them set their password."""
    email = normalise_email(email)
    display_name = display_name.strip()
    errors: list[FieldError] = []
    problem = rules.email_error(email)
    if problem:
        errors.append(FieldError("email", problem))
    elif await _email_taken(session, email):
        errors.append(FieldError("email", "该邮箱已注册为平台用户，无法再次邀请", "duplicate"))
    elif await _pending_invitation(session, actor.organisation_id, email) is not None:
        errors.append(FieldError("email", "已向该邮箱发出邀请且尚未接受；如需重发，请先撤销原邀请", "duplicate"))
    problem = rules.display_name_error(display_name)
    if problem:
        errors.append(FieldError("display_name", problem))
    if actor.is_platform_admin:
        if role != Role.EXPERT.value:
            errors.append(FieldError("role", "平台管理员只能邀请评审专家"))
    elif role not in (Role.ORG_ADMIN.value, Role.ORG_MEMBER.value):
        errors.append(FieldError("role", "请选择角色：机构成员或机构管理员"))
    if errors:
        raise ValidationFailed(errors)
    organisation = await session.get(Organisation, actor.organisation_id)
    raw, token = await _issue_link(
        session,
        purpose=AccountTokenPurpose.INVITATION,
        organisation_id=actor.organisation_id,
        email=email,
        lifetime=rules.INVITATION_LIFETIME,
        display_name=display_name,
        role=Role(role),
        created_by_user_id=actor.user_id,
    )
    link = _link(settings, f"/invitations/{raw}")
    await queue_email(
        session,
        to=email,
        subject=f"{actor.display_name}邀请您加入“{organisation.name}” · 专利开放许可平台",
        body=(
            f"{display_name}，您好：\n\n"
            f"{actor.display_name}邀请您以“{Role(role).label}”身份加入“{organisation.name}”在专利开放许可平台的账号。"
            f"请在 {_until(token.expires_at)}（北京时间）前打开下面的链接设置密码：\n\n{link}\n\n"
            "该链接只能使用一次。如果您不认识邀请人，请忽略本邮件。"
        ),
        dedupe_key=f"account_token:{token.id}",
    )
    await record(session, entity_type="account_invitation", entity_id=token.id, action="create", actor=actor,
                 details={"email": email, "role": role})
    return token


async def _pending_invitation(session: AsyncSession, organisation_id: int, email: str) -> AccountToken | None:
    return await session.scalar(
        select(AccountToken).where(
            AccountToken.organisation_id == organisation_id,
            AccountToken.purpose == AccountTokenPurpose.INVITATION,
            AccountToken.email == email,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now_utc(),
        )
    )


async def pending_invitations(session: AsyncSession, organisation_id: int) -> list[AccountToken]:
    """Invitations not yet accepted, expired or revoked, newest first."""
    return list(
        await session.scalars(
            select(AccountToken)
            .where(
                AccountToken.organisation_id == organisation_id,
                AccountToken.purpose == AccountTokenPurpose.INVITATION,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > now_utc(),
            )
            .order_by(AccountToken.id.desc())
        )
    )


async def revoke_invitation(session: AsyncSession, *, actor: Principal, invitation_id: int) -> None:
    """The link stops working at once (it expires now); the row and its audit trail stay."""
    token = await session.get(AccountToken, invitation_id)
    if (
        token is None
        or token.purpose is not AccountTokenPurpose.INVITATION
        or token.organisation_id != actor.organisation_id
    ):
        raise NotFound("邀请不存在")
    state = rules.link_state(expires_at=token.expires_at, used_at=token.used_at, now=now_utc())
    if state is LinkState.USED:
        raise Conflict("该邀请已被接受，无法撤销")
    if state is LinkState.VALID:
        token.expires_at = now_utc()
        await record(session, entity_type="account_invitation", entity_id=token.id, action="revoke", actor=actor)


@dataclass(frozen=True)
class Invitation:
    token: AccountToken
    organisation: Organisation


async def open_invitation(session: AsyncSession, raw: str) -> Invitation:
    token = await _usable_link(session, raw, AccountTokenPurpose.INVITATION)
    organisation = await session.get(Organisation, token.organisation_id)
    if organisation is None:
        raise NotFound("链接无效：该机构已不存在")
    return Invitation(token=token, organisation=organisation)


async def accept_invitation(
    session: AsyncSession, raw: str, *, display_name: str, password: str, password_confirm: str
) -> User:
    """The invitee sets their name and password; the account exists from now on, its email confirmed
    (the invitee received the link there)."""
    invitation = await open_invitation(session, raw)
    token = invitation.token
    if await _email_taken(session, token.email):
        raise Conflict("该邮箱已注册，请直接登录")
    display_name = display_name.strip()
    errors = []
    problem = rules.display_name_error(display_name)
    if problem:
        errors.append(FieldError("display_name", problem))
    problem = password_error(password)
    if problem:
        errors.append(FieldError("password", problem))
    if password_confirm != password:
        errors.append(FieldError("password_confirm", "两次输入的密码不一致", "mismatch"))
    if errors:
        raise ValidationFailed(errors)
    user = await create_user(
        session,
        organisation=invitation.organisation,
        email=token.email,
        display_name=display_name,
        password=password,
        role=token.role or Role.ORG_MEMBER,
        email_confirmed=True,
    )
    token.used_at = now_utc()
    token.user_id = user.id
    await record(
        session, entity_type="account_invitation", entity_id=token.id, action="accept",
        actor=principal_for(user), details={"user_id": user.id, "invited_by_user_id": token.created_by_user_id},
    )
    return user


# ---------------------------------------------------------------------------------------------
# Enterprise verification (企业信息核验)
# ---------------------------------------------------------------------------------------------


async def list_enterprises(
    session: AsyncSession, *, status: VerificationStatus | None, page: int = 1, per_page: int = PER_PAGE
) -> Page[Organisation]:
    """Registered enterprises in one verification state (all without one). The pending queue is
    oldest first, so the longest wait is handled first; the others newest first."""
    page, per_page = page_bounds(page, per_page)
    query = select(Organisation).where(Organisation.kind == OrganisationKind.ENTERPRISE)
    if status is not None:
        query = query.where(Organisation.verification_status == status)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if status is VerificationStatus.PENDING:
        order = (Organisation.created_at.asc(), Organisation.id.asc())
    else:
        order = (Organisation.created_at.desc(), Organisation.id.desc())
    items = await session.scalars(query.order_by(*order).offset((page - 1) * per_page).limit(per_page))
    return Page(items=list(items), number=page, per_page=per_page, total=int(total))


async def get_enterprise(session: AsyncSession, actor: Principal, organisation_id: int) -> Organisation:
    """An enterprise as its own people or a platform admin see it; to anyone else it does not exist."""
    organisation = await session.get(Organisation, organisation_id)
    visible = organisation is not None and (actor.is_platform_admin or organisation.id == actor.organisation_id)
    if not visible or organisation.kind is not OrganisationKind.ENTERPRISE:
        raise NotFound("企业不存在")
    return organisation


async def _decide(
    session: AsyncSession,
    *,
    settings: Settings,
    actor: Principal,
    organisation_id: int,
    to_state: VerificationStatus,
    note: str | None,
) -> Organisation:
    if not actor.is_platform_admin:
        raise NotFound("企业不存在")
    organisation = await get_enterprise(session, actor, organisation_id)
    action = "verify" if to_state is VerificationStatus.VERIFIED else "reject"
    await apply_transition(
        session,
        entity=organisation,
        entity_type=ORGANISATION,
        to_state=to_state,
        allowed=rules.VERIFICATION_TRANSITIONS,
        actor=actor,
        action=action,
        reason=note,
    )
    decided = now_utc()
    organisation.verification_note = note
    organisation.verified_at = decided if to_state is VerificationStatus.VERIFIED else None
    await _notify_admins(session, settings, organisation, decided)
    return organisation


async def _notify_admins(
    session: AsyncSession, settings: Settings, organisation: Organisation, decided: datetime
) -> None:
    if organisation.verification_status is VerificationStatus.VERIFIED:
        subject = f"企业信息核验通过：{organisation.name}"
        outcome = "已通过平台核验。贵企业签订的开放许可合同将按规定报送备案。"
    else:
        subject = f"企业信息未通过核验：{organisation.name}"
        outcome = (
            f"未通过平台核验。原因：{organisation.verification_note}\n"
            "核验通过前，贵企业签订的许可合同暂不报送备案。请核对企业信息后联系平台运营方重新核验。"
        )
    body = (
        f"“{organisation.name}”（统一社会信用代码 {organisation.uscc}）{outcome}\n\n"
        f"查看机构信息：{_link(settings, '/account/organisation')}"
    )
    for admin in await organisation_admins(session, organisation.id):
        await queue_email(
            session, to=admin.email, subject=subject, body=body,
            dedupe_key=f"organisation:{organisation.id}:{organisation.verification_status.value}:"
            f"{decided.isoformat()}:{admin.id}",
        )


async def organisation_admins(session: AsyncSession, organisation_id: int) -> list[User]:
    """The organisation's active admins, who receive its notices."""
    query = select(User).where(
        User.organisation_id == organisation_id, User.role == Role.ORG_ADMIN, User.is_active.is_(True)
    )
    return list(await session.scalars(query.order_by(User.id)))


async def verify_enterprise(
    session: AsyncSession, *, settings: Settings, actor: Principal, organisation_id: int, note: str | None = None
) -> Organisation:
    """The platform admin confirms the enterprise's particulars (pending or rejected → verified)."""
    text = (note or "").strip() or None
    if text and len(text) > rules.MAX_REASON_LENGTH:
        raise ValidationFailed.single("note", f"核验说明不能超过{rules.MAX_REASON_LENGTH}个字符")
    return await _decide(
        session, settings=settings, actor=actor, organisation_id=organisation_id,
        to_state=VerificationStatus.VERIFIED, note=text,
    )


async def reject_enterprise(
    session: AsyncSession, *, settings: Settings, actor: Principal, organisation_id: int, reason: str | None
) -> Organisation:
    """The platform admin refuses the enterprise's particulars, with a reason its admins are sent."""
    text = (reason or "").strip()
    problem = rules.reason_error(text, "不通过的原因")
    if problem:
        raise ValidationFailed.single("reason", problem, "required" if not text else "invalid")
    return await _decide(
        session, settings=settings, actor=actor, organisation_id=organisation_id,
        to_state=VerificationStatus.REJECTED, note=text,
    )


def nature_choices(kind: OrganisationKind) -> list[tuple[str, str]]:
    """The party nature codes (单位性质) that fit an organisation kind, as (code, name)."""
    return [(code, name) for code, name in codes.PARTY_NATURES.items() if codes.nature_fits_kind(kind, code)]


async def set_party_nature(
    session: AsyncSession, *, actor: Principal, organisation_id: int, nature_code: str
) -> Organisation:
    """The platform admin records an enterprise's party nature (单位性质), which the technology-contract
    registration needs and enterprises have no default for."""
    organisation = await get_enterprise(session, actor, organisation_id)
    code = nature_code.strip()
    if not code:
        raise ValidationFailed.single("nature_code", "请选择单位性质", "required")
    if code not in dict(nature_choices(organisation.kind)):
        raise ValidationFailed.single("nature_code", "所选单位性质不在企业类代码表中", "invalid")
    before = organisation.nature_code
    if code == before:
        return organisation
    organisation.nature_code = code
    previous = f"{before} {codes.PARTY_NATURES.get(before, '')}".strip() if before else "未设置"
    await record(
        session,
        entity_type=ORGANISATION,
        entity_id=organisation.id,
        action="set_nature_code",
        actor=actor,
        reason=f"单位性质：{code} {codes.PARTY_NATURES[code]}（原：{previous}）",
        details={"from": before, "to": code},
    )
    return organisation


async def organisation_audit(session: AsyncSession, organisation_id: int) -> list[AuditLine]:
    return await trail(session, ORGANISATION, organisation_id, VerificationStatus)
