"""HTTP routes of market evaluations: the evaluation form (a fragment of the catalogue's patent
page, submitted by HTMX, with a whole-page fallback), the evaluator's own list, and the
``/api/v1/evaluations`` JSON API; the platform admins' tier list (``/admin/tiers``, ``/api/v1/tiers``)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.errors import ValidationFailed
from marketplace.evaluations import schemas, services, tiers
from marketplace.evaluations.tiering import Tier
from marketplace.settings import Settings
from marketplace.web.auth import current, require_login, require_platform_admin
from marketplace.web.forms import form_data

PANEL = "evaluations/partials/panel.html.j2"
PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]


def panel_context(panel: services.Panel, **extra: Any) -> dict[str, Any]:
    """What ``evaluations/partials/panel.html.j2`` needs (names prefixed so that a page including it
    keeps its own ``errors`` and ``form``)."""
    return {"evaluation_panel": panel, "evaluation_saved": False, **extra}


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class EvaluationPages(Controller):
    path = "/evaluations"
    guards = [require_login]
    include_in_schema = False

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession, page: PageNumber = 1) -> Template:
        result = await services.list_visible(db_session, current(request), page=page)
        return Template("evaluations/list.html.j2", context={"result": result, "pager_base": "/evaluations?"})

    async def _page_context(self, request: Request, db_session: AsyncSession, patent_id: int) -> dict[str, Any]:
        patent = await services.evaluable_patent(db_session, patent_id)
        panel = await services.panel(db_session, current(request), patent)
        offer_id = await services.published_offer_id(db_session, patent_id)
        return {"patent": patent, "offer_id": offer_id, "panel": panel}

    @get("/patents/{patent_id:int}")
    async def form(self, request: Request, db_session: AsyncSession, patent_id: int) -> Template:
        context = await self._page_context(request, db_session, patent_id)
        return Template("evaluations/page.html.j2", context={**context, **panel_context(context["panel"])})

    @post("/patents/{patent_id:int}")
    async def save(
        self, request: Request, db_session: AsyncSession, settings: Settings, patent_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        values = {
            "prospects": str(data.get("prospects", "")),
            "cooperation": str(data.get("cooperation", "")),
            "improvement_needs": str(data.get("improvement_needs", "")),
            "interested_now": data.get("interested_now"),
        }
        try:
            await services.save(db_session, current(request), patent_id, values, rules=tiers.rules_for(settings))
        except ValidationFailed as exc:
            context = await self._page_context(request, db_session, patent_id)
            typed = {**values, "interested_now": bool(values["interested_now"])}
            extra = {"evaluation_errors": exc.by_field(), "evaluation_error_summary": exc.message}
            template = PANEL if _is_htmx(request) else "evaluations/page.html.j2"
            full = {**context, **panel_context(context["panel"], evaluation_form=typed, **extra)}
            # 422 rolls the request back: a rejected evaluation writes nothing.
            return Template(template, context=full, status_code=422)
        context = await self._page_context(request, db_session, patent_id)
        if _is_htmx(request):
            return Template(PANEL, context=panel_context(context["panel"], evaluation_saved=True))
        return Redirect(path=f"/catalogue/{context['offer_id']}?evaluated=1#evaluation")


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


class EvaluationApi(Controller):
    path = "/api/v1/evaluations"
    tags = ["evaluations"]
    guards = [require_login]

    @post("/", summary="评价一件专利（创建或修改本人的评价）")
    async def save(
        self, request: Request, db_session: AsyncSession, settings: Settings, data: schemas.EvaluationWrite
    ) -> Response[schemas.EvaluationOut]:
        """Create the caller's evaluation of a catalogue patent (201), or replace its fields when
        the caller has already evaluated that patent (200): one evaluation per evaluator and patent."""
        evaluation, created = await services.save(
            db_session, current(request), data.patent_id, data.values(), rules=tiers.rules_for(settings)
        )
        return Response(schemas.EvaluationOut.of(evaluation), status_code=201 if created else 200)

    @get("/", summary="列出可见的评价")
    async def list_evaluations(
        self,
        request: Request,
        db_session: AsyncSession,
        patent_id: Annotated[int | None, Parameter(description="只看这件专利的评价", ge=1)] = None,
        page: PageNumber = 1,
        per_page: PerPage = paging.PER_PAGE,
    ) -> schemas.EvaluationPage:
        """An evaluator's own evaluations (an enterprise's token: the enterprise's); a licensor's,
        those of its patents; a platform admin's, all. Most recently changed first."""
        result = await services.list_visible(
            db_session, current(request), patent_id=patent_id, page=page, per_page=per_page
        )
        return schemas.EvaluationPage.of(result)

    @get("/{evaluation_id:int}", summary="读取一条评价")
    async def read(self, request: Request, db_session: AsyncSession, evaluation_id: int) -> schemas.EvaluationOut:
        """Visible as in the list; anyone else gets 404."""
        return schemas.EvaluationOut.of(await services.get_visible(db_session, current(request), evaluation_id))


# ---------------------------------------------------------------------------------------------
# Tiers (分层): platform admins' list; licensors see theirs on their patent pages
# ---------------------------------------------------------------------------------------------


class TierPages(Controller):
    path = "/admin/tiers"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def index(
        self, db_session: AsyncSession, tier: str = "", flagged: str = "", licensor: str = "", page: PageNumber = 1
    ) -> Template:
        filters = tiers.parse_filters(tier, flagged, licensor)
        result = await tiers.list_tiers(db_session, filters, page=page)
        chosen = {"tier": tier, "flagged": flagged, "licensor": licensor}
        query = {k: v for k, v in chosen.items() if v}
        return Template(
            "evaluations/tiers.html.j2",
            context={
                "result": result,
                "filters": chosen,
                "tier_options": [("", "全部"), *tiers.TIER_OPTIONS],
                "flag_options": [("", "全部"), ("1", "待重新评价"), ("0", "无需重新评价")],
                "licensor_options": [("", "全部"), *await tiers.licensor_options(db_session)],
                "pager_base": "/admin/tiers?" + (urlencode(query) + "&" if query else ""),
            },
        )


class TierApi(Controller):
    path = "/api/v1/tiers"
    tags = ["evaluations"]
    guards = [require_platform_admin]

    @get("/", summary="专利分层列表（平台管理员）")
    async def list_tiers(
        self,
        db_session: AsyncSession,
        tier: Annotated[Tier | None, Parameter(description="分层：high_value 高价值、general 一般、low 低")] = None,
        needs_re_evaluation: Annotated[bool | None, Parameter(description="是否待重新评价")] = None,
        licensor_id: Annotated[int | None, Parameter(ge=1, le=2**63 - 1, description="许可人机构编号")] = None,
        page: PageNumber = 1,
        per_page: PerPage = paging.PER_PAGE,
    ) -> schemas.TierPage:
        """Catalogue patents with their tier, points, reason lines and re-evaluation flag, highest
        points first. Licensors read their own patents' tiers in ``/api/v1/patents``."""
        filters = tiers.TierFilters(tier=tier, flagged=needs_re_evaluation, licensor_id=licensor_id)
        return schemas.TierPage.of(await tiers.list_tiers(db_session, filters, page=page, per_page=per_page))


ROUTES = [EvaluationPages, EvaluationApi, TierPages, TierApi]
