"""Licence use cases: taking an open licence by written notice (书面通知), reading contracts as a
party or an admin, termination by agreement, and ending contracts when the patent stops being in
force or the term runs out.

Acceptance holds a shared lock on the offer row while it checks and writes, and withdrawal takes an
exclusive one (see :func:`marketplace.offers.services.withdraw`), so a licence is only ever granted
on an offer that was published when the acceptance committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.models import Organisation, Role, User, VerificationStatus
from marketplace.accounts.rules import Principal, division_name
from marketplace.audit.services import AuditLine, apply_transition, record, trail
from marketplace.clock import now_utc, today
from marketplace.errors import Conflict, DomainError, FieldError, Forbidden, NotFound, ValidationFailed
from marketplace.licensing import documents, rules
from marketplace.licensing.models import (
    ContractNumberCounter,
    ContractStatus,
    EndReason,
    LicenceContract,
    PaymentObligation,
    WrittenNotice,
)
from marketplace.offers import rules as offer_rules
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.outbox.services import Email, add_email, add_side_effect, periodic, queue_emails
from marketplace.paging import PER_PAGE, Page, page_bounds
from marketplace.patents.models import LegalStatus, Patent

ENTITY = "licence_contract"
#: Outbox kind handled by billing: invoice whatever a new contract already owes.
BILL_CONTRACT = "billing.bill_contract"
#: Handled by ``evaluations.tiers``: re-tier the patent of a new licence.
RETIER_PATENT = "evaluations.retier_patent"


class EmailUnconfirmed(DomainError):
    status = 403
    code = "email_unconfirmed"


# ---------------------------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------------------------


def _party(organisation: Organisation) -> dict[str, Any]:
    return {
        "id": organisation.id,
        "name": organisation.name,
        "kind": organisation.kind.value,
        "uscc": organisation.uscc,
        "address": organisation.address,
        "division_code": organisation.division_code,
        "division": division_name(organisation.division_code),
        "contact_name": organisation.contact_name,
        "contact_phone": organisation.contact_phone,
        "contact_email": organisation.contact_email,
        "enterprise_size": organisation.enterprise_size.value if organisation.enterprise_size else None,
        "industry_code": organisation.industry_code,
    }


def snapshot(offer: OpenLicenceOffer, licensee: Organisation) -> dict[str, Any]:
    """Everything the licence is granted on, frozen at acceptance (the filing needs all of it)."""
    patent = offer.patent
    terms = offer_rules.terms_from_json(offer.fee_terms)
    return {
        "licence_type": rules.LICENCE_TYPE,
        "offer": {
            "id": offer.id,
            "series_id": offer.series_id,
            "version": offer.version,
            "announcement_number": offer.announcement_number,
            "announcement_date": offer.announcement_date.isoformat() if offer.announcement_date else None,
        },
        "terms": {
            "fee_terms": offer.fee_terms,
            "payment_mode": offer.payment_mode.value,
            "payment_mode_label": offer.payment_mode.label,
            "pay_after_use": offer.pay_after_use,
            "description": offer_rules.describe_terms(terms),
            "licence_term_months": offer.licence_term_months,
            "territory": offer.territory,
            "field_of_use": offer.field_of_use,
            "other_terms": offer.other_terms,
        },
        "patent": {
            "id": patent.id,
            "title": patent.title,
            "application_number": patent.application_number,
            "patent_number": f"ZL{patent.application_number}",
            "patent_type": patent.patent_type.value,
            "type_label": patent.patent_type.label,
            "filing_date": patent.filing_date.isoformat(),
            "grant_date": patent.grant_date.isoformat() if patent.grant_date else None,
            "expiry_date": patent.expiry_date.isoformat(),
            "ipc_main": patent.ipc_main,
        },
        "licensor": _party(offer.licensor),
        "licensee": _party(licensee),
    }


# ---------------------------------------------------------------------------------------------
# Accepting an offer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo:
    address: str | None = None
    user_agent: str | None = None


async def _lock_offer_for_acceptance(session: AsyncSession, offer_id: int) -> OpenLicenceOffer | None:
    # FOR SHARE: acceptances of one offer proceed together; a withdrawal (FOR UPDATE) waits for them,
    # and acceptances arriving after it see the withdrawn status once it commits.
    return await session.scalar(
        select(OpenLicenceOffer)
        .where(OpenLicenceOffer.id == offer_id)
        .with_for_update(read=True, of=OpenLicenceOffer)
        .execution_options(populate_existing=True)
    )


async def _by_idempotency_key(session: AsyncSession, organisation_id: int, key: str) -> LicenceContract | None:
    # The id alone first: this runs on every acceptance and almost never finds anything.
    contract_id = await session.scalar(
        select(LicenceContract.id).where(
            LicenceContract.licensee_organisation_id == organisation_id, LicenceContract.idempotency_key == key
        )
    )
    return None if contract_id is None else await session.get(LicenceContract, contract_id)


async def live_contract(session: AsyncSession, organisation_id: int, offer_id: int) -> LicenceContract | None:
    contract_id = await session.scalar(
        select(LicenceContract.id).where(
            LicenceContract.licensee_organisation_id == organisation_id, LicenceContract.live_offer_id == offer_id
        )
    )
    return None if contract_id is None else await session.get(LicenceContract, contract_id)


async def _next_sequence(session: AsyncSession, year: int) -> int:
    """The year's next contract sequence. The counter row stays locked until commit, so numbers are
    gapless and never repeat; a rolled-back acceptance gives its number back."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = now_utc()
    statement = (
        dialect.insert(ContractNumberCounter)
        .values(year=year, last_value=1, created_at=now, updated_at=now)
        .on_conflict_do_update(
            index_elements=[ContractNumberCounter.year],
            set_={"last_value": ContractNumberCounter.last_value + 1, "updated_at": now},
        )
        .returning(ContractNumberCounter.last_value)
    )
    return int((await session.execute(statement)).scalar_one())


