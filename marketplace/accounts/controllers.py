"""Login and logout; enterprise sign-up (企业注册) with email confirmation; invitations of colleagues;
API tokens; the organisation's own particulars; the platform admin's enterprise verification
(企业核验) pages; and the JSON API ``/api/v1/me`` and ``/api/v1/enterprises``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.accounts import rules, schemas, services
from marketplace.accounts.models import EnterpriseSize, Organisation, Role, User, VerificationStatus
from marketplace.accounts.rules import EnterpriseSignUp
from marketplace.errors import NotFound, ValidationFailed
from marketplace.settings import Settings
from marketplace.web.auth import (
    SESSION_USER_KEY,
    current,
    require_admin,
    require_login,
    require_org_admin,
    require_platform_admin,
)
from marketplace.web.forms import form_data, form_error

PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]
ROLE_OPTIONS = [(Role.ORG_MEMBER.value, Role.ORG_MEMBER.label), (Role.ORG_ADMIN.value, Role.ORG_ADMIN.label)]
AUDIT_ACTIONS = {
    "create": "创建机构记录",
    "sign_up": "企业自助注册",
    "verify": "核验通过",
    "reject": "核验不通过",
    "set_nature_code": "设置单位性质",
}


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//host" or "http://..." would turn the login form into an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _log_in(request: Request, user: User) -> None:
    """A fresh session for ``user`` (never reuse the anonymous one: session fixation)."""
    request.clear_session()
    request.set_session({SESSION_USER_KEY: user.id})


def _organisation_labels() -> dict[str, Any]:
    return {"division_name": rules.division_name, "industry_label": rules.industry_label}


class SessionController(Controller):
    @get("/login")
    async def login_page(self, request: Request, next: str | None = None) -> Template | Redirect:
        if current(request) is not None:
            return Redirect(path=_safe_next(next))
        return Template("accounts/login.html.j2", context={"next": next, "email": "", "errors": {}})

    @post("/login")
    async def login(self, request: Request, db_session: AsyncSession) -> Template | Redirect:
        data = await form_data(request)
        email = str(data.get("email", ""))
        user = await services.authenticate(db_session, email, str(data.get("password", "")))
        if user is None:
            exc = ValidationFailed.single("password", "邮箱或密码不正确")
            return form_error("accounts/login.html.j2", exc, {"next": data.get("next"), "email": email})
        _log_in(request, user)
        return Redirect(path=_safe_next(str(data.get("next") or "")))

    @post("/logout", guards=[require_login])
    async def logout(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect(path="/")


# ---------------------------------------------------------------------------------------------
# Enterprise sign-up and email confirmation
# ---------------------------------------------------------------------------------------------

SIGN_UP_TEXT_FIELDS = (
    "name", "uscc", "division_code", "enterprise_size", "industry_code", "address", "contact_name",
    "contact_email", "contact_phone", "admin.display_name", "admin.email",
)  # fmt: skip


def _division_lookup(code: str) -> dict[str, Any]:
    """What the lookup beside the division input shows: the name of a known code, else suggestions."""
    code = code.strip()
    name = rules.division_name(code)
    return {"division_query": code, "division_resolved": name, "division_options": [] if name else
            rules.division_matches(code)}  # fmt: skip


def _sign_up_context(form: dict[str, str]) -> dict[str, Any]:
    return {
        "form": form,
        "errors": {},
        "size_options": [("", "请选择"), *((s.value, s.label) for s in EnterpriseSize)],
        "industry_options": [("", "请选择"), *((code, f"{code} {name}") for code, name in rules.INDUSTRIES.items())],
        **_division_lookup(form.get("division_code", "")),
    }


def _sign_up_from_form(data: dict[str, Any]) -> EnterpriseSignUp:
    def text(key: str) -> str:
        value = data.get(key, "")
        return value if isinstance(value, str) else ""

    return EnterpriseSignUp(
        name=text("name"),
        uscc=text("uscc"),
        division_code=text("division_code"),
        enterprise_size=text("enterprise_size"),
        industry_code=text("industry_code"),
        address=text("address"),
        contact_name=text("contact_name"),
        contact_email=text("contact_email"),
        contact_phone=text("contact_phone"),
        admin_display_name=text("admin.display_name"),
        admin_email=text("admin.email"),
        admin_password=text("admin.password"),
        admin_password_confirm=text("admin.password_confirm"),
    )


class SignUpController(Controller):
    include_in_schema = False

    @get("/signup")
    async def page(self, request: Request) -> Template | Redirect:
        if current(request) is not None:
            return Redirect(path="/")
        return Template("accounts/signup.html.j2", context=_sign_up_context({}))

    @post("/signup")
    async def submit(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        if current(request) is not None:
            return Redirect(path="/")
        data = await form_data(request)
        try:
            _, user = await services.register_enterprise(db_session, settings=settings, data=_sign_up_from_form(data))
        except ValidationFailed as exc:
            # Passwords are never echoed back into the page.
            form = {key: data[key] for key in SIGN_UP_TEXT_FIELDS if isinstance(data.get(key), str)}
            return form_error("accounts/signup.html.j2", exc, _sign_up_context(form))
        _log_in(request, user)
        return Redirect(path="/account/confirmation?welcome=1")

    @get("/signup/divisions")
    async def divisions(self, division_code: Annotated[str, Parameter(max_length=50)] = "") -> Template:
        """The division lookup beside the sign-up form's code input (HTMX swaps it in as the user types)."""
        return Template("accounts/partials/division_lookup.html.j2", context=_division_lookup(division_code))


