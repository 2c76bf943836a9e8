"""The demo data a new user sees after `make run`."""

from sqlalchemy import func, select

from marketplace.accounts.models import Organisation, OrganisationKind, VerificationStatus
from marketplace.accounts.rules import division_name, uscc_error
from marketplace.billing.models import InvoiceLine, Payment, PaymentStatus, RoyaltyReport
from marketplace.catalogue.models import CatalogueEntry
from marketplace.demo.loader import load_demo
from marketplace.licensing.models import ContractStatus, LicenceContract
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.patents.models import LegalStatus, Patent, PatentType
from marketplace.patents.rules import parse_application_number


async def test_demo_loads_once_with_everything_the_issue_promises(settings, db, engine, sessionmaker):
    logins = await load_demo(settings, seed=1)
    assert logins is not None and "admin@demo.cn" in logins
    assert (settings.data_dir / "demo-logins.txt").read_text().strip() == logins

    organisations = (await db.scalars(select(Organisation))).all()
    kinds = [o.kind for o in organisations]
    assert kinds.count(OrganisationKind.UNIVERSITY) >= 3 and kinds.count(OrganisationKind.INSTITUTE) >= 1
    assert all(uscc_error(o.uscc) is None for o in organisations if o.uscc)
    enterprises = [o for o in organisations if o.kind is OrganisationKind.ENTERPRISE]
    assert all(division_name(o.division_code) and o.enterprise_size and o.industry_code for o in enterprises)
    pending = [o for o in enterprises if o.verification_status is VerificationStatus.PENDING]
    assert len(pending) == 1 and f"admin@yunqi.demo.cn（机构管理员） · {pending[0].name}（待核验）" in logins

    patents = (await db.scalars(select(Patent))).all()
    assert len(patents) >= 200
    assert all(parse_application_number(p.application_number).canonical == p.application_number for p in patents)
    assert {p.patent_type for p in patents} == set(PatentType)
    assert {p.legal_status for p in patents} == set(LegalStatus)
    assert all(p.ipc_main and p.abstract for p in patents)

    published = (
        await db.scalars(select(OpenLicenceOffer).where(OpenLicenceOffer.status == OfferStatus.PUBLISHED))
    ).all()
    assert len(published) >= 50
    assert {o.payment_mode for o in published} == set(PaymentMode)
    deferrals = {o.fee_terms["deferral"] for o in published if o.payment_mode is PaymentMode.PAY_AFTER_USE}
    assert deferrals == {"months", "first_revenue"}
    catalogue = await db.scalar(select(func.count()).select_from(CatalogueEntry))
    assert catalogue == len(published)

    contracts = (await db.scalars(select(LicenceContract))).all()
    assert {c.payment_mode for c in contracts} == {mode.value for mode in PaymentMode}
    held = [c for c in contracts if c.licensee.verification_status is not VerificationStatus.VERIFIED]
    assert len(held) == 1 and held[0].licensee_organisation_id == pending[0].id
    statuses = {c.payment_mode: c.status for c in contracts if c not in held}
    assert statuses["free"] is statuses["pay_after_use"] is ContractStatus.ACTIVE
    assert statuses["lump_sum"] is ContractStatus.AWAITING_PAYMENT

    # Money in motion: a reported royalty quarter invoiced, and a transfer awaiting confirmation.
    by_mode = {c.payment_mode: c for c in contracts if c not in held}
    [report] = (await db.scalars(select(RoyaltyReport))).all()
    assert report.contract_id == by_mode["royalty"].id and report.royalty_fen > 0
    lines = (await db.scalars(select(InvoiceLine).where(InvoiceLine.royalty_report_id == report.id))).all()
    assert [line.amount_fen for line in lines] == [report.royalty_fen]
    [transfer] = (await db.scalars(select(Payment))).all()
    assert transfer.status is PaymentStatus.DECLARED and transfer.contract_id == by_mode["lump_sum"].id

    # The registries: the free licence is past its filing deadline, and an export of the contracts in
    # force awaits the worker.
    from marketplace.filings.models import BatchStatus, ContractFiling, Discrepancy, DiscrepancyKind, FilingBatch
    from marketplace.outbox.services import drain_once

    assert await db.scalar(select(func.count()).select_from(ContractFiling)) == 2 * len(contracts)
    overdue = await db.scalar(select(Discrepancy).where(Discrepancy.kind == DiscrepancyKind.MISSING_FILING))
    assert overdue.contract_id == by_mode["free"].id
    while await drain_once(sessionmaker, settings):
        pass
    [batch] = (await db.scalars(select(FilingBatch).execution_options(populate_existing=True))).all()
    in_force = [c for c in contracts if c.status is ContractStatus.ACTIVE and c not in held]
    assert batch.status is BatchStatus.READY and batch.contract_count == len(in_force) >= 2

    # Market evaluations: the demo enterprise and an expert (whose login is printed) rated catalogue
    # patents, so the catalogue shows scores.
    from marketplace.accounts.models import Role, User
    from marketplace.evaluations.models import PatentEvaluation

    assert "expert@demo.cn（评审专家）" in logins
    expert = await db.scalar(select(User).where(User.email == "expert@demo.cn"))
    assert expert.role is Role.EXPERT
    evaluations = (await db.scalars(select(PatentEvaluation))).all()
    assert len(evaluations) >= 10 and {e.evaluator_user_id for e in evaluations} >= {expert.id}
    published_patents = {o.patent_id for o in published}
    assert {e.patent_id for e in evaluations} <= published_patents
    assert all(1 <= e.prospects <= 5 for e in evaluations)

    # Matching: the new-energy enterprise has an interest profile, and its recommendations are battery
    # patents, each saying why.
    from marketplace.matching import services as matching

    enterprise = await db.scalar(select(Organisation).where(Organisation.name == "苏州启明新能源科技有限公司"))
    profile = await matching.profile_for(db, enterprise.id)
    assert profile.industries == ["C384", "C38"] and "锂电池" in profile.keywords
    recommended = await matching.rank(db, matching.as_rules(profile), enterprise.id, limit=10)
    assert len(recommended) == 10
    assert all(item.match.relevant for item in recommended)
    assert any(reason.text == "IPC H01M ↔ 电池制造" for reason in recommended[0].match.reasons)

    assert await load_demo(settings, seed=1) is None
    assert await db.scalar(select(func.count()).select_from(Patent)) == len(patents)
