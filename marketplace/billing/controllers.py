"""HTTP routes of billing: a contract's billing page (plan, royalty reports, first revenue), invoices,
payments (card via Stripe, bank transfer, confirmation, refunds), the Stripe webhook, the licensor's
statement (对账单, page, CSV and XLSX), and the ``/api/v1/invoices``, ``/api/v1/royalty-reports``,
``/api/v1/payments`` and ``/api/v1/statements`` JSON API."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.billing import inputs, payments, rules, schemas, services, statements
from marketplace.billing.models import InvoiceStatus, PaymentStatus, Refund, RoyaltyReport
from marketplace.billing.stripe_gateway import InvalidWebhook, verify_webhook
from marketplace.clock import today
from marketplace.errors import FieldError, ValidationFailed
from marketplace.files.services import Upload, pdf_errors
from marketplace.licensing.models import PaymentObligation
from marketplace.offers.rules import RoyaltyBase
from marketplace.settings import Settings
from marketplace.web.auth import current, require_login
from marketplace.web.forms import form_data, form_error

T = TypeVar("T")


def _status_filter(raw: str, enum: Any, field: str = "status") -> Any:
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        raise ValidationFailed([FieldError(field, "状态取值无效", "invalid")]) from None


async def _upload(data: dict[str, Any], field: str) -> Upload | None:
    """The file a form sent in ``field``, or None when none was chosen."""
    item = data.get(field)
    if not isinstance(item, UploadFile) or not item.filename:
        return None
    content = await item.read()
    return Upload(filename=item.filename, content=content) if content else None


def _with_pdf_errors(parse: Callable[[], T], upload: Upload | None, field: str, settings: Settings) -> T:
    """Parse the form and check its PDF together, so every problem is reported at once."""
    errors = pdf_errors(upload, field=field, max_bytes=settings.upload_max_bytes) if upload else []
    try:
        parsed = parse()
    except ValidationFailed as exc:
        raise ValidationFailed([*exc.errors, *errors]) from None
    if errors:
        raise ValidationFailed(errors)
    return parsed


async def _base(db_session: AsyncSession, request: Request, contract_id: int) -> RoyaltyBase:
    """What the contract's royalty is reported on (a contract without royalties refuses any report later)."""
    return await services.royalty_base(db_session, current(request), contract_id) or RoyaltyBase.SALES


# ---------------------------------------------------------------------------------------------
# A contract's billing page
# ---------------------------------------------------------------------------------------------


