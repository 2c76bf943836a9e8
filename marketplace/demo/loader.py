"""Demo data (演示数据): organisations, logins, 200+ patents and 50+ published open-licence offers.

Everything goes through the same services as the web pages — the inventory upload, offer drafting,
submission and the admin's approval — so demo data obeys every rule real data does. Loaded once:
a second run finds the demo platform admin and does nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from stdnum.cn import uscc as stdnum_uscc

from marketplace.accounts.models import EnterpriseSize, Organisation, OrganisationKind, Role, User, VerificationStatus
from marketplace.accounts.rules import Principal
from marketplace.accounts.services import create_organisation, create_user, ensure_platform_organisation, principal_for
from marketplace.billing import payments
from marketplace.billing import services as billing
from marketplace.clock import now_utc, today
from marketplace.db import make_engine, make_sessionmaker
from marketplace.demo.inventory import patent_row, to_csv
from marketplace.evaluations import services as evaluations
from marketplace.evaluations import tiers
from marketplace.evaluations.models import CooperationWillingness
from marketplace.evaluations.tiering import TieringRules
from marketplace.filings import exports
from marketplace.filings import services as filings
from marketplace.licensing import services as licensing
from marketplace.licensing.models import LicenceContract
from marketplace.matching import services as matching
from marketplace.matching.rules import ProfileInput
from marketplace.offers import services as offers
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.offers.rules import add_months
from marketplace.patents.models import LegalStatus, Patent, PatentType, UploadMode
from marketplace.patents.services import import_inventory
from marketplace.settings import Settings

ADMIN_EMAIL = "admin@demo.cn"
PASSWORD = "demo-pass-2026"


@dataclass(frozen=True)
class DemoOrg:
    name: str
    kind: OrganisationKind
    division_code: str
    address: str
    slug: str
    patents: int
    enterprise_size: EnterpriseSize | None = None
    industry_code: str | None = None
    verification_status: VerificationStatus = VerificationStatus.VERIFIED


LICENSORS = (
    DemoOrg("东海理工大学", OrganisationKind.UNIVERSITY, "310104", "上海市徐汇区梅陇路130号", "donghai", 70),
    DemoOrg("西岭农林大学", OrganisationKind.UNIVERSITY, "510107", "四川省成都市武侯区人民南路四段9号", "xiling", 55),
    DemoOrg("北辰医科大学", OrganisationKind.UNIVERSITY, "110108", "北京市海淀区学院路38号", "beichen", 55),
    DemoOrg("南岭先进材料研究院", OrganisationKind.INSTITUTE, "440305", "广东省深圳市南山区西丽大学城", "nanling", 45),
)
LICENSEE = DemoOrg(
    "苏州启明新能源科技有限公司", OrganisationKind.ENTERPRISE, "320505", "江苏省苏州市高新区科技城", "qiming", 0,
    enterprise_size=EnterpriseSize.SMALL, industry_code="C",
)
#: Registered but not yet verified: its admin sees the verification notice, platform admins find it queued.
PENDING_ENTERPRISE = DemoOrg(
    "杭州云栖智造科技有限公司", OrganisationKind.ENTERPRISE, "330106", "浙江省杭州市西湖区云栖小镇8号", "yunqi", 0,
    enterprise_size=EnterpriseSize.MICRO, industry_code="I", verification_status=VerificationStatus.PENDING,
)


def _uscc(prefix: str, division: str, serial: int) -> str:
    body = f"{prefix}{division}{serial:09d}"
    return body + stdnum_uscc.calc_check_digit(body)


def _fee_terms(index: int, rng: random.Random) -> tuple[dict, int]:
    """Terms cycling through every payment mode of §5, pay-after-use variants included."""
    royalty = {"base": "sales", "rate": rng.choice(("0.02", "0.03", "0.035", "0.05")), "rate_schedule": "fixed",
               "reporting_period": "quarterly"}
    catalogue: list[tuple[dict, int]] = [
        ({"mode": "free"}, 36),
        ({"mode": "lump_sum", "amount_fen": rng.randrange(20, 300) * 100_000, "due_days": 30}, 36),
        ({"mode": "instalments", "total_fen": rng.randrange(30, 600) * 100_000, "count": 3, "interval_months": 6,
          "first_due_days": 30}, 48),
        ({"mode": "instalments", "total_fen": rng.randrange(30, 600) * 100_000, "count": 4,
          "month_offsets": [0, 6, 12, 24]}, 36),
        ({"mode": "royalty", **royalty, "annual_minimum_fen": 2_000_000}, 60),
        ({"mode": "royalty", "base": "profit", "rate": "0.10", "rate_schedule": "fixed", "reporting_period": "annual"},
         60),
        ({"mode": "royalty", "base": "units", "unit_amount_fen": rng.choice((50, 100, 200)), "rate_schedule": "fixed",
          "reporting_period": "quarterly", "cap_fen": 50_000_000}, 60),
        ({"mode": "royalty", "base": "sales", "rate_schedule": "rising", "yearly_rates": ["0.01", "0.02", "0.03"],
          "reporting_period": "semiannual"}, 60),
        ({"mode": "royalty", "base": "added_output", "rate_schedule": "falling",
          "yearly_rates": ["0.05", "0.04", "0.03"], "reporting_period": "annual"}, 60),
        ({"mode": "entry_fee_royalty", "entry_fee_fen": rng.randrange(5, 50) * 100_000, "entry_due_days": 30,
          "royalty": royalty}, 60),
        ({"mode": "pay_after_use", "deferral": "months", "deferral_months": 12,
          "then": {"mode": "lump_sum", "amount_fen": rng.randrange(20, 200) * 100_000, "due_days": 30}}, 48),
        ({"mode": "pay_after_use", "deferral": "first_revenue", "then": {"mode": "royalty", **royalty}}, 60),
        ({"mode": "pay_after_use", "deferral": "months", "deferral_months": 18,
          "then": {"mode": "instalments", "total_fen": rng.randrange(30, 300) * 100_000, "count": 3,
                   "interval_months": 6, "first_due_days": 30}}, 60),
    ]
    return catalogue[index % len(catalogue)]


def _inventory(rng: random.Random, org_index: int, count: int, now: date) -> list[dict[str, str]]:
    rows = []
    for i in range(count):
        serial = 100_000 * (org_index + 1) + i
        roll = rng.random()
        if roll < 0.70:
            type_digit, status, year = "1", "有效", rng.randrange(2014, 2022)
        elif roll < 0.80:
            type_digit, status, year = rng.choice("23"), "有效", rng.randrange(2019, 2023)
        elif roll < 0.87:
            type_digit, status, year = "1", "审中", rng.randrange(2023, 2025)
        elif roll < 0.93:
            type_digit, status, year = rng.choice("12"), "失效", rng.randrange(2012, 2020)
        elif roll < 0.97:
            type_digit, status, year = "1", "无效", rng.randrange(2012, 2020)
        else:
            type_digit, status, year = "2", "届满", rng.randrange(2008, 2014)
        filing = date(year, rng.randrange(1, 13), rng.randrange(1, 29))
        rows.append(patent_row(rng, serial=serial, filing=filing, type_digit=type_digit, status=status, today=now))
    # A few patents the open-licence check must refuse, so licensors see why.
    rows[1].update({"pledged": "是", "pledgee_consent": "否"})
    rows[2].update({"co_owners": "某某科技有限公司", "co_owner_consent": "否"})
    rows[3].update({"exclusive_or_sole_licence": "独占"})
    return rows


async def _already_loaded(session) -> bool:
    return await session.scalar(select(User.id).where(User.email == ADMIN_EMAIL)) is not None


async def _org_with_users(session, org: DemoOrg, serial: int) -> tuple[Organisation, Principal, list[str]]:
    organisation = await create_organisation(
        session,
        name=org.name,
        kind=org.kind,
        uscc=_uscc("91" if org.kind is OrganisationKind.ENTERPRISE else "12", org.division_code, serial),
        division_code=org.division_code,
        address=org.address,
        contact_name="联络人",
        contact_email=f"contact@{org.slug}.demo.cn",
        contact_phone="021-55550000",
        enterprise_size=org.enterprise_size,
        industry_code=org.industry_code,
        verification_status=org.verification_status,
    )
    admin = await create_user(
        session, organisation=organisation, email=f"admin@{org.slug}.demo.cn", display_name=f"{org.name[:4]}管理员",
        password=PASSWORD, role=Role.ORG_ADMIN,
    )
    await create_user(
        session, organisation=organisation, email=f"staff@{org.slug}.demo.cn", display_name=f"{org.name[:4]}专员",
        password=PASSWORD, role=Role.ORG_MEMBER,
    )
    logins = [f"admin@{org.slug}.demo.cn（机构管理员）", f"staff@{org.slug}.demo.cn（机构成员）"]
    return organisation, principal_for(admin), logins


async def _eligible_patents(session, organisation_id: int, now: date) -> list[Patent]:
    patents = await session.scalars(
        select(Patent)
        .where(
            Patent.owner_organisation_id == organisation_id,
            Patent.legal_status == LegalStatus.GRANTED,
            Patent.patent_type == PatentType.INVENTION,
            Patent.pledged.is_(False),
            Patent.exclusive_licence.is_(False),
            Patent.co_owners == [],
            Patent.annual_fee_paid_until >= now,
            Patent.expiry_date >= now + timedelta(days=6 * 366),
        )
        .order_by(Patent.id)
    )
    return list(patents)


async def _take_licences(session, licensees: list[Principal], rng: random.Random) -> None:
    """The verified enterprise takes one published offer of each payment mode; the pending one takes
    one too, so its contract shows as held back from filing."""
    published = list(
        await session.scalars(
            select(OpenLicenceOffer)
            .where(OpenLicenceOffer.status == OfferStatus.PUBLISHED)
            .order_by(OpenLicenceOffer.id)
        )
    )
    taken: dict[PaymentMode, OpenLicenceOffer] = {}
    for offer in published:
        taken.setdefault(offer.payment_mode, offer)
    choices = [(licensees[0], offer) for offer in taken.values()] + [(licensees[1], published[-1])]
    for number, (principal, offer) in enumerate(choices, start=1):
        await licensing.accept(
            session, actor=principal, offer_id=offer.id,
            values={
                "intended_field_of_use": rng.choice(("用于本公司储能产品生产线", "用于新一代产品的研发与量产")),
                "signatory_name": "陈立", "signatory_title": "总经理", "idempotency_key": f"demo-licence-{number:04d}",
            },
        )


async def _billing(session, licensee: Principal, settings: Settings) -> None:
    """Money in motion: the royalty licence was taken four months ago and its first quarter is
    reported (and invoiced); the lump sum is invoiced and a bank transfer for it awaits the
    university's confirmation; every other fixed fee due soon is invoiced."""
    contracts = {
        c.payment_mode: c
        for c in await session.scalars(
            select(LicenceContract).where(LicenceContract.licensee_organisation_id == licensee.organisation_id)
        )
    }
    royalty = contracts[PaymentMode.ROYALTY.value]
    await licensing.move_start(session, royalty, add_months(today(), -4))
    for contract in contracts.values():
        await billing.bill_contract(session, contract, settings)
    report = billing.ReportInput(
        obligation_key="royalty:1:1", client_report_id="demo-report-q1", nil_report=False,
        base_amount=234_567_800, breakdown=[{"label": "储能模组", "amount": 234_567_800}], note=None,
    )  # fmt: skip
    await billing.submit_report(session, licensee, royalty.id, report, settings)
    [invoice] = await billing.list_invoices(session, licensee, contract_id=contracts[PaymentMode.LUMP_SUM.value].id)
    transfer = payments.TransferInput(
        amount_fen=invoice.total_fen, payer_name=LICENSEE.name, payer_account="6222020200112233",
        remitted_on=today(), reference="HX" + today().strftime("%Y%m%d") + "0001", idempotency_key="demo-transfer-1",
    )  # fmt: skip
    await payments.declare_transfer(session, licensee, invoice.id, transfer)


