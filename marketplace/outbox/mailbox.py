"""The local mailbox (本地邮箱): reading the mail the worker delivered, for platform admins.

Without SMTP every email lands here only, so this is where a demo or a test finds a confirmation
or invitation link. With SMTP it is the record of what was sent.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.errors import NotFound, ValidationFailed
from marketplace.outbox.models import MailMessage
from marketplace.paging import Page, page_bounds

PER_PAGE = 50
MAX_RECIPIENT_FILTER = 254
_URL = re.compile(r"https?://[^\s<>\"'（）。，；]+")


async def mailbox_page(
    session: AsyncSession, *, recipient: str = "", page: int = 1, per_page: int = PER_PAGE
) -> Page[MailMessage]:
    """Delivered mail, newest first, where the recipient address contains ``recipient`` (any case)."""
    page, per_page = page_bounds(page, per_page)
    if len(recipient) > MAX_RECIPIENT_FILTER:
        raise ValidationFailed.single("to", f"收件人不能超过{MAX_RECIPIENT_FILTER}个字符")
    query = select(MailMessage)
    if recipient.strip():
        query = query.where(func.lower(MailMessage.to_address).contains(recipient.strip().lower(), autoescape=True))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (MailMessage.sent_at.desc(), MailMessage.id.desc())
    items = await session.scalars(query.order_by(*order).offset((page - 1) * per_page).limit(per_page))
    return Page(items=list(items), number=page, per_page=per_page, total=int(total))


async def get_mail(session: AsyncSession, message_id: int) -> MailMessage:
    message = await session.get(MailMessage, message_id)
    if message is None:
        raise NotFound("邮件不存在")
    return message


def linkified(body: str) -> Markup:
    """The plain-text body as HTML: escaped, with every http(s) address a link (line breaks kept by CSS)."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(body):
        url = match.group(0)
        parts.append(str(escape(body[position : match.start()])))
        parts.append(f'<a href="{escape(url)}">{escape(url)}</a>')
        position = match.end()
    parts.append(str(escape(body[position:])))
    return Markup("".join(parts))