class ContractBillingController(Controller):
    path = "/contracts/{contract_id:int}"
    guards = [require_login]
    include_in_schema = False

    async def _page(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        contract_id: int,
        *,
        form: dict[str, Any] | None = None,
        exc: ValidationFailed | None = None,
    ) -> Template:
        overview = await services.overview(db_session, current(request), contract_id, settings)
        base = overview.royalty.base if overview.royalty is not None else RoyaltyBase.SALES
        context = {
            "o": overview,
            "contract": overview.contract,
            "form": form or {"client_report_id": uuid.uuid4().hex, "first_revenue_on": today().isoformat()},
            "base_label": "数量（件）" if base is RoyaltyBase.UNITS else f"{base.label}（元）",
            "units": base is RoyaltyBase.UNITS,
            "errors": {},
            "report_days": settings.royalty_report_days,
            "period_options": [("", "请选择")]
            + [
                (row.item.key, f"{row.item.description}（{row.item.period_start} 至 {row.item.period_end}）")
                for row in overview.rows
                if row.reportable
            ],
        }
        if exc is not None:
            if "client_report_id" in exc.by_field():
                context["form"] = {**context["form"], "client_report_id": uuid.uuid4().hex}
            return form_error("billing/contract.html.j2", exc, context)
        return Template("billing/contract.html.j2", context=context)

    @get("/billing")
    async def billing(
        self, request: Request, db_session: AsyncSession, settings: Settings, contract_id: int
    ) -> Template:
        return await self._page(request, db_session, settings, contract_id)

    @post("/royalty-reports")
    async def report(
        self, request: Request, db_session: AsyncSession, settings: Settings, contract_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        values = {key: str(value) for key, value in data.items() if isinstance(value, str)}
        base = await _base(db_session, request, contract_id)
        try:
            attachment = await _upload(data, "attachment")
            parsed = _with_pdf_errors(
                lambda: inputs.parse_report(values, base=base, yuan=base is not RoyaltyBase.UNITS),
                attachment,
                "attachment",
                settings,
            )
            await services.submit_report(
                db_session, current(request), contract_id, parsed, settings, attachment=attachment
            )
        except ValidationFailed as exc:
            return await self._page(request, db_session, settings, contract_id, form=values, exc=exc)
        return Redirect(path=f"/contracts/{contract_id}/billing#reports")

    @post("/first-revenue")
    async def first_revenue(
        self, request: Request, db_session: AsyncSession, settings: Settings, contract_id: int
    ) -> Template | Redirect:
        values = {key: str(value) for key, value in (await form_data(request)).items()}
        try:
            day = inputs.parse_first_revenue(values)
            await services.declare_first_revenue(db_session, current(request), contract_id, day, settings)
        except ValidationFailed as exc:
            return await self._page(request, db_session, settings, contract_id, form=values, exc=exc)
        return Redirect(path=f"/contracts/{contract_id}/billing")


# ---------------------------------------------------------------------------------------------
# Invoices and payments (pages)
# ---------------------------------------------------------------------------------------------


async def _invoice_context(
    db_session: AsyncSession, request: Request, settings: Settings, invoice_id: int
) -> dict[str, Any]:
    me = current(request)
    invoice = await services.get_invoice(db_session, me, invoice_id)
    return {
        "invoice": invoice,
        "payments": await payments.list_payments(db_session, me, invoice_id=invoice.id),
        "is_payer": me.organisation_id == invoice.licensee_organisation_id,
        "can_void": InvoiceStatus.VOID in rules.INVOICE_TRANSITIONS[invoice.status]
        and services.is_payee_admin(me, invoice.licensor_organisation_id),
        "stripe_enabled": settings.stripe_enabled,
        "payable": invoice.outstanding_fen > 0,
        "form": {"idempotency_key": uuid.uuid4().hex, "remitted_on": today().isoformat()},
        "errors": {},
    }


class InvoiceController(Controller):
    path = "/invoices"
    guards = [require_login]
    include_in_schema = False

    @get("/")
    async def index(self, request: Request, db_session: AsyncSession, status: str = "") -> Template:
        chosen = _status_filter(status, InvoiceStatus)
        invoices = await services.list_invoices(db_session, current(request), status=chosen)
        me = current(request)
        return Template(
            "billing/invoices.html.j2",
            context={
                "invoices": invoices,
                "status": status,
                "statuses": [(s.value, s.label) for s in InvoiceStatus],
                "me": me,
            },
        )

    @get("/{invoice_id:int}")
    async def detail(self, request: Request, db_session: AsyncSession, settings: Settings, invoice_id: int) -> Template:
        context = await _invoice_context(db_session, request, settings, invoice_id)
        return Template("billing/invoice.html.j2", context=context)

    @post("/{invoice_id:int}/card-payment")
    async def card(self, request: Request, db_session: AsyncSession, settings: Settings, invoice_id: int) -> Redirect:
        payment = await payments.start_card_payment(db_session, current(request), invoice_id, settings)
        return Redirect(path=f"/payments/{payment.id}")

    @post("/{invoice_id:int}/void")
    async def void(
        self, request: Request, db_session: AsyncSession, settings: Settings, invoice_id: int
    ) -> Template | Redirect:
        values = {key: str(value) for key, value in (await form_data(request)).items()}
        try:
            await services.void_invoice(db_session, current(request), invoice_id, values.get("reason", ""))
        except ValidationFailed as exc:
            context = await _invoice_context(db_session, request, settings, invoice_id)
            return form_error("billing/invoice.html.j2", exc, {**context, "form": {**context["form"], **values}})
        return Redirect(path=f"/invoices/{invoice_id}")

    @post("/{invoice_id:int}/transfers")
    async def transfer(
        self, request: Request, db_session: AsyncSession, settings: Settings, invoice_id: int
    ) -> Template | Redirect:
        data = await form_data(request)
        values = {key: str(value) for key, value in data.items() if isinstance(value, str)}
        try:
            receipt = await _upload(data, "receipt")
            parsed = _with_pdf_errors(
                lambda: inputs.parse_transfer(values, yuan=True, today=today()), receipt, "receipt", settings
            )
            payment, _ = await payments.declare_transfer(
                db_session, current(request), invoice_id, parsed, settings=settings, receipt=receipt
            )
        except ValidationFailed as exc:
            context = await _invoice_context(db_session, request, settings, invoice_id)
            form = {**values}
            if "idempotency_key" in exc.by_field():
                form["idempotency_key"] = uuid.uuid4().hex
            return form_error("billing/invoice.html.j2", exc, {**context, "form": form})
        return Redirect(path=f"/payments/{payment.id}")


async def _payment_context(db_session: AsyncSession, request: Request, settings: Settings, payment_id: int):
    me = current(request)
    payment = await payments.get_payment(db_session, me, payment_id)
    invoice = await services.get_invoice(db_session, me, payment.invoice_id)
    refunds = list(await db_session.scalars(select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id)))
    payee_admin = services.is_payee_admin(me, payment.licensor_organisation_id)
    return {
        "payment": payment,
        "invoice": invoice,
        "refunds": refunds,
        "is_payer": me.organisation_id == payment.licensee_organisation_id,
        "payee_admin": payee_admin,
        "settings": settings,
        "refundable_fen": await payments.refundable_fen(db_session, payment),
        "form": {},
        "errors": {},
    }


