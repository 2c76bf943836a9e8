"""Filing rules: the state machine, the deadline, the contract value of every payment mode, the code
tables, what each registry holds on record and how a change is found."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.accounts.models import OrganisationKind
from marketplace.filings import codes, rules
from marketplace.filings.models import FilingStatus, RecordKind, Registry
from marketplace.licensing.models import EndReason
from marketplace.offers.rules import terms_from_json
from marketplace.patents.models import PatentType

START = date(2026, 3, 1)


def value(raw: dict, *, months: int = 36, end: date | None = None, first_revenue_on: date | None = None) -> int:
    end = end or date(2029, 2, 28)
    return rules.contract_value_fen(
        terms_from_json(raw), start=START, end=end, term_months=months, first_revenue_on=first_revenue_on
    )


ROYALTY_PART = {"base": "sales", "rate": "0.035", "reporting_period": "quarterly"}
ROYALTY = {"mode": "royalty"} | ROYALTY_PART


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"mode": "free"}, 0),
        ({"mode": "lump_sum", "amount_fen": 5_000_000, "due_days": 30}, 5_000_000),
        (
            {"mode": "instalments", "total_fen": 10_000_000, "count": 3, "interval_months": 6, "first_due_days": 30},
            10_000_000,
        ),
        (ROYALTY, 0),
        (ROYALTY | {"annual_minimum_fen": 1_000_000}, 3_000_000),
        (ROYALTY | {"annual_minimum_fen": 1_000_000, "cap_fen": 2_500_000}, 2_500_000),
        (
            {"mode": "entry_fee_royalty", "entry_fee_fen": 800_000, "entry_due_days": 30, "royalty": ROYALTY_PART},
            800_000,
        ),
        (
            {
                "mode": "pay_after_use",
                "deferral": "months",
                "deferral_months": 12,
                "then": {"mode": "lump_sum", "amount_fen": 2_000_000, "due_days": 30},
            },
            2_000_000,
        ),
        # Minimums of the two contract years that remain after a year's deferral.
        (
            {
                "mode": "pay_after_use",
                "deferral": "months",
                "deferral_months": 12,
                "then": ROYALTY | {"annual_minimum_fen": 1_000_000},
            },
            2_000_000,
        ),
    ],
)
def test_the_contract_value_is_what_the_terms_fix_at_signing(raw, expected):
    assert value(raw) == expected


def test_a_year_cut_short_by_the_patents_expiry_pro_rates_its_minimum():
    # 30 months of licence: two whole years and a half year → 2.5 minimums.
    assert value(ROYALTY | {"annual_minimum_fen": 1_200_000}, end=date(2028, 8, 31)) == 3_000_000


def test_the_transaction_value_of_a_bare_patent_licence_is_the_whole_contract_value():
    assert rules.transaction_value_fen(1_234_567) == 1_234_567


def test_the_filing_deadline_is_three_months_after_the_contract_takes_effect():
    assert rules.filing_due_on(date(2026, 11, 30)) == date(2027, 2, 28)
    assert rules.filing_due_on(date(2026, 1, 15)) == date(2026, 4, 15)


@pytest.mark.parametrize(
    ("today", "flag"),
    [
        (date(2026, 3, 1), None),
        (date(2026, 3, 2), "approaching"),
        (date(2026, 4, 1), "approaching"),
        (date(2026, 4, 2), "overdue"),
    ],
)
def test_deadline_flags(today, flag):
    assert rules.deadline_flag(date(2026, 4, 1), today, 30) == flag
    assert rules.deadline_flag(None, today, 30) is None


def test_only_an_early_end_by_agreement_needs_a_cancellation_record():
    assert rules.record_after_end(EndReason.AGREEMENT) is RecordKind.CANCELLATION
    for reason in set(EndReason) - {EndReason.AGREEMENT}:
        assert rules.record_after_end(reason) is None


def test_the_state_machine_only_moves_forward_and_every_exportable_state_can_be_exported():
    assert rules.FILING_TRANSITIONS[FilingStatus.CANCELLED] == frozenset()
    assert rules.FILING_TRANSITIONS[FilingStatus.NOT_REQUIRED] == frozenset()
    for status in rules.EXPORTABLE:
        assert FilingStatus.EXPORTED in rules.FILING_TRANSITIONS[status]
    assert FilingStatus.DUE not in rules.FILING_TRANSITIONS[FilingStatus.EXPORTED]
    assert set(rules.FILING_TRANSITIONS) == set(FilingStatus)


# ---------------------------------------------------------------------------------------------
# Code tables
# ---------------------------------------------------------------------------------------------


def test_party_natures_default_for_universities_and_institutes_only():
    assert codes.party_nature(OrganisationKind.UNIVERSITY, None) == "022"
    assert codes.party_nature(OrganisationKind.INSTITUTE, None) == "021"
    assert codes.party_nature(OrganisationKind.ENTERPRISE, None) is None
    assert codes.party_nature(OrganisationKind.ENTERPRISE, "150") == "150"
    assert codes.PARTY_NATURES["022"] == "高等院校"
    assert codes.nature_fits_kind(OrganisationKind.UNIVERSITY, "022")
    assert not codes.nature_fits_kind(OrganisationKind.UNIVERSITY, "150")
    assert not codes.nature_fits_kind(OrganisationKind.ENTERPRISE, "022")


@pytest.mark.parametrize(
    ("ipc", "field"),
    [
        ("H01M 10/0525", "06"),  # lithium batteries: new energy
        ("H01L21/02", "01"),  # semiconductors: section H
        ("A61K 31/00", "04"),
        ("A01B1/00", "09"),
        ("B64C 27/00", "02"),
        ("C09K5/06", "05"),
        ("G21C 1/00", "08"),
        ("", "03"),
        (None, "03"),
    ],
)
def test_the_technology_field_follows_the_longest_ipc_prefix(ipc, field):
    assert codes.technology_field(ipc) == field
    assert field in codes.TECHNOLOGY_FIELDS


def test_every_payment_mode_and_patent_type_has_a_registry_code():
    from marketplace.offers.models import PaymentMode

    for mode in PaymentMode:
        if mode is not PaymentMode.PAY_AFTER_USE:
            assert codes.payment_mode(mode.value)[1]
    assert codes.payment_mode("entry_fee_royalty") == ("04", "提成支付附加预付入门费")
    assert [codes.IP_TYPES[codes.ip_type(t)] for t in PatentType] == ["发明专利", "实用新型专利", "外观设计专利"]
    pay_after_use = terms_from_json(
        {"mode": "pay_after_use", "deferral": "first_revenue", "then": ROYALTY},
    )
    assert rules.registry_payment_mode("pay_after_use", pay_after_use) == ("03", "提成支付")


# ---------------------------------------------------------------------------------------------
# Facts, records, changes
# ---------------------------------------------------------------------------------------------


def party(**overrides) -> rules.Party:
    values = {
        "organisation_id": 1,
        "name": "清华大学",
        "kind": OrganisationKind.UNIVERSITY,
        "address": "北京市海淀区清华园1号",
        "uscc": "12100000400000624D",
        "division_code": "110108",
        "nature_code": None,
        "verified": True,
    }
    return rules.Party(**(values | overrides))


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
        "fee_description": "一次性支付 50,000.00 元，书面通知后 30 日内支付",
        "territory": "中国大陆",
        "announcement_number": "CN-OL-2026-000123",
        "patent_title": "一种锂电池正极材料",
        "application_number": "202010566088.9",
        "patent_type": PatentType.INVENTION,
        "patent_filing_date": date(2020, 6, 1),
        "patent_grant_date": date(2022, 8, 9),
        "ipc_main": "H01M4/131",
        "licensor": party(),
        "licensee": party(
            organisation_id=2,
            name="苏州新能科技有限公司",
            kind=OrganisationKind.ENTERPRISE,
            address="江苏省苏州市工业园区星湖街 328 号",
            uscc="91110108551385082Q",
            division_code="320506",
            nature_code="150",
        ),
        "contract_value_fen": 5_000_000,
        "registry_payment_mode": ("01", "一次总付"),
    }
    return rules.ContractFacts(**(values | overrides))


def test_rows_have_one_cell_per_header_and_cross_reference_the_licence_filing():
    licence_row = rules.licence_filing_row(facts(), RecordKind.NEW, None)
    registration = rules.registration_row(facts(), RecordKind.NEW, None, "2026990000123")
    assert len(licence_row) == len(rules.LICENCE_FILING_HEADERS)
    assert len(registration) == len(rules.REGISTRATION_HEADERS)
    cells = dict(zip(rules.REGISTRATION_HEADERS, registration, strict=True))
    assert cells["专利实施许可合同备案号"] == "2026990000123"
    assert cells["卖方单位性质代码"] == "022" and cells["买方单位性质代码"] == "150"
    assert cells["技术领域"] == "新能源与高效节能"
    assert cells["合同成交额（元）"] == cells["技术交易额（元）"] == "50000.00"
    licence_cells = dict(zip(rules.LICENCE_FILING_HEADERS, licence_row, strict=True))
    assert licence_cells["专利号"] == "ZL202010566088.9"
    assert licence_cells["许可种类"] == "普通实施许可"
    assert licence_cells["注销日期"] == ""


def test_a_cancellation_record_carries_the_day_the_contract_ended_as_its_term_end():
    ended = facts(ended_on=date(2027, 6, 30), end_reason=EndReason.AGREEMENT)
    row = rules.licence_filing_row(ended, RecordKind.CANCELLATION, "X1")
    cells = dict(zip(rules.LICENCE_FILING_HEADERS, row, strict=True))
    assert (cells["记录类型"], cells["原备案号"], cells["注销日期"]) == ("注销", "X1", "2027-06-30")
    assert cells["许可期限届满日"] == "2027-06-30"


def test_an_unverified_enterprise_holds_the_contract_back():
    assert rules.held_back_reason(facts()) is None
    unverified = facts(licensee=replace(facts().licensee, verified=False))
    assert rules.held_back_reason(unverified) == "被许可人“苏州新能科技有限公司”尚未通过企业核验"
    # A university the platform has not reviewed is not an enterprise awaiting verification.
    assert rules.held_back_reason(facts(licensor=party(verified=False))) is None


def test_changes_are_named_field_by_field_and_each_registry_sees_only_its_own_fields():
    before = facts()
    moved = facts(licensee=replace(before.licensee, address="江苏省南京市新址"))
    for registry in Registry:
        recorded = rules.recorded_values(registry, before)
        assert rules.changed_fields(recorded, rules.recorded_values(registry, before)) == []
    licence = rules.changed_fields(
        rules.recorded_values(Registry.LICENCE_FILING, before), rules.recorded_values(Registry.LICENCE_FILING, moved)
    )
    registration = rules.changed_fields(
        rules.recorded_values(Registry.TECH_CONTRACT, before), rules.recorded_values(Registry.TECH_CONTRACT, moved)
    )
    assert (licence, registration) == (["licensee.address"], [])
    renamed = facts(licensor=party(name="清华大学（新）"), contract_value_fen=6_000_000)
    assert rules.changed_fields(
        rules.recorded_values(Registry.TECH_CONTRACT, before), rules.recorded_values(Registry.TECH_CONTRACT, renamed)
    ) == ["contract_value_fen", "seller.name", "transaction_value_fen"]


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_amounts_are_written_as_plain_yuan_with_two_decimals(fen):
    text = rules.yuan_plain(fen)
    whole, cents = text.lstrip("-").split(".")
    assert len(cents) == 2 and "," not in text
    assert (-1 if text.startswith("-") else 1) * (int(whole) * 100 + int(cents)) == fen
