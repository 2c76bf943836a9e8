"""Open-licence offer use cases (开放许可声明): drafting, submission, admin review, publication,
withdrawal, new versions, and the licensee's cost estimate.

Every transition goes through :func:`marketplace.audit.services.apply_transition`; publication and
withdrawal keep the catalogue in step in the same transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Role, User
from marketplace.accounts.rules import Principal
from marketplace.audit.services import AuditLine, apply_transition, record, trail
from marketplace.catalogue.services import remove_entry, upsert_entry
from marketplace.clock import now_utc, today
from marketplace.errors import Conflict, FieldError, Forbidden, InvalidTransition, NotFound, ValidationFailed
from marketplace.files.models import StoredFile
from marketplace.files.services import Upload, pdf_errors, store_pdf
from marketplace.money import parse_yuan
from marketplace.offers import rules
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.services import queue_email
from marketplace.patents.models import LegalStatus, Patent
from marketplace.settings import Settings

ENTITY = "open_licence_offer"
SUPERSEDED_REASON = "被新版本替代"
MAX_REASON_LENGTH = 2000
MAX_ANNOUNCEMENT_NUMBER_LENGTH = 64
#: Ceiling on the calculator's expected annual base (fen or units): RMB 10 trillion.
MAX_ANNUAL_BASE = 10**15
EARLIEST_START = date(2000, 1, 1)
LATEST_START = date(2100, 12, 31)


@dataclass(frozen=True)
class OfferInput:
    """The licensor's editable fields, from a form or the API.

    ``parse_errors`` carries problems found while reading a form (e.g. an amount that is not a
    number), so they are reported together with everything else.
    """

    fee_terms: Any
    licence_term_months: Any
    territory: str = "中国大陆"
    field_of_use: str | None = None
    other_terms: str = ""
    evaluation_report: Upload | None = None
    parse_errors: tuple[FieldError, ...] = ()


def fee_limits(settings: Settings) -> rules.FeeLimits:
    return rules.FeeLimits(
        max_rate_sales=settings.max_royalty_rate_sales,
        max_rate_profit=settings.max_royalty_rate_profit,
        max_rate_added_output=settings.max_royalty_rate_added_output,
        max_fixed_fee_fen=settings.max_fixed_fee_fen,
    )


def patent_facts(patent: Patent) -> rules.PatentFacts:
    return rules.PatentFacts(
        patent_type=patent.patent_type,
        legal_status=patent.legal_status,
        expiry_date=patent.expiry_date,
        annual_fee_paid_until=patent.annual_fee_paid_until,
        exclusive_licence=patent.exclusive_licence,
        sole_licence=patent.sole_licence,
        proceedings_suspended=patent.proceedings_suspended,
        pledged=patent.pledged,
        pledgee_consent=patent.pledgee_consent,
        has_co_owners=bool(patent.co_owners),
        co_owner_consent=patent.co_owner_consent,
    )


def eligibility(offer: OpenLicenceOffer, settings: Settings) -> list[rules.Ineligibility]:
    """Why the offer's patent may not be declared (empty when it may), as of today."""
    facts = rules.OfferFacts(
        licence_term_months=offer.licence_term_months,
        has_evaluation_report=offer.evaluation_report_file_id is not None,
        territory=offer.territory,
        field_of_use=offer.field_of_use,
        other_terms=offer.other_terms,
    )
    return rules.check_eligibility(
        patent_facts(offer.patent), facts, today=today(), advertising_words=settings.advertising_words
    )


def terms_of(offer: OpenLicenceOffer) -> rules.FeeTerms:
    return rules.terms_from_json(offer.fee_terms)


def describe(offer: OpenLicenceOffer) -> str:
    return rules.describe_terms(terms_of(offer))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


async def _load(session: AsyncSession, offer_id: int) -> OpenLicenceOffer:
    offer = await session.get(OpenLicenceOffer, offer_id)
    if offer is None:
        raise NotFound("开放许可声明不存在")
    return offer