def _link_problem(exc: NotFound | services.LinkUnusable, title: str, *, offer_resend: bool = False) -> Template:
    """Why an emailed link does not work (404 unknown, 400 used or expired); nothing was changed."""
    return Template(
        "accounts/link_problem.html.j2",
        context={"title": title, "message": exc.message, "offer_resend": offer_resend},
        status_code=exc.status,
    )


class EmailConfirmationController(Controller):
    include_in_schema = False

    @get("/confirm-email/{token:str}")
    async def confirm(self, request: Request, db_session: AsyncSession, token: str) -> Template:
        try:
            user = await services.confirm_email(db_session, token)
        except (NotFound, services.LinkUnusable) as exc:
            return _link_problem(exc, "无法确认邮箱", offer_resend=True)
        me = current(request)
        if me is not None and me.user_id == user.id:
            # The header was resolved before the confirmation: without this it would still nag.
            request.scope["user"] = dataclasses.replace(me, email_confirmed=True)
        return Template("accounts/email_confirmed.html.j2", context={"email": user.email})

    @get("/account/confirmation", guards=[require_login])
    async def status(self, request: Request, db_session: AsyncSession, welcome: str = "", sent: str = "") -> Template:
        user = await db_session.get(User, current(request).user_id)
        return Template(
            "accounts/confirmation.html.j2",
            context={"user": user, "organisation": user.organisation, "welcome": welcome == "1", "sent": sent == "1"},
        )

    @post("/account/confirmation/resend", guards=[require_login])
    async def resend(self, request: Request, db_session: AsyncSession, settings: Settings) -> Redirect:
        await services.resend_confirmation(db_session, settings=settings, actor=current(request))
        return Redirect(path="/account/confirmation?sent=1")


# ---------------------------------------------------------------------------------------------
# Invitations: the invitee's side
# ---------------------------------------------------------------------------------------------


class InvitationController(Controller):
    path = "/invitations"
    include_in_schema = False

    async def _page(
        self, db_session: AsyncSession, token: str, form: dict[str, str], exc: ValidationFailed | None = None
    ) -> Template:
        try:
            invitation = await services.open_invitation(db_session, token)
        except (NotFound, services.LinkUnusable) as problem:
            return _link_problem(problem, "无法接受邀请")
        context = {"invitation": invitation.token, "organisation": invitation.organisation, "form": form,
                   "errors": {}, "token": token}  # fmt: skip
        if exc is not None:
            return form_error("accounts/invitation.html.j2", exc, context)
        return Template("accounts/invitation.html.j2", context=context)

    @get("/{token:str}")
    async def page(self, db_session: AsyncSession, token: str) -> Template:
        return await self._page(db_session, token, {})

    @post("/{token:str}")
    async def accept(self, request: Request, db_session: AsyncSession, token: str) -> Template | Redirect:
        data = await form_data(request)
        display_name = str(data.get("display_name", ""))
        try:
            user = await services.accept_invitation(
                db_session, token, display_name=display_name, password=str(data.get("password", "")),
                password_confirm=str(data.get("password_confirm", "")),
            )  # fmt: skip
        except (NotFound, services.LinkUnusable) as problem:
            return _link_problem(problem, "无法接受邀请")
        except ValidationFailed as exc:
            return await self._page(db_session, token, {"display_name": display_name}, exc)
        _log_in(request, user)
        return Redirect(path="/account/welcome")


