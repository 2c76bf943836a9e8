"""Who is calling: a browser with a server-side session, or an API client with a bearer token.

The middleware puts a :class:`~marketplace.accounts.rules.Principal` (or ``None``) in
``request.user``; guards below decide access per route.
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import async_sessionmaker

from marketplace.accounts.rules import Principal
from marketplace.accounts.services import load_principal, principal_for_token

SESSION_USER_KEY = "user_id"


def is_api_path(path: str) -> bool:
    return path.startswith("/api/")


class PrincipalMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_path_pattern = ("^/static/",)

    def __init__(self, sessionmaker: async_sessionmaker) -> None:
        self.sessionmaker = sessionmaker

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        scope["user"] = await self._resolve(scope)
        await next_app(scope, receive, send)

    async def _resolve(self, scope: Scope) -> Principal | None:
        if is_api_path(scope["path"]):
            authorization = Headers.from_scope(scope).get("authorization")
            if not authorization:
                return None
            scheme, _, raw = authorization.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                raise NotAuthorizedException("Authorization 头应为 Bearer 令牌")
            async with self.sessionmaker() as session:
                principal = await principal_for_token(session, raw.strip())
            if principal is None:
                raise NotAuthorizedException("API 令牌无效或已吊销")
            return principal
        session_data = scope.get("session")
        user_id = session_data.get(SESSION_USER_KEY) if isinstance(session_data, dict) else None
        if not isinstance(user_id, int):
            return None
        async with self.sessionmaker() as session:
            return await load_principal(session, user_id)


def current(connection: ASGIConnection) -> Principal | None:
    return connection.scope.get("user")  # type: ignore[return-value]


def require_login(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if current(connection) is None:
        raise NotAuthorizedException("请先登录")


def require_platform_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    require_login(connection, handler)
    if not current(connection).is_platform_admin:  # type: ignore[union-attr]
        raise PermissionDeniedException("仅平台管理员可以访问")


def require_org_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    require_login(connection, handler)
    principal = current(connection)
    if principal.is_platform_admin or not principal.is_org_admin:  # type: ignore[union-attr]
        raise PermissionDeniedException("仅机构管理员可以访问")


def require_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Organisation admins, and platform admins acting for the platform organisation (API tokens)."""
    require_login(connection, handler)
    principal = current(connection)
    if not (principal.is_platform_admin or principal.is_org_admin):  # type: ignore[union-attr]
        raise PermissionDeniedException("仅机构管理员可以访问")


def require_patent_holder(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Members of an organisation that can hold patents (universities, institutes, companies)."""
    require_login(connection, handler)
    if not current(connection).can_hold_patents:  # type: ignore[union-attr]
        raise PermissionDeniedException("仅专利权人机构的用户可以访问")


def require_party(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """People acting for an organisation that can be a party to a licence: not experts (评审专家),
    who only evaluate patents."""
    require_login(connection, handler)
    if current(connection).is_expert:  # type: ignore[union-attr]
        raise PermissionDeniedException("评审专家仅可评价专利")