async def get_for_licensor(session: AsyncSession, actor: Principal, offer_id: int) -> OpenLicenceOffer:
    """An offer of the actor's organisation; anyone else's is "not found"."""
    offer = await _load(session, offer_id)
    if offer.licensor_organisation_id != actor.organisation_id:
        raise NotFound("开放许可声明不存在")
    return offer


async def get_for_admin(session: AsyncSession, actor: Principal, offer_id: int) -> OpenLicenceOffer:
    if not actor.is_platform_admin:
        raise Forbidden("仅平台管理员可以审核开放许可声明")
    return await _load(session, offer_id)


async def get_visible(session: AsyncSession, actor: Principal | None, offer_id: int) -> OpenLicenceOffer:
    """Published offers for everyone; others for their licensor and platform admins only."""
    offer = await _load(session, offer_id)
    if offer.status is OfferStatus.PUBLISHED or can_manage(actor, offer):
        return offer
    raise NotFound("开放许可声明不存在")


def can_manage(actor: Principal | None, offer: OpenLicenceOffer) -> bool:
    return actor is not None and (actor.is_platform_admin or actor.organisation_id == offer.licensor_organisation_id)


async def get_public(session: AsyncSession, actor: Principal | None, offer_id: int) -> OpenLicenceOffer:
    """The public offer page: published offers; a withdrawn one only for its own licensor."""
    offer = await _load(session, offer_id)
    if offer.status is OfferStatus.PUBLISHED:
        return offer
    is_owner = actor is not None and actor.organisation_id == offer.licensor_organisation_id
    if offer.status is OfferStatus.WITHDRAWN and is_owner:
        return offer
    raise NotFound("开放许可声明不存在或已撤回")


async def list_for_organisation(
    session: AsyncSession, organisation_id: int, status: OfferStatus | None = None
) -> list[OpenLicenceOffer]:
    query = select(OpenLicenceOffer).where(OpenLicenceOffer.licensor_organisation_id == organisation_id)
    if status is not None:
        query = query.where(OpenLicenceOffer.status == status)
    return list(await session.scalars(query.order_by(OpenLicenceOffer.id.desc())))


async def list_page(
    session: AsyncSession,
    actor: Principal | None,
    *,
    status: OfferStatus | None,
    page: int,
    per_page: int,
) -> tuple[list[OpenLicenceOffer], int]:
    """Offers the caller may list: their organisation's (platform admin: all; anonymous: published)."""
    query = select(OpenLicenceOffer)
    if actor is None:
        query = query.where(OpenLicenceOffer.status == OfferStatus.PUBLISHED)
    elif not actor.is_platform_admin:
        query = query.where(OpenLicenceOffer.licensor_organisation_id == actor.organisation_id)
    if status is not None:
        query = query.where(OpenLicenceOffer.status == status)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(OpenLicenceOffer.id.desc()).offset((page - 1) * per_page).limit(per_page)
    )
    return list(rows), total


async def review_queue(session: AsyncSession, status: OfferStatus | None) -> list[OpenLicenceOffer]:
    query = select(OpenLicenceOffer)
    if status is not None:
        query = query.where(OpenLicenceOffer.status == status)
    order = OpenLicenceOffer.submitted_at.asc() if status is OfferStatus.SUBMITTED else OpenLicenceOffer.id.desc()
    # The review queue is one page; oldest submissions first, so nothing waiting is pushed out of view.
    return list(await session.scalars(query.order_by(order, OpenLicenceOffer.id).limit(500)))


async def series_versions(session: AsyncSession, offer: OpenLicenceOffer) -> list[OpenLicenceOffer]:
    query = select(OpenLicenceOffer).where(OpenLicenceOffer.series_id == offer.series_id)
    return list(await session.scalars(query.order_by(OpenLicenceOffer.version)))


async def audit_trail(session: AsyncSession, offer_id: int) -> list[AuditLine]:
    return await trail(session, ENTITY, offer_id, OfferStatus)


