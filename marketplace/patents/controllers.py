"""HTTP routes of the patents domain: the registry pages (我的专利), bulk inventory upload
(批量入库) with its templates and reports, the open-licence candidates, and the JSON API.

Viewing needs a login only: every user belongs to a patent-holding organisation or is a platform
admin, and the services show a patent to its owner or a platform admin (anyone else gets 404).
Writing needs a patent-holding organisation (``require_patent_holder``).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.errors import ValidationFailed
from marketplace.evaluations import services as evaluation_services
from marketplace.evaluations import tiers
from marketplace.evaluations.tiering import Tier
from marketplace.matching import inventory
from marketplace.patents import rules, services
from marketplace.patents.models import InventoryUpload, LegalStatus, Patent, PatentType, TransferIntent, UploadMode
from marketplace.patents.schemas import (
    InventoryUploadForm,
    LicenceRestriction,
    PatentIn,
    PatentOut,
    PatentPage,
    UploadReport,
)
from marketplace.settings import Settings
from marketplace.web.auth import current, require_login, require_patent_holder
from marketplace.web.forms import form_data, form_error

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RECENT_UPLOADS = 10

PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
PerPage = Annotated[int, Parameter(ge=1, le=paging.MAX_PER_PAGE, description="每页条数")]


def _download(content: bytes, filename: str, media_type: str) -> Response[bytes]:
    return Response(
        content=content,
        media_type=media_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


def _form_choices() -> dict[str, Any]:
    return {
        "type_options": [("", "根据申请号识别"), *((t.value, t.label) for t in PatentType)],
        "status_options": [(s.value, s.label) for s in LegalStatus],
        "restriction_options": [(r.value, r.label) for r in LicenceRestriction],
        "trl_options": [("", "未评估"), *((str(level), f"TRL {level}") for level in range(1, 10))],
        "intent_options": [(i.value, i.label) for i in TransferIntent],
        "columns": rules.COLUMN_BY_KEY,
    }


def _join(items: list[str]) -> str:
    return "；".join(items)


def _form_values(patent: Patent) -> dict[str, Any]:
    """A registered patent as the edit form shows it."""
    return {
        "application_number": patent.application_number,
        "title": patent.title,
        "patent_type": patent.patent_type.value,
        "filing_date": patent.filing_date.isoformat(),
        "grant_date": patent.grant_date.isoformat() if patent.grant_date else "",
        "legal_status": patent.legal_status.value,
        "annual_fee_paid_until": patent.annual_fee_paid_until.isoformat() if patent.annual_fee_paid_until else "",
        "expiry_override": patent.expiry_override.isoformat() if patent.expiry_override else "",
        "ipc_main": patent.ipc_main or "",
        "ipc_codes": _join(patent.ipc_codes),
        "abstract": patent.abstract,
        "inventors": _join(patent.inventors),
        "co_owners": _join(patent.co_owners),
        "co_owner_consent": patent.co_owner_consent,
        "pledged": patent.pledged,
        "pledgee_consent": patent.pledgee_consent,
        "exclusive_or_sole_licence": LicenceRestriction.of(patent).value,
        "proceedings_suspended": patent.proceedings_suspended,
        "government_funded": patent.government_funded,
        "implemented": patent.implemented,
        "trl": str(patent.trl or ""),
        "transfer_intents": list(patent.transfer_intents),
        "application_scenarios": patent.application_scenarios,
        "claims_count": str(patent.claims_count or ""),
    }


def _submitted(data: dict[str, Any]) -> dict[str, Any]:
    """Form fields as typed, for re-rendering after an error (checkbox groups stay lists)."""
    values = {key: value for key, value in data.items() if isinstance(value, str | list)}
    intents = values.get("transfer_intents", [])
    values["transfer_intents"] = intents if isinstance(intents, list) else [intents]
    return values


class PatentPages(Controller):
    path = "/patents"
    include_in_schema = False

    @get("/", guards=[require_login])
    async def index(
        self,
        request: Request,
        db_session: AsyncSession,
        page: PageNumber = 1,
        status: str = "",
        patent_type: Annotated[str, QueryParameter(name="type")] = "",
        q: str = "",
        tier: str = "",
        flagged: str = "",
    ) -> Template:
        filters = services.parse_filters(status, patent_type, q, tier, flagged)
        result = await services.list_patents(db_session, current(request), filters, page=page)
        chosen = {"status": status, "type": patent_type, "q": q, "tier": tier, "flagged": flagged}
        query = {k: v for k, v in chosen.items() if v}
        return Template(
            "patents/list.html.j2",
            context={
                "result": result,
                "tiers": await tiers.tiers_for(db_session, [p.id for p in result.items]),
                "filters": chosen,
                "status_options": [("", "全部"), *((s.value, s.label) for s in LegalStatus)],
                "type_options": [("", "全部"), *((t.value, t.label) for t in PatentType)],
                "tier_options": [("", "全部"), *tiers.TIER_OPTIONS],
                "flag_options": [("", "全部"), ("1", "待重新评价"), ("0", "无需重新评价")],
                "pager_base": "/patents?" + (urlencode(query) + "&" if query else ""),
                "show_owner": current(request).is_platform_admin,
            },
        )

    @get("/new", guards=[require_patent_holder])
    async def new(self) -> Template:
        values = {"legal_status": LegalStatus.GRANTED.value, "exclusive_or_sole_licence": "none"}
        return Template("patents/form.html.j2", context={**_form_choices(), "form": values, "errors": {}})

    @post("/new", guards=[require_patent_holder])
    async def create(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        data = await form_data(request)
        try:
            patent = await services.create_patent(db_session, current(request), data, settings)
        except ValidationFailed as exc:
            return form_error("patents/form.html.j2", exc, {**_form_choices(), "form": _submitted(data)})
        return Redirect(path=f"/patents/{patent.id}")

    @get("/candidates", guards=[require_patent_holder])
    async def candidates(self, request: Request, db_session: AsyncSession, page: PageNumber = 1) -> Template:
        result = await services.list_candidates(db_session, current(request), page=page)
        return Template(
            "patents/candidates.html.j2",
            context={"result": result, "pager_base": "/patents/candidates?"},
        )

    @get("/{patent_id:int}", guards=[require_login])
    async def detail(
        self, request: Request, db_session: AsyncSession, settings: Settings, patent_id: int
    ) -> Template:
        me = current(request)
        patent = await services.get_patent(db_session, me, patent_id)
        facts = await services.overview(db_session, patent, settings)
        evaluations = await evaluation_services.for_patent(db_session, patent.id)
        return Template(
            "patents/detail.html.j2",
            context={
                "patent": patent,
                "facts": facts,
                "evaluations": evaluations,
                "aggregate": (await evaluation_services.aggregates(db_session, [patent.id]))[patent.id],
                "tier": (await tiers.tiers_for(db_session, [patent.id])).get(patent.id),
                "restriction": LicenceRestriction.of(patent),
                "intents": [TransferIntent(value).label for value in patent.transfer_intents],
                "can_edit": patent.owner_organisation_id == me.organisation_id,
                "interests": await inventory.interests_for_patent(db_session, patent.id),
            },
        )

    @get("/{patent_id:int}/edit", guards=[require_patent_holder])
    async def edit(self, request: Request, db_session: AsyncSession, patent_id: int) -> Template:
        patent = await services.editable_patent(db_session, current(request), patent_id)
        context = {**_form_choices(), "form": _form_values(patent), "errors": {}, "patent": patent}
        return Template("patents/form.html.j2", context=context)

    @post("/{patent_id:int}/edit", guards=[require_patent_holder])
    async def update(
        self, request: Request, db_session: AsyncSession, settings: Settings, patent_id: int
    ) -> Template | Redirect:
        me = current(request)
        data = await form_data(request)
        patent = await services.editable_patent(db_session, me, patent_id)
        # The number is shown read-only: the form sends back the registered one.
        data["application_number"] = patent.application_number
        try:
            await services.update_patent(db_session, me, patent_id, data, settings)
        except ValidationFailed as exc:
            context = {**_form_choices(), "form": _submitted(data), "patent": patent}
            return form_error("patents/form.html.j2", exc, context)
        return Redirect(path=f"/patents/{patent_id}")


class InventoryPages(Controller):
    path = "/inventory-uploads"
    include_in_schema = False

    async def _form_context(self, request: Request, db_session: AsyncSession) -> dict[str, Any]:
        recent = await db_session.scalars(
            select(InventoryUpload)
            .where(InventoryUpload.organisation_id == current(request).organisation_id)
            .order_by(InventoryUpload.id.desc())
            .limit(RECENT_UPLOADS)
        )
        return {"recent": list(recent), "max_rows": services.MAX_UPLOAD_ROWS, "errors": {}, "all_or_nothing": False}

    @get("/new", guards=[require_patent_holder])
    async def new(self, request: Request, db_session: AsyncSession) -> Template:
        return Template("inventory/new.html.j2", context=await self._form_context(request, db_session))

    @post("/new", guards=[require_patent_holder])
    async def upload(self, request: Request, db_session: AsyncSession, settings: Settings) -> Template | Redirect:
        form = await request.form()
        file = form.get("file")
        mode = UploadMode.ALL_OR_NOTHING if form.get("all_or_nothing") else UploadMode.VALID_ROWS
        context = {**await self._form_context(request, db_session), "all_or_nothing": form.get("all_or_nothing")}
        if not isinstance(file, UploadFile) or not file.filename:
            return form_error("inventory/new.html.j2", ValidationFailed.single("file", "请选择要上传的文件"), context)
        try:
            upload = await services.import_inventory(
                db_session, current(request), filename=file.filename, content=await file.read(), mode=mode,
                settings=settings,
            )
        except ValidationFailed as exc:
            if any(error.row for error in exc.errors):
                # All or nothing with bad rows: show every problem; 422 rolls the request back.
                return Template(
                    "inventory/report.html.j2",
                    context={"upload": None, "errors": exc.errors, "summary": exc.message, "filename": file.filename,
                             "limit": services.REPORT_PAGE_ERRORS},
                    status_code=422,
                )
            return form_error("inventory/new.html.j2", exc, context)
        return Redirect(path=f"/inventory-uploads/{upload.id}")

    @get("/{upload_id:int}", guards=[require_login])
    async def report(self, request: Request, db_session: AsyncSession, upload_id: int) -> Template:
        upload = await services.get_upload(db_session, current(request), upload_id)
        return Template(
            "inventory/report.html.j2",
            context={"upload": upload, "errors": upload.report, "summary": None, "filename": upload.filename,
                     "limit": services.REPORT_PAGE_ERRORS},
        )

    @get("/{upload_id:int}/errors.csv", guards=[require_login])
    async def report_csv(self, request: Request, db_session: AsyncSession, upload_id: int) -> Response[bytes]:
        upload = await services.get_upload(db_session, current(request), upload_id)
        return _download(services.report_csv(upload), f"入库错误报告-{upload.id}.csv", CSV_MEDIA_TYPE)

    @get("/template.csv", guards=[require_login])
    async def template_csv(self) -> Response[bytes]:
        return _download(services.template_csv(), "专利盘点模板.csv", CSV_MEDIA_TYPE)

    @get("/template.xlsx", guards=[require_login])
    async def template_xlsx(self) -> Response[bytes]:
        return _download(services.template_xlsx(), "专利盘点模板.xlsx", XLSX_MEDIA_TYPE)


class PatentApi(Controller):
    path = "/api/v1/patents"
    tags = ["patents"]

    @get("/", guards=[require_login], summary="列出本机构的专利")
    async def list_patents(
        self,
        request: Request,
        db_session: AsyncSession,
        page: PageNumber = 1,
        per_page: PerPage = paging.PER_PAGE,
        legal_status: Annotated[LegalStatus | None, Parameter(description="法律状态")] = None,
        patent_type: Annotated[PatentType | None, Parameter(description="专利类型")] = None,
        q: Annotated[str, Parameter(max_length=100, description="名称或申请号中的文字")] = "",
        tier: Annotated[Tier | None, Parameter(description="分层：high_value 高价值、general 一般、low 低")] = None,
        needs_re_evaluation: Annotated[bool | None, Parameter(description="是否待重新评价")] = None,
    ) -> PatentPage:
        """The organisation's patents (every organisation's for a platform admin); a catalogue patent
        carries its tier (分层) with the reason lines and the re-evaluation flag."""
        filters = services.PatentFilters(
            legal_status=legal_status, patent_type=patent_type, text=rules.clean_text(q),
            tiers=tiers.TierFilters(tier=tier, flagged=needs_re_evaluation),
        )  # fmt: skip
        result = await services.list_patents(db_session, current(request), filters, page=page, per_page=per_page)
        stored = await tiers.tiers_for(db_session, [p.id for p in result.items])
        return PatentPage(
            items=[PatentOut.from_model(p, stored.get(p.id)) for p in result.items],
            total=result.total,
            page=result.number,
            per_page=result.per_page,
            pages=result.pages,
        )

    @post("/", guards=[require_patent_holder], summary="登记一件专利")
    async def create(
        self, request: Request, db_session: AsyncSession, settings: Settings, data: PatentIn
    ) -> PatentOut:
        patent = await services.create_patent(db_session, current(request), data.values(), settings)
        return PatentOut.from_model(patent)

    @get("/{patent_id:int}", guards=[require_login], summary="读取一件专利")
    async def read(self, request: Request, db_session: AsyncSession, patent_id: int) -> PatentOut:
        patent = await services.get_patent(db_session, current(request), patent_id)
        return PatentOut.from_model(patent, (await tiers.tiers_for(db_session, [patent.id])).get(patent.id))

    @put("/{patent_id:int}", guards=[require_patent_holder], summary="更新一件专利（整体替换，申请号不可改）")
    async def replace(
        self, request: Request, db_session: AsyncSession, settings: Settings, patent_id: int, data: PatentIn
    ) -> PatentOut:
        patent = await services.update_patent(db_session, current(request), patent_id, data.values(), settings)
        return PatentOut.from_model(patent, (await tiers.tiers_for(db_session, [patent.id])).get(patent.id))


class InventoryApi(Controller):
    path = "/api/v1/inventory-uploads"
    tags = ["patents"]

    @post("/", guards=[require_patent_holder], summary="批量入库（上传盘点表）")
    async def upload(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        data: Annotated[InventoryUploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> UploadReport:
        if not isinstance(data.file, UploadFile):
            raise ValidationFailed.single("file", "请上传文件（字段名 file）")
        upload = await services.import_inventory(
            db_session, current(request), filename=data.file.filename, content=await data.file.read(),
            mode=data.mode, settings=settings,
        )
        return UploadReport.from_model(upload)

    @get("/{upload_id:int}", guards=[require_login], summary="读取一次批量入库的报告")
    async def read(self, request: Request, db_session: AsyncSession, upload_id: int) -> UploadReport:
        return UploadReport.from_model(await services.get_upload(db_session, current(request), upload_id))


ROUTES = [PatentPages, InventoryPages, PatentApi, InventoryApi]