def _check_acceptable(actor: Principal, offer: OpenLicenceOffer | None, start: date) -> OpenLicenceOffer:
    if offer is None or offer.status in (OfferStatus.DRAFT, OfferStatus.SUBMITTED, OfferStatus.REJECTED):
        raise NotFound("开放许可声明不存在")
    if offer.status is OfferStatus.WITHDRAWN:
        raise Conflict("该开放许可声明已撤回，不能再依此取得许可", code="offer_withdrawn")
    if offer.licensor_organisation_id == actor.organisation_id:
        raise Forbidden("不能对本机构声明的专利取得开放许可")
    patent = offer.patent
    if patent.legal_status is not LegalStatus.GRANTED or patent.expiry_date < start:
        raise Conflict("该专利权已不在有效期内，不能取得许可", code="patent_not_in_force")
    return offer


async def accept(
    session: AsyncSession,
    *,
    actor: Principal,
    offer_id: int,
    values: dict[str, Any],
    client: ClientInfo = ClientInfo(),
) -> tuple[LicenceContract, bool]:
    """Take the offer's open licence by written notice. Returns the contract and whether it is new:
    a repeated submission with the same idempotency key returns the contract it created."""
    if actor.is_platform_admin:
        raise Forbidden("平台管理员不能以自身名义取得许可")
    if actor.is_expert:
        raise Forbidden("评审专家不能取得许可")
    if not actor.email_confirmed:
        raise EmailUnconfirmed("请先确认您的邮箱，再提交书面通知")
    acceptance = rules.parse_acceptance(values, today=today())
    earlier = await _by_idempotency_key(session, actor.organisation_id, acceptance.idempotency_key)
    if earlier is not None:
        return _replayed(earlier, offer_id)
    offer = _check_acceptable(actor, await _lock_offer_for_acceptance(session, offer_id), acceptance.start_date)
    live = await live_contract(session, actor.organisation_id, offer.id)
    if live is not None:
        raise Conflict(f"贵单位已持有该声明下的有效许可（合同编号 {live.number}）", code="already_licensed")
    licensee = await session.get(Organisation, actor.organisation_id)
    assert licensee is not None
    try:
        async with session.begin_nested():
            contract = await _create(session, actor, offer, licensee, acceptance, client)
    except IntegrityError:
        # A concurrent request with the same key or for the same offer committed first.
        earlier = await _by_idempotency_key(session, actor.organisation_id, acceptance.idempotency_key)
        if earlier is not None:
            return _replayed(earlier, offer_id)
        raise Conflict("贵单位已持有该声明下的有效许可", code="already_licensed") from None
    return contract, True