async def own_patents(session: AsyncSession, organisation_id: int) -> list[Patent]:
    """Granted patents of the organisation, for the offer form's patent select."""
    query = (
        select(Patent)
        .where(Patent.owner_organisation_id == organisation_id, Patent.legal_status == LegalStatus.GRANTED)
        .order_by(Patent.application_number)
        .limit(2000)
    )
    return list(await session.scalars(query))


# ---------------------------------------------------------------------------------------------
# Drafting
# ---------------------------------------------------------------------------------------------


def _validate(data: OfferInput, settings: Settings) -> tuple[rules.FeeTerms | None, list[FieldError]]:
    errors = list(data.parse_errors)
    territory = (data.territory or "").strip()
    field_errors = rules.offer_field_errors(
        term_months=data.licence_term_months,
        territory=territory,
        field_of_use=data.field_of_use,
        other_terms=data.other_terms or "",
    )
    errors += field_errors
    term_ok = not any(e.field == "licence_term_months" for e in field_errors)
    terms = None
    try:
        terms = rules.parse_fee_terms(
            data.fee_terms, term_months=data.licence_term_months if term_ok else None, limits=fee_limits(settings)
        )
    except ValidationFailed as exc:
        errors += exc.errors
    if data.evaluation_report is not None:
        errors += pdf_errors(data.evaluation_report, field="evaluation_report", max_bytes=settings.upload_max_bytes)
    return terms, errors


def _apply_fields(offer: OpenLicenceOffer, data: OfferInput, terms: rules.FeeTerms) -> None:
    offer.payment_mode = terms.mode
    offer.pay_after_use = rules.is_pay_after_use(terms)
    offer.fee_terms = terms.to_json()
    offer.upfront_cost_fen = rules.upfront_cost_fen(terms)
    offer.licence_term_months = data.licence_term_months
    offer.territory = data.territory.strip()
    offer.field_of_use = (data.field_of_use or "").strip() or None
    offer.other_terms = (data.other_terms or "").strip()


async def _lock_patent(session: AsyncSession, patent_id: int) -> Patent | None:
    # Serialises concurrent drafts for one patent on PostgreSQL (SQLite serialises writers anyway).
    return await session.scalar(select(Patent).where(Patent.id == patent_id).with_for_update(of=Patent))


async def _single_live_series_problem(
    session: AsyncSession, *, patent_id: int, series_id: str | None, exclude_offer_id: int | None
) -> str | None:
    """Why another live offer blocks this one: a live offer of another series of the same patent,
    or a draft/submitted version of the same series (one pending new version at a time)."""
    query = select(OpenLicenceOffer).where(
        OpenLicenceOffer.patent_id == patent_id, OpenLicenceOffer.status.in_(rules.LIVE_STATUSES)
    )
    if exclude_offer_id is not None:
        query = query.where(OpenLicenceOffer.id != exclude_offer_id)
    for other in await session.scalars(query):
        if other.series_id != series_id:
            return f"该专利已有一份开放许可声明（{other.status.label}），如需修改请在该声明上创建新版本"
        if other.status is not OfferStatus.PUBLISHED:
            return f"该声明已有一个未完成的版本（第{other.version}版，{other.status.label}）"
    return None


