"""The demo data a new user sees after `make run`."""

from sqlalchemy import func, select

from marketplace.accounts.models import Organisation, OrganisationKind
from marketplace.accounts.rules import uscc_error
from marketplace.catalogue.models import CatalogueEntry
from marketplace.demo.loader import load_demo
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.patents.models import LegalStatus, Patent, PatentType
from marketplace.patents.rules import parse_application_number


async def test_demo_loads_once_with_everything_the_issue_promises(settings, db, engine):
    logins = await load_demo(settings, seed=1)
    assert logins is not None and "admin@demo.cn" in logins
    assert (settings.data_dir / "demo-logins.txt").read_text().strip() == logins

    organisations = (await db.scalars(select(Organisation))).all()
    kinds = [o.kind for o in organisations]
    assert kinds.count(OrganisationKind.UNIVERSITY) >= 3 and kinds.count(OrganisationKind.INSTITUTE) >= 1
    assert all(uscc_error(o.uscc) is None for o in organisations if o.uscc)

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

    assert await load_demo(settings, seed=1) is None
    assert await db.scalar(select(func.count()).select_from(Patent)) == len(patents)
