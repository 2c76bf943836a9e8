"""The public catalogue (许可目录): the home page, the search page with its HTMX results fragment,
and ``GET /api/v1/catalogue``. No login needed anywhere: every entry is a published offer."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.catalogue import rules, services
from marketplace.catalogue.rules import CatalogueQuery, SortOrder
from marketplace.catalogue.schemas import CatalogueSearchResponse
from marketplace.errors import ValidationFailed
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType
from marketplace.web.forms import form_error

RESULTS_FRAGMENT = "catalogue/partials/results.html.j2"
# Raw values echoed back into the page's text inputs, so a mistyped value can be corrected.
_TEXT_INPUTS = ("q", "ipc_class", "max_upfront")


def _wants_fragment(request: Request) -> bool:
    """An HTMX swap gets the results region only; a history restore needs the whole page."""
    headers = request.headers
    return headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"


@get("/", include_in_schema=False)
async def home(db_session: AsyncSession) -> Template:
    overview = await services.summary(db_session)
    return Template("home.html.j2", context={"summary": overview})


@get("/catalogue", include_in_schema=False)
async def catalogue_page(request: Request, db_session: AsyncSession) -> Template:
    query, errors = rules.parse_page_params(request.query_params)
    result = await services.search(db_session, query)
    paging = {k: v for k, v in rules.page_params(query).items() if k != "page"}
    context = {
        "result": result,
        "query": query,
        "form": {name: request.query_params.get(name, "") for name in _TEXT_INPUTS},
        "errors": {},
        "sort_options": [(s.value, s.label) for s in SortOrder],
        "trl_options": [("", "不限"), *((level, f"TRL {level} 及以上") for level in range(1, 10))],
        "default_page_size": rules.DEFAULT_PAGE_SIZE,
        "pager_base": "/catalogue?" + (urlencode(paging) + "&" if paging else ""),
        "pager_page": {"number": result.page, "pages": result.pages, "total": result.total},
    }
    template = RESULTS_FRAGMENT if _wants_fragment(request) else "catalogue/search.html.j2"
    # Invalid parameters are reported beside their fields (422); the results shown ignore them.
    if errors:
        response = form_error(template, ValidationFailed(errors), context)
    else:
        response = Template(template, context=context)
    response.headers["Vary"] = "HX-Request"
    return response


@get(
    "/api/v1/catalogue",
    tags=["catalogue"],
    summary="检索许可目录",
    description=(
        "Published open-licence offers. `q` is segmented like the index (jieba); every word must match, "
        "in any order. Facet counts are computed under every current filter except the facet's own. "
        "No token needed."
    ),
)
async def api_catalogue(
    db_session: AsyncSession,
    q: Annotated[str, Parameter(description="检索词，如“石墨烯 负极”")] = "",
    patent_type: Annotated[PatentType | None, Parameter(description="专利类型")] = None,
    ipc_section: Annotated[str | None, Parameter(description="IPC 部（A–H）")] = None,
    ipc_class: Annotated[str | None, Parameter(description="IPC 大类，如 H01")] = None,
    licensor: Annotated[int | None, Parameter(description="许可人机构编号")] = None,
    province: Annotated[str | None, Parameter(description="许可人所在省级行政区划代码（两位），如 11")] = None,
    payment_mode: Annotated[PaymentMode | None, Parameter(description="支付方式")] = None,
    pay_after_use: Annotated[bool | None, Parameter(description="true：只看先用后付；false：排除先用后付")] = None,
    max_upfront_fen: Annotated[int | None, Parameter(description="预付费用上限（分）")] = None,
    min_trl: Annotated[int | None, Parameter(description="最低技术成熟度（1–9）")] = None,
    sort: Annotated[SortOrder, Parameter(description="排序；无检索词时 relevance 按最新公告排序")] = (
        SortOrder.RELEVANCE
    ),
    page: Annotated[int, Parameter(description=f"页码（1–{rules.MAX_PAGE}）")] = 1,
    page_size: Annotated[int, Parameter(description=f"每页条数（1–{rules.MAX_PAGE_SIZE}）")] = (
        rules.DEFAULT_PAGE_SIZE
    ),
) -> CatalogueSearchResponse:
    query = CatalogueQuery(
        q=q,
        patent_type=patent_type,
        ipc_section=ipc_section,
        ipc_class=ipc_class,
        licensor=licensor,
        province=province,
        payment_mode=payment_mode,
        pay_after_use=pay_after_use,
        max_upfront_fen=max_upfront_fen,
        min_trl=min_trl,
        sort=sort,
        page=page,
        page_size=page_size,
    )
    return CatalogueSearchResponse.from_result(await services.search(db_session, query))


ROUTES = [home, catalogue_page, api_catalogue]