class PaymentController(Controller):
    path = "/payments"
    guards = [require_login]
    include_in_schema = False

    @get("/{payment_id:int}")
    async def detail(self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int) -> Template:
        context = await _payment_context(db_session, request, settings, payment_id)
        return Template("billing/payment.html.j2", context=context)

    @get("/{payment_id:int}/status")
    async def status(self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int) -> Template:
        """HTMX fragment polled while a card payment is being created or processed."""
        context = await _payment_context(db_session, request, settings, payment_id)
        return Template("billing/partials/payment_status.html.j2", context=context)

    async def _decide(self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int, confirm):
        values = {key: str(value) for key, value in (await form_data(request)).items()}
        try:
            reason = None if confirm else inputs.parse_rejection(values)
            await payments.decide_transfer(
                db_session, current(request), payment_id, confirm=confirm, reason=reason, settings=settings
            )
        except ValidationFailed as exc:
            context = await _payment_context(db_session, request, settings, payment_id)
            return form_error("billing/payment.html.j2", exc, {**context, "form": values})
        return Redirect(path=f"/payments/{payment_id}")

    @post("/{payment_id:int}/confirm")
    async def confirm(
        self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int
    ) -> Template | Redirect:
        return await self._decide(request, db_session, settings, payment_id, True)

    @post("/{payment_id:int}/reject")
    async def reject(
        self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int
    ) -> Template | Redirect:
        return await self._decide(request, db_session, settings, payment_id, False)

    @post("/{payment_id:int}/refunds")
    async def refund(
        self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int
    ) -> Template | Redirect:
        values = {key: str(value) for key, value in (await form_data(request)).items()}
        try:
            parsed = inputs.parse_refund(values, yuan=True)
            await payments.request_refund(db_session, current(request), payment_id, parsed, settings)
        except ValidationFailed as exc:
            context = await _payment_context(db_session, request, settings, payment_id)
            return form_error("billing/payment.html.j2", exc, {**context, "form": values})
        return Redirect(path=f"/payments/{payment_id}")


# ---------------------------------------------------------------------------------------------
# Stripe webhook
# ---------------------------------------------------------------------------------------------


@post("/webhooks/stripe", include_in_schema=False, status_code=200)
async def stripe_webhook(request: Request, db_session: AsyncSession, settings: Settings) -> Response[dict[str, str]]:
    """Stripe's events, verified by signature and applied at most once each."""
    payload = await request.body()
    if not settings.stripe_webhook_secret:
        return Response({"error": "webhooks are not configured"}, status_code=503)
    try:
        event = verify_webhook(payload, request.headers.get("stripe-signature", ""), settings.stripe_webhook_secret)
    except InvalidWebhook as exc:
        return Response({"error": str(exc)}, status_code=400)
    outcome = await payments.handle_event(db_session, event, settings)
    return Response({"received": "true", "outcome": outcome}, status_code=200)


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


