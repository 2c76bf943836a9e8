"""HTTP routes of the conversion funnel (转化漏斗): a licensor's page (``/funnel``) and one patent's
(``/funnel/patents/{id}``), the platform admins' page (``/admin/funnel``), and ``GET /api/v1/funnel``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.params import Parameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.errors import ValidationFailed
from marketplace.matching import funnel
from marketplace.matching.funnel import Report
from marketplace.matching.funnel_rules import (
    STAGES,
    Breakdown,
    Filters,
    breakdown_chart,
    funnel_chart,
    parse_filters,
    region_options,
)
from marketplace.matching.funnel_schemas import FunnelOut
from marketplace.web.auth import current, require_login, require_platform_admin
from marketplace.web.forms import form_error

PAGE = "matching/funnel.html.j2"
PATENT_PAGE = "matching/funnel_patent.html.j2"
ADMIN_PAGE = "matching/funnel_admin.html.j2"
_PERIOD = ("from", "to")
_ADMIN_FILTERS = ("licensor_id", "region", "from", "to")
API_DESCRIPTION = """\
每个阶段统计不同的（企业，专利）组合数：`shown` 推荐展示（推荐页、API、每周推荐、许可方推送），\
`viewed` 查看（打开目录页面），`evaluated` 评价（企业用户的市场评价；评审专家的评价不计入），\
`accepted` 取得许可（企业为被许可人的任何状态的许可合同），`filed` 备案（该合同的专利实施许可合同备案已办结）。

时间筛选 `from`/`to`（北京时间的日期，含起止日）按各组合首次达到该阶段的时间：推荐与查看按记录时间，\
评价按首次提交时间，取得许可按接受许可的时间，备案按办结日期（`filed_on`）。

响应：

```
{"scope": {"patent_id", "patent_number", "patent_title", "licensor_id", "licensor_name",
           "region", "region_name", "from", "to"},
 "stages": [{"stage", "label", "count", "from_previous_pct", "from_shown_pct"}],
 "by": "patent" | "licensor" | "region", "groups_total", "groups_limit",
 "by_patent" | "by_licensor" | "by_region": [{"key", "label", "number", "stages": [...]}]}
```

只出现 `by` 对应的一个分组列表，按推荐展示数从多到少，最多 `groups_limit` 行（共 `groups_total` 组）；\
`key` 为专利编号、许可人机构编号或两位省级行政区划代码。转化率为百分数，保留一位小数（四舍五入，\
以十进制计算）；分母为 0 时为 null，`shown` 的 `from_previous_pct` 也为 null。

权限：许可人（高校、科研机构）的令牌只能查看本机构的专利——指定其他许可人为 403，\
其他机构的专利为 404；平台管理员的令牌可查看全部；企业令牌为 403；未认证为 401。\
筛选值不正确时返回 422 problem details，`errors` 中列出字段与中文说明。"""


def _raw(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in names}


def _parse(raw: dict[str, str]) -> Filters:
    return parse_filters(
        patent_id=raw.get("patent_id", ""),
        licensor_id=raw.get("licensor_id", ""),
        region=raw.get("region", ""),
        start=raw.get("from", ""),
        end=raw.get("to", ""),
        by=raw.get("by", ""),
    )


def _query(raw: dict[str, str]) -> str:
    chosen = {name: value for name, value in raw.items() if value}
    return urlencode(chosen)


def _charts(report: Report, title: str) -> dict[str, Any]:
    """The totals' chart and one per table, titled for the page."""
    charts: dict[str, Any] = {"totals": funnel_chart("funnel-chart", f"{title}转化漏斗", report.totals)}
    for table in report.tables:
        charts[table.by.value] = breakdown_chart(
            f"funnel-chart-{table.by.value}",
            f"{table.by.label}（推荐展示最多的前{min(len(table.rows), 10)}个）",
            [(row.label, row.counts) for row in table.rows],
        )
    return charts


def _context(raw: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "form": raw,
        "errors": {},
        "report": None,
        "charts": {},
        "query": _query(raw),
        "stages": STAGES,
        "breakdown": Breakdown,
        **extra,
    }


