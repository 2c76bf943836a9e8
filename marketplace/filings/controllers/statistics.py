"""Quarterly statistics (季度统计): the page with its charts, the CSV and XLSX downloads, and
``GET /api/v1/statistics``. Platform admins only."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.clock import today
from marketplace.errors import ValidationFailed
from marketplace.filings import statistics
from marketplace.web.auth import require_platform_admin
from marketplace.web.forms import form_error

TEMPLATE = "filings/statistics.html.j2"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
QUARTER_OPTIONS = [(str(n), f"第{n}季度（{3 * n - 2}–{3 * n}月）") for n in range(1, 5)]
DIMENSION_OPTIONS = [(dimension.value, dimension.label) for dimension in statistics.Dimension]


def _params(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in ("year", "quarter", "by")}


async def _table(request: Request, db_session: AsyncSession) -> statistics.Table:
    return await statistics.statistics(db_session, **_params(request))


def _download(content: bytes, filename: str, media_type: str) -> Response[bytes]:
    return Response(
        content=content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


class StatisticsController(Controller):
    path = "/admin/filings"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/statistics")
    async def page(self, request: Request, db_session: AsyncSession) -> Template:
        params = _params(request)
        current = statistics.Quarter.of(today())
        form = {
            "year": params["year"] or str(current.year),
            "quarter": params["quarter"] or str(current.quarter),
            "by": params["by"] or statistics.Dimension.REGION.value,
        }
        context: dict[str, Any] = {
            "form": form,
            "errors": {},
            "table": None,
            "charts": [],
            "measures": statistics.MEASURES,
            "quarter_options": QUARTER_OPTIONS,
            "dimension_options": DIMENSION_OPTIONS,
            "min_year": statistics.MIN_YEAR,
            "max_year": statistics.MAX_YEAR,
        }
        try:
            table = await statistics.statistics(db_session, **params)
        except ValidationFailed as exc:
            return form_error(TEMPLATE, exc, context)
        context.update(table=table, charts=statistics.table_charts(table))
        return Template(TEMPLATE, context=context)

    @get("/statistics.csv")
    async def csv(self, request: Request, db_session: AsyncSession) -> Response[bytes]:
        table = await _table(request, db_session)
        return _download(statistics.to_csv(table), table.filename("csv"), CSV_MEDIA_TYPE)

    @get("/statistics.xlsx")
    async def xlsx(self, request: Request, db_session: AsyncSession) -> Response[bytes]:
        table = await _table(request, db_session)
        return _download(statistics.to_xlsx(table), table.filename("xlsx"), XLSX_MEDIA_TYPE)


class StatisticsApiController(Controller):
    path = "/api/v1/statistics"
    tags = ["filings"]
    guards = [require_platform_admin]

    @get("/")
    async def read(
        self,
        db_session: AsyncSession,
        year: Annotated[str, Parameter(description="年份 2000–2100（默认本季度所在年份）")] = "",
        quarter: Annotated[str, Parameter(description="季度 1–4（默认本季度）")] = "",
        by: Annotated[
            str, Parameter(description="统计维度：region | licensor_type | industry | payment_mode（默认 region）")
        ] = "",
    ) -> statistics.StatisticsOut:
        """Quarterly statistics (季度统计): per group of the chosen dimension, the new licences (signed in
        the quarter), licence filings and technology-contract registrations (filed in it), the contract
        value of the new licences, the technology transaction value of the registrations and the payments
        received less refunds, amounts in fen; ``total`` is the sum of the rows."""
        table = await statistics.statistics(db_session, year=year, quarter=quarter, by=by)
        return statistics.StatisticsOut.of(table)


ROUTES = [StatisticsController, StatisticsApiController]