class InvoiceApiController(Controller):
    path = "/api/v1/invoices"
    tags = ["billing"]
    guards = [require_login]

    @get("/")
    async def list_invoices(
        self, request: Request, db_session: AsyncSession, contract_id: int | None = None, status: str = ""
    ) -> list[schemas.InvoiceOut]:
        """Invoices (付款通知书) of the caller's organisation, as licensee or licensor (all for a platform admin)."""
        chosen = _status_filter(status, InvoiceStatus)
        invoices = await services.list_invoices(db_session, current(request), contract_id=contract_id, status=chosen)
        return [schemas.InvoiceOut.of(invoice) for invoice in invoices]

    @get("/{invoice_id:int}")
    async def read(self, request: Request, db_session: AsyncSession, invoice_id: int) -> schemas.InvoiceOut:
        return schemas.InvoiceOut.of(await services.get_invoice(db_session, current(request), invoice_id))

    @post("/{invoice_id:int}/void", status_code=200)
    async def void(
        self, request: Request, db_session: AsyncSession, invoice_id: int, data: schemas.DecisionBody
    ) -> schemas.InvoiceOut:
        """Void (作废) an unpaid or partly paid invoice (the licensor's admins or a platform admin), with a
        reason; what was paid on it becomes the licensee's credit and its items are not billed again."""
        invoice = await services.void_invoice(db_session, current(request), invoice_id, data.reason or "")
        return schemas.InvoiceOut.of(invoice)

    @post("/{invoice_id:int}/card-payment", status_code=202)
    async def card(
        self, request: Request, db_session: AsyncSession, settings: Settings, invoice_id: int
    ) -> schemas.PaymentOut:
        """Start (or resume) a card payment of what the invoice still owes. 202: the PaymentIntent is
        created in the background; poll ``GET /api/v1/payments/{id}`` for ``client_secret``."""
        payment = await payments.start_card_payment(db_session, current(request), invoice_id, settings)
        return schemas.PaymentOut.of(payment, for_payer=True)


async def _period_key(db_session: AsyncSession, report: RoyaltyReport) -> str:
    item = await db_session.get(PaymentObligation, report.obligation_id)
    return item.key if item is not None else ""


