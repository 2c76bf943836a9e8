"""HTTP for exports (导出批次), platform admins only: the list with the create form, a batch's page
(polled while it is prepared), the download, and ``/api/v1/filing-exports``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter
from litestar.response import File, Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.errors import ValidationFailed
from marketplace.filings import exports
from marketplace.filings.models import BatchStatus, ExportFormat, Registry
from marketplace.settings import Settings
from marketplace.web.auth import current, require_platform_admin
from marketplace.web.forms import form_data, form_error

PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]
_FORM_FIELDS = ("registry", "format", "period_from", "period_to", "contract_numbers")


def _download(batch: Any, path: Any) -> File:
    return File(
        path=path,
        media_type=exports.MEDIA_TYPES[batch.file_format],
        headers={
            "content-disposition": exports.content_disposition(batch),
            "X-Checksum-SHA256": batch.sha256 or "",
            "X-Content-Type-Options": "nosniff",
        },
    )


class ExportPageController(Controller):
    path = "/admin/filings/exports"
    guards = [require_platform_admin]
    include_in_schema = False

    async def _index(
        self,
        db_session: AsyncSession,
        page: int = 1,
        *,
        form: dict[str, str] | None = None,
        exc: ValidationFailed | None = None,
    ) -> Template:
        context = {
            "result": await exports.list_batches(db_session, page=page),
            "form": form or {"registry": Registry.LICENCE_FILING.value, "format": ExportFormat.CSV.value},
            "errors": {},
            "registry_options": [("", "请选择"), *((r.value, r.label) for r in Registry)],
            "format_options": [(f.value, f.label) for f in ExportFormat],
        }
        if exc is not None:
            return form_error("filings/exports.html.j2", exc, context)
        return Template("filings/exports.html.j2", context=context)

    @get("/")
    async def index(self, db_session: AsyncSession, page: PageNumber = 1) -> Template:
        return await self._index(db_session, page)

    @post("/")
    async def create(self, request: Request, db_session: AsyncSession) -> Template | Redirect:
        data = await form_data(request)
        values = {name: str(data.get(name, "")) for name in _FORM_FIELDS}
        try:
            batch = await exports.create_batch(
                db_session,
                current(request),  # type: ignore[arg-type]
                registry=values["registry"],
                file_format=values["format"],
                period_from=values["period_from"],
                period_to=values["period_to"],
                contract_numbers=values["contract_numbers"],
            )
        except ValidationFailed as exc:
            return await self._index(db_session, form=values, exc=exc)
        return Redirect(path=f"/admin/filings/exports/{batch.id}")

    async def _batch_context(
        self, db_session: AsyncSession, batch_id: int, page: int = 1, held_page: int = 1
    ) -> dict[str, Any]:
        row = await exports.get_batch(db_session, batch_id)
        ready = row.batch.status is BatchStatus.READY
        return {
            "row": row,
            "batch": row.batch,
            "ready": ready,
            "file_name": exports.file_names(row.batch)[1],
            "items": await exports.batch_items(db_session, batch_id, held_back=False, page=page) if ready else None,
            "held": await exports.batch_items(db_session, batch_id, held_back=True, page=held_page) if ready else None,
            "page": page,
            "held_page": held_page,
        }

    @get("/{batch_id:int}")
    async def detail(
        self, db_session: AsyncSession, batch_id: int, page: PageNumber = 1, held_page: PageNumber = 1
    ) -> Template:
        context = await self._batch_context(db_session, batch_id, page, held_page)
        return Template("filings/exports_detail.html.j2", context=context)

    @get("/{batch_id:int}/status")
    async def status(self, db_session: AsyncSession, batch_id: int) -> Template:
        """HTMX fragment polled every 2 s while the batch is being prepared."""
        context = await self._batch_context(db_session, batch_id)
        return Template("filings/partials/export_batch.html.j2", context=context)

    @get("/{batch_id:int}/download")
    async def download(self, db_session: AsyncSession, settings: Settings, batch_id: int) -> File:
        batch, path = await exports.file_of(db_session, settings, batch_id)
        return _download(batch, path)


class ExportApiController(Controller):
    path = "/api/v1/filing-exports"
    tags = ["filings"]
    guards = [require_platform_admin]

    @post("/", status_code=201, summary="创建导出批次（平台管理员）")
    async def create(
        self, request: Request, db_session: AsyncSession, data: exports.ExportBody
    ) -> Response[exports.BatchDetailOut]:
        """Create an export of the due (and refused) filings of one registry, optionally limited to
        contracts that took effect in a period or to given contract numbers. The file is prepared in
        the background: poll ``GET /api/v1/filing-exports/{id}`` until ``status`` is ``ready``."""
        batch = await exports.create_batch(
            db_session,
            current(request),  # type: ignore[arg-type]
            registry=data.registry,
            file_format=data.format,
            period_from=data.period_from,
            period_to=data.period_to,
            contract_numbers=data.contract_numbers,
        )
        row = await exports.get_batch(db_session, batch.id)
        return Response(exports.BatchDetailOut.with_held_back(row, []), status_code=201)

    @get("/", summary="导出批次列表（最新在前）")
    async def list_batches(
        self, db_session: AsyncSession, page: PageNumber = 1, per_page: PerPage = paging.PER_PAGE
    ) -> exports.BatchPage:
        return exports.BatchPage.of(await exports.list_batches(db_session, page=page, per_page=per_page))

    @get("/{batch_id:int}", summary="读取导出批次")
    async def read(self, db_session: AsyncSession, batch_id: int) -> exports.BatchDetailOut:
        """The batch with its counts, checksum, the contracts held back (with the reason) and, once
        ready, the download URL."""
        row = await exports.get_batch(db_session, batch_id)
        return exports.BatchDetailOut.with_held_back(row, await exports.held_back(db_session, batch_id))

    @get("/{batch_id:int}/download", summary="下载导出文件")
    async def download(self, db_session: AsyncSession, settings: Settings, batch_id: int) -> File:
        """The file as stored (header ``X-Checksum-SHA256``); 409 while the batch is being prepared."""
        batch, path = await exports.file_of(db_session, settings, batch_id)
        return _download(batch, path)


ROUTES = [ExportPageController, ExportApiController]
