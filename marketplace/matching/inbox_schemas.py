"""Request and response shapes of ``/api/v1/inbox`` and ``/api/v1/offers/{id}/push``."""

from __future__ import annotations

from datetime import datetime

import msgspec

from marketplace.matching.models import InboxMessage, OfferPush
from marketplace.paging import Page


class InboxItemOut(msgspec.Struct):
    """A recommended offer in a message: ``url`` opens its catalogue page (and counts the view for
    the digest or the push); ``why`` is the reasons in one line."""

    offer_id: int
    patent_id: int
    title: str
    why: str
    points: int
    url: str


class InboxMessageOut(msgspec.Struct):
    """A message of the enterprise's inbox (站内信): ``kind`` is digest (每周推荐) or push (许可方推送)."""

    id: int
    kind: str
    kind_label: str
    subject: str
    body: str
    items: list[InboxItemOut]
    unread: bool
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, message: InboxMessage) -> InboxMessageOut:
        items = [
            InboxItemOut(
                offer_id=int(item["offer_id"]),
                patent_id=int(item["patent_id"]),
                title=str(item["title"]),
                why=str(item["why"]),
                points=int(item["points"]),
                url=f"/catalogue/{item['offer_id']}?via={message.kind.value}",
            )
            for item in message.items
        ]
        return cls(
            id=message.id,
            kind=message.kind.value,
            kind_label=message.kind.label,
            subject=message.subject,
            body=message.body,
            items=items,
            unread=message.read_at is None,
            read_at=message.read_at,
            created_at=message.created_at,
        )


class InboxPage(msgspec.Struct):
    items: list[InboxMessageOut]
    total: int
    unread: int
    page: int
    per_page: int

    @classmethod
    def of(cls, page: Page[InboxMessage], unread: int) -> InboxPage:
        return cls([InboxMessageOut.of(m) for m in page.items], page.total, unread, page.number, page.per_page)


class PushWrite(msgspec.Struct, kw_only=True):
    """An optional note (附言, at most 200 characters) shown to the enterprises with the offer."""

    note: str = ""


class PushOut(msgspec.Struct):
    """A push (定向推送). ``recipients_count`` and ``delivered_at`` stay null until the worker has
    chosen the enterprises (at most 200) and delivered the messages."""

    id: int
    offer_id: int
    note: str
    created_at: datetime
    recipients_count: int | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, push: OfferPush) -> PushOut:
        return cls(push.id, push.offer_id, push.note, push.created_at, push.recipients_count, push.delivered_at)
