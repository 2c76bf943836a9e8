"""Reconciliation findings (对账差异): the page with its inline resolve form (HTMX swaps the row), and
``/api/v1/discrepancies``. Platform admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.errors import ValidationFailed
from marketplace.filings import reconciliation
from marketplace.filings.models import DiscrepancyKind, DiscrepancyStatus, Registry, Severity
from marketplace.web.auth import current, require_platform_admin
from marketplace.web.forms import form_data, form_error

PAGE_TEMPLATE = "filings/discrepancies.html.j2"
ROW_TEMPLATE = "filings/discrepancies_row.html.j2"
PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]


def _options(members: list[Any], everything: str) -> list[tuple[str, str]]:
    return [("", everything), *((member.value, member.label) for member in members)]


FILTER_OPTIONS = {
    "status_options": [*_options(list(DiscrepancyStatus), "")[1:], ("all", "全部")],
    "severity_options": _options(list(Severity), "全部"),
    "kind_options": _options(list(DiscrepancyKind), "全部"),
    "registry_options": _options(list(Registry), "全部"),
}


class DiscrepancyController(Controller):
    path = "/admin/filings/discrepancies"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def index(
        self,
        db_session: AsyncSession,
        status: str = "",
        severity: str = "",
        kind: str = "",
        registry: str = "",
        page: PageNumber = 1,
    ) -> Template:
        raw = {"status": status, "severity": severity, "kind": kind, "registry": registry}
        return await _page(db_session, raw, page)

    @post("/{discrepancy_id:int}/resolve")
    async def resolve(self, request: Request, db_session: AsyncSession, discrepancy_id: int) -> Template | Redirect:
        """Mark an open finding resolved with a note. HTMX gets the row back (with the note's error and
        422 when it is missing); a plain form post returns to the list."""
        note = str((await form_data(request)).get("note", ""))
        htmx = request.headers.get("hx-request") == "true"
        try:
            row = await reconciliation.resolve(db_session, current(request), discrepancy_id, note)
        except ValidationFailed as exc:
            if not htmx:
                return await _page(db_session, {}, 1, failed=(discrepancy_id, note, exc))
            row = await reconciliation.get_discrepancy(db_session, discrepancy_id)
            return form_error(ROW_TEMPLATE, exc, {"d": row, "form": {"note": note}})
        if htmx:
            return Template(ROW_TEMPLATE, context={"d": row, "form": {}, "errors": {}})
        return Redirect(path="/admin/filings/discrepancies?status=resolved")


async def _page(
    db_session: AsyncSession,
    raw: dict[str, str],
    page: int,
    *,
    failed: tuple[int, str, ValidationFailed] | None = None,
) -> Template:
    """The list; ``failed`` is a resolve form sent without JavaScript that needs correcting (422)."""
    form = {**raw, "status": raw.get("status") or DiscrepancyStatus.OPEN.value}
    context: dict[str, Any] = {"form": form, "errors": {}, "result": None, "failed_id": None, **FILTER_OPTIONS}
    try:
        filters = reconciliation.parse_filters(**raw)
        result = await reconciliation.list_discrepancies(db_session, filters, page=page)
    except ValidationFailed as exc:
        return form_error(PAGE_TEMPLATE, exc, context)
    query = urlencode({key: value for key, value in filters.query().items() if value})
    context.update(result=result, pager_base=f"/admin/filings/discrepancies?{query}&")
    if failed is None:
        return Template(PAGE_TEMPLATE, context=context)
    failed_id, note, exc = failed
    context.update(failed_id=failed_id, note=note)
    return form_error(PAGE_TEMPLATE, exc, context)


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------


class DiscrepancyOut(msgspec.Struct):
    id: int
    contract_id: int
    contract_number: str
    licensor: str
    licensee: str
    registry: str
    kind: str
    kind_label: str
    severity: str
    status: str
    detail: str
    detected_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None

    @classmethod
    def of(cls, row: reconciliation.DiscrepancyRow) -> DiscrepancyOut:
        return cls(
            id=row.id,
            contract_id=row.contract_id,
            contract_number=row.contract_number,
            licensor=row.licensor,
            licensee=row.licensee,
            registry=row.registry.value,
            kind=row.kind.value,
            kind_label=row.kind.label,
            severity=row.severity.value,
            status=row.status.value,
            detail=row.detail,
            detected_at=row.detected_at,
            resolved_at=row.resolved_at,
            resolved_by=row.resolved_by,
            resolution_note=row.resolution_note,
        )


class DiscrepancyPage(msgspec.Struct):
    items: list[DiscrepancyOut]
    total: int
    page: int
    per_page: int
    pages: int


class ResolveBody(msgspec.Struct, kw_only=True):
    note: str | None = None


class DiscrepancyApiController(Controller):
    path = "/api/v1/discrepancies"
    tags = ["filings"]
    guards = [require_platform_admin]

    @get("/")
    async def list_discrepancies(
        self,
        db_session: AsyncSession,
        status: Annotated[str, Parameter(description="open（默认）| resolved | cleared | all")] = "",
        severity: Annotated[str, Parameter(description="high | medium | low；不填为全部")] = "",
        kind: Annotated[str, Parameter(description="差异类型；不填为全部")] = "",
        registry: Annotated[str, Parameter(description="licence_filing | tech_contract；不填为全部")] = "",
        page: PageNumber = 1,
        per_page: PerPage = paging.PER_PAGE,
    ) -> DiscrepancyPage:
        """Reconciliation findings (对账差异), the most severe first, then the longest-standing."""
        filters = reconciliation.parse_filters(status=status, severity=severity, kind=kind, registry=registry)
        result = await reconciliation.list_discrepancies(db_session, filters, page=page, per_page=per_page)
        return DiscrepancyPage(
            [DiscrepancyOut.of(row) for row in result.items], result.total, result.number, result.per_page, result.pages
        )

    @get("/{discrepancy_id:int}")
    async def read(self, db_session: AsyncSession, discrepancy_id: int) -> DiscrepancyOut:
        return DiscrepancyOut.of(await reconciliation.get_discrepancy(db_session, discrepancy_id))

    @post("/{discrepancy_id:int}/resolve", status_code=200)
    async def resolve(
        self, request: Request, db_session: AsyncSession, discrepancy_id: int, data: ResolveBody
    ) -> DiscrepancyOut:
        """Mark an open finding resolved (已处理) with a ``note``: 422 without one, 409 unless it is open."""
        row = await reconciliation.resolve(db_session, current(request), discrepancy_id, data.note or "")
        return DiscrepancyOut.of(row)


ROUTES = [DiscrepancyController, DiscrepancyApiController]