# ---------------------------------------------------------------------------------------------
# The organisation's own pages
# ---------------------------------------------------------------------------------------------


class TokenController(Controller):
    """API tokens of the caller's organisation. Platform admins manage the platform organisation's,
    which act with platform-admin rights (the admin API, e.g. enterprise verification)."""

    path = "/account/tokens"
    guards = [require_admin]
    include_in_schema = False

    @get("/")
    async def tokens(self, request: Request, db_session: AsyncSession) -> Template:
        return await self._tokens_page(request, db_session)

    async def _tokens_page(
        self, request: Request, db_session: AsyncSession, new_token: str | None = None, status_code: int = 200
    ) -> Template:
        tokens = await services.list_api_tokens(db_session, current(request).organisation_id)
        context = {"tokens": tokens, "errors": {}, "new_token": new_token}
        return Template("accounts/tokens.html.j2", context=context, status_code=status_code)

    @post("/")
    async def create_token(self, request: Request, db_session: AsyncSession) -> Template:
        data = await form_data(request)
        try:
            raw, _ = await services.create_api_token(db_session, actor=current(request), name=str(data.get("name", "")))
        except ValidationFailed as exc:
            tokens = await services.list_api_tokens(db_session, current(request).organisation_id)
            return form_error("accounts/tokens.html.j2", exc, {"tokens": tokens, "new_token": None})
        # 201 commits; the plaintext is shown on this response only.
        return await self._tokens_page(request, db_session, new_token=raw, status_code=201)

    @post("/{token_id:int}/revoke")
    async def revoke_token(self, request: Request, db_session: AsyncSession, token_id: int) -> Redirect:
        await services.revoke_api_token(db_session, actor=current(request), token_id=token_id)
        return Redirect(path="/account/tokens")


