"""HTTP routes of open-licence offers: the licensor's pages, the admin review pages, the public
offer page with its cost calculator, and the ``/api/v1/offers`` JSON API."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.clock import today
from marketplace.errors import NotFound, ValidationFailed
from marketplace.evaluations import services as evaluation_services
from marketplace.files.services import Upload
from marketplace.licensing.services import licence_counts
from marketplace.matching import services as matching_services
from marketplace.offers import rules, schemas, services
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.settings import Settings
from marketplace.web.auth import current, require_login, require_patent_holder, require_platform_admin
from marketplace.web.forms import form_data, form_error

FORM_OPTIONS = {
    "modes": [(m.value, m.label) for m in PaymentMode],
    "then_modes": [(m.value, m.label) for m in rules.DEFERRABLE_MODES],
    "bases": [(b.value, b.label) for b in rules.RoyaltyBase],
    "schedules": [(s.value, s.label) for s in rules.RateSchedule],
    "periods": [(p.value, p.label) for p in rules.ReportingPeriod],
    "deferrals": [(d.value, d.label) for d in rules.Deferral],
}
AUDIT_ACTIONS = {
    "create": "创建草稿",
    "update": "修改",
    "revise": "驳回后修改",
    "submit": "提交审核",
    "approve": "审核通过并公告",
    "reject": "驳回",
    "withdraw": "撤回",
    "supersede": "被新版本替代",
    "new_version": "创建新版本",
    "attach_evaluation_report": "上传评价报告",
    "push": "定向推送",
    "push_delivered": "推送送达",
}


def _fee_context(values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    return {"values": values, "errors": errors, "options": FORM_OPTIONS}


# ---------------------------------------------------------------------------------------------
# Licensor pages
# ---------------------------------------------------------------------------------------------


class LicensorOfferController(Controller):
    path = "/offers"
    guards = [require_patent_holder]
    include_in_schema = False

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession) -> Template:
        offers = await services.list_for_organisation(db_session, current(request).organisation_id)
        return Template("offers/list.html.j2", context={"offers": offers})

    async def _form(
        self,
        request: Request,
        db_session: AsyncSession,
        values: dict[str, str],
        offer: OpenLicenceOffer | None = None,
    ) -> dict[str, Any]:
        patents = [] if offer else await services.own_patents(db_session, current(request).organisation_id)
        return {**_fee_context(values, {}), "patents": patents, "offer": offer}

    @get("/new")
    async def new(self, request: Request, db_session: AsyncSession, patent_id: str = "", mode: str = "") -> Template:
        values = {
            "patent_id": patent_id,
            "territory": "中国大陆",
            "fee_terms.mode": mode if mode in PaymentMode._value2member_map_ else PaymentMode.LUMP_SUM.value,
        }
        return Template("offers/form.html.j2", context=await self._form(request, db_session, values))

    @post("/")
    async def create(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        data = await form_data(request)
        patent_id, offer_input = await schemas.offer_input_from_form(data)
        try:
            offer = await services.create_draft(
                db_session, actor=current(request), settings=settings, patent_id=patent_id, data=offer_input
            )
        except ValidationFailed as exc:
            context = await self._form(request, db_session, schemas.submitted_values(data))
            return form_error("offers/form.html.j2", schemas.for_form(exc), context)
        return Redirect(path=f"/offers/{offer.id}")

    @get("/fee-fields")
    async def fee_fields(self, request: Request, prefix: str = schemas.FEE_PREFIX) -> Template:
        """The mode-specific fee inputs (HTMX swaps them in when the payment mode changes)."""
        if prefix not in schemas.SWAPPABLE_PREFIXES:
            prefix = schemas.FEE_PREFIX
        mode = str(request.query_params.get(f"{prefix}.mode") or "")
        context = {**_fee_context({}, {}), "prefix": prefix, "mode": mode}
        return Template("offers/partials/fee_fields.html.j2", context=context)

    async def _detail(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        offer: OpenLicenceOffer,
        exc: ValidationFailed | None = None,
        form: dict[str, Any] | None = None,
    ) -> Template:
        me = current(request)
        context = {
            "offer": offer,
            "description": services.describe(offer),
            "eligibility": services.eligibility(offer, settings),
            "actions": rules.licensor_actions(offer.status, is_org_admin=me.is_org_admin),
            "audit": await services.audit_trail(db_session, offer.id),
            "audit_actions": AUDIT_ACTIONS,
            "versions": await services.series_versions(db_session, offer),
            "licences": (await licence_counts(db_session, [offer.id])).get(offer.id, 0),
            "form": form or {},
            "errors": {},
        }
        if exc is not None:
            return form_error("offers/detail.html.j2", exc, context)
        return Template("offers/detail.html.j2", context=context)

    @get("/{offer_id:int}")
    async def detail(self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int) -> Template:
        offer = await services.get_for_licensor(db_session, current(request), offer_id)
        return await self._detail(request, db_session, settings, offer)

    @get("/{offer_id:int}/edit")
    async def edit(self, request: Request, db_session: AsyncSession, offer_id: int) -> Template | Redirect:
        offer = await services.get_for_licensor(db_session, current(request), offer_id)
        if offer.status not in rules.EDITABLE_STATUSES:
            return Redirect(path=f"/offers/{offer.id}")
        context = await self._form(request, db_session, schemas.form_values(offer), offer)
        return Template("offers/form.html.j2", context=context)

    @post("/{offer_id:int}/edit")
    async def update(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> Template | Redirect:
        me = current(request)
        offer = await services.get_for_licensor(db_session, me, offer_id)
        data = await form_data(request)
        _, offer_input = await schemas.offer_input_from_form(data)
        try:
            await services.update_draft(db_session, actor=me, settings=settings, offer_id=offer.id, data=offer_input)
        except ValidationFailed as exc:
            context = await self._form(request, db_session, schemas.submitted_values(data), offer)
            return form_error("offers/form.html.j2", schemas.for_form(exc), context)
        return Redirect(path=f"/offers/{offer.id}")

    @post("/{offer_id:int}/submit")
    async def submit(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> Template | Redirect:
        me = current(request)
        try:
            await services.submit(db_session, actor=me, settings=settings, offer_id=offer_id)
        except ValidationFailed as exc:
            offer = await services.get_for_licensor(db_session, me, offer_id)
            return await self._detail(request, db_session, settings, offer, exc)
        return Redirect(path=f"/offers/{offer_id}")

    @post("/{offer_id:int}/withdraw")
    async def withdraw(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> Template | Redirect:
        me = current(request)
        data = await form_data(request)
        try:
            await services.withdraw(
                db_session,
                actor=me,
                offer_id=offer_id,
                reason=str(data.get("reason", "")),
                co_owners_consented=data.get("co_owners_consented") == "1",
            )
        except ValidationFailed as exc:
            offer = await services.get_for_licensor(db_session, me, offer_id)
            return await self._detail(request, db_session, settings, offer, exc, form=schemas.submitted_values(data))
        return Redirect(path=f"/offers/{offer_id}")

    @post("/{offer_id:int}/new-version")
    async def new_version(self, request: Request, db_session: AsyncSession, offer_id: int) -> Redirect:
        draft = await services.new_version(db_session, actor=current(request), offer_id=offer_id)
        return Redirect(path=f"/offers/{draft.id}/edit")


# ---------------------------------------------------------------------------------------------
# Platform admin review
# ---------------------------------------------------------------------------------------------


def _status_filter(raw: str | None, default: OfferStatus | None) -> OfferStatus | None:
    if raw == "all":
        return None
    return OfferStatus._value2member_map_.get(raw or "", default)  # type: ignore[return-value]


class AdminOfferController(Controller):
    path = "/admin/offers"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def queue(self, db_session: AsyncSession, status: str = "") -> Template:
        chosen = _status_filter(status, OfferStatus.SUBMITTED)
        offers = await services.review_queue(db_session, chosen)
        context = {"offers": offers, "status": chosen.value if chosen else "all", "statuses": list(OfferStatus)}
        return Template("admin/offers.html.j2", context=context)

    async def _review(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        offer_id: int,
        exc: ValidationFailed | None = None,
        form: dict[str, Any] | None = None,
    ) -> Template:
        offer = await services.get_for_admin(db_session, current(request), offer_id)
        context = {
            "offer": offer,
            "description": services.describe(offer),
            "eligibility": services.eligibility(offer, settings),
            "audit": await services.audit_trail(db_session, offer.id),
            "audit_actions": AUDIT_ACTIONS,
            "versions": await services.series_versions(db_session, offer),
            "licences": (await licence_counts(db_session, [offer.id])).get(offer.id, 0),
            "form": form or {},
            "errors": {},
        }
        if exc is not None:
            return form_error("admin/offer.html.j2", exc, context)
        return Template("admin/offer.html.j2", context=context)

    @get("/{offer_id:int}")
    async def review(self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int) -> Template:
        return await self._review(request, db_session, settings, offer_id)

    @post("/{offer_id:int}/approve")
    async def approve(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.approve(
                db_session,
                actor=current(request),
                settings=settings,
                offer_id=offer_id,
                announcement_number=str(data.get("announcement_number", "")),
                announcement_date=str(data.get("announcement_date", "")),
            )
        except ValidationFailed as exc:
            form = schemas.submitted_values(data)
            return await self._review(request, db_session, settings, offer_id, exc, form)
        return Redirect(path=f"/admin/offers/{offer_id}")

    @post("/{offer_id:int}/reject")
    async def reject(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        try:
            await services.reject(db_session, actor=current(request), offer_id=offer_id, reason=str(data.get("reason")))
        except ValidationFailed as exc:
            form = schemas.submitted_values(data)
            return await self._review(request, db_session, settings, offer_id, exc, form)
        return Redirect(path="/admin/offers")


# ---------------------------------------------------------------------------------------------
# Public offer page and cost calculator
# ---------------------------------------------------------------------------------------------


def _calculator(offer: OpenLicenceOffer, annual_base: str, start: str) -> dict[str, Any]:
    """The calculator's inputs, result and errors. Without inputs only fixed fees are estimated
    (a royalty needs the licensee's expected base)."""
    royalty = rules.royalty_of(services.terms_of(offer))
    if royalty is None:
        base_label = None
    elif royalty.base is rules.RoyaltyBase.UNITS:
        base_label = "预计每年实施数量（件）"
    else:
        base_label = f"预计每年{royalty.base.label}（元）"
    context: dict[str, Any] = {
        "offer": offer,
        "base_label": base_label,
        "inputs": {"annual_base": annual_base, "start": start or today().isoformat()},
        "timeline": None,
        "errors": {},
        "error_summary": None,
    }
    if royalty is not None and not (annual_base.strip() or start.strip()):
        return context
    try:
        request = services.estimate_inputs(offer, annual_base=annual_base, start=start, base_in_yuan=True)
    except ValidationFailed as exc:
        context["errors"] = exc.by_field()
        context["error_summary"] = exc.message
        return context
    context["timeline"] = services.estimate(offer, request)
    return context


class PublicOfferController(Controller):
    path = "/catalogue"
    include_in_schema = False

    @get("/{offer_id:int}")
    async def page(
        self,
        request: Request,
        db_session: AsyncSession,
        offer_id: int,
        annual_base: str = "",
        start: str = "",
        evaluated: str = "",
        via: str = "",
    ) -> Template:
        offer = await services.get_public(db_session, current(request), offer_id)
        if offer.status is OfferStatus.PUBLISHED:
            await matching_services.note_view(db_session, current(request), offer.patent_id, via)
        calculator = _calculator(offer, annual_base, start)
        evaluation = await evaluation_services.panel(db_session, current(request), offer.patent)
        context = {
            **calculator,
            "evaluation_panel": evaluation,
            "evaluation_saved": evaluated == "1",
            "description": services.describe(offer),
            "patent": offer.patent,
        }
        status = 422 if calculator["errors"] else 200
        return Template("offers/public.html.j2", context=context, status_code=status)

    @get("/{offer_id:int}/calculator")
    async def calculator(
        self, request: Request, db_session: AsyncSession, offer_id: int, annual_base: str = "", start: str = ""
    ) -> Template:
        offer = await services.get_public(db_session, current(request), offer_id)
        if offer.status is not OfferStatus.PUBLISHED:
            raise NotFound("该开放许可已撤回")
        calculator = _calculator(offer, annual_base, start)
        status = 422 if calculator["errors"] else 200
        return Template("offers/partials/calculator_result.html.j2", context=calculator, status_code=status)


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


class OfferApiController(Controller):
    path = "/api/v1/offers"
    tags = ["offers"]

    @get("/")
    async def list_offers(
        self,
        request: Request,
        db_session: AsyncSession,
        status: OfferStatus | None = None,
        page: Annotated[int, Parameter(ge=1, le=100_000)] = 1,
        per_page: Annotated[int, Parameter(ge=1, le=100)] = 20,
    ) -> schemas.OfferPage:
        """Offers: with a token, the caller organisation's (platform admin: all); anonymous, published ones."""
        offers, total = await services.list_page(
            db_session, current(request), status=status, page=page, per_page=per_page
        )
        return schemas.OfferPage(
            items=[schemas.OfferOut.of(o) for o in offers], total=total, page=page, per_page=per_page
        )

    @post("/", guards=[require_login])
    async def create(
        self, request: Request, db_session: AsyncSession, settings: Settings, data: schemas.OfferCreate
    ) -> schemas.OfferOut:
        """Create a draft offer for one of the organisation's patents."""
        offer = await services.create_draft(
            db_session, actor=current(request), settings=settings, patent_id=data.patent_id, data=data.to_input()
        )
        return schemas.OfferOut.of(offer, eligibility=services.eligibility(offer, settings))

    @get("/{offer_id:int}")
    async def read(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> schemas.OfferOut:
        """One offer: public when published; otherwise its licensor and platform admins only."""
        me = current(request)
        offer = await services.get_visible(db_session, me, offer_id)
        problems = services.eligibility(offer, settings) if services.can_manage(me, offer) else None
        return schemas.OfferOut.of(offer, eligibility=problems)

    @put("/{offer_id:int}", guards=[require_login])
    async def update(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int, data: schemas.OfferWrite
    ) -> schemas.OfferOut:
        """Replace a draft's (or rejected offer's) fields; a rejected offer returns to draft."""
        offer = await services.update_draft(
            db_session, actor=current(request), settings=settings, offer_id=offer_id, data=data.to_input()
        )
        return schemas.OfferOut.of(offer, eligibility=services.eligibility(offer, settings))

    @put("/{offer_id:int}/evaluation-report", guards=[require_login])
    async def upload_report(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        offer_id: int,
        data: Annotated[UploadFile, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> schemas.OfferOut:
        """Attach the patent evaluation report (专利权评价报告, PDF) to a draft or rejected offer."""
        upload = Upload(filename=data.filename or "evaluation-report.pdf", content=await data.read())
        offer = await services.attach_evaluation_report(
            db_session, actor=current(request), settings=settings, offer_id=offer_id, upload=upload
        )
        return schemas.OfferOut.of(offer, eligibility=services.eligibility(offer, settings))

    @post("/{offer_id:int}/submit", guards=[require_login], status_code=200)
    async def submit(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int
    ) -> schemas.OfferOut:
        """Submit a draft for review; every unmet eligibility condition is listed in ``errors``."""
        offer = await services.submit(db_session, actor=current(request), settings=settings, offer_id=offer_id)
        return schemas.OfferOut.of(offer)

    @post("/{offer_id:int}/withdraw", guards=[require_login], status_code=200)
    async def withdraw(
        self, request: Request, db_session: AsyncSession, offer_id: int, data: schemas.WithdrawBody
    ) -> schemas.OfferOut:
        """Withdraw a published offer (organisation admin or token). Licences already taken are unaffected."""
        offer = await services.withdraw(
            db_session,
            actor=current(request),
            offer_id=offer_id,
            reason=data.reason,
            co_owners_consented=data.co_owners_consented,
        )
        return schemas.OfferOut.of(offer)

    @post("/{offer_id:int}/new-version", guards=[require_login], status_code=201)
    async def new_version(self, request: Request, db_session: AsyncSession, offer_id: int) -> schemas.OfferOut:
        """Start the next version of a published offer as a draft with the same terms."""
        draft = await services.new_version(db_session, actor=current(request), offer_id=offer_id)
        return schemas.OfferOut.of(draft)

    @post("/{offer_id:int}/approve", guards=[require_platform_admin], status_code=200)
    async def approve(
        self, request: Request, db_session: AsyncSession, settings: Settings, offer_id: int, data: schemas.ApproveBody
    ) -> schemas.OfferOut:
        """Publish a submitted offer with its announcement number and date (platform admin)."""
        offer = await services.approve(
            db_session,
            actor=current(request),
            settings=settings,
            offer_id=offer_id,
            announcement_number=data.announcement_number,
            announcement_date=data.announcement_date,
        )
        return schemas.OfferOut.of(offer)

    @post("/{offer_id:int}/reject", guards=[require_platform_admin], status_code=200)
    async def reject(
        self, request: Request, db_session: AsyncSession, offer_id: int, data: schemas.ReasonBody
    ) -> schemas.OfferOut:
        """Reject a submitted offer with a reason (platform admin)."""
        offer = await services.reject(db_session, actor=current(request), offer_id=offer_id, reason=data.reason)
        return schemas.OfferOut.of(offer)

    @get("/{offer_id:int}/cost-estimate")
    async def cost_estimate(
        self, request: Request, db_session: AsyncSession, offer_id: int, annual_base: str = "", start: str = ""
    ) -> schemas.CostEstimateOut:
        """Expected payments over the licence term. ``annual_base``: fen of yearly sales/profit/added
        output, or units per year for a per-unit royalty; ``start``: YYYY-MM-DD (default today)."""
        offer = await services.get_visible(db_session, current(request), offer_id)
        inputs = services.estimate_inputs(offer, annual_base=annual_base, start=start, base_in_yuan=False)
        return schemas.CostEstimateOut.of(offer.id, inputs.annual_base, services.estimate(offer, inputs))


ROUTES = [LicensorOfferController, AdminOfferController, PublicOfferController, OfferApiController]
