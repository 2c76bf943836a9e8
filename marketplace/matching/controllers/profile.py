"""An enterprise's interest profile (企业兴趣画像) and its recommendations (为我推荐): the pages
``/recommendations`` and ``/profile`` (with the HTMX industry lookup), and the JSON API
``/api/v1/recommendations`` and ``/api/v1/profile``. Enterprise users only."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.catalogue.rules import PROVINCES, province_name
from marketplace.errors import FieldError, ValidationFailed
from marketplace.matching import inventory, rules, schemas, services
from marketplace.matching.models import Channel, InterestProfile
from marketplace.money import format_yuan, parse_yuan
from marketplace.web.auth import current, require_login
from marketplace.web.forms import form_data, form_error

PROFILE_PAGE = "matching/profile.html.j2"
PROFILE_FORM = "matching/partials/profile_form.html.j2"
SAVED_TARGET = "/recommendations?saved=1"
_CHECKBOXES = ("prefers_pay_after_use", "digest_enabled", "push_enabled")


def require_enterprise_user(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Enterprise users and enterprises' API tokens; anonymous callers are sent to log in (401)."""
    require_login(connection, handler)
    refusal = services.matching_refusal(current(connection))
    if refusal:
        raise PermissionDeniedException(refusal)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# ---------------------------------------------------------------------------------------------
# The profile form
# ---------------------------------------------------------------------------------------------


def _form_of(profile: InterestProfile) -> dict[str, Any]:
    """The form's fields as the stored profile fills them."""
    budget = profile.max_upfront_fen
    return {
        "industries": ", ".join(profile.industries),
        "keywords": "、".join(profile.keywords),
        "ipc_codes": ", ".join(profile.ipc_codes),
        "provinces": list(profile.province_codes),
        "max_upfront": "" if budget is None else format_yuan(budget),
        "prefers_pay_after_use": profile.prefers_pay_after_use,
        "digest_enabled": profile.digest_enabled,
        "push_enabled": profile.push_enabled,
    }


def _form_from(data: dict[str, Any]) -> dict[str, Any]:
    """The submitted fields, typed back into the form as they came (a re-render shows them unchanged)."""

    def text(key: str) -> str:
        value = data.get(key, "")
        return value if isinstance(value, str) else ""

    provinces = data.get("provinces", [])
    return {
        "industries": text("industries"),
        "keywords": text("keywords"),
        "ipc_codes": text("ipc_codes"),
        "provinces": [provinces] if isinstance(provinces, str) else [p for p in provinces if isinstance(p, str)],
        "max_upfront": text("max_upfront"),
        **{name: bool(data.get(name)) for name in _CHECKBOXES},
    }


def _budget(raw: str) -> tuple[int | None, FieldError | None]:
    """The upfront budget typed in yuan, in fen; empty means no budget."""
    if not raw.strip():
        return None, None
    try:
        return parse_yuan(raw), None
    except ValueError as exc:
        return None, FieldError("max_upfront", f"首付预算{exc}，请填写以元为单位的金额，如 50000", "bad_budget")


async def _save_form(session: AsyncSession, request: Request, form: dict[str, Any]) -> None:
    budget, budget_error = _budget(form["max_upfront"])
    data = rules.ProfileInput(
        industries=form["industries"],
        keywords=form["keywords"],
        ipc_codes=form["ipc_codes"],
        provinces=form["provinces"],
        max_upfront_fen=budget,
        prefers_pay_after_use=form["prefers_pay_after_use"],
    )
    if budget_error is not None:
        # Every problem at once: the budget's and whatever the other fields have.
        _, errors = rules.check_profile(data)
        raise ValidationFailed([*errors, budget_error])
    await services.update_profile(
        session, current(request), data, digest_enabled=form["digest_enabled"], push_enabled=form["push_enabled"]
    )


async def _profile_context(session: AsyncSession, request: Request, form: dict[str, Any] | None) -> dict[str, Any]:
    profile = await services.profile_for(session, current(request).organisation_id)
    form = form if form is not None else _form_of(profile)
    return {
        "profile": profile,
        "learned": _learned(profile),
        "form": form,
        "errors": {},
        "province_options": list(PROVINCES.items()),
        **_industry_lookup(form["industries"]),
    }


def _learned(profile: InterestProfile) -> dict[str, list[tuple[str, int]]]:
    """The learned part, most frequent first, for display."""

    def ranked(counts: dict[str, int] | None) -> list[tuple[str, int]]:
        return sorted((counts or {}).items(), key=lambda kv: (-kv[1], kv[0]))

    return {"ipc": ranked(profile.learned_ipc), "keywords": ranked(profile.learned_keywords)}


def _industry_lookup(raw: str) -> dict[str, Any]:
    return {"industry_lookup": rules.lookup_industries(raw)}