class OrganisationAdminController(Controller):
    path = "/account"
    guards = [require_org_admin]
    include_in_schema = False

    async def _users_context(self, request: Request, db_session: AsyncSession, form: dict[str, Any]) -> dict[str, Any]:
        organisation_id = current(request).organisation_id
        return {
            "members": await services.list_users(db_session, organisation_id),
            "invitations": await services.pending_invitations(db_session, organisation_id),
            "role_options": ROLE_OPTIONS,
            "form": form,
            "errors": {},
        }

    @get("/users")
    async def users(self, request: Request, db_session: AsyncSession, invited: str = "") -> Template:
        context = await self._users_context(request, db_session, {})
        return Template("accounts/users.html.j2", context={**context, "invited": invited})

    @post("/invitations")
    async def invite(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        data = await form_data(request)
        form = {key: str(data.get(key, "")) for key in ("email", "display_name", "role")}
        try:
            invitation = await services.invite(db_session, settings=settings, actor=current(request), **form)
        except ValidationFailed as exc:
            return form_error("accounts/users.html.j2", exc, await self._users_context(request, db_session, form))
        return Redirect(path="/account/users?" + urlencode({"invited": invitation.email}))

    @post("/invitations/{invitation_id:int}/revoke")
    async def revoke_invitation(self, request: Request, db_session: AsyncSession, invitation_id: int) -> Redirect:
        await services.revoke_invitation(db_session, actor=current(request), invitation_id=invitation_id)
        return Redirect(path="/account/users")

    @get("/organisation")
    async def organisation(self, request: Request, db_session: AsyncSession) -> Template:
        organisation = await db_session.get(Organisation, current(request).organisation_id)
        return Template(
            "accounts/organisation.html.j2", context={"organisation": organisation, **_organisation_labels()}
        )


class ExpertAdminController(Controller):
    """The platform admin invites experts (评审专家) into the platform organisation, by the same
    emailed invitation colleagues receive; an expert may only evaluate patents."""

    path = "/admin/experts"
    guards = [require_platform_admin]
    include_in_schema = False

    async def _context(self, request: Request, db_session: AsyncSession, form: dict[str, Any]) -> dict[str, Any]:
        organisation_id = current(request).organisation_id
        members = await services.list_users(db_session, organisation_id)
        return {
            "experts": [user for user in members if user.role is Role.EXPERT],
            "invitations": await services.pending_invitations(db_session, organisation_id),
            "form": form,
            "errors": {},
        }

    @get("/")
    async def experts(self, request: Request, db_session: AsyncSession, invited: str = "") -> Template:
        context = await self._context(request, db_session, {})
        return Template("admin/experts.html.j2", context={**context, "invited": invited})

    @post("/invitations")
    async def invite(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        data = await form_data(request)
        form = {key: str(data.get(key, "")) for key in ("email", "display_name")}
        try:
            invitation = await services.invite(
                db_session, settings=settings, actor=current(request), role=Role.EXPERT.value, **form
            )
        except ValidationFailed as exc:
            return form_error("admin/experts.html.j2", exc, await self._context(request, db_session, form))
        return Redirect(path="/admin/experts?" + urlencode({"invited": invitation.email}))

    @post("/invitations/{invitation_id:int}/revoke")
    async def revoke_invitation(self, request: Request, db_session: AsyncSession, invitation_id: int) -> Redirect:
        await services.revoke_invitation(db_session, actor=current(request), invitation_id=invitation_id)
        return Redirect(path="/admin/experts")


@get("/account/welcome", guards=[require_login], include_in_schema=False)
async def welcome(request: Request) -> Template:
    """Where an invitee lands after setting their password."""
    return Template("accounts/welcome.html.j2")


# ---------------------------------------------------------------------------------------------
# Platform admin: enterprise verification
# ---------------------------------------------------------------------------------------------


def _status_choice(raw: str) -> VerificationStatus:
    return VerificationStatus._value2member_map_.get(raw, VerificationStatus.PENDING)  # type: ignore[return-value]


class AdminEnterpriseController(Controller):
    path = "/admin/enterprises"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def queue(self, db_session: AsyncSession, status: str = "", page: PageNumber = 1) -> Template:
        chosen = _status_choice(status)
        result = await services.list_enterprises(db_session, status=chosen, page=page)
        return Template(
            "admin/enterprises.html.j2",
            context={
                "result": result,
                "status": chosen,
                "statuses": list(VerificationStatus),
                "pager_base": "/admin/enterprises?" + urlencode({"status": chosen.value}) + "&",
                **_organisation_labels(),
            },
        )

    async def _detail(
        self,
        request: Request,
        db_session: AsyncSession,
        organisation_id: int,
        exc: ValidationFailed | None = None,
        form: dict[str, str] | None = None,
    ) -> Template:
        organisation = await services.get_enterprise(db_session, current(request), organisation_id)
        context = {
            "organisation": organisation,
            "members": await services.list_users(db_session, organisation.id),
            "audit": await services.organisation_audit(db_session, organisation.id),
            "audit_actions": AUDIT_ACTIONS,
            "actions": rules.verification_actions(organisation.verification_status),
            "nature_options": [("", "请选择"), *services.nature_choices(organisation.kind)],
            "form": form or {},
            "errors": {},
            **_organisation_labels(),
        }
        if exc is not None:
            return form_error("admin/enterprise.html.j2", exc, context)
        return Template("admin/enterprise.html.j2", context=context)

    @get("/{organisation_id:int}")
    async def detail(self, request: Request, db_session: AsyncSession, organisation_id: int) -> Template:
        return await self._detail(request, db_session, organisation_id)

    @post("/{organisation_id:int}/verify")
    async def verify(
        self, request: Request, db_session: AsyncSession, settings: Settings, organisation_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        note = str(data.get("note", ""))
        try:
            await services.verify_enterprise(
                db_session, settings=settings, actor=current(request), organisation_id=organisation_id, note=note
            )
        except ValidationFailed as exc:
            return await self._detail(request, db_session, organisation_id, exc, {"note": note})
        return Redirect(path=f"/admin/enterprises/{organisation_id}")

    @post("/{organisation_id:int}/nature")
    async def nature(self, request: Request, db_session: AsyncSession, organisation_id: int) -> Template | Redirect:
        """Set the party nature code (单位性质) the technology-contract registration needs."""
        code = str((await form_data(request)).get("nature_code", ""))
        try:
            await services.set_party_nature(
                db_session, actor=current(request), organisation_id=organisation_id, nature_code=code
            )
        except ValidationFailed as exc:
            return await self._detail(request, db_session, organisation_id, exc, {"nature_code": code})
        return Redirect(path=f"/admin/enterprises/{organisation_id}#nature")

    @post("/{organisation_id:int}/reject")
    async def reject(
        self, request: Request, db_session: AsyncSession, settings: Settings, organisation_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        reason = str(data.get("reason", ""))
        try:
            await services.reject_enterprise(
                db_session, settings=settings, actor=current(request), organisation_id=organisation_id, reason=reason
            )
        except ValidationFailed as exc:
            return await self._detail(request, db_session, organisation_id, exc, {"reason": reason})
        return Redirect(path=f"/admin/enterprises/{organisation_id}")


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


@get("/api/v1/me", guards=[require_login], tags=["accounts"])
async def api_me(request: Request) -> dict[str, Any]:
    """The organisation and user an API token acts for."""
    me = current(request)
    return {
        "user_id": me.user_id,
        "display_name": me.display_name,
        "organisation_id": me.organisation_id,
        "organisation_name": me.organisation_name,
        "organisation_kind": me.organisation_kind.value,
        "role": me.role.value,
    }


class EnterpriseApiController(Controller):
    path = "/api/v1/enterprises"
    tags = ["accounts"]

    @post("/", status_code=201, summary="企业注册（无需令牌）")
    async def sign_up(
        self, db_session: AsyncSession, settings: Settings, data: schemas.EnterpriseIn
    ) -> schemas.EnterpriseOut:
        """Register an enterprise and its organisation admin. The enterprise waits for verification;
        a confirmation link goes to the admin's email. Needs no token (and carries no CSRF check)."""
        organisation, _ = await services.register_enterprise(db_session, settings=settings, data=data.to_sign_up())
        return schemas.EnterpriseOut.of(organisation, email_confirmation="sent")

    @get("/", guards=[require_platform_admin], summary="企业列表（平台管理员）")
    async def list_enterprises(
        self,
        db_session: AsyncSession,
        status: Annotated[VerificationStatus | None, Parameter(description="核验状态；不填为全部")] = None,
        page: PageNumber = 1,
        per_page: PerPage = paging.PER_PAGE,
    ) -> schemas.EnterprisePage:
        result = await services.list_enterprises(db_session, status=status, page=page, per_page=per_page)
        return schemas.EnterprisePage.of(result)

    @get("/{organisation_id:int}", guards=[require_login], summary="读取企业信息（本企业或平台管理员）")
    async def read(self, request: Request, db_session: AsyncSession, organisation_id: int) -> schemas.EnterpriseOut:
        return schemas.EnterpriseOut.of(await services.get_enterprise(db_session, current(request), organisation_id))

    @post("/{organisation_id:int}/verify", guards=[require_platform_admin], status_code=200, summary="核验通过")
    async def verify(
        self, request: Request, db_session: AsyncSession, settings: Settings, organisation_id: int,
        data: schemas.VerifyBody,
    ) -> schemas.EnterpriseOut:  # fmt: skip
        organisation = await services.verify_enterprise(
            db_session, settings=settings, actor=current(request), organisation_id=organisation_id, note=data.note
        )
        return schemas.EnterpriseOut.of(organisation)

    @post("/{organisation_id:int}/reject", guards=[require_platform_admin], status_code=200, summary="核验不通过")
    async def reject(
        self, request: Request, db_session: AsyncSession, settings: Settings, organisation_id: int,
        data: schemas.RejectBody,
    ) -> schemas.EnterpriseOut:  # fmt: skip
        organisation = await services.reject_enterprise(
            db_session, settings=settings, actor=current(request), organisation_id=organisation_id, reason=data.reason
        )
        return schemas.EnterpriseOut.of(organisation)


ROUTES = [
    SessionController,
    SignUpController,
    EmailConfirmationController,
    InvitationController,
    TokenController,
    OrganisationAdminController,
    ExpertAdminController,
    welcome,
    AdminEnterpriseController,
    api_me,
    EnterpriseApiController,
]
