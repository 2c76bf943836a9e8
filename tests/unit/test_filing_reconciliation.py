"""Reconciliation rules: what each kind of discrepancy finds, with known answers, and how the table of
findings is kept in step (opened, cleared, reopened when it returns or its facts change)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from marketplace.accounts.models import OrganisationKind
from marketplace.errors import ValidationFailed
from marketplace.filings import rules
from marketplace.filings.models import DiscrepancyKind, DiscrepancyStatus, FilingStatus, Registry, Severity
from marketplace.filings.reconciliation import (
    FilingState,
    Stored,
    findings,
    missing_filing,
    note_error,
    parse_filters,
    party_codes,
    plan,
    refused_not_reexported,
    terms_differ,
    value_differs,
)
from marketplace.patents.models import PatentType

ON = date(2026, 9, 1)
AT = datetime(2026, 9, 1, 2, 0, tzinfo=UTC)


def party(**overrides) -> rules.Party:
    values = {
        "organisation_id": 1,
        "name": "北方理工大学",
        "kind": OrganisationKind.UNIVERSITY,
        "address": "北京市海淀区学院路1号",
        "uscc": "12110000400000624D",
        "division_code": "110108",
        "nature_code": None,
        "verified": True,
    }
    return rules.Party(**(values | overrides))


def enterprise(**overrides) -> rules.Party:
    return party(
        **{
            "organisation_id": 2,
            "name": "华东新材料有限公司",
            "kind": OrganisationKind.ENTERPRISE,
            "uscc": "91310000MA1FL0000X",
            "division_code": "310115",
            "nature_code": "150",
        }
        | overrides
    )


def facts(**overrides) -> rules.ContractFacts:
    values = {
        "contract_id": 7,
        "number": "OL2026000007",
        "signed_on": date(2026, 3, 1),
        "start_date": date(2026, 3, 1),
        "end_date": date(2029, 2, 28),
        "ended_on": None,
        "end_reason": None,
        "payment_mode": "lump_sum",
        "payment_mode_label": "一次总算、一次总付",
        "fee_description": "一次性支付 12,000.00 元",
        "territory": "中国大陆",
        "announcement_number": None,
        "patent_title": "一种锂电池正极材料",
        "application_number": "202010566088.9",
        "patent_type": PatentType.INVENTION,
        "patent_filing_date": date(2020, 6, 1),
        "patent_grant_date": date(2022, 8, 9),
        "ipc_main": "H01M4/131",
        "licensor": party(),
        "licensee": enterprise(),
        "contract_value_fen": 1_200_000,
        "registry_payment_mode": ("1", "一次总付"),
    }
    return rules.ContractFacts(**(values | overrides))


def filed(registry: Registry, recorded_from: rules.ContractFacts | None = None, **overrides) -> FilingState:
    recorded = rules.recorded_values(registry, recorded_from or facts())
    return FilingState(registry, FilingStatus.FILED, number="2026990000001", recorded=recorded, **overrides)


# ---------------------------------------------------------------------------------------------
# Each kind
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "number", "due_on", "found"),
    [
        (FilingStatus.DUE, None, date(2026, 8, 31), True),
        (FilingStatus.EXPORTED, None, date(2026, 6, 1), True),
        (FilingStatus.REFUSED, None, date(2026, 6, 1), True),
        (FilingStatus.DUE, None, ON, False),  # the deadline day itself is still in time
        (FilingStatus.DUE, None, date(2026, 12, 1), False),
        (FilingStatus.FILED, "2026990000001", date(2026, 6, 1), False),
        (FilingStatus.NOT_REQUIRED, None, date(2026, 6, 1), False),
        (FilingStatus.DUE, "2026990000001", date(2026, 6, 1), False),  # a change record: filed once already
    ],
)
def test_a_missing_filing_is_one_without_a_number_past_its_deadline(status, number, due_on, found):
    filing = FilingState(Registry.LICENCE_FILING, status, number=number, due_on=due_on)
    finding = missing_filing(filing, ON)
    assert (finding is not None) is found
    if finding:
        assert finding.severity is Severity.HIGH
        assert due_on.isoformat() in finding.detail and status.label in finding.detail


def test_the_registration_has_no_deadline_so_it_is_never_missing():
    filing = FilingState(Registry.TECH_CONTRACT, FilingStatus.DUE, due_on=date(2026, 1, 1))
    assert missing_filing(filing, ON) is None


def test_a_fee_that_differs_names_both_amounts():
    recorded_at = facts(contract_value_fen=1_000_000)
    finding = terms_differ(filed(Registry.LICENCE_FILING, recorded_at), facts())
    assert finding.kind is DiscrepancyKind.TERMS_DIFFER and finding.severity is Severity.HIGH
    assert "备案使用费 10000.00 元，合同 12000.00 元" in finding.detail
    assert "2026990000001" in finding.detail


def test_a_term_that_differs_names_both_terms():
    finding = terms_differ(filed(Registry.LICENCE_FILING, facts(end_date=date(2028, 2, 29))), facts())
    assert "备案许可期限 2026-03-01 至 2028-02-29，合同 2026-03-01 至 2029-02-28" in finding.detail
    assert "使用费" not in finding.detail


def test_terms_that_agree_or_were_never_filed_find_nothing():
    assert terms_differ(filed(Registry.LICENCE_FILING), facts()) is None
    unfiled = FilingState(Registry.LICENCE_FILING, FilingStatus.DUE)
    assert terms_differ(unfiled, facts(contract_value_fen=1)) is None


def test_a_registered_value_that_differs_or_is_passed_by_payments():
    registered = filed(Registry.TECH_CONTRACT, facts(contract_value_fen=1_000_000))
    finding = value_differs(registered, facts(), received_fen=0)
    assert finding.severity is Severity.MEDIUM
    assert "登记合同成交额 10000.00 元，合同 12000.00 元" in finding.detail
    assert "登记技术交易额 10000.00 元，合同 12000.00 元" in finding.detail

    agreed = filed(Registry.TECH_CONTRACT)
    assert value_differs(agreed, facts(), received_fen=1_200_000) is None
    royalties = value_differs(agreed, facts(), received_fen=1_500_000)
    assert "已到账 15000.00 元，超过登记技术交易额 12000.00 元" in royalties.detail
    # More money coming in changes what the finding is about.
    assert value_differs(agreed, facts(), received_fen=1_600_000).fingerprint != royalties.fingerprint


def test_a_refusal_not_yet_reexported_carries_its_reasons():
    refused = FilingState(
        Registry.LICENCE_FILING, FilingStatus.REFUSED, refused_on=date(2026, 8, 20), refusal_reasons="专利权已终止"
    )
    finding = refused_not_reexported(refused)
    assert finding.severity is Severity.HIGH
    assert "2026-08-20" in finding.detail and "专利权已终止" in finding.detail
    assert refused_not_reexported(replace(refused, status=FilingStatus.EXPORTED)) is None


def _party_codes(filing: FilingState, contract: rules.ContractFacts, *, live: bool):
    return party_codes(filing, contract.licensor, contract.licensee, live=live)


def _registration() -> FilingState:
    return FilingState(Registry.TECH_CONTRACT, FilingStatus.DUE)


def test_parties_with_fitting_codes_find_nothing():
    assert _party_codes(_registration(), facts(), live=True) is None


def test_an_enterprise_without_a_nature_code_is_a_medium_finding():
    finding = _party_codes(_registration(), facts(licensee=enterprise(nature_code=None)), live=True)
    assert finding.severity is Severity.MEDIUM
    assert "买方“华东新材料有限公司”没有单位性质代码" in finding.detail


@pytest.mark.parametrize(
    ("licensor", "licensee", "words"),
    [
        (
            party(nature_code="150"),
            enterprise(),
            "卖方“北方理工大学”的单位性质代码 150（有限责任公司）与机构类型“高等院校”不符",
        ),
        (party(), enterprise(nature_code="022"), "单位性质代码 022（高等院校）与机构类型“企业”不符"),
        (party(), enterprise(nature_code="777"), "单位性质代码 777 不在代码表中"),
        (party(division_code=None), enterprise(), "卖方“北方理工大学”没有行政区划代码"),
        (party(division_code="999999"), enterprise(), "行政区划代码 999999 不在 GB/T 2260 代码表中"),
    ],
)
def test_codes_missing_unknown_or_not_fitting_the_kind(licensor, licensee, words):
    finding = _party_codes(_registration(), facts(licensor=licensor, licensee=licensee), live=True)
    assert finding.severity is Severity.MEDIUM
    assert words in finding.detail


def test_a_uscc_registered_in_another_province_is_low_on_its_own():
    moved = enterprise(division_code="110108")  # USCC region 310000 (Shanghai), division in Beijing
    finding = _party_codes(_registration(), facts(licensee=moved), live=True)
    assert finding.severity is Severity.LOW
    assert "310000" in finding.detail and "110108" in finding.detail
    both = _party_codes(_registration(), facts(licensee=replace(moved, nature_code=None)), live=True)
    assert both.severity is Severity.MEDIUM


def test_recorded_party_codes_that_are_not_ours():
    registered = filed(Registry.TECH_CONTRACT, facts(licensee=enterprise(nature_code="170")))
    finding = _party_codes(registered, facts(), live=True)
    assert "登记的买方单位性质代码为 170，现为 150" in finding.detail
    assert _party_codes(filed(Registry.TECH_CONTRACT), facts(), live=True) is None


def test_party_codes_of_an_ended_contract_only_matter_once_registered():
    no_code = facts(licensee=enterprise(nature_code=None))
    assert _party_codes(_registration(), no_code, live=False) is None
    assert _party_codes(filed(Registry.TECH_CONTRACT, no_code), no_code, live=False) is not None
    assert _party_codes(FilingState(Registry.TECH_CONTRACT, FilingStatus.NOT_REQUIRED), no_code, live=True) is None


def test_findings_of_a_contract_cover_both_registries():
    licence = FilingState(
        Registry.LICENCE_FILING, FilingStatus.REFUSED, due_on=date(2026, 6, 1), refusal_reasons="缺页"
    )
    registration = FilingState(Registry.TECH_CONTRACT, FilingStatus.DUE)
    contract = facts(licensee=enterprise(nature_code=None))
    parties = (contract.licensor, contract.licensee)
    found = findings([licence, registration], parties, None, live=True, on=ON)
    assert {(f.registry, f.kind) for f in found} == {
        (Registry.LICENCE_FILING, DiscrepancyKind.MISSING_FILING),
        (Registry.LICENCE_FILING, DiscrepancyKind.REFUSED_NOT_REEXPORTED),
        (Registry.TECH_CONTRACT, DiscrepancyKind.PARTY_CODES),
    }


# ---------------------------------------------------------------------------------------------
# Keeping the table in step
# ---------------------------------------------------------------------------------------------

KEY = (7, Registry.LICENCE_FILING, DiscrepancyKind.TERMS_DIFFER)


def _finding(fee: int = 1_000_000):
    return terms_differ(filed(Registry.LICENCE_FILING, facts(contract_value_fen=fee)), facts())


def _stored(status: DiscrepancyStatus, finding=None) -> Stored:
    finding = finding or _finding()
    return Stored(41, status, finding.severity, finding.detail, finding.fingerprint)


def test_a_new_finding_is_inserted_and_one_that_went_away_is_cleared():
    assert plan({KEY: _finding()}, {}, AT).new == [(7, _finding())]
    for status in (DiscrepancyStatus.OPEN, DiscrepancyStatus.RESOLVED):
        [change] = plan({}, {KEY: _stored(status)}, AT).changes
        assert (change.from_status, change.to_status, change.action) == (status, DiscrepancyStatus.CLEARED, "cleared")
    assert plan({}, {KEY: _stored(DiscrepancyStatus.CLEARED)}, AT).changes == []


def test_a_cleared_finding_that_comes_back_reopens_as_newly_detected():
    [change] = plan({KEY: _finding()}, {KEY: _stored(DiscrepancyStatus.CLEARED)}, AT).changes
    assert (change.to_status, change.reason) == (DiscrepancyStatus.OPEN, "差异再次出现")
    assert change.values["detected_at"] == AT and change.values["resolution_note"] is None


def test_a_resolved_finding_reopens_only_when_its_facts_change():
    resolved = {KEY: _stored(DiscrepancyStatus.RESOLVED)}
    unchanged = plan({KEY: _finding()}, resolved, AT)
    assert unchanged.changes == [] and unchanged.rewordings == [] and unchanged.new == []
    [change] = plan({KEY: _finding(fee=900_000)}, resolved, AT).changes
    assert (change.from_status, change.to_status, change.reason) == (
        DiscrepancyStatus.RESOLVED,
        DiscrepancyStatus.OPEN,
        "差异内容已变化",
    )


def test_an_open_finding_whose_facts_moved_is_reworded_without_a_status_change():
    result = plan({KEY: _finding(fee=900_000)}, {KEY: _stored(DiscrepancyStatus.OPEN)}, AT)
    assert result.changes == []
    [(discrepancy_id, values)] = result.rewordings
    assert discrepancy_id == 41 and "9000.00 元" in values["detail"]


# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------


def test_a_note_is_required_and_bounded():
    assert note_error("  ").code == "required"
    assert note_error("x" * 2001).code == "too_long"
    assert note_error("已电话核实，登记机关系统延迟") is None


def test_filters_default_to_open_and_report_bad_values_by_field():
    assert parse_filters().status is DiscrepancyStatus.OPEN
    assert parse_filters(status="all").status is None
    chosen = parse_filters(status="resolved", severity="high", kind="party_codes", registry="tech_contract")
    assert (chosen.status, chosen.severity, chosen.kind, chosen.registry) == (
        DiscrepancyStatus.RESOLVED,
        Severity.HIGH,
        DiscrepancyKind.PARTY_CODES,
        Registry.TECH_CONTRACT,
    )
    with pytest.raises(ValidationFailed) as caught:
        parse_filters(status="closed", severity="urgent")
    assert set(caught.value.by_field()) == {"status", "severity"}
