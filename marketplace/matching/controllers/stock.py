"""Stock patents (库存专利): the public page of a patent its holder would license or assign but has
not offered, the enterprise's 表达许可意向 button, and the same through ``/api/v1/inventory``."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.errors import ValidationFailed
from marketplace.matching import inventory
from marketplace.matching.services import matching_refusal
from marketplace.patents.models import TransferIntent
from marketplace.web.auth import current, require_login
from marketplace.web.forms import form_data


def _context(request: Request, stock: inventory.StockPatent, **extra: object) -> dict[str, object]:
    principal = current(request)
    return {
        "stock": stock,
        "intents": [TransferIntent(value).label for value in stock.entry.transfer_intents],
        "can_express": principal is not None and matching_refusal(principal) is None,
        "errors": {},
        "note": "",
        **extra,
    }


class StockPages(Controller):
    path = "/inventory"
    include_in_schema = False

    @get("/{patent_id:int}")
    async def page(self, request: Request, db_session: AsyncSession, patent_id: int, sent: str = "") -> Template:
        stock = await inventory.stock_patent(db_session, current(request), patent_id)
        return Template("matching/stock.html.j2", context=_context(request, stock, sent=sent == "1"))

    @post("/{patent_id:int}/interest", guards=[require_login])
    async def interest(self, request: Request, db_session: AsyncSession, patent_id: int) -> Template | Redirect:
        note = str((await form_data(request)).get("note", ""))
        try:
            await inventory.express_interest(db_session, current(request), patent_id, note)
        except ValidationFailed as exc:
            stock = await inventory.stock_patent(db_session, current(request), patent_id)
            context = _context(request, stock, errors=exc.by_field(), note=note)
            return Template("matching/stock.html.j2", context=context, status_code=422)
        return Redirect(path=f"/inventory/{patent_id}?sent=1")


class StockOut(msgspec.Struct):
    patent_id: int
    patent_number: str
    title: str
    abstract: str
    licensor_name: str
    ipc_main: str | None
    province_code: str | None
    transfer_intents: list[str]
    expiry_date: str
    interest_count: int
    interested: bool


class InterestIn(msgspec.Struct, forbid_unknown_fields=True):
    note: str = ""


class InterestOut(msgspec.Struct):
    id: int
    patent_id: int
    note: str
    created_at: str


class StockApi(Controller):
    path = "/api/v1/inventory"
    tags = ["matching"]

    @get("/{patent_id:int}", summary="读取一件库存专利（未发布开放许可、可许可或转让）")
    async def read(self, request: Request, db_session: AsyncSession, patent_id: int) -> StockOut:
        """Public. 404 when the patent is not (or no longer) a stock patent: offered in the catalogue,
        lapsed, expired, exploited by its holder, or not open to a licence or an assignment."""
        stock = await inventory.stock_patent(db_session, current(request), patent_id)
        return StockOut(
            patent_id=stock.patent.id,
            patent_number=stock.patent.patent_number,
            title=stock.patent.title,
            abstract=stock.patent.abstract,
            licensor_name=stock.entry.licensor_name,
            ipc_main=stock.patent.ipc_main,
            province_code=stock.entry.province_code,
            transfer_intents=list(stock.entry.transfer_intents),
            expiry_date=stock.entry.expiry_date.isoformat(),
            interest_count=stock.interest_count,
            interested=stock.interest is not None,
        )

    @post("/{patent_id:int}/interest", summary="表达许可意向", guards=[require_login])
    async def interest(
        self, request: Request, db_session: AsyncSession, patent_id: int, data: InterestIn
    ) -> Response[InterestOut]:
        """Enterprise tokens only (others 403): tells the holder's administrators by e-mail; once per
        enterprise and patent (a second time is 409)."""
        created = await inventory.express_interest(db_session, current(request), patent_id, data.note)
        body = InterestOut(
            id=created.id, patent_id=patent_id, note=created.note, created_at=created.created_at.isoformat()
        )
        return Response(body, status_code=201)


ROUTES = [StockPages, StockApi]