async def create_draft(
    session: AsyncSession, *, actor: Principal, settings: Settings, patent_id: Any, data: OfferInput
) -> OpenLicenceOffer:
    if not actor.can_hold_patents:
        raise Forbidden("仅专利权人机构可以声明开放许可")
    terms, errors = _validate(data, settings)
    patent = None
    if isinstance(patent_id, int) and not isinstance(patent_id, bool) and 0 < patent_id < 2**63:
        patent = await _lock_patent(session, patent_id)
    if not any(e.field == "patent_id" for e in errors):
        if patent is None or patent.owner_organisation_id != actor.organisation_id:
            errors.append(FieldError("patent_id", "请选择本机构的专利", "not_found"))
        else:
            problem = await _single_live_series_problem(
                session, patent_id=patent.id, series_id=None, exclude_offer_id=None
            )
            if problem:
                errors.append(FieldError("patent_id", problem, "duplicate"))
    if errors or terms is None or patent is None:
        raise ValidationFailed(errors)
    offer = OpenLicenceOffer(
        series_id=str(uuid.uuid4()),
        version=1,
        patent_id=patent.id,
        licensor_organisation_id=actor.organisation_id,
        status=OfferStatus.DRAFT,
        created_by_user_id=actor.user_id,
    )
    _apply_fields(offer, data, terms)
    if data.evaluation_report is not None:
        await _attach_report(session, actor, settings, offer, data.evaluation_report)
    session.add(offer)
    await session.flush()
    await session.refresh(offer)
    await record(session, entity_type=ENTITY, entity_id=offer.id, action="create", actor=actor,
                 to_state=OfferStatus.DRAFT.value)
    return offer


async def _attach_report(
    session: AsyncSession, actor: Principal, settings: Settings, offer: OpenLicenceOffer, upload: Upload
) -> StoredFile:
    stored = await store_pdf(session, actor=actor, settings=settings, upload=upload, purpose="evaluation_report")
    offer.evaluation_report_file_id = stored.id
    return stored


async def update_draft(
    session: AsyncSession, *, actor: Principal, settings: Settings, offer_id: int, data: OfferInput
) -> OpenLicenceOffer:
    """Edit a draft or a rejected offer; a rejected one goes back to draft (the licensor revises it)."""
    offer = await get_for_licensor(session, actor, offer_id)
    if offer.status not in rules.EDITABLE_STATUSES:
        raise InvalidTransition(f"“{offer.status.label}”的声明不能修改；已公告的声明请创建新版本")
    terms, errors = _validate(data, settings)
    if errors or terms is None:
        raise ValidationFailed(errors)
    if offer.status is OfferStatus.REJECTED:
        await _lock_patent(session, offer.patent_id)
        problem = await _single_live_series_problem(
            session, patent_id=offer.patent_id, series_id=offer.series_id, exclude_offer_id=offer.id
        )
        if problem:
            raise Conflict(problem)
        await apply_transition(
            session, entity=offer, entity_type=ENTITY, to_state=OfferStatus.DRAFT,
            allowed=rules.OFFER_TRANSITIONS, actor=actor, action="revise",
        )
        offer.rejection_reason = None
    _apply_fields(offer, data, terms)
    if data.evaluation_report is not None:
        await _attach_report(session, actor, settings, offer, data.evaluation_report)
    await session.flush()
    await record(session, entity_type=ENTITY, entity_id=offer.id, action="update", actor=actor)
    return offer


async def attach_evaluation_report(
    session: AsyncSession, *, actor: Principal, settings: Settings, offer_id: int, upload: Upload
) -> OpenLicenceOffer:
    offer = await get_for_licensor(session, actor, offer_id)
    if offer.status not in rules.EDITABLE_STATUSES:
        raise InvalidTransition("只有草稿或被驳回的声明可以更换评价报告")
    errors = pdf_errors(upload, field="evaluation_report", max_bytes=settings.upload_max_bytes)
    if errors:
        raise ValidationFailed(errors)
    stored = await _attach_report(session, actor, settings, offer, upload)
    await session.flush()
    await record(session, entity_type=ENTITY, entity_id=offer.id, action="attach_evaluation_report", actor=actor,
                 details={"file_id": stored.id})
    return offer


# ---------------------------------------------------------------------------------------------
# Workflow
# ---------------------------------------------------------------------------------------------


def _require_status(offer: OpenLicenceOffer, status: OfferStatus, doing: str) -> None:
    if offer.status is not status:
        raise InvalidTransition(f"“{offer.status.label}”的声明不能{doing}")