class ProfilePages(Controller):
    guards = [require_enterprise_user]
    include_in_schema = False

    @get("/recommendations")
    async def recommendations(self, request: Request, db_session: AsyncSession, saved: str = "") -> Template:
        profile, items = await services.recommendations(db_session, current(request), channel=Channel.PAGE)
        stock = await inventory.rank(db_session, services.as_rules(profile), profile.organisation_id)
        return Template(
            "matching/recommendations.html.j2",
            context={
                "profile": profile,
                "summary": {
                    "industries": [rules.industry_label(code) for code in profile.industries],
                    "provinces": [province_name(code) for code in profile.province_codes],
                },
                "signals": services.as_rules(profile),
                "items": items,
                "stock": stock,
                "saved": saved == "1",
            },
        )

    @get("/profile")
    async def profile(self, request: Request, db_session: AsyncSession, cleared: str = "") -> Template:
        context = await _profile_context(db_session, request, None)
        return Template(PROFILE_PAGE, context={**context, "cleared": cleared == "1"})

    @post("/profile")
    async def save(self, request: Request, db_session: AsyncSession) -> Template | Redirect | Response:
        form = _form_from(await form_data(request))
        try:
            await _save_form(db_session, request, form)
        except ValidationFailed as exc:
            # 422 rolls the request back: a rejected profile writes nothing.
            context = await _profile_context(db_session, request, form)
            return form_error(PROFILE_FORM if _is_htmx(request) else PROFILE_PAGE, exc, context)
        if _is_htmx(request):
            return Response(content="", status_code=200, headers={"HX-Redirect": SAVED_TARGET})
        return Redirect(path=SAVED_TARGET)

    @get("/profile/industries")
    async def industries(self, industries: Annotated[str, Parameter(max_length=300)] = "") -> Template:
        """The industries input with its lookup (HTMX swaps the lookup in as the user types, and the
        whole field when a suggestion is chosen)."""
        context = {"form": {"industries": industries}, "errors": {}, **_industry_lookup(industries)}
        return Template("matching/partials/industries_field.html.j2", context=context)

    @post("/profile/learned/clear")
    async def clear_learned(self, request: Request, db_session: AsyncSession) -> Redirect:
        await services.clear_learned(db_session, current(request))
        return Redirect(path="/profile?cleared=1")


# ---------------------------------------------------------------------------------------------
# JSON API
# ---------------------------------------------------------------------------------------------


class RecommendationApi(Controller):
    path = "/api/v1/recommendations"
    tags = ["matching"]
    guards = [require_enterprise_user]

    @get("/", summary="为我推荐：与本企业兴趣画像最匹配的开放许可")
    async def recommendations(
        self,
        request: Request,
        db_session: AsyncSession,
        limit: Annotated[
            int, Parameter(ge=1, le=services.MAX_RECOMMENDATIONS, description="条数（1–50，默认20）")
        ] = services.DEFAULT_RECOMMENDATIONS,
    ) -> schemas.RecommendationsOut:
        """The published offers that best match the calling enterprise's interest profile, best
        first, each with its points and the reason lines that add up to them. Offers of the
        enterprise itself and patents it already holds a licence for are left out. Each offer
        returned counts as shown (channel ``api``) in the licensor's funnel. ``inventory`` lists up
        to 10 stock patents (库存专利) ranked the same way: not offered yet, their holders open to a
        licence or an assignment."""
        profile, items = await services.recommendations(db_session, current(request), limit=limit, channel=Channel.API)
        stock = await inventory.rank(db_session, services.as_rules(profile), profile.organisation_id)
        return schemas.RecommendationsOut(
            items=[schemas.RecommendationOut.of(item) for item in items],
            inventory=[schemas.StockRecommendationOut.of(item) for item in stock],
            profile=schemas.ProfileOut.of(profile),
        )


class ProfileApi(Controller):
    path = "/api/v1/profile"
    tags = ["matching"]
    guards = [require_enterprise_user]

    @get("/", summary="读取本企业的兴趣画像")
    async def read(self, request: Request, db_session: AsyncSession) -> schemas.ProfileOut:
        """On first use the profile is filled from sign-up: the industry section and the province."""
        profile = await services.profile_for(db_session, current(request).organisation_id)
        return schemas.ProfileOut.of(profile)

    @put("/", summary="修改本企业的兴趣画像")
    async def update(
        self, request: Request, db_session: AsyncSession, data: schemas.ProfileWrite
    ) -> schemas.ProfileOut:
        """Replace the profile's own fields (see the body's description). Every problem is reported
        at once (422, field by field) and nothing is changed; each change is audited with from/to."""
        try:
            profile = await services.update_profile(
                db_session,
                current(request),
                data.profile_input(),
                digest_enabled=data.digest_enabled,
                push_enabled=data.push_enabled,
                clear_learned=data.clear_learned,
            )
        except ValidationFailed as exc:
            raise schemas.api_errors(exc) from exc
        return schemas.ProfileOut.of(profile)


ROUTES = [ProfilePages, RecommendationApi, ProfileApi]
