"""HTTP routes of licences: taking an offer's licence (the written-notice confirmation page), the
parties' and the admin's contract pages and documents, termination by agreement, and the
``/api/v1/contracts`` JSON API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.accounts.models import Organisation, VerificationStatus
from marketplace.clock import today
from marketplace.errors import ValidationFailed
from marketplace.filings import reconciliation
from marketplace.licensing import documents, rules, schemas, services
from marketplace.licensing.models import ContractStatus, EndReason
from marketplace.offers import services as offer_services
from marketplace.offers.models import OfferStatus
from marketplace.web.auth import current, require_login, require_party, require_platform_admin
from marketplace.web.forms import form_data, form_error

PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]
AUDIT_ACTIONS = {
    "accept": "提交书面通知，取得许可",
    "termination_requested": "申请协商解除",
    "termination_withdrawn": "撤回解除申请",
    "termination_declined": "拒绝解除申请",
    "termination_agreed": "同意于约定日期解除",
    "end:agreement": "协商解除",
    "end:patent_lapsed": "专利权终止，合同终止",
    "end:patent_invalidated": "专利权被宣告无效，合同终止",
    "end:patent_expired": "专利权期限届满，合同终止",
    "end:term_expired": "许可期限届满",
}


def _client(request: Request) -> services.ClientInfo:
    address = request.client.host if request.client else None
    return services.ClientInfo(address=address, user_agent=request.headers.get("user-agent"))


def _pdf(content: bytes, filename: str) -> Response[bytes]:
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


def _html(document: str) -> Response[str]:
    return Response(document, media_type="text/html; charset=utf-8")


async def _notice_html(request: Request, db_session: AsyncSession, contract_id: int) -> Response[str]:
    """The written notice exactly as stored (its SHA-256 is recorded with it)."""
    contract = await services.get_for_party(db_session, current(request), contract_id)
    return _html((await services.notice_of(db_session, contract)).document_html)


async def _notice_pdf(request: Request, db_session: AsyncSession, contract_id: int) -> Response[bytes]:
    contract = await services.get_for_party(db_session, current(request), contract_id)
    notice = await services.notice_of(db_session, contract)
    return _pdf(await documents.to_pdf(notice.document_html), f"notice-{contract.number}.pdf")


async def _contract_document(request: Request, db_session: AsyncSession, contract_id: int) -> tuple[str, str]:
    """The contract's printable HTML and its number."""
    contract = await services.get_for_party(db_session, current(request), contract_id)
    notice = await services.notice_of(db_session, contract)
    return services.contract_document(contract, notice), contract.number


async def _contract_pdf(request: Request, db_session: AsyncSession, contract_id: int) -> Response[bytes]:
    document, number = await _contract_document(request, db_session, contract_id)
    return _pdf(await documents.to_pdf(document), f"{number}.pdf")


# ---------------------------------------------------------------------------------------------
# Taking a licence
# ---------------------------------------------------------------------------------------------


class AcceptanceController(Controller):
    path = "/catalogue"
    guards = [require_party]
    include_in_schema = False

    async def _page(
        self,
        request: Request,
        db_session: AsyncSession,
        offer_id: int,
        values: dict[str, Any] | None = None,
        exc: ValidationFailed | None = None,
    ) -> Template:
        me = current(request)
        offer = await offer_services.get_public(db_session, me, offer_id)
        organisation = await db_session.get(Organisation, me.organisation_id)
        live = await services.live_contract(db_session, me.organisation_id, offer.id)
        form = values or {
            "intended_field_of_use": "",
            "start_date": today().isoformat(),
            "signatory_name": me.display_name,
            "signatory_title": "",
            "idempotency_key": uuid.uuid4().hex,
        }
        if exc is not None and "idempotency_key" in exc.by_field():
            # A malformed key would fail again on every resubmission: the re-rendered form gets a fresh one.
            form = {**form, "idempotency_key": uuid.uuid4().hex}
        context = {
            "offer": offer,
            "patent": offer.patent,
            "description": offer_services.describe(offer),
            "organisation": organisation,
            "live": live,
            "own_offer": offer.licensor_organisation_id == me.organisation_id,
            "published": offer.status is OfferStatus.PUBLISHED,
            "form": form,
            "max_start": today().toordinal() + rules.MAX_START_DELAY_DAYS,
            "errors": {},
        }
        if exc is not None:
            return form_error("licensing/accept.html.j2", exc, context)
        return Template("licensing/accept.html.j2", context=context)

    @get("/{offer_id:int}/accept")
    async def confirm(self, request: Request, db_session: AsyncSession, offer_id: int) -> Template:
        return await self._page(request, db_session, offer_id)

    @post("/{offer_id:int}/accept")
    async def accept(self, request: Request, db_session: AsyncSession, offer_id: int) -> Template | Redirect:
        data = await form_data(request)
        values = {key: str(data.get(key, "")) for key in rules.ACCEPTANCE_FIELDS}
        try:
            contract, _ = await services.accept(
                db_session, actor=current(request), offer_id=offer_id, values=values, client=_client(request)
            )
        except ValidationFailed as exc:
            return await self._page(request, db_session, offer_id, values, exc)
        return Redirect(path=f"/contracts/{contract.id}")