def _eligibility_errors(offer: OpenLicenceOffer, settings: Settings) -> list[FieldError]:
    errors: list[FieldError] = []
    try:
        rules.parse_fee_terms(offer.fee_terms, term_months=offer.licence_term_months, limits=fee_limits(settings))
    except ValidationFailed as exc:
        errors += exc.errors
    errors += [FieldError("eligibility", p.message, p.code) for p in eligibility(offer, settings)]
    return errors


async def submit(session: AsyncSession, *, actor: Principal, settings: Settings, offer_id: int) -> OpenLicenceOffer:
    """Send a draft for review. Every unmet condition of §3 is named; nothing changes if any fails."""
    offer = await get_for_licensor(session, actor, offer_id)
    _require_status(offer, OfferStatus.DRAFT, "提交审核")
    errors = _eligibility_errors(offer, settings)
    if errors:
        raise ValidationFailed(errors, "尚不满足开放许可声明的条件")
    offer.submitted_at = now_utc()
    await apply_transition(
        session, entity=offer, entity_type=ENTITY, to_state=OfferStatus.SUBMITTED,
        allowed=rules.OFFER_TRANSITIONS, actor=actor, action="submit",
    )
    return offer


def _parse_date(raw: Any) -> date | None:
    if isinstance(raw, date):
        return raw
    text = str(raw or "").strip()
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


async def approve(
    session: AsyncSession,
    *,
    actor: Principal,
    settings: Settings,
    offer_id: int,
    announcement_number: str,
    announcement_date: Any,
) -> OpenLicenceOffer:
    """Publish a submitted offer with the patent office's announcement (公告).

    Eligibility is checked again as of today. Publishing a new version withdraws the series'
    previously published version ("被新版本替代").
    """
    offer = await get_for_admin(session, actor, offer_id)
    _require_status(offer, OfferStatus.SUBMITTED, "公告")
    errors: list[FieldError] = []
    number = (announcement_number or "").strip()
    if not number:
        errors.append(FieldError("announcement_number", "请填写公告号", "required"))
    elif len(number) > MAX_ANNOUNCEMENT_NUMBER_LENGTH:
        errors.append(FieldError("announcement_number", f"公告号不能超过{MAX_ANNOUNCEMENT_NUMBER_LENGTH}个字符"))
    elif await session.scalar(
        select(OpenLicenceOffer.id).where(
            OpenLicenceOffer.announcement_number == number, OpenLicenceOffer.id != offer.id
        )
    ):
        errors.append(FieldError("announcement_number", "该公告号已用于其他声明", "duplicate"))
    announced = _parse_date(announcement_date)
    if not str(announcement_date or "").strip():
        errors.append(FieldError("announcement_date", "请填写公告日期", "required"))
    elif announced is None:
        errors.append(FieldError("announcement_date", "公告日期格式应为 YYYY-MM-DD"))
    elif announced > today():
        errors.append(FieldError("announcement_date", "公告日期不能晚于今天", "out_of_range"))
    errors += _eligibility_errors(offer, settings)
    if errors:
        raise ValidationFailed(errors)
    for previous in await series_versions(session, offer):
        if previous.id != offer.id and previous.status is OfferStatus.PUBLISHED:
            await _withdraw(session, previous, actor=actor, reason=SUPERSEDED_REASON, action="supersede")
    offer.announcement_number = number
    offer.announcement_date = announced
    offer.published_at = now_utc()
    await apply_transition(
        session, entity=offer, entity_type=ENTITY, to_state=OfferStatus.PUBLISHED,
        allowed=rules.OFFER_TRANSITIONS, actor=actor, action="approve",
        details={"announcement_number": number, "announcement_date": announced.isoformat() if announced else None},
    )
    await upsert_entry(session, offer)
    await _notify_licensor(
        session, offer, event="published",
        subject=f"开放许可声明已公告：{offer.patent.title}",
        body=(
            f"贵机构就专利 {offer.patent.patent_number}《{offer.patent.title}》提交的开放许可声明"
            f"（第{offer.version}版）已审核通过并公告，公告号 {number}，公告日期 {announced}。"
        ),
    )
    return offer