def _replayed(contract: LicenceContract, offer_id: int) -> tuple[LicenceContract, bool]:
    if contract.offer_id != offer_id:
        raise Conflict("该请求标识已用于另一份许可，请刷新页面后重新提交", code="idempotency_key_reused")
    return contract, False


async def _create(
    session: AsyncSession,
    actor: Principal,
    offer: OpenLicenceOffer,
    licensee: Organisation,
    acceptance: rules.Acceptance,
    client: ClientInfo,
) -> LicenceContract:
    terms = offer_rules.terms_from_json(offer.fee_terms)
    start = acceptance.start_date
    end = rules.contract_end(start, offer.licence_term_months, offer.patent.expiry_date)
    signed_on = today()
    notified_at = now_utc()
    frozen = snapshot(offer, licensee)
    status = rules.initial_status(terms)
    lines = rules.obligations(terms, start=start, end=end, term_months=offer.licence_term_months)
    document = documents.render_notice(
        frozen,
        intended_field_of_use=acceptance.intended_field_of_use,
        start_date=start,
        end_date=end,
        signatory_name=acceptance.signatory_name,
        signatory_title=acceptance.signatory_title,
        signed_on=signed_on,
        notified_at=notified_at,
    )
    licensor_emails = await party_emails(session, offer.licensor)
    user_email = await session.scalar(select(User.email).where(User.id == actor.user_id))

    # From here to commit the year's counter row stays locked and acceptances queue behind it, so
    # everything above is read or computed first and only writes follow.
    sequence = await _next_sequence(session, signed_on.year)
    contract = LicenceContract(
        number=rules.contract_number(signed_on.year, sequence),
        year=signed_on.year,
        sequence=sequence,
        offer=offer,
        live_offer_id=offer.id,
        patent=offer.patent,
        licensor=offer.licensor,
        licensee=licensee,
        accepted_by_user_id=actor.user_id,
        idempotency_key=acceptance.idempotency_key,
        status=status,
        payment_mode=offer.payment_mode.value,
        pay_after_use=offer.pay_after_use,
        terms_snapshot=frozen,
        intended_field_of_use=acceptance.intended_field_of_use,
        signatory_name=acceptance.signatory_name,
        signatory_title=acceptance.signatory_title,
        signed_on=signed_on,
        start_date=start,
        end_date=end,
        activated_at=notified_at if status is ContractStatus.ACTIVE else None,
        obligations=[obligation_row(None, number, line) for number, line in enumerate(lines, start=1)],
        notice=WrittenNotice(
            offer_id=offer.id,
            organisation_id=licensee.id,
            user_id=actor.user_id,
            notified_at=notified_at,
            client_address=(client.address or "")[:64] or None,
            user_agent=(client.user_agent or "")[:300] or None,
            document_html=document,
            sha256=documents.sha256_hex(document),
        ),
    )
    session.add(contract)
    await session.flush()
    await record(
        session,
        entity_type=ENTITY,
        entity_id=contract.id,
        action="accept",
        actor=actor,
        to_state=status.value,
        details={"number": contract.number, "offer_id": offer.id, "offer_version": offer.version},
    )
    _notify_new_licence(session, contract, licensor_emails, user_email)
    await session.flush()
    if contract.obligations:
        # Billing issues what is due already (a lump sum, a first instalment) within seconds.
        add_side_effect(session, kind=BILL_CONTRACT, payload={"contract_id": contract.id}, key=str(contract.id))
    # A licence counts in its patent's tier (分层) and ends a re-evaluation flag: the worker re-tiers it.
    add_side_effect(session, kind=RETIER_PATENT, payload={"patent_id": contract.patent_id}, key=str(contract.id))
    return contract


def obligation_row(contract_id: int | None, sequence: int, line: rules.Obligation) -> PaymentObligation:
    """A plan item as stored on the contract (``contract_id`` None when it goes in with a new contract)."""
    row = PaymentObligation(
        sequence=sequence,
        key=line.key,
        kind=line.kind,
        description=line.description,
        amount_fen=line.amount_fen,
        due_date=line.due_date,
        period_start=line.period_start,
        period_end=line.period_end,
        contract_year=line.contract_year,
        months=line.months,
        after_first_revenue=line.after_first_revenue,
    )
    if contract_id is not None:
        row.contract_id = contract_id
    return row