class FunnelPages(Controller):
    """A licensor's funnel of its own patents; platform admins are sent to theirs."""

    path = "/funnel"
    guards = [require_login]
    include_in_schema = False

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession) -> Template | Redirect:
        principal = current(request)
        raw = _raw(request, _PERIOD)
        if principal is not None and principal.is_platform_admin:
            query = _query(raw)
            return Redirect(path="/admin/funnel" + (f"?{query}" if query else ""))
        funnel.require_reader(principal)
        context = _context(raw)
        try:
            filters = _parse(raw)
        except ValidationFailed as exc:
            return form_error(PAGE, exc, context)
        report = await funnel.report(db_session, principal, filters, tables=[Breakdown.PATENT])
        context.update(report=report, charts=_charts(report, "本机构专利"))
        return Template(PAGE, context=context)

    @get("/patents/{patent_id:int}")
    async def patent(self, request: Request, db_session: AsyncSession, patent_id: int) -> Template:
        principal = current(request)
        funnel.require_reader(principal)
        raw = _raw(request, _PERIOD)
        context = _context(raw, patent_id=patent_id)
        try:
            filters = _parse(raw)
        except ValidationFailed as exc:
            # The page names the patent, so who may see it is settled before the form is re-rendered.
            scope = await funnel.resolve_scope(db_session, principal, Filters(patent_id=patent_id))
            return form_error(PATENT_PAGE, exc, {**context, "scope": scope})
        filters = Filters(patent_id=patent_id, period=filters.period)
        report = await funnel.report(db_session, principal, filters, tables=[])
        context.update(report=report, scope=report.scope, charts=_charts(report, "本专利"))
        return Template(PATENT_PAGE, context=context)


class AdminFunnelPages(Controller):
    """The platform's funnel: totals, by licensor and by region, filtered by licensor, region and period;
    with a licensor chosen, also by patent."""

    path = "/admin/funnel"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession) -> Template:
        raw = _raw(request, _ADMIN_FILTERS)
        context = _context(raw, licensor_options=[("", "全部"), *await funnel.licensor_options(db_session)])
        context["region_options"] = [("", "全部"), *region_options()]
        try:
            filters = _parse(raw)
        except ValidationFailed as exc:
            return form_error(ADMIN_PAGE, exc, context)
        tables = [Breakdown.LICENSOR, Breakdown.REGION]
        if filters.licensor_id is not None:
            tables.append(Breakdown.PATENT)
        try:
            report = await funnel.report(db_session, current(request), filters, tables=tables)
        except ValidationFailed as exc:
            return form_error(ADMIN_PAGE, exc, context)
        named = [name for name in (report.scope.licensor_name, report.scope.region_name) if name]
        context.update(report=report, charts=_charts(report, " · ".join(named) + "：" if named else "全平台"))
        return Template(ADMIN_PAGE, context=context)


class FunnelApi(Controller):
    path = "/api/v1/funnel"
    tags = ["matching"]
    guards = [require_login]

    @get("/", summary="转化漏斗：推荐展示 → 查看 → 评价 → 取得许可 → 备案", description=API_DESCRIPTION)
    async def read(
        self,
        request: Request,
        db_session: AsyncSession,
        patent_id: Annotated[str, Parameter(description="只看这件专利（专利编号）")] = "",
        licensor_id: Annotated[str, Parameter(description="只看这个许可人（机构编号；许可人令牌只能是本机构）")] = "",
        region: Annotated[str, Parameter(description="只看许可人在这个省份的专利（两位省级行政区划代码，如 11）")] = "",
        start: Annotated[str, QueryParameter(name="from", description="开始日期 YYYY-MM-DD（北京时间，含当日）")] = "",
        end: Annotated[str, QueryParameter(name="to", description="结束日期 YYYY-MM-DD（北京时间，含当日）")] = "",
        by: Annotated[
            str,
            Parameter(
                description="分组：patent | licensor | region"
                "（默认：指定了专利或许可人时按专利，指定了地区时按许可人，否则按地区）"
            ),
        ] = "",
    ) -> FunnelOut:
        """The funnel the caller may read (see ``API_DESCRIPTION``, which the OpenAPI schema carries)."""
        principal = funnel.require_reader(current(request))
        raw = {"patent_id": patent_id, "licensor_id": licensor_id, "region": region, "from": start, "to": end, "by": by}
        report = await funnel.report(db_session, principal, _parse(raw))
        return FunnelOut.of(report)


ROUTES = [FunnelPages, AdminFunnelPages, FunnelApi]