class RoyaltyReportApiController(Controller):
    path = "/api/v1/royalty-reports"
    tags = ["billing"]
    guards = [require_login]

    @post("/", status_code=201)
    async def create(
        self, request: Request, db_session: AsyncSession, settings: Settings, data: schemas.ReportBody
    ) -> Response[schemas.RoyaltyReportOut]:
        """Report a royalty period (or correct it: a new version with a ``note``). 201 when recorded,
        200 with the first report when ``client_report_id`` was used before."""
        me = current(request)
        base = await _base(db_session, request, data.contract_id)
        raw = {
            "period": data.period,
            "base_amount": data.base_amount,
            "nil_report": data.nil_report,
            "breakdown": data.breakdown,
            "note": data.note,
            "client_report_id": data.client_report_id or request.headers.get("idempotency-key", ""),
        }
        parsed = inputs.parse_report(raw, base=base, yuan=False)
        report, created = await services.submit_report(db_session, me, data.contract_id, parsed, settings)
        out = schemas.RoyaltyReportOut.of(report, await _period_key(db_session, report))
        return Response(out, status_code=201 if created else 200)

    @get("/")
    async def list_reports(
        self, request: Request, db_session: AsyncSession, settings: Settings, contract_id: int
    ) -> list[schemas.RoyaltyReportOut]:
        """Every version of every report of a contract, oldest first."""
        overview = await services.overview(db_session, current(request), contract_id, settings)
        keys = {row.item.id: row.item.key for row in overview.rows}
        return [schemas.RoyaltyReportOut.of(r, keys.get(r.obligation_id, "")) for r in overview.reports]

    @put("/{report_id:int}/attachment")
    async def attach(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        report_id: int,
        data: Annotated[UploadFile, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> schemas.RoyaltyReportOut:
        """Attach the report's evidence (PDF, multipart field ``data``) to a version that has none."""
        upload = Upload(filename=data.filename or "report.pdf", content=await data.read())
        report = await services.attach_to_report(db_session, current(request), report_id, upload, settings)
        return schemas.RoyaltyReportOut.of(report, await _period_key(db_session, report))

    @get("/{report_id:int}")
    async def read(self, request: Request, db_session: AsyncSession, report_id: int) -> schemas.RoyaltyReportOut:
        report = await services.get_report(db_session, current(request), report_id)
        return schemas.RoyaltyReportOut.of(report, await _period_key(db_session, report))


class PaymentApiController(Controller):
    path = "/api/v1/payments"
    tags = ["billing"]
    guards = [require_login]

    @get("/")
    async def list_payments(
        self, request: Request, db_session: AsyncSession, invoice_id: int | None = None, status: str = ""
    ) -> list[schemas.PaymentOut]:
        me = current(request)
        chosen = _status_filter(status, PaymentStatus)
        found = await payments.list_payments(db_session, me, invoice_id=invoice_id, status=chosen)
        return [schemas.PaymentOut.of(p, for_payer=p.licensee_organisation_id == me.organisation_id) for p in found]

    @get("/{payment_id:int}")
    async def read(self, request: Request, db_session: AsyncSession, payment_id: int) -> schemas.PaymentOut:
        me = current(request)
        payment = await payments.get_payment(db_session, me, payment_id)
        return schemas.PaymentOut.of(payment, for_payer=payment.licensee_organisation_id == me.organisation_id)

    @post("/", status_code=201)
    async def declare(
        self, request: Request, db_session: AsyncSession, data: schemas.TransferBody
    ) -> Response[schemas.PaymentOut]:
        """Declare a bank transfer (对公转账) against an invoice. 201 when recorded; 200 with the first
        declaration when ``idempotency_key`` (or the ``Idempotency-Key`` header) was used before."""
        raw = {
            "amount_fen": data.amount_fen,
            "payer_name": data.payer_name,
            "payer_account": data.payer_account,
            "remitted_on": data.remitted_on,
            "reference": data.reference,
            "idempotency_key": data.idempotency_key or request.headers.get("idempotency-key", ""),
        }
        parsed = inputs.parse_transfer(raw, yuan=False, today=today())
        payment, created = await payments.declare_transfer(db_session, current(request), data.invoice_id, parsed)
        return Response(schemas.PaymentOut.of(payment, for_payer=True), status_code=201 if created else 200)

    @put("/{payment_id:int}/receipt")
    async def receipt(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        payment_id: int,
        data: Annotated[UploadFile, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> schemas.PaymentOut:
        """Attach the bank receipt (回单, PDF, multipart field ``data``) to a declared transfer."""
        upload = Upload(filename=data.filename or "receipt.pdf", content=await data.read())
        payment = await payments.attach_receipt(db_session, current(request), payment_id, upload, settings)
        return schemas.PaymentOut.of(payment, for_payer=True)

    @post("/{payment_id:int}/confirm", status_code=200)
    async def confirm(
        self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int
    ) -> schemas.PaymentOut:
        """The licensor (an admin) or a platform admin confirms the transfer arrived."""
        payment = await payments.decide_transfer(
            db_session, current(request), payment_id, confirm=True, reason=None, settings=settings
        )
        return schemas.PaymentOut.of(payment)

    @post("/{payment_id:int}/reject", status_code=200)
    async def reject(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        payment_id: int,
        data: schemas.DecisionBody,
    ) -> schemas.PaymentOut:
        reason = inputs.parse_rejection({"reason": data.reason})
        payment = await payments.decide_transfer(
            db_session, current(request), payment_id, confirm=False, reason=reason, settings=settings
        )
        return schemas.PaymentOut.of(payment)

    @post("/{payment_id:int}/refunds", status_code=201)
    async def refund(
        self, request: Request, db_session: AsyncSession, settings: Settings, payment_id: int, data: schemas.RefundBody
    ) -> schemas.RefundOut:
        """Refund (part of) a received payment: through Stripe for card payments, or recorded as remitted
        back (with its bank reference) for a bank transfer."""
        parsed = inputs.parse_refund(
            {"amount_fen": data.amount_fen, "reason": data.reason, "reference": data.reference}, yuan=False
        )
        refund = await payments.request_refund(db_session, current(request), payment_id, parsed, settings)
        return schemas.RefundOut.of(refund)


class FirstRevenueApiController(Controller):
    path = "/api/v1/contracts/{contract_id:int}/first-revenue"
    tags = ["billing"]
    guards = [require_login]

    @post("/", status_code=200)
    async def declare(
        self,
        request: Request,
        db_session: AsyncSession,
        settings: Settings,
        contract_id: int,
        data: schemas.FirstRevenueBody,
    ) -> dict[str, Any]:
        """Pay-after-use until first revenue: report the day of the first revenue; the plan starts from it."""
        day = inputs.parse_first_revenue({"first_revenue_on": data.first_revenue_on})
        contract = await services.declare_first_revenue(db_session, current(request), contract_id, day, settings)
        return {"contract_id": contract.id, "first_revenue_on": day.isoformat()}


# ---------------------------------------------------------------------------------------------
# The licensor's statement (对账单): page, CSV, XLSX, API
# ---------------------------------------------------------------------------------------------

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_STATEMENT_FILTERS = ("from", "to", "licensee", "licensor")


def _download(content: bytes, filename: str, media_type: str) -> Response[bytes]:
    return Response(
        content=content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _statement_filters(request: Request) -> dict[str, str]:
    """The filters as typed (an empty period means January of this year to this month)."""
    filters = {name: request.query_params.get(name, "").strip() for name in _STATEMENT_FILTERS}
    filters["from"] = filters["from"] or f"{today().year:04d}-01"
    filters["to"] = filters["to"] or f"{today():%Y-%m}"
    return filters


def _options(parties: list[statements.Party], empty: str) -> list[tuple[str, str]]:
    return [("", empty), *((str(party.id), party.name) for party in parties)]


async def _read_statement(request: Request, db_session: AsyncSession, filters: dict[str, str]) -> statements.Statement:
    return await statements.statement(
        db_session,
        current(request),
        date_from=filters["from"],
        date_to=filters["to"],
        licensee_id=statements.optional_id(filters["licensee"], "licensee_id", "被许可方"),
        licensor_id=statements.optional_id(filters["licensor"], "licensor_id", "许可方"),
    )


class StatementController(Controller):
    path = "/billing"
    guards = [require_login]
    include_in_schema = False

    @get("/statement")
    async def page(self, request: Request, db_session: AsyncSession) -> Template:
        me = current(request)
        filters = _statement_filters(request)
        context: dict[str, Any] = {
            "form": filters,
            "errors": {},
            "statement": None,
            "licensor_options": [],
            "licensee_options": _options([], "全部被许可方"),
        }
        if me.is_platform_admin:
            context["licensor_options"] = _options(await statements.licensor_choices(db_session), "请选择许可方")
            if not filters["licensor"]:
                return Template("billing/statement.html.j2", context=context)
        try:
            statement = await _read_statement(request, db_session, filters)
        except ValidationFailed as exc:
            try:
                licensor_id = statements.optional_id(filters["licensor"], "licensor_id", "许可方")
                licensor = await statements.licensor_for(db_session, me, licensor_id)
                choices = await statements.licensee_choices(db_session, licensor.id)
                context["licensee_options"] = _options(choices, "全部被许可方")
            except ValidationFailed:
                pass
            return form_error("billing/statement.html.j2", exc, context)
        query = urlencode({name: value for name, value in filters.items() if value})
        context.update(statement=statement, licensee_options=_options(statement.licensees, "全部被许可方"), query=query)
        return Template("billing/statement.html.j2", context=context)

    @get("/statement.csv")
    async def csv(self, request: Request, db_session: AsyncSession) -> Response[bytes]:
        statement = await _read_statement(request, db_session, _statement_filters(request))
        return _download(statements.to_csv(statement), statement.filename("csv"), CSV_MEDIA_TYPE)

    @get("/statement.xlsx")
    async def xlsx(self, request: Request, db_session: AsyncSession) -> Response[bytes]:
        statement = await _read_statement(request, db_session, _statement_filters(request))
        return _download(statements.to_xlsx(statement), statement.filename("xlsx"), XLSX_MEDIA_TYPE)


class StatementApiController(Controller):
    path = "/api/v1/statements"
    tags = ["billing"]
    guards = [require_login]

    @get("/")
    async def read(
        self,
        request: Request,
        db_session: AsyncSession,
        date_from: Annotated[str, QueryParameter(name="from", description="起始月份 YYYY-MM（默认本年1月）")] = "",
        date_to: Annotated[str, QueryParameter(name="to", description="截止月份 YYYY-MM（默认本月）")] = "",
        licensee_id: int | None = None,
        licensor_id: int | None = None,
    ) -> statements.StatementOut:
        """The licensor's statement (对账单): per licensee and month, invoiced, received, refunded and
        outstanding at the month's end, in fen. Members of a licensor read their own; a platform admin
        passes ``licensor_id``. Organisations that only take licences get 403."""
        statement = await statements.statement(
            db_session,
            current(request),
            date_from=date_from,
            date_to=date_to,
            licensee_id=licensee_id,
            licensor_id=licensor_id,
        )
        return statements.StatementOut.of(statement)


ROUTES = [
    ContractBillingController,
    InvoiceController,
    PaymentController,
    stripe_webhook,
    InvoiceApiController,
    RoyaltyReportApiController,
    PaymentApiController,
    FirstRevenueApiController,
    StatementController,
    StatementApiController,
]