def _reason(raw: str | None, what: str) -> str:
    reason = (raw or "").strip()
    if not reason:
        raise ValidationFailed.single("reason", f"请填写{what}", "required")
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationFailed.single("reason", f"{what}不能超过{MAX_REASON_LENGTH}个字符")
    return reason


async def reject(
    session: AsyncSession, *, actor: Principal, offer_id: int, reason: str | None
) -> OpenLicenceOffer:
    offer = await get_for_admin(session, actor, offer_id)
    _require_status(offer, OfferStatus.SUBMITTED, "驳回")
    text = _reason(reason, "驳回理由")
    offer.rejection_reason = text
    await apply_transition(
        session, entity=offer, entity_type=ENTITY, to_state=OfferStatus.REJECTED,
        allowed=rules.OFFER_TRANSITIONS, actor=actor, action="reject", reason=text,
    )
    await _notify_licensor(
        session, offer, event="rejected",
        subject=f"开放许可声明被驳回：{offer.patent.title}",
        body=(
            f"贵机构就专利 {offer.patent.patent_number}《{offer.patent.title}》提交的开放许可声明"
            f"（第{offer.version}版）未通过审核。驳回理由：{text}\n修改后可重新提交。"
        ),
    )
    return offer


async def _withdraw(
    session: AsyncSession, offer: OpenLicenceOffer, *, actor: Principal, reason: str, action: str
) -> None:
    # FOR UPDATE waits for acceptances in flight (they hold FOR SHARE on the offer, see
    # marketplace.licensing.services.accept) and re-reads the status they may not have seen change.
    await session.execute(
        select(OpenLicenceOffer)
        .where(OpenLicenceOffer.id == offer.id)
        .with_for_update(of=OpenLicenceOffer)
        .execution_options(populate_existing=True)
    )
    offer.withdrawal_reason = reason
    offer.withdrawn_at = now_utc()
    await apply_transition(
        session, entity=offer, entity_type=ENTITY, to_state=OfferStatus.WITHDRAWN,
        allowed=rules.OFFER_TRANSITIONS, actor=actor, action=action, reason=reason,
    )
    await remove_entry(session, offer.id)


async def withdraw(
    session: AsyncSession,
    *,
    actor: Principal,
    offer_id: int,
    reason: str | None,
    co_owners_consented: bool = False,
) -> OpenLicenceOffer:
    """Withdraw (撤回) a published offer. Licences already taken keep their terms."""
    offer = await get_for_licensor(session, actor, offer_id)
    if not actor.is_org_admin:
        raise Forbidden("仅机构管理员可以撤回开放许可声明")
    _require_status(offer, OfferStatus.PUBLISHED, "撤回")
    text = _reason(reason, "撤回理由")
    if offer.patent.co_owners and not co_owners_consented:
        raise ValidationFailed.single(
            "co_owners_consented", "共有专利撤回开放许可须经全体共有人同意，请确认", "required"
        )
    await _withdraw(session, offer, actor=actor, reason=text, action="withdraw")
    return offer


async def new_version(session: AsyncSession, *, actor: Principal, offer_id: int) -> OpenLicenceOffer:
    """Copy a published offer's terms into the next version's draft; the published one is untouched."""
    offer = await get_for_licensor(session, actor, offer_id)
    _require_status(offer, OfferStatus.PUBLISHED, "创建新版本")
    await _lock_patent(session, offer.patent_id)
    problem = await _single_live_series_problem(
        session, patent_id=offer.patent_id, series_id=offer.series_id, exclude_offer_id=offer.id
    )
    if problem:
        raise Conflict(problem)
    latest = await session.scalar(
        select(func.max(OpenLicenceOffer.version)).where(OpenLicenceOffer.series_id == offer.series_id)
    )
    draft = OpenLicenceOffer(
        series_id=offer.series_id,
        version=int(latest or offer.version) + 1,
        patent_id=offer.patent_id,
        licensor_organisation_id=offer.licensor_organisation_id,
        status=OfferStatus.DRAFT,
        payment_mode=offer.payment_mode,
        pay_after_use=offer.pay_after_use,
        fee_terms=dict(offer.fee_terms),
        upfront_cost_fen=offer.upfront_cost_fen,
        licence_term_months=offer.licence_term_months,
        territory=offer.territory,
        field_of_use=offer.field_of_use,
        other_terms=offer.other_terms,
        evaluation_report_file_id=offer.evaluation_report_file_id,
        created_by_user_id=actor.user_id,
    )
    session.add(draft)
    await session.flush()
    await session.refresh(draft)
    await record(
        session, entity_type=ENTITY, entity_id=draft.id, action="new_version", actor=actor,
        to_state=OfferStatus.DRAFT.value, details={"from_offer_id": offer.id, "from_version": offer.version},
    )
    return draft


