"""Login, logout, organisation members and API tokens (HTML), and ``/api/v1/me``."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts import services
from marketplace.accounts.models import Organisation, Role
from marketplace.errors import ValidationFailed
from marketplace.web.auth import SESSION_USER_KEY, current, require_login, require_org_admin
from marketplace.web.forms import form_data, form_error


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//host" or "http://..." would turn the login form into an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


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
        request.clear_session()
        request.set_session({SESSION_USER_KEY: user.id})
        return Redirect(path=_safe_next(str(data.get("next") or "")))

    @post("/logout", guards=[require_login])
    async def logout(self, request: Request) -> Redirect:
        request.clear_session()
        return Redirect(path="/")


class OrganisationAdminController(Controller):
    path = "/account"
    guards = [require_org_admin]

    @get("/tokens")
    async def tokens(self, request: Request, db_session: AsyncSession) -> Template:
        return await self._tokens_page(request, db_session)

    async def _tokens_page(
        self, request: Request, db_session: AsyncSession, new_token: str | None = None, status_code: int = 200
    ) -> Template:
        tokens = await services.list_api_tokens(db_session, current(request).organisation_id)
        context = {"tokens": tokens, "errors": {}, "new_token": new_token}
        return Template("accounts/tokens.html.j2", context=context, status_code=status_code)

    @post("/tokens")
    async def create_token(self, request: Request, db_session: AsyncSession) -> Template:
        data = await form_data(request)
        try:
            raw, _ = await services.create_api_token(db_session, actor=current(request), name=str(data.get("name", "")))
        except ValidationFailed as exc:
            tokens = await services.list_api_tokens(db_session, current(request).organisation_id)
            return form_error("accounts/tokens.html.j2", exc, {"tokens": tokens, "new_token": None})
        # 201 commits; the plaintext is shown on this response only.
        return await self._tokens_page(request, db_session, new_token=raw, status_code=201)

    @post("/tokens/{token_id:int}/revoke")
    async def revoke_token(self, request: Request, db_session: AsyncSession, token_id: int) -> Redirect:
        await services.revoke_api_token(db_session, actor=current(request), token_id=token_id)
        return Redirect(path="/account/tokens")

    @get("/users")
    async def users(self, request: Request, db_session: AsyncSession) -> Template:
        members = await services.list_users(db_session, current(request).organisation_id)
        return Template("accounts/users.html.j2", context={"members": members, "errors": {}, "form": {}})

    @post("/users")
    async def add_user(self, request: Request, db_session: AsyncSession) -> Template | Redirect:
        me = current(request)
        data = await form_data(request)
        organisation = await db_session.get(Organisation, me.organisation_id)
        role = Role.ORG_ADMIN if data.get("role") == Role.ORG_ADMIN.value else Role.ORG_MEMBER
        try:
            await services.create_user(
                db_session,
                organisation=organisation,
                email=str(data.get("email", "")),
                display_name=str(data.get("display_name", "")),
                password=str(data.get("password", "")),
                role=role,
                actor=me,
            )
        except ValidationFailed as exc:
            members = await services.list_users(db_session, me.organisation_id)
            return form_error("accounts/users.html.j2", exc, {"members": members, "form": data})
        return Redirect(path="/account/users")


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


ROUTES = [SessionController, OrganisationAdminController, api_me]