# ---------------------------------------------------------------------------------------------
# Contract pages
# ---------------------------------------------------------------------------------------------


async def _list_context(
    db_session: AsyncSession, request: Request, filters: services.ContractFilters, page: int, per_page: int
) -> dict[str, Any]:
    me = current(request)
    result = await services.list_contracts(db_session, me, filters, page=page, per_page=per_page)
    upcoming = await services.next_obligations(db_session, [c.id for c in result.items])
    return {
        "page": result,
        "filters": filters,
        "upcoming": upcoming,
        "statuses": [(s.value, s.label) for s in ContractStatus],
        "side_of": lambda contract: services.side_of(me, contract),
    }


class ContractController(Controller):
    path = "/contracts"
    guards = [require_party]
    include_in_schema = False

    @get("/")
    async def index(
        self,
        request: Request,
        db_session: AsyncSession,
        side: str = "all",
        status: str = "",
        q: str = "",
        offer_id: int | None = None,
        patent_id: int | None = None,
        page: PageNumber = 1,
    ) -> Template:
        filters = services.parse_filters(side=side, status=status, text=q, offer_id=offer_id, patent_id=patent_id)
        context = await _list_context(db_session, request, filters, page, paging.PER_PAGE)
        if filters.side == "licensor":
            context["summary"] = await services.licensor_summary(db_session, current(request))
        return Template("licensing/list.html.j2", context=context)

    @get("/{contract_id:int}")
    async def detail(self, request: Request, db_session: AsyncSession, contract_id: int) -> Template:
        return await self._detail(request, db_session, contract_id)

    async def _detail(
        self,
        request: Request,
        db_session: AsyncSession,
        contract_id: int,
        exc: ValidationFailed | None = None,
        form: dict[str, Any] | None = None,
    ) -> Template:
        me = current(request)
        contract = await services.get_for_party(db_session, current(request), contract_id)
        notice = await services.notice_of(db_session, contract)
        side = services.side_of(me, contract)
        actions = rules.contract_actions(
            contract.status,
            side=side or "",
            termination_pending=contract.termination_requested_at is not None,
            requested_by_me=contract.termination_requested_by_organisation_id == me.organisation_id,
            end_agreed=contract.end_reason is EndReason.AGREEMENT,
        )
        context = {
            "contract": contract,
            "notice": notice,
            "side": side,
            "actions": actions if me.is_org_admin else (),
            "can_act": me.is_org_admin,
            "trail": await services.audit_trail(db_session, contract.id),
            "audit_actions": AUDIT_ACTIONS,
            "held": contract.licensee.verification_status is not VerificationStatus.VERIFIED,
            "filings": await reconciliation.contract_standing(db_session, contract.id),
            "discrepancies": await reconciliation.contract_discrepancies(db_session, contract.id)
            if me.is_platform_admin
            else [],
            "form": form or {"end_date": today().isoformat(), "reason": ""},
            "errors": {},
        }
        if exc is not None:
            return form_error("licensing/detail.html.j2", exc, context)
        return Template("licensing/detail.html.j2", context=context)

    @get("/{contract_id:int}/notice")
    async def notice_html(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[str]:
        return await _notice_html(request, db_session, contract_id)

    @get("/{contract_id:int}/notice.pdf")
    async def notice_pdf(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[bytes]:
        return await _notice_pdf(request, db_session, contract_id)

    @get("/{contract_id:int}/contract")
    async def contract_html(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[str]:
        return _html((await _contract_document(request, db_session, contract_id))[0])

    @get("/{contract_id:int}/contract.pdf")
    async def contract_pdf(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[bytes]:
        return await _contract_pdf(request, db_session, contract_id)

    @post("/{contract_id:int}/termination")
    async def request_termination(
        self, request: Request, db_session: AsyncSession, contract_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        values = {"reason": str(data.get("reason", "")), "end_date": str(data.get("end_date", ""))}
        try:
            await services.request_termination(
                db_session, actor=current(request), contract_id=contract_id, values=values
            )
        except ValidationFailed as exc:
            return await self._detail(request, db_session, contract_id, exc, values)
        return Redirect(path=f"/contracts/{contract_id}")

    @post("/{contract_id:int}/termination/confirm")
    async def confirm_termination(self, request: Request, db_session: AsyncSession, contract_id: int) -> Redirect:
        await services.confirm_termination(db_session, actor=current(request), contract_id=contract_id)
        return Redirect(path=f"/contracts/{contract_id}")

    @post("/{contract_id:int}/termination/cancel")
    async def cancel_termination(self, request: Request, db_session: AsyncSession, contract_id: int) -> Redirect:
        await services.cancel_termination(db_session, actor=current(request), contract_id=contract_id)
        return Redirect(path=f"/contracts/{contract_id}")


class AdminContractController(Controller):
    path = "/admin/contracts"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def index(
        self,
        request: Request,
        db_session: AsyncSession,
        status: str = "",
        verified: str = "",
        q: str = "",
        page: PageNumber = 1,
    ) -> Template:
        filters = services.parse_filters(status=status, verified=verified, text=q)
        context = await _list_context(db_session, request, filters, page, paging.PER_PAGE)
        return Template("licensing/admin_list.html.j2", context=context)


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


async def _accept_api(
    request: Request, db_session: AsyncSession, offer_id: int, body: schemas.AcceptBody
) -> Response[schemas.ContractOut]:
    contract, created = await services.accept(
        db_session,
        actor=current(request),
        offer_id=offer_id,
        values=body.values(request.headers.get("idempotency-key")),
        client=_client(request),
    )
    notice = await services.notice_of(db_session, contract)
    return Response(schemas.ContractOut.of(contract, notice), status_code=201 if created else 200)


@post("/api/v1/offers/{offer_id:int}/accept", guards=[require_login], tags=["contracts"], status_code=201)
async def api_accept_offer(
    request: Request, db_session: AsyncSession, offer_id: int, data: schemas.AcceptBody
) -> Response[schemas.ContractOut]:
    """Take the offer's open licence by written notice (书面通知). 201 with the new contract; 200 with
    the same contract when the idempotency key (body or ``Idempotency-Key`` header) was used before."""
    return await _accept_api(request, db_session, offer_id, data)


class ContractApiController(Controller):
    path = "/api/v1/contracts"
    tags = ["contracts"]
    guards = [require_login]

    @post("/", status_code=201)
    async def create(
        self, request: Request, db_session: AsyncSession, data: schemas.ContractCreate
    ) -> Response[schemas.ContractOut]:
        """Same as ``POST /api/v1/offers/{offer_id}/accept`` with the offer in the body."""
        return await _accept_api(request, db_session, data.offer_id, data)

    @get("/")
    async def list_contracts(
        self,
        request: Request,
        db_session: AsyncSession,
        side: str = "all",
        status: str = "",
        verified: str = "",
        offer_id: int | None = None,
        patent_id: int | None = None,
        page: PageNumber = 1,
        per_page: PerPage = paging.PER_PAGE,
    ) -> schemas.ContractPage:
        """Contracts the caller's organisation is party to (``side``: all, licensee, licensor);
        a platform admin sees every contract."""
        filters = services.parse_filters(
            side=side, status=status, verified=verified, offer_id=offer_id, patent_id=patent_id
        )
        result = await services.list_contracts(db_session, current(request), filters, page=page, per_page=per_page)
        return schemas.ContractPage(
            items=[schemas.ContractOut.of(c) for c in result.items],
            total=result.total,
            page=result.number,
            per_page=result.per_page,
        )

    @get("/{contract_id:int}")
    async def read(self, request: Request, db_session: AsyncSession, contract_id: int) -> schemas.ContractOut:
        contract = await services.get_for_party(db_session, current(request), contract_id)
        return schemas.ContractOut.of(contract, await services.notice_of(db_session, contract))

    @get("/{contract_id:int}/notice.html")
    async def notice_html(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[str]:
        """The written notice exactly as stored; its SHA-256 is ``notice.sha256``."""
        return await _notice_html(request, db_session, contract_id)

    @get("/{contract_id:int}/notice.pdf")
    async def notice_pdf(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[bytes]:
        return await _notice_pdf(request, db_session, contract_id)

    @get("/{contract_id:int}/contract.pdf")
    async def contract_pdf(self, request: Request, db_session: AsyncSession, contract_id: int) -> Response[bytes]:
        return await _contract_pdf(request, db_session, contract_id)

    @post("/{contract_id:int}/termination", status_code=200)
    async def request_termination(
        self, request: Request, db_session: AsyncSession, contract_id: int, data: schemas.TerminationBody
    ) -> schemas.ContractOut:
        """Ask the other party to end the contract by agreement on ``end_date`` (default today)."""
        values = {"reason": data.reason, "end_date": data.end_date}
        contract = await services.request_termination(
            db_session, actor=current(request), contract_id=contract_id, values=values
        )
        return schemas.ContractOut.of(contract)

    @post("/{contract_id:int}/termination/confirm", status_code=200)
    async def confirm_termination(
        self, request: Request, db_session: AsyncSession, contract_id: int
    ) -> schemas.ContractOut:
        """The other party agrees: the contract ends on the requested date."""
        contract = await services.confirm_termination(db_session, actor=current(request), contract_id=contract_id)
        return schemas.ContractOut.of(contract)

    @post("/{contract_id:int}/termination/cancel", status_code=200)
    async def cancel_termination(
        self, request: Request, db_session: AsyncSession, contract_id: int
    ) -> schemas.ContractOut:
        """The requester withdraws the request, or the other party declines it."""
        contract = await services.cancel_termination(db_session, actor=current(request), contract_id=contract_id)
        return schemas.ContractOut.of(contract)


ROUTES = [AcceptanceController, ContractController, AdminContractController, api_accept_offer, ContractApiController]