async def party_emails(session: AsyncSession, organisation: Organisation) -> list[str]:
    """Where an organisation's notices go: its active admins and its contact address."""
    return (await party_emails_for(session, [organisation]))[organisation.id]


async def party_emails_for(session: AsyncSession, organisations: Sequence[Organisation]) -> dict[int, list[str]]:
    """:func:`party_emails` of many organisations in one query."""
    emails: dict[int, list[str]] = {organisation.id: [] for organisation in organisations}
    admins = await session.execute(
        select(User.organisation_id, User.email)
        .where(User.organisation_id.in_(list(emails)), User.role == Role.ORG_ADMIN, User.is_active.is_(True))
        .order_by(User.id)
    )
    for organisation_id, email in admins:
        emails[organisation_id].append(email)
    for organisation in organisations:
        contact = (organisation.contact_email or "").lower()
        if contact and contact not in emails[organisation.id]:
            emails[organisation.id].append(contact)
    return emails


def _notify_new_licence(
    session: AsyncSession, contract: LicenceContract, licensor_emails: list[str], user_email: str | None
) -> None:
    frozen = contract.terms_snapshot
    subject = f"新的开放许可：{frozen['licensee']['name']} 已取得专利 {frozen['patent']['patent_number']} 的许可"
    body = (
        f"{frozen['licensee']['name']}（统一社会信用代码 {frozen['licensee']['uscc'] or '—'}）"
        f"已依据贵单位的开放许可声明提交书面通知，取得专利《{frozen['patent']['title']}》"
        f"（{frozen['patent']['patent_number']}）的普通实施许可。\n"
        f"合同编号：{contract.number}\n许可期限：{contract.start_date} 至 {contract.end_date}\n"
        f"支付方式：{frozen['terms']['payment_mode_label']}\n"
        f"拟实施领域：{contract.intended_field_of_use}\n"
        f"合同详情：/contracts/{contract.id}\n"
    )
    # The contract is new, so these keys cannot be queued already: no look-up under the counter lock.
    for email in licensor_emails:
        add_email(session, to=email, subject=subject, body=body, dedupe_key=f"contract:{contract.id}:new:{email}")
    if user_email is not None:
        add_email(
            session,
            to=user_email,
            subject=f"许可已生效确认：合同 {contract.number}",
            body=(
                f"您已提交书面通知，取得专利《{frozen['patent']['title']}》的开放许可。\n"
                f"合同编号：{contract.number}；状态：{contract.status.label}。\n"
                f"书面通知与合同文本：/contracts/{contract.id}\n"
            ),
            dedupe_key=f"contract:{contract.id}:accepted:{user_email}",
        )


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def side_of(actor: Principal, contract: LicenceContract) -> str | None:
    """ "licensee", "licensor", "admin", or None for anyone else."""
    if contract.licensee_organisation_id == actor.organisation_id:
        return "licensee"
    if contract.licensor_organisation_id == actor.organisation_id:
        return "licensor"
    return "admin" if actor.is_platform_admin else None


async def get_for_party(session: AsyncSession, actor: Principal, contract_id: int) -> LicenceContract:
    """A contract the actor's organisation is party to (any contract for a platform admin)."""
    contract = await session.get(LicenceContract, contract_id)
    if contract is None or side_of(actor, contract) is None:
        raise NotFound("许可合同不存在")
    return contract


async def notice_of(session: AsyncSession, contract: LicenceContract) -> WrittenNotice:
    if contract.notice is not None:
        return contract.notice
    notice = await session.scalar(select(WrittenNotice).where(WrittenNotice.contract_id == contract.id))
    assert notice is not None, "every contract is created with its notice"
    return notice


def contract_document(contract: LicenceContract, notice: WrittenNotice) -> str:
    return documents.render_contract(contract, notice_sha256=notice.sha256, notified_at=notice.notified_at)


