"""The local mailbox pages for platform admins (本地邮箱): ``/admin/mailbox``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.outbox import mailbox
from marketplace.paging import MAX_PAGE
from marketplace.web.auth import require_platform_admin


class MailboxController(Controller):
    path = "/admin/mailbox"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def index(
        self,
        db_session: AsyncSession,
        to: Annotated[str, Parameter(max_length=mailbox.MAX_RECIPIENT_FILTER)] = "",
        page: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 1,
    ) -> Template:
        result = await mailbox.mailbox_page(db_session, recipient=to, page=page)
        return Template(
            "admin/mailbox.html.j2",
            context={
                "result": result,
                "to": to,
                "pager_base": "/admin/mailbox?" + (urlencode({"to": to}) + "&" if to else ""),
            },
        )

    @get("/{message_id:int}")
    async def read(self, db_session: AsyncSession, message_id: int) -> Template:
        message = await mailbox.get_mail(db_session, message_id)
        return Template(
            "admin/mail_message.html.j2", context={"message": message, "body": mailbox.linkified(message.body)}
        )


ROUTES = [MailboxController]