async def _filings(session, admin: Principal, settings: Settings) -> None:
    """The registries: every contract's filings are opened (the free licence, taken four months ago, is
    past its licence filing deadline), and a licence filing export of the contracts in force waits for
    the worker to render it."""
    free = await session.scalar(
        select(LicenceContract).where(LicenceContract.payment_mode == PaymentMode.FREE.value).limit(1)
    )
    await licensing.move_start(session, free, add_months(today(), -4))
    free.activated_at = now_utc() - timedelta(days=122)
    await filings.refresh(session, settings)
    await exports.create_batch(session, admin, registry="licence_filing", file_format="xlsx")


EXPERT_EMAIL = "expert@demo.cn"
IMPROVEMENT_NEEDS = (
    "希望提供中试放大工艺参数和关键设备选型建议。",
    "需要进一步降低原材料成本，以满足量产要求。",
    None,
    "关注产品在高温高湿环境下的长期可靠性数据。",
)


async def _evaluations(session, evaluators: list[Principal], rng: random.Random, rules: TieringRules) -> int:
    """Market evaluations (市场评价) of the first published patents by the demo enterprise and expert."""
    published = (
        await session.scalars(
            select(OpenLicenceOffer.patent_id)
            .where(OpenLicenceOffer.status == OfferStatus.PUBLISHED)
            .order_by(OpenLicenceOffer.id)
            .limit(10)
        )
    ).all()
    count = 0
    for position, patent_id in enumerate(published):
        for evaluator in evaluators[: 1 + position % len(evaluators)]:
            await evaluations.save(
                session,
                evaluator,
                patent_id,
                {
                    "prospects": str(rng.randint(2, 5)),
                    "improvement_needs": rng.choice(IMPROVEMENT_NEEDS),
                    "cooperation": rng.choice(list(CooperationWillingness)).value,
                    "interested_now": rng.random() < 0.5,
                },
                rules=rules,
            )
            count += 1
    return count