@dataclass(frozen=True)
class ContractFilters:
    side: str = "all"
    status: ContractStatus | None = None
    verified: bool | None = None
    offer_id: int | None = None
    patent_id: int | None = None
    text: str = ""


SIDES = ("all", "licensee", "licensor")


def parse_filters(
    side: str | None = None,
    status: str | None = None,
    verified: str | None = None,
    offer_id: int | None = None,
    patent_id: int | None = None,
    text: str | None = None,
) -> ContractFilters:
    errors: list[FieldError] = []
    if side not in (None, "", *SIDES):
        errors.append(FieldError("side", "未知的合同方"))
    parsed_status = None
    if status:
        try:
            parsed_status = ContractStatus(status)
        except ValueError:
            errors.append(FieldError("status", "未知的合同状态"))
    if verified not in (None, "", "yes", "no"):
        errors.append(FieldError("verified", "核验筛选应为 yes 或 no"))
    if errors:
        raise ValidationFailed(errors)
    return ContractFilters(
        side=side or "all",
        status=parsed_status,
        verified=None if not verified else verified == "yes",
        offer_id=offer_id,
        patent_id=patent_id,
        text=(text or "").strip()[:100],
    )


async def list_contracts(
    session: AsyncSession,
    actor: Principal,
    filters: ContractFilters = ContractFilters(),
    *,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Page[LicenceContract]:
    """Contracts the actor's organisation is party to (all contracts for a platform admin), newest first."""
    page, per_page = page_bounds(page, per_page)
    conditions = []
    mine = actor.organisation_id
    if not actor.is_platform_admin or filters.side != "all":
        if filters.side == "licensee":
            conditions.append(LicenceContract.licensee_organisation_id == mine)
        elif filters.side == "licensor":
            conditions.append(LicenceContract.licensor_organisation_id == mine)
        else:
            conditions.append(
                or_(LicenceContract.licensee_organisation_id == mine, LicenceContract.licensor_organisation_id == mine)
            )
    if filters.status is not None:
        conditions.append(LicenceContract.status == filters.status)
    if filters.offer_id is not None:
        conditions.append(LicenceContract.offer_id == filters.offer_id)
    if filters.patent_id is not None:
        conditions.append(LicenceContract.patent_id == filters.patent_id)
    if filters.verified is not None:
        verified = select(Organisation.id).where(Organisation.verification_status == VerificationStatus.VERIFIED)
        column = LicenceContract.licensee_organisation_id
        conditions.append(column.in_(verified) if filters.verified else column.not_in(verified))
    if filters.text:
        like = f"%{filters.text}%"
        licensees = select(Organisation.id).where(Organisation.name.like(like))
        patents = select(Patent.id).where(or_(Patent.title.like(like), Patent.application_number.like(like)))
        conditions.append(
            or_(
                LicenceContract.number.like(like),
                LicenceContract.licensee_organisation_id.in_(licensees),
                LicenceContract.patent_id.in_(patents),
            )
        )
    total = await session.scalar(select(func.count()).select_from(LicenceContract).where(*conditions)) or 0
    items = await session.scalars(
        select(LicenceContract)
        .where(*conditions)
        .order_by(LicenceContract.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return Page(items=list(items.unique()), number=page, per_page=per_page, total=int(total))


async def next_obligations(session: AsyncSession, contract_ids: list[int]) -> dict[int, PaymentObligation]:
    """Each live contract's next dated payment obligation on or after today."""
    if not contract_ids:
        return {}
    rows = await session.scalars(
        select(PaymentObligation)
        .where(
            PaymentObligation.contract_id.in_(contract_ids),
            PaymentObligation.due_date.is_not(None),
            PaymentObligation.due_date >= today(),
        )
        .order_by(PaymentObligation.contract_id, PaymentObligation.due_date, PaymentObligation.sequence)
    )
    result: dict[int, PaymentObligation] = {}
    for row in rows:
        result.setdefault(row.contract_id, row)
    return result


async def audit_trail(session: AsyncSession, contract_id: int) -> list[AuditLine]:
    return await trail(session, ENTITY, contract_id, ContractStatus)


# ---------------------------------------------------------------------------------------------
# Ending contracts
# ---------------------------------------------------------------------------------------------


async def _end(
    session: AsyncSession,
    contract: LicenceContract,
    *,
    actor: Principal | None,
    reason: EndReason,
    ended_on: date,
    note: str | None = None,
) -> None:
    await apply_transition(
        session,
        entity=contract,
        entity_type=ENTITY,
        to_state=ContractStatus.ENDED,
        allowed=rules.CONTRACT_TRANSITIONS,
        actor=actor,
        action=f"end:{reason.value}",
        reason=note or reason.label,
    )
    contract.live_offer_id = None
    contract.ended_on = ended_on
    contract.end_reason = reason
    contract.end_note = note
    await _notify_ended(session, contract)


async def _notify_ended(session: AsyncSession, contract: LicenceContract) -> None:
    frozen = contract.terms_snapshot
    reason = contract.end_reason.label if contract.end_reason else ""
    await _email_parties(
        session,
        contract,
        subject=f"许可合同 {contract.number} 已终止：{reason}",
        body=(
            f"专利《{frozen['patent']['title']}》（{frozen['patent']['patent_number']}）的许可合同 {contract.number}"
            f"（许可人 {frozen['licensor']['name']}，被许可人 {frozen['licensee']['name']}）"
            f"于 {contract.ended_on} 终止。\n原因：{reason}{('；' + contract.end_note) if contract.end_note else ''}\n"
            f"合同详情：/contracts/{contract.id}\n"
        ),
        event="ended",
    )


async def end_for_patents(session: AsyncSession, patent_ids: list[int], actor: Principal | None) -> int:
    """End the live contracts on patents that are no longer in force (lapsed, invalidated, expired).
    Returns how many contracts ended."""
    if not patent_ids:
        return 0
    ended = 0
    for start in range(0, len(patent_ids), 1000):
        chunk = patent_ids[start : start + 1000]
        contracts = await session.scalars(
            select(LicenceContract)
            .join(Patent, Patent.id == LicenceContract.patent_id)
            .where(
                LicenceContract.patent_id.in_(chunk),
                LicenceContract.status.in_(rules.LIVE_STATUSES),
                Patent.legal_status.in_(rules.ENDING_PATENT_STATUSES),
            )
            .execution_options(populate_existing=True)
        )
        for contract in contracts.unique().all():
            reason = rules.ENDING_PATENT_STATUSES[contract.patent.legal_status]
            await _end(session, contract, actor=actor, reason=reason, ended_on=today())
            ended += 1
    return ended


@periodic("licensing.sweep", 3600)
async def sweep(session: AsyncSession, *, on: date | None = None) -> int:
    """End live contracts whose term ran out or whose patent's term expired before ``on``."""
    day = on or today()
    contracts = await session.scalars(
        select(LicenceContract)
        .join(Patent, Patent.id == LicenceContract.patent_id)
        .where(
            LicenceContract.status.in_(rules.LIVE_STATUSES),
            or_(LicenceContract.end_date < day, Patent.expiry_date < day),
        )
        .order_by(LicenceContract.id)
        .with_for_update(skip_locked=True, of=LicenceContract)
    )
    ended = 0
    for contract in contracts.unique().all():
        expired = contract.patent.expiry_date < day
        reason = EndReason.PATENT_EXPIRED if expired else (contract.end_reason or EndReason.TERM_EXPIRED)
        last_day = min(contract.end_date, contract.patent.expiry_date)
        await _end(session, contract, actor=None, reason=reason, ended_on=last_day, note=contract.end_note)
        ended += 1
    return ended


# ---------------------------------------------------------------------------------------------
# Termination by agreement
# ---------------------------------------------------------------------------------------------


def _party_side(actor: Principal, contract: LicenceContract) -> str:
    side = side_of(actor, contract)
    if side not in ("licensee", "licensor"):
        raise Forbidden("只有合同双方可以办理解除")
    if not actor.is_org_admin:
        raise Forbidden("仅机构管理员可以办理合同解除")
    return side


def _other_party(actor: Principal, contract: LicenceContract) -> int:
    if actor.organisation_id == contract.licensee_organisation_id:
        return contract.licensor_organisation_id
    return contract.licensee_organisation_id


def _require_live(contract: LicenceContract) -> None:
    if contract.status not in rules.LIVE_STATUSES:
        raise Conflict("合同已终止", code="contract_ended")


async def request_termination(
    session: AsyncSession, *, actor: Principal, contract_id: int, values: dict[str, Any]
) -> LicenceContract:
    contract = await get_for_party(session, actor, contract_id)
    _party_side(actor, contract)
    _require_live(contract)
    if contract.termination_requested_at is not None:
        raise Conflict("已有待确认的解除申请", code="termination_pending")
    if contract.end_reason is EndReason.AGREEMENT:
        raise Conflict(f"双方已约定于 {contract.end_date} 解除合同", code="termination_agreed")
    request = rules.parse_termination(values, today=today(), contract_end_date=contract.end_date)
    contract.termination_requested_by_organisation_id = actor.organisation_id
    contract.termination_requested_at = now_utc()
    contract.termination_end_date = request.end_date
    contract.termination_reason = request.reason
    await record(
        session,
        entity_type=ENTITY,
        entity_id=contract.id,
        action="termination_requested",
        actor=actor,
        from_state=contract.status.value,
        to_state=contract.status.value,
        reason=request.reason,
        details={"end_date": request.end_date.isoformat()},
    )
    await _email_parties(
        session,
        contract,
        subject=f"合同 {contract.number} 的解除申请待您确认",
        body=(
            f"{actor.organisation_name} 申请于 {request.end_date} 协商解除许可合同 {contract.number}。\n"
            f"原因：{request.reason}\n请登录平台确认或拒绝：/contracts/{contract.id}\n"
        ),
        event=f"termination:{contract.termination_requested_at.isoformat()}",
        only_organisation_id=_other_party(actor, contract),
    )
    return contract


async def confirm_termination(session: AsyncSession, *, actor: Principal, contract_id: int) -> LicenceContract:
    contract = await get_for_party(session, actor, contract_id)
    _party_side(actor, contract)
    _require_live(contract)
    if contract.termination_requested_at is None:
        raise Conflict("没有待确认的解除申请", code="no_termination_request")
    if contract.termination_requested_by_organisation_id == actor.organisation_id:
        raise Forbidden("解除申请须由合同另一方确认")
    end_date = max(contract.termination_end_date or today(), today())
    reason = contract.termination_reason
    _clear_request(contract)
    if end_date <= today():
        await _end(session, contract, actor=actor, reason=EndReason.AGREEMENT, ended_on=end_date, note=reason)
        return contract
    # Agreed for a later day: the licence runs until then, and the worker's sweep ends it.
    contract.end_date = end_date
    contract.end_reason = EndReason.AGREEMENT
    contract.end_note = reason
    await record(
        session,
        entity_type=ENTITY,
        entity_id=contract.id,
        action="termination_agreed",
        actor=actor,
        from_state=contract.status.value,
        to_state=contract.status.value,
        reason=reason,
        details={"end_date": end_date.isoformat()},
    )
    await _email_parties(
        session,
        contract,
        subject=f"许可合同 {contract.number} 将于 {end_date} 协商解除",
        body=(
            f"双方已同意许可合同 {contract.number} 于 {end_date} 解除。原因：{reason}\n"
            f"合同详情：/contracts/{contract.id}\n"
        ),
        event=f"agreed:{end_date.isoformat()}",
    )
    return contract


def _clear_request(contract: LicenceContract) -> None:
    contract.termination_requested_by_organisation_id = None
    contract.termination_requested_at = None
    contract.termination_end_date = None
    contract.termination_reason = None


async def _email_parties(
    session: AsyncSession,
    contract: LicenceContract,
    *,
    subject: str,
    body: str,
    event: str,
    only_organisation_id: int | None = None,
) -> None:
    for organisation in (contract.licensor, contract.licensee):
        if only_organisation_id is None or organisation.id == only_organisation_id:
            await email_organisation(
                session, organisation, subject=subject, body=body, key=f"contract:{contract.id}:{event}"
            )


async def cancel_termination(session: AsyncSession, *, actor: Principal, contract_id: int) -> LicenceContract:
    """The requester withdraws the request, or the other party declines it."""
    contract = await get_for_party(session, actor, contract_id)
    side = _party_side(actor, contract)
    _require_live(contract)
    if contract.termination_requested_at is None:
        raise Conflict("没有待确认的解除申请", code="no_termination_request")
    withdrawn = contract.termination_requested_by_organisation_id == actor.organisation_id
    await record(
        session,
        entity_type=ENTITY,
        entity_id=contract.id,
        action="termination_withdrawn" if withdrawn else "termination_declined",
        actor=actor,
        from_state=contract.status.value,
        to_state=contract.status.value,
        details={"side": side},
    )
    what = "撤回" if withdrawn else "拒绝"
    await _email_parties(
        session,
        contract,
        subject=f"合同 {contract.number} 的解除申请已被{what}",
        body=f"{actor.organisation_name} {what}了许可合同 {contract.number} 的解除申请，合同继续履行。\n"
        f"合同详情：/contracts/{contract.id}\n",
        event=f"termination-{what}:{contract.termination_requested_at.isoformat()}",
        only_organisation_id=_other_party(actor, contract),
    )
    _clear_request(contract)
    return contract


@dataclass(frozen=True)
class LicensorSummaryRow:
    patent_id: int
    patent_title: str
    application_number: str
    offer_id: int
    offer_version: int
    offer_status: OfferStatus
    live: int
    total: int


async def licensor_summary(session: AsyncSession, actor: Principal) -> list[LicensorSummaryRow]:
    """The licensor's licences per patent and offer version."""
    live = func.sum(case((LicenceContract.status.in_(rules.LIVE_STATUSES), 1), else_=0))
    rows = await session.execute(
        select(
            Patent.id,
            Patent.title,
            Patent.application_number,
            OpenLicenceOffer.id,
            OpenLicenceOffer.version,
            OpenLicenceOffer.status,
            live,
            func.count(LicenceContract.id),
        )
        .select_from(LicenceContract)
        .join(Patent, Patent.id == LicenceContract.patent_id)
        .join(OpenLicenceOffer, OpenLicenceOffer.id == LicenceContract.offer_id)
        .where(LicenceContract.licensor_organisation_id == actor.organisation_id)
        .group_by(
            Patent.id,
            Patent.title,
            Patent.application_number,
            OpenLicenceOffer.id,
            OpenLicenceOffer.version,
            OpenLicenceOffer.status,
        )
        .order_by(Patent.title, OpenLicenceOffer.version)
    )
    return [LicensorSummaryRow(*row[:6], int(row[6] or 0), int(row[7])) for row in rows]


async def licence_counts(session: AsyncSession, offer_ids: list[int]) -> dict[int, int]:
    """Live licences per offer (the licensor's offer list)."""
    if not offer_ids:
        return {}
    rows = await session.execute(
        select(LicenceContract.offer_id, func.count())
        .where(LicenceContract.offer_id.in_(offer_ids), LicenceContract.status.in_(rules.LIVE_STATUSES))
        .group_by(LicenceContract.offer_id)
    )
    return {offer_id: int(count) for offer_id, count in rows}


async def move_start(session: AsyncSession, contract: LicenceContract, start: date) -> None:
    """Move a contract's start date and re-plan its payments from it. For demonstration data and tests
    only (a licence "taken months ago"): the written notice itself never takes effect retroactively."""
    term = contract.terms_snapshot["terms"]["licence_term_months"]
    expiry = date.fromisoformat(contract.terms_snapshot["patent"]["expiry_date"])
    contract.start_date = contract.signed_on = start
    contract.end_date = rules.contract_end(start, term, expiry)
    await session.execute(delete(PaymentObligation).where(PaymentObligation.contract_id == contract.id))
    terms = offer_rules.terms_from_json(contract.terms_snapshot["terms"]["fee_terms"])
    plan = rules.obligations(terms, start=start, end=contract.end_date, term_months=term)
    for number, line in enumerate(plan, start=1):
        session.add(obligation_row(contract.id, number, line))
    await session.flush()


async def email_organisation(
    session: AsyncSession, organisation: Organisation, *, subject: str, body: str, key: str
) -> None:
    """Mail an organisation's admins and contact address; ``key`` (plus the address) dedupes it."""
    await queue_emails(
        session, [Email(to, subject, body, f"{key}:{to}") for to in await party_emails(session, organisation)]
    )
