"""Matching routes: the enterprise's inbox (站内信, ``/inbox``, ``/api/v1/inbox``), the weekly
digest's unsubscribe link (``/digest/unsubscribe``, no login) and licensors' pushes of an offer
(``/offers/{id}/push``, ``/api/v1/offers/{id}/push``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.clock import now_utc
from marketplace.errors import ValidationFailed
from marketplace.matching import push
from marketplace.matching.inbox_schemas import InboxPage, PushOut, PushWrite
from marketplace.settings import Settings
from marketplace.web.auth import current, require_login, require_patent_holder
from marketplace.web.errors import problem
from marketplace.web.forms import form_data

PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]


class InboxPages(Controller):
    path = "/inbox"
    guards = [require_login]
    include_in_schema = False

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession, page: PageNumber = 1) -> Template:
        result = await push.inbox(db_session, current(request), page=page)
        context = {"result": result.page, "unread": result.unread, "pager_base": "/inbox?"}
        return Template("matching/inbox.html.j2", context=context)

    @get("/{message_id:int}")
    async def message(self, request: Request, db_session: AsyncSession, message_id: int) -> Template:
        message = await push.open_message(db_session, current(request), message_id)
        return Template("matching/inbox_message.html.j2", context={"message": message})

    @get("/unread")
    async def unread(self, request: Request, db_session: AsyncSession) -> Template:
        """The navigation's unread badge (HTMX fragment); empty for anyone but enterprise users."""
        count = await push.unread_for(db_session, current(request))
        return Template("matching/inbox_unread.html.j2", context={"count": count})


class InboxApi(Controller):
    path = "/api/v1/inbox"
    tags = ["matching"]
    guards = [require_login]

    @get("/", summary="站内信（每周推荐与许可方推送）")
    async def list_messages(
        self, request: Request, db_session: AsyncSession, page: PageNumber = 1, per_page: PerPage = paging.PER_PAGE
    ) -> InboxPage:
        """The calling enterprise's inbox, newest first: the weekly digests and licensors' pushes,
        each with its offers and why they match. ``unread`` counts the unread messages (listing
        does not mark them read; opening one on the site does). Enterprise tokens only."""
        result = await push.inbox(db_session, current(request), page=page, per_page=per_page)
        return InboxPage.of(result.page, result.unread)


class DigestUnsubscribe(Controller):
    """The link in every digest email: works without login; the POST carries the page's CSRF token."""

    path = "/digest/unsubscribe"
    include_in_schema = False

    @get("/")
    async def confirm(self, db_session: AsyncSession, settings: Settings, token: str = "") -> Template:
        organisation = await push.unsubscribe_target(db_session, settings, token)
        context = {
            "organisation": organisation,
            "token": token,
            "enabled": await push.digest_enabled(db_session, organisation.id),
            "done": False,
        }
        return Template("matching/digest_unsubscribe.html.j2", context=context)

    @post("/", status_code=200)
    async def unsubscribe(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template:
        data = await form_data(request)
        organisation = await push.unsubscribe(db_session, settings, str(data.get("token", "")), current(request))
        context = {"organisation": organisation, "token": "", "enabled": False, "done": True}
        return Template("matching/digest_unsubscribe.html.j2", context=context)


def _push_context(panel: push.PushPanel, **extra: Any) -> dict[str, Any]:
    return {"panel": panel, "offer": panel.offer, "form": {}, "errors": {}, "refusal_message": "", **extra}


class PushPages(Controller):
    path = "/offers/{offer_id:int}/push"
    guards = [require_patent_holder]
    include_in_schema = False

    @get("/")
    async def page(self, request: Request, db_session: AsyncSession, offer_id: int, pushed: str = "") -> Template:
        panel = await push.push_panel(db_session, current(request), offer_id)
        return Template("matching/push.html.j2", context=_push_context(panel, pushed=pushed == "1"))

    @post("/", status_code=200)
    async def push_offer(self, request: Request, db_session: AsyncSession, offer_id: int) -> Template | Redirect:
        me = current(request)
        data = await form_data(request)
        form = {"note": str(data.get("note", ""))}
        try:
            await push.push_offer(db_session, me, offer_id, form["note"])
        except ValidationFailed as exc:
            panel = await push.push_panel(db_session, me, offer_id)
            context = _push_context(panel, form=form, errors=exc.by_field())
            return Template("matching/push.html.j2", context=context, status_code=422)
        except push.PushRateLimited as exc:
            panel = await push.push_panel(db_session, me, offer_id)
            context = _push_context(panel, form=form, refusal_message=exc.message)
            return Template("matching/push.html.j2", context=context, status_code=429)
        return Redirect(path=f"/offers/{offer_id}/push?pushed=1")


class PushApi(Controller):
    path = "/api/v1/offers/{offer_id:int}"
    tags = ["matching"]
    guards = [require_login]

    @post("/push", summary="向匹配的企业定向推送一项已公告的开放许可声明", status_code=202)
    async def push_offer(
        self, request: Request, db_session: AsyncSession, offer_id: int, data: PushWrite | None = None
    ) -> Response:
        """Push the caller's published offer to the enterprises whose interest profiles it matches
        (at most 200, best first; the worker delivers an inbox message and an email to each).
        Only the offer's licensor; each declaration at most once per 7 days and each licensor at
        most 5 pushes per rolling 7 days — a refusal is a 429 problem with ``next_push_at``."""
        note = data.note if data is not None else ""
        try:
            created = await push.push_offer(db_session, current(request), offer_id, note)
        except push.PushRateLimited as exc:
            response = problem(429, exc.message, code=exc.code)
            response.content["next_push_at"] = exc.next_at.isoformat()
            wait = max(1, int((exc.next_at - now_utc()).total_seconds()) + 1)
            response.headers["Retry-After"] = str(wait)
            return response
        return Response(PushOut.of(created), status_code=202)

    @get("/pushes", summary="一项声明的定向推送记录")
    async def list_pushes(self, request: Request, db_session: AsyncSession, offer_id: int) -> list[PushOut]:
        """The pushes of the declaration (all its versions), newest first, with how many enterprises
        each reached once delivered. Only the offer's licensor."""
        return [PushOut.of(p) for p in await push.pushes_of(db_session, current(request), offer_id)]


ROUTES = [InboxPages, InboxApi, DigestUnsubscribe, PushPages, PushApi]