async def _tiers(session, rules: TieringRules) -> None:
    """Tier every catalogue patent now, rather than at the worker's first daily run."""
    after = 0
    while ids := await tiers.catalogue_chunk(session, after):
        await tiers.retier(session, ids, rules, trigger="demo")
        after = ids[-1]


async def _profile(session, enterprise: Principal) -> None:
    """The new-energy enterprise's interest profile (兴趣画像), so that 为我推荐 has something to say."""
    await matching.update_profile(
        session,
        enterprise,
        ProfileInput(
            industries=["C384", "C38"], keywords=["锂电池", "储能", "石墨烯"], ipc_codes=["H01M"],
            provinces=["32", "31"], max_upfront_fen=5_000_000, prefers_pay_after_use=True,
        ),
    )


async def load_demo(settings: Settings, *, seed: int) -> str | None:
    """Load the demo once. Returns the printable logins, or None if the demo was already there."""
    rng = random.Random(seed)
    now = today()
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            if await _already_loaded(session):
                return None
            platform = await ensure_platform_organisation(session)
            admin_user = await create_user(
                session, organisation=platform, email=ADMIN_EMAIL, display_name="平台管理员", password=PASSWORD,
                role=Role.PLATFORM_ADMIN,
            )
            admin = principal_for(admin_user)
            logins = [f"{ADMIN_EMAIL}（平台管理员）"]
            offer_index = 0
            announcement = 1
            for org_index, org in enumerate(LICENSORS):
                organisation, licensor, org_logins = await _org_with_users(session, org, 1000 + org_index)
                logins += [f"{line} · {org.name}" for line in org_logins]
                rows = _inventory(rng, org_index, org.patents, now)
                await import_inventory(
                    session, licensor, filename=f"{org.slug}-盘点表.csv", content=to_csv(rows),
                    mode=UploadMode.ALL_OR_NOTHING, settings=settings,
                )
                for position, patent in enumerate((await _eligible_patents(session, organisation.id, now))[:18]):
                    terms, months = _fee_terms(offer_index, rng)
                    offer_index += 1
                    draft = await offers.create_draft(
                        session, actor=licensor, settings=settings, patent_id=patent.id,
                        data=offers.OfferInput(
                            fee_terms=terms, licence_term_months=months,
                            field_of_use=rng.choice((None, "限于民用领域", "限于新能源汽车领域")),
                            other_terms="被许可人应在实施前书面通知许可人；许可人提供必要的技术咨询。",
                        ),
                    )
                    if position == 15:
                        continue  # stays a draft
                    await offers.submit(session, actor=licensor, settings=settings, offer_id=draft.id)
                    if position == 16:
                        continue  # waits in the admin's review queue
                    await offers.approve(
                        session, actor=admin, settings=settings, offer_id=draft.id,
                        announcement_number=f"开放许可公告{now.year}第{announcement:05d}号",
                        announcement_date=now - timedelta(days=rng.randrange(1, 200)),
                    )
                    announcement += 1
                    if position == 17:
                        await offers.withdraw(
                            session, actor=licensor, offer_id=draft.id, reason="专利权人调整许可策略，撤回本声明。"
                        )
            licensees = []
            for serial, enterprise in enumerate((LICENSEE, PENDING_ENTERPRISE), start=9000):
                _, principal, enterprise_logins = await _org_with_users(session, enterprise, serial)
                licensees.append(principal)
                status = "" if enterprise.verification_status is VerificationStatus.VERIFIED else "（待核验）"
                logins += [f"{line} · {enterprise.name}{status}" for line in enterprise_logins]
            expert = await create_user(
                session, organisation=platform, email=EXPERT_EMAIL, display_name="王评审", password=PASSWORD,
                role=Role.EXPERT,
            )
            logins.append(f"{EXPERT_EMAIL}（评审专家）")
            rules = tiers.rules_for(settings)
            await _evaluations(session, [licensees[0], principal_for(expert)], rng, rules)
            await _take_licences(session, licensees, rng)
            await _billing(session, licensees[0], settings)
            await _filings(session, admin, settings)
            await _tiers(session, rules)
            await _profile(session, licensees[0])
            await session.commit()
            is_published = OpenLicenceOffer.status == OfferStatus.PUBLISHED
            published = await session.scalar(select(func.count()).select_from(OpenLicenceOffer).where(is_published))
    finally:
        await engine.dispose()
    text = "\n".join(
        ["演示账号（密码均为 " + PASSWORD + "）：", *[f"  {line}" for line in logins],
         f"已导入 {sum(o.patents for o in LICENSORS)} 件专利、{published} 项已公告的开放许可声明，"
         f"演示企业已取得 {len(PaymentMode) + 1} 份许可。"]
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "demo-logins.txt").write_text(text + "\n")
    return text
