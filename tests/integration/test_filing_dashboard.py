"""The platform admin's filings dashboard: counts per registry and status leading to the contracts in
that state, the deadline flags (overdue first), open discrepancies by severity, the links to the other
filings pages; the filing standing on a contract's page; and who may see them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest

from marketplace.accounts.models import Organisation, OrganisationKind, Role
from marketplace.clock import today
from marketplace.filings.models import BatchStatus, ExportFormat, FilingBatch, FilingStatus, Registry
from tests.billing_factories import Licence, licence
from tests.factories import Account, login, make_account
from tests.filing_factories import filing_of, recorded_as_filed, refreshed


@dataclass
class Desk:
    overdue: Licence
    approaching: Licence
    later: Licence
    filed: Licence
    admin: Account


async def _licence(db, *, nature: str | None = "150") -> Licence:
    item = await licence(db, fee_terms={"mode": "free"})
    organisation = await db.get(Organisation, item.licensee.organisation.id)
    organisation.nature_code = nature
    await db.commit()
    return item


async def _due_in(db, item: Licence, days: int) -> None:
    filing = await filing_of(db, item.contract.id)
    filing.due_on = today() + timedelta(days=days)
    await db.commit()


@pytest.fixture
async def desk(db, settings) -> Desk:
    """Four licences in force: one 5 days past its filing deadline, one 10 days before it (its licensee
    lacking a party nature code), one 60 days before it, and one filed (its deadline long past)."""
    overdue, approaching, later, filed = (
        await _licence(db),
        await _licence(db, nature=None),
        await _licence(db),
        await _licence(db),
    )
    await refreshed(db, settings)
    await _due_in(db, overdue, -5)
    await _due_in(db, approaching, 10)
    await _due_in(db, later, 60)
    await _due_in(db, filed, -40)
    await recorded_as_filed(db, filed.contract.id, "2026990000201")
    await refreshed(db, settings)
    admin = await make_account(db, kind=OrganisationKind.PLATFORM, role=Role.PLATFORM_ADMIN)
    return Desk(overdue, approaching, later, filed, admin)


def _cell(html: str, cell_id: str) -> str:
    match = re.search(rf'id="{cell_id}">(.*?)</', html, re.S)
    assert match, cell_id
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def _section(html: str, section_id: str) -> str:
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</section>", start)]


async def test_counts_per_registry_and_status_lead_to_the_contracts_in_that_state(client, db, desk):
    await login(client, desk.admin)
    page = await client.get("/admin/filings")
    assert page.status_code == 200
    for registry in Registry:
        assert _cell(page.text, f"count-{registry.value}-due") == "3"
        assert _cell(page.text, f"count-{registry.value}-filed") == "1"
        assert _cell(page.text, f"count-{registry.value}-refused") == "0"
    assert 'href="/admin/filings/contracts?registry=licence_filing&status=due"' in page.text

    due = await client.get("/admin/filings/contracts?registry=licence_filing&status=due")
    assert due.status_code == 200 and "共 3 条" in due.text
    for item in (desk.overdue, desk.approaching, desk.later):
        assert f'<a href="/contracts/{item.contract.id}">{item.contract.number}</a>' in due.text
    assert desk.filed.contract.number not in due.text
    # The nearest deadline first.
    assert due.text.index(desk.overdue.contract.number) < due.text.index(desk.approaching.contract.number)
    assert (today() - timedelta(days=5)).isoformat() in due.text

    filed = await client.get("/admin/filings/contracts?registry=tech_contract&status=filed")
    assert desk.filed.contract.number in filed.text and "2026990000201" in filed.text
    assert desk.overdue.contract.number not in filed.text


async def test_the_list_names_the_batch_a_contract_was_exported_in(client, db, desk):
    batch = FilingBatch(
        number="FE2026000077", registry=Registry.LICENCE_FILING, file_format=ExportFormat.CSV,
        status=BatchStatus.READY, selection={}, contract_count=1,
    )  # fmt: skip
    db.add(batch)
    await db.flush()
    filing = await filing_of(db, desk.later.contract.id)
    filing.status, filing.batch_id = FilingStatus.EXPORTED, batch.id
    await db.commit()
    await login(client, desk.admin)
    listed = await client.get("/admin/filings/contracts?status=exported")
    assert desk.later.contract.number in listed.text and "FE2026000077" in listed.text
    assert "共 1 条" in listed.text


async def test_deadline_flags_show_the_overdue_first_and_leave_out_the_filed_and_the_distant(client, db, desk):
    await login(client, desk.admin)
    page = (await client.get("/admin/filings")).text
    assert _cell(page, "overdue-count") == "1" and _cell(page, "approaching-count") == "1"
    flags = _section(page, "deadlines")
    rows = re.findall(r'<tr class="(overdue|approaching)">(.*?)</tr>', flags, re.S)
    assert [kind for kind, _ in rows] == ["overdue", "approaching"]
    overdue, approaching = rows[0][1], rows[1][1]
    assert desk.overdue.contract.number in overdue and "已逾期 5 天" in overdue and "badge rejected" in overdue
    assert desk.overdue.licensor.organisation.name in overdue and desk.overdue.licensee.organisation.name in overdue
    assert (today() - timedelta(days=5)).isoformat() in overdue and "待导出" in overdue
    assert desk.approaching.contract.number in approaching and "剩余 10 天" in approaching
    assert "badge warn" in approaching
    assert desk.later.contract.number not in flags and desk.filed.contract.number not in flags

    listed = await client.get("/admin/filings/contracts?registry=licence_filing&deadline=overdue")
    assert desk.overdue.contract.number in listed.text and desk.approaching.contract.number not in listed.text


async def test_open_discrepancies_by_severity_link_to_the_list(client, db, desk):
    await login(client, desk.admin)
    page = (await client.get("/admin/filings")).text
    # The overdue filing (high); the licensee without a party nature code (medium).
    assert (_cell(page, "open-high"), _cell(page, "open-medium"), _cell(page, "open-low")) == ("1", "1", "0")
    assert 'href="/admin/filings/discrepancies?status=open&severity=high"' in page
    high = await client.get("/admin/filings/discrepancies?status=open&severity=high")
    assert desk.overdue.contract.number in high.text.split('<table id="discrepancies"')[1]


async def test_the_dashboard_links_the_other_filings_pages_and_shows_the_quarterly_summary(client, db, desk):
    await login(client, desk.admin)
    page = (await client.get("/admin/filings")).text
    for link in ("/admin/filings/exports", "/admin/filings/results", "/admin/filings/statistics",
                 "/admin/filings/discrepancies"):  # fmt: skip
        assert f'href="{link}"' in page
    assert 'id="statistics-summary"' in page and "季度统计" in page
    assert '<a href="/admin/filings">备案登记</a>' in page  # the admin's navigation


async def test_a_bad_filter_is_a_field_error(client, db, desk):
    await login(client, desk.admin)
    bad = await client.get("/admin/filings/contracts?registry=patent_office&status=lost&deadline=soon")
    assert bad.status_code == 422
    for message in ("登记类别取值无效", "报送状态取值无效", "期限筛选取值无效"):
        assert message in bad.text


async def test_the_contract_page_shows_its_filing_standing_to_the_parties_and_findings_to_admins(client, db, desk):
    url = f"/contracts/{desk.overdue.contract.id}"
    await login(client, desk.overdue.licensor)
    party = await client.get(url)
    standing = _section(party.text, "filings")
    assert "专利实施许可合同备案" in standing and "技术合同认定登记" in standing and "待导出" in standing
    assert (today() - timedelta(days=5)).isoformat() in standing
    assert "逾期未备案" not in standing  # findings are the platform's business

    client.cookies.clear()
    await login(client, desk.admin)
    admin = _section((await client.get(url)).text, "filings")
    assert "逾期未备案" in admin and 'href="/admin/filings/discrepancies?kind=missing_filing' in admin


ROLES = ("anonymous", "enterprise", "university", "platform_admin")


@pytest.mark.parametrize("role", ROLES)
async def test_the_dashboard_and_the_list_are_for_platform_admins_only(client, db, desk, role):
    accounts = {
        "enterprise": desk.overdue.licensee,
        "university": desk.overdue.licensor,
        "platform_admin": desk.admin,
    }
    if role != "anonymous":
        await login(client, accounts[role])
    for url in ("/admin/filings", "/admin/filings/contracts?status=due"):
        response = await client.get(url)
        if role == "anonymous":
            assert response.status_code in (302, 303) and "/login" in response.headers["location"], url
        elif role == "platform_admin":
            assert response.status_code == 200, url
        else:
            assert response.status_code == 403, url
            assert desk.overdue.contract.number not in response.text
    if role in ("enterprise", "university"):
        assert 'href="/admin/filings"' not in (await client.get("/")).text