async def _notify_licensor(
    session: AsyncSession, offer: OpenLicenceOffer, *, event: str, subject: str, body: str
) -> None:
    admins = await session.scalars(
        select(User).where(
            User.organisation_id == offer.licensor_organisation_id,
            User.role == Role.ORG_ADMIN,
            User.is_active.is_(True),
        )
    )
    # One review outcome per submission, so the submission time makes the key unique yet idempotent.
    submitted = offer.submitted_at.isoformat() if offer.submitted_at else "-"
    for admin in admins:
        await queue_email(
            session, to=admin.email, subject=subject, body=body,
            dedupe_key=f"offer:{offer.id}:{event}:{submitted}:{admin.id}",
        )


# ---------------------------------------------------------------------------------------------
# Cost estimate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EstimateRequest:
    annual_base: int
    start: date


def estimate_inputs(
    offer: OpenLicenceOffer, *, annual_base: str | None, start: str | None, base_in_yuan: bool
) -> EstimateRequest:
    """Read the calculator's inputs: expected annual base (yuan from a page, fen from the API; units
    for a per-unit royalty) and the start date (default today)."""
    errors: list[FieldError] = []
    royalty = rules.royalty_of(terms_of(offer))
    base = 0
    text = (annual_base or "").strip()
    if royalty is not None and text:
        per_unit = royalty.base is rules.RoyaltyBase.UNITS
        try:
            if len(text) > 24:
                raise ValueError
            base = int(text) if (per_unit or not base_in_yuan) else parse_yuan(text)
        except (ValueError, ArithmeticError):
            if per_unit:
                message = "请填写数量（整数）"
            else:
                message = "请填写有效的金额" if base_in_yuan else "请填写以分计的整数金额"
            errors.append(FieldError("annual_base", message))
        else:
            if not 0 <= base <= MAX_ANNUAL_BASE:
                errors.append(FieldError("annual_base", "预计年度基数超出可测算范围", "out_of_range"))
    start_day = today()
    if (start or "").strip():
        parsed = _parse_date(start)
        if parsed is None:
            errors.append(FieldError("start", "日期格式应为 YYYY-MM-DD"))
        elif not EARLIEST_START <= parsed <= LATEST_START:
            errors.append(FieldError("start", "日期应在2000年至2100年之间", "out_of_range"))
        else:
            start_day = parsed
    if errors:
        raise ValidationFailed(errors)
    return EstimateRequest(annual_base=base, start=start_day)


def estimate(offer: OpenLicenceOffer, request: EstimateRequest) -> rules.Timeline:
    timeline = rules.payment_timeline(
        terms_of(offer), term_months=offer.licence_term_months, start=request.start, annual_base=request.annual_base
    )
    expiry = offer.patent.expiry_date
    if timeline.end > expiry:
        # A licence lives only while the patent does (rulebook §4); say so rather than guess the contract.
        note = (
            f"按此日期起算，许可期限将超过专利权届满日（{expiry:%Y-%m-%d}）；"
            "许可随专利权届满而终止，届满日之后列出的款项仅供参考。"
        )
        timeline = replace(timeline, notes=(*timeline.notes, note))
    return timeline
