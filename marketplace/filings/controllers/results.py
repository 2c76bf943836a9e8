"""HTTP for importing the registries' results (办理结果导入): the upload page with past imports and an
import's report under /admin/filings/results, and ``/api/v1/filing-results``. Platform admins only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.errors import ValidationFailed
from marketplace.filings import results
from marketplace.filings.models import RecordKind, Registry
from marketplace.settings import Settings
from marketplace.web.auth import current, require_platform_admin
from marketplace.web.forms import form_error

PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]
#: How many problems, and how many rows of an import's report, a page lists (the API carries all).
REPORT_PAGE_ERRORS = 500
REPORT_PAGE_ROWS = 1000
FORM = "filings/results.html.j2"


async def _file(item: Any) -> tuple[str, bytes | None]:
    """The uploaded file's name and bytes (None when no file was chosen)."""
    if not isinstance(item, UploadFile) or not item.filename:
        return "", None
    return item.filename, await item.read()


class FilingResultPages(Controller):
    path = "/admin/filings/results"
    guards = [require_platform_admin]
    include_in_schema = False

    async def _context(self, request: Request, db_session: AsyncSession, page: int = 1) -> dict[str, Any]:
        return {
            "imports": await results.list_imports(db_session, current(request), page=page),
            "registry_options": [("", "请选择登记机关"), *((r.value, r.label) for r in Registry)],
            "registry": "",
            "errors": {},
            "error_list": [],
            "max_rows": results.MAX_ROWS,
            "limit": REPORT_PAGE_ERRORS,
        }

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession, page: PageNumber = 1) -> Template:
        return Template(FORM, context=await self._context(request, db_session, page))

    @post("/")
    async def upload(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        form = await request.form()
        registry = str(form.get("registry") or "")
        filename, content = await _file(form.get("file"))
        try:
            filing_import = await results.import_results(
                db_session, current(request), registry=registry, filename=filename, content=content
            )
        except ValidationFailed as exc:
            context = await self._context(request, db_session)
            context.update(registry=registry, filename=filename)
            return form_error(FORM, exc, context)
        return Redirect(path=f"/admin/filings/results/{filing_import.id}")

    @get("/{import_id:int}")
    async def detail(self, request: Request, db_session: AsyncSession, import_id: int) -> Template:
        filing_import = await results.get_import(db_session, current(request), import_id)
        return Template(
            "filings/results_detail.html.j2",
            context={
                "filing_import": filing_import,
                "result_labels": {result.value: result.label for result in results.RowResult},
                "kind_labels": {kind.value: kind.label for kind in RecordKind},
                "limit": REPORT_PAGE_ROWS,
            },
        )

    @get("/{import_id:int}/report.csv")
    async def report_csv(self, request: Request, db_session: AsyncSession, import_id: int) -> Response[bytes]:
        filing_import = await results.get_import(db_session, current(request), import_id)
        return Response(
            content=results.report_csv(filing_import),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(f'办理结果导入-{import_id}.csv')}"},
        )


@dataclass
class ResultUploadForm:
    """``multipart/form-data``: ``registry`` (licence_filing: 专利实施许可合同备案, tech_contract:
    技术合同认定登记) and ``file``, the registry's results as CSV (UTF-8) or XLSX. Columns: 合同编号,
    办理结果, 编号 (or 备案号 / 登记编号), 退回原因, optional 办理日期, 记录类型 and the values the registry
    recorded. All or nothing: any problem answers 422 with every row's problems and changes nothing."""

    registry: str = ""
    file: UploadFile | None = None


class FilingResultApi(Controller):
    path = "/api/v1/filing-results"
    tags = ["filings"]
    guards = [require_platform_admin]

    @post("/", summary="导入登记机关的办理结果")
    async def upload(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        data: Annotated[ResultUploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> results.ImportOut:
        filename, content = await _file(data.file)
        filing_import = await results.import_results(
            db_session, current(request), registry=data.registry, filename=filename, content=content
        )
        return results.ImportOut.of(filing_import)

    @get("/", summary="列出办理结果的导入记录")
    async def list_imports(
        self, request: Request, db_session: AsyncSession, page: PageNumber = 1, per_page: PerPage = paging.PER_PAGE
    ) -> results.ImportPage:
        found = await results.list_imports(db_session, current(request), page=page, per_page=per_page)
        return results.ImportPage.of(found)

    @get("/{import_id:int}", summary="读取一次办理结果导入（含每行的处理结果）")
    async def read(self, request: Request, db_session: AsyncSession, import_id: int) -> results.ImportOut:
        return results.ImportOut.of(await results.get_import(db_session, current(request), import_id))


ROUTES = [FilingResultPages, FilingResultApi]
