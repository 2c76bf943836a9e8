"""Billing benchmarks (issue 4): the daily billing sweep over a national-scale contract book, and Stripe
webhook deliveries against a running server.

``python -m bench sweep``: a fresh database (migrated, then filled by COPY with CONTRACTS licence
contracts shaped like real ones: their payment obligations come from the app's own payment plan
(``licensing.rules.obligations``), and the history before today (instalments invoiced and paid,
royalty reports invoiced and paid, invoices left unpaid) is written the way billing writes it:
invoices with lines, gapless numbers, balanced ledger journals, payments). Then the sweep
(``marketplace.billing.sweep.run``) runs in a process of its own on a copy of that database: wall
time, peak RSS of that process, time per phase and per SQL statement; then, on a fresh copy, two
sweep processes at once. SQL checks afterwards compare every invoice line with the lines the seed
expects (``bench_expected_lines``): no plan item invoiced twice, none forgotten, numbers gapless.

``python -m bench webhooks``: contracts invoiced by the sweep, a card payment per invoice waiting on
its Stripe PaymentIntent (``pi_bench_…``), then a real uvicorn server (as ``bench accept`` starts it,
with STRIPE_WEBHOOK_SECRET set and STRIPE_SECRET_KEY set to a key that is never used: receiving a
webhook calls no Stripe API) receives signed ``payment_intent.succeeded`` and ``…processing``
events, 30% of the deliveries repeated, in shuffled order, from 50 concurrent clients.

Sizes can be lowered for a quick look: BENCH_SWEEP_CONTRACTS, BENCH_WEBHOOK_DELIVERIES;
BENCH_WEBHOOK_WORKERS lists the server worker counts (default ``1,2``); BENCH_SWEEP_PROFILE=1 adds a
sweep under cProfile (its statistics go to bench/data/billing-sweep-profile.txt, not to the doc).
PostgreSQL comes from BENCH_POSTGRES_URL when set (e.g. the dev server), else the bench cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import json
import math
import os
import pstats
import random
import re
import resource
import statistics
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from stdnum.cn import uscc as stdnum_uscc

import marketplace.models  # noqa: F401  (every mapped class, so relationships resolve)
from bench.accept import DIVISIONS, _children, _cpu_seconds, _migrate, _recreate, app_server, wait_ready
from bench.report import DOC, _split, machine, rss_kb
from marketplace.accounts.models import EnterpriseSize, Organisation, OrganisationKind, VerificationStatus
from marketplace.accounts.services import hash_password
from marketplace.billing import rules as billing_rules
from marketplace.billing import services as billing_services
from marketplace.billing import sweep
from marketplace.billing.models import Account
from marketplace.billing.stripe_gateway import sign_webhook_payload
from marketplace.clock import now_utc, today
from marketplace.db import make_sessionmaker
from marketplace.licensing import rules as licensing_rules
from marketplace.licensing import services as licensing_services
from marketplace.licensing.models import ContractStatus, ObligationKind
from marketplace.offers import rules as offer_rules
from marketplace.offers.models import OfferStatus, OpenLicenceOffer, PaymentMode
from marketplace.patents.models import LegalStatus, Patent, PatentType
from marketplace.patents.rules import canonical_application_number
from marketplace.settings import PROJECT_ROOT, load_settings

CONTRACTS = int(os.environ.get("BENCH_SWEEP_CONTRACTS", "100000"))
DELIVERIES = int(os.environ.get("BENCH_WEBHOOK_DELIVERIES", "10000"))
WEBHOOK_WORKERS = tuple(int(n) for n in os.environ.get("BENCH_WEBHOOK_WORKERS", "1,2").split(",") if n.strip())
PROFILE = os.environ.get("BENCH_SWEEP_PROFILE", "").strip() not in ("", "0")
SEED_DATABASE = "bench_billing"
RUN_DATABASE = "bench_billing_run"
WEBHOOK_SEED_DATABASE = "bench_billing_webhooks"
SWEEP_TARGET_SECONDS = 60
CONTRACTS_PER_LICENSEE = 5
TERM_MONTHS = 36
CHUNK = 10_000
#: Share of the webhook deliveries that repeat an event already delivered (Stripe retries).
DUPLICATE_SHARE = 0.30
#: Share of the payments whose intent also reports ``payment_intent.processing``.
PROCESSING_SHARE = 0.40
CLIENTS = 50
WARMUP_PAYMENTS = 200
WEBHOOK_SECRET = "whsec_bench_0123456789abcdef"
HEADING = "### Billing (issue 4)"
SWEEP_PART = "#### Daily billing sweep"
WEBHOOK_PART = "#### Stripe webhooks"
FIXED = ("lump_sum", "instalment", "entry_fee")
_SETTINGS = load_settings()


# ---------------------------------------------------------------------------------------------
# The contract book
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    name: str
    family: str
    label: str


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "lump_sum_due",
            "lump_sum",
            "lump sum falling due within 30 days (licence took effect on a later start date)",
        ),
        Profile("first_instalment_due", "instalments", "first of 3 instalments due within 30 days"),
        Profile(
            "second_instalment_due",
            "instalments",
            "second instalment due within 30 days; the first invoiced and paid 6 months ago",
        ),
        Profile("entry_fee_due", "entry_fee_royalty", "entry fee due within 30 days, then quarterly royalties"),
        Profile(
            "deferred_fee_due",
            "pay_after_use",
            "pay after use: the 12-month deferral ends, its lump sum falls due within 30 days",
        ),
        Profile(
            "true_up_due",
            "royalty",
            "quarterly royalties with an annual minimum, contract year 1 closed 31–59 days ago (half reported "
            "Q1–Q3, each report invoiced and paid; Q4 never reported)",
        ),
        Profile(
            "unpaid_in_default",
            "instalments",
            "first instalment invoiced, unpaid 65–120 days past due (invoice overdue, contract not yet in default)",
        ),
        Profile("unpaid_just_due", "lump_sum", "lump sum invoiced, 1–10 days past due, invoice still open"),
        Profile("settled", "lump_sum", "lump sum invoiced and paid months ago; nothing due"),
        Profile("free", "free", "free licence; no obligations"),
    )
}
SWEEP_MIX = (
    ("lump_sum_due", 26),
    ("first_instalment_due", 8),
    ("second_instalment_due", 12),
    ("entry_fee_due", 8),
    ("deferred_fee_due", 6),
    ("true_up_due", 25),
    ("unpaid_in_default", 3),
    ("unpaid_just_due", 2),
    ("settled", 5),
    ("free", 5),
)
#: Contracts for the webhook benchmark: every one gets exactly one invoice from the sweep.
WEBHOOK_MIX = (("lump_sum_due", 60), ("first_instalment_due", 20), ("entry_fee_due", 20))


def _fee_terms(family: str, rng: random.Random) -> dict[str, Any]:
    if family == "free":
        return {"mode": "free"}
    if family == "lump_sum":
        return {"mode": "lump_sum", "amount_fen": rng.randrange(1_000_000, 50_000_000, 10_000), "due_days": 30}
    if family == "instalments":
        return {
            "mode": "instalments",
            "total_fen": rng.randrange(3_000_000, 90_000_000, 30_000),
            "count": 3,
            "interval_months": 6,
            "first_due_days": 30,
        }
    royalty = {"base": "sales", "rate": "0.03", "rate_schedule": "fixed", "reporting_period": "quarterly"}
    if family == "royalty":
        minimum = rng.choice((2_000_000, 5_000_000, 10_000_000))
        return {"mode": "royalty", **royalty, "annual_minimum_fen": minimum, "cap_fen": None}
    if family == "entry_fee_royalty":
        return {
            "mode": "entry_fee_royalty",
            "entry_fee_fen": rng.randrange(500_000, 20_000_000, 10_000),
            "entry_due_days": 30,
            "royalty": {**royalty, "rate": "0.02"},
        }
    assert family == "pay_after_use"
    return {
        "mode": "pay_after_use",
        "deferral": "months",
        "deferral_months": 12,
        "then": {"mode": "lump_sum", "amount_fen": rng.randrange(1_000_000, 30_000_000, 10_000), "due_days": 30},
    }


def _uscc(serial: int, kind_digits: str) -> str:
    body = f"{kind_digits}{DIVISIONS[serial % len(DIVISIONS)]}{serial:09d}"[:17]
    return body + stdnum_uscc.calc_check_digit(body)


def _plan(terms: offer_rules.FeeTerms, start: date) -> tuple[date, list[billing_rules.PlanItem]]:
    end = licensing_rules.contract_end(start, TERM_MONTHS, date(2045, 1, 1))
    return end, licensing_rules.obligations(terms, start=start, end=end, term_months=TERM_MONTHS)


def _start_for(profile: str, rng: random.Random, on: date, terms: offer_rules.FeeTerms) -> date:
    """A start date that puts the profile's item where the profile says (checked on the real plan)."""
    add = offer_rules.add_months
    for _ in range(50):
        if profile in ("lump_sum_due", "first_instalment_due", "entry_fee_due"):
            start, key, low, high = (
                on - timedelta(days=rng.randrange(0, 30)),
                None,
                on + timedelta(1),
                on + timedelta(30),
            )
        elif profile == "second_instalment_due":
            due = on + timedelta(days=rng.randrange(1, 31))
            start, key, low, high = add(due - timedelta(30), -6), "instalment:2", on + timedelta(1), on + timedelta(30)
        elif profile == "deferred_fee_due":
            due = on + timedelta(days=rng.randrange(1, 31))
            start, key, low, high = add(due - timedelta(30), -12), "lump_sum", on + timedelta(1), on + timedelta(30)
        elif profile == "true_up_due":
            year_end = on - timedelta(days=rng.randrange(31, 60))
            start, key, low, high = (
                add(year_end + timedelta(1), -12),
                "true_up:1",
                on - timedelta(59),
                on - timedelta(31),
            )
        elif profile == "unpaid_in_default":
            due = on - timedelta(days=rng.randrange(65, 121))
            start, key, low, high = due - timedelta(30), "instalment:1", on - timedelta(120), on - timedelta(65)
        elif profile == "unpaid_just_due":
            due = on - timedelta(days=rng.randrange(1, 11))
            start, key, low, high = due - timedelta(30), "lump_sum", on - timedelta(10), on - timedelta(1)
        elif profile == "settled":
            start, key, low, high = (
                on - timedelta(days=rng.randrange(100, 400)),
                "lump_sum",
                date.min,
                on - timedelta(31),
            )
        else:
            return on - timedelta(days=rng.randrange(0, 700))
        _, plan = _plan(terms, start)
        key = key or plan[0].key
        item = next((i for i in plan if i.key == key), None)
        if item is not None and item.due_date is not None and low <= item.due_date <= high:
            return start
    raise RuntimeError(f"no start date fits profile {profile}")


@dataclass
class Book:
    """Rows of one chunk, ready for COPY."""

    contracts: list[dict] = field(default_factory=list)
    obligations: list[dict] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    invoices: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    payments: list[dict] = field(default_factory=list)
    ledger: list[dict] = field(default_factory=list)
    expected: list[dict] = field(default_factory=list)


@dataclass
class Ids:
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def next(self, table: str) -> int:
        self.counters[table] += 1
        return self.counters[table]


@dataclass
class Seeded:
    contracts: int
    licensees: int
    licensors: int
    offers: int
    by_profile: Counter[str]
    expected_invoices_by_profile: Counter[str]
    rows: Counter[str]
    expected_lines: int
    seconds: float

    @property
    def expected_invoices(self) -> int:
        return sum(self.expected_invoices_by_profile.values())


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _copy(conn: asyncpg.Connection, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    await conn.copy_records_to_table(table, records=[tuple(row[c] for c in columns) for row in rows], columns=columns)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _History:
    """Writes what billing wrote before today: invoices (numbered per year, gapless), their lines, the
    ledger journals and, for paid ones, a confirmed bank transfer."""

    def __init__(self, ids: Ids, now: datetime) -> None:
        self.ids = ids
        self.now = now
        self.numbers: dict[int, int] = defaultdict(int)

    def invoice(
        self,
        book: Book,
        contract: dict,
        snapshot: dict,
        *,
        issued_on: date,
        due_date: date,
        lines: list[tuple[str, str, int, int | None, str, int]],
        paid_on: date | None,
        status: str,
    ) -> datetime | None:
        """``lines``: (kind, item key, obligation id, report id, description, amount). Returns when it was paid."""
        invoice_id = self.ids.next("invoices")
        self.numbers[issued_on.year] += 1
        sequence = self.numbers[issued_on.year]
        number = f"{billing_services.INVOICE_SERIES}{issued_on.year}{sequence:06d}"
        total = sum(line[5] for line in lines)
        book.invoices.append(
            {
                "id": invoice_id,
                "number": number,
                "year": issued_on.year,
                "sequence": sequence,
                "contract_id": contract["id"],
                "licensor_organisation_id": contract["licensor_organisation_id"],
                "licensee_organisation_id": contract["licensee_organisation_id"],
                "status": status,
                "issued_on": issued_on,
                "due_date": due_date,
                "total_fen": total,
                "paid_fen": total if paid_on else 0,
                "snapshot": _dumps(snapshot),
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        for n, (kind, key, obligation_id, report_id, description, amount) in enumerate(lines, start=1):
            book.lines.append(
                {
                    "id": self.ids.next("invoice_lines"),
                    "invoice_id": invoice_id,
                    "contract_id": contract["id"],
                    "line_no": n,
                    "kind": kind,
                    "item_key": key,
                    "obligation_id": obligation_id,
                    "royalty_report_id": report_id,
                    "description": description[:300],
                    "amount_fen": amount,
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )
        self._journal(
            book, contract["id"], f"invoice:{invoice_id}", billing_rules.invoice_issued(total), issued_on, number
        )
        if paid_on is None:
            return None
        paid_at = datetime.combine(paid_on, datetime.min.time(), tzinfo=self.now.tzinfo) + timedelta(hours=3)
        payment_id = self.ids.next("payments")
        book.payments.append(
            {
                "id": payment_id,
                "contract_id": contract["id"],
                "invoice_id": invoice_id,
                "licensor_organisation_id": contract["licensor_organisation_id"],
                "licensee_organisation_id": contract["licensee_organisation_id"],
                "method": "bank_transfer",
                "status": "confirmed",
                "amount_fen": total,
                "applied_fen": total,
                "excess_fen": 0,
                "refunded_fen": 0,
                "idempotency_key": f"bench-transfer-{payment_id}",
                "payer_name": "基准测试科技有限公司",
                "remitted_on": paid_on,
                "reference": f"BENCH{payment_id:012d}",
                "received_at": paid_at,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        self._journal(
            book, contract["id"], f"payment:{payment_id}", billing_rules.payment_received(total, 0), paid_on, number
        )
        return paid_at

    def _journal(self, book: Book, contract_id: int, journal: str, legs: Iterable, on: date, number: str) -> None:
        for account, amount in legs:
            book.ledger.append(
                {
                    "id": self.ids.next("ledger_entries"),
                    "contract_id": contract_id,
                    "journal": journal,
                    "account": Account(account).value,
                    "amount_fen": amount,
                    "occurred_on": on,
                    "memo": f"基准测试历史 {number}",
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )


def _allocation(mix: tuple[tuple[str, int], ...], total: int, rng: random.Random) -> list[str]:
    weight = sum(w for _, w in mix)
    counts = {name: total * w // weight for name, w in mix}
    for name, _ in mix[: total - sum(counts.values())]:
        counts[name] += 1
    names = [name for name, n in counts.items() for _ in range(n)]
    rng.shuffle(names)
    return names


async def seed(url: str, contracts: int, mix: tuple[tuple[str, int], ...], on: date, *, rng_seed: int = 11) -> Seeded:
    """Fill a migrated, empty database with a contract book of ``contracts`` contracts."""
    started = time.perf_counter()
    rng = random.Random(rng_seed)
    now = now_utc()
    ids = Ids()
    rows: Counter[str] = Counter()
    licensees = math.ceil(contracts / CONTRACTS_PER_LICENSEE)
    licensors = max(4, contracts // 200)
    families = Counter()
    for name, weight in mix:
        families[PROFILES[name].family] += weight
    offers_total = max(50, contracts // 20)
    password_hash = hash_password("bench-password-1")
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            "CREATE TABLE bench_expected_lines (contract_id bigint NOT NULL, item_key varchar(40) NOT NULL, "
            "amount_fen bigint NOT NULL, profile varchar(40) NOT NULL, PRIMARY KEY (contract_id, item_key))"
        )
        # Organisations and their administrators (one each; the contact address is a second recipient).
        orgs, users, parties, licensor_objects = [], [], {}, {}
        for i in range(licensors + licensees):
            org_id = ids.next("organisations")
            licensor = i < licensors
            fields = {
                "id": org_id,
                "name": f"基准测试大学{org_id}" if licensor else f"基准测试科技有限公司{org_id:06d}",
                "kind": OrganisationKind.UNIVERSITY if licensor else OrganisationKind.ENTERPRISE,
                "uscc": _uscc(org_id, "12" if licensor else "91"),
                "division_code": DIVISIONS[org_id % len(DIVISIONS)],
                "address": "北京市海淀区学院路1号" if licensor else "上海市徐汇区漕河泾开发区",
                "contact_name": "技术转移中心" if licensor else "法务部",
                "contact_email": f"contact{org_id}@{'university' if licensor else 'enterprise'}.example.cn",
                "contact_phone": "010-62750000",
                "verification_status": VerificationStatus.VERIFIED,
                "enterprise_size": None if licensor else rng.choice(list(EnterpriseSize)),
                "industry_code": None if licensor else "C",
                "verified_at": now,
            }
            organisation = Organisation(**fields)
            parties[org_id] = licensing_services._party(organisation)
            if licensor:
                licensor_objects[org_id] = organisation
            orgs.append(
                {
                    **fields,
                    "kind": fields["kind"].value,
                    "verification_status": fields["verification_status"].value,
                    "enterprise_size": fields["enterprise_size"].value if fields["enterprise_size"] else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            users.append(
                {
                    "id": org_id,
                    "email": f"admin@org{org_id}.example.cn",
                    "display_name": "基准测试管理员",
                    "password_hash": password_hash,
                    "organisation_id": org_id,
                    "role": "org_admin",
                    "is_active": True,
                    "email_confirmed_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await _copy(conn, "organisations", orgs)
        await _copy(conn, "users", users)
        rows["organisations"] += len(orgs)
        rows["users"] += len(users)
        # Patents and their published offers, in fee-term families sized by the mix.
        patents, offers, snapshots, family_offers, offer_terms = [], [], {}, defaultdict(list), {}
        weight = sum(families.values())
        for family, share in sorted(families.items()):
            for _ in range(max(CONTRACTS_PER_LICENSEE * 4, round(offers_total * share / weight))):
                offer_id = ids.next("open_licence_offers")
                licensor_id = 1 + offer_id % licensors
                filing = date(rng.randrange(2016, 2023), rng.randrange(1, 13), rng.randrange(1, 29))
                patent = Patent(
                    id=offer_id,
                    application_number=canonical_application_number(f"{filing.year}1{offer_id:07d}"),
                    patent_type=PatentType.INVENTION,
                    title=f"一种高导热复合相变储能材料及其制备方法（基准{offer_id}）",
                    filing_date=filing,
                    grant_date=filing + timedelta(days=900),
                    expiry_date=date(filing.year + 20, filing.month, filing.day) - timedelta(days=1),
                    ipc_main="C09K5/06",
                )
                raw = _fee_terms(family, rng)
                terms = offer_rules.terms_from_json(raw)
                offer = OpenLicenceOffer(
                    id=offer_id,
                    series_id=f"bench-billing-{offer_id}",
                    version=1,
                    payment_mode=PaymentMode(terms.mode),
                    pay_after_use=offer_rules.is_pay_after_use(terms),
                    fee_terms=raw,
                    licence_term_months=TERM_MONTHS,
                    territory="中国大陆",
                    field_of_use="储能设备",
                    other_terms="",
                    announcement_number=f"CN-OL-BILL-{offer_id:06d}",
                    announcement_date=filing + timedelta(days=1200),
                )
                offer.patent = patent
                offer.licensor = licensor_objects[licensor_id]
                frozen = licensing_services.snapshot(offer, licensor_objects[licensor_id])
                snapshots[offer_id] = frozen
                offer_terms[offer_id] = terms
                family_offers[family].append(offer_id)
                patents.append(
                    {
                        "id": offer_id,
                        "application_number": patent.application_number,
                        "patent_type": PatentType.INVENTION.value,
                        "is_pct": False,
                        "title": patent.title,
                        "abstract": "本发明公开了一种复合相变储能材料，导热系数高，适用于电池热管理。",
                        "owner_organisation_id": licensor_id,
                        "filing_date": filing,
                        "grant_date": patent.grant_date,
                        "expiry_date": patent.expiry_date,
                        "legal_status": LegalStatus.GRANTED.value,
                        "annual_fee_paid_until": on + timedelta(days=200),
                        "ipc_main": "C09K5/06",
                        "ipc_codes": _dumps(["C09K5/06"]),
                        "inventors": _dumps(["张三", "李四"]),
                        "co_owners": "[]",
                        "co_owner_consent": False,
                        "pledged": False,
                        "pledgee_consent": False,
                        "exclusive_licence": False,
                        "sole_licence": False,
                        "proceedings_suspended": False,
                        "government_funded": False,
                        "implemented": False,
                        "trl": 6,
                        "transfer_intents": '["licence"]',
                        "application_scenarios": "",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                offers.append(
                    {
                        "id": offer_id,
                        "series_id": offer.series_id,
                        "version": 1,
                        "patent_id": offer_id,
                        "licensor_organisation_id": licensor_id,
                        "status": OfferStatus.PUBLISHED.value,
                        "payment_mode": terms.mode.value,
                        "pay_after_use": offer.pay_after_use,
                        "fee_terms": _dumps(raw),
                        "upfront_cost_fen": offer_rules.upfront_cost_fen(terms),
                        "licence_term_months": TERM_MONTHS,
                        "territory": "中国大陆",
                        "field_of_use": "储能设备",
                        "other_terms": "",
                        "announcement_number": offer.announcement_number,
                        "announcement_date": offer.announcement_date,
                        "submitted_at": now,
                        "published_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        await _copy(conn, "patents", patents)
        await _copy(conn, "open_licence_offers", offers)
        rows["patents"] += len(patents)
        rows["open_licence_offers"] += len(offers)
        # The contracts, chunk by chunk.
        allocation = _allocation(mix, contracts, rng)
        history = _History(ids, now)
        contract_numbers: dict[int, int] = defaultdict(int)
        held: dict[int, set[int]] = defaultdict(set)
        by_profile: Counter[str] = Counter()
        expected_invoices: Counter[str] = Counter()
        expected_lines = 0
        book = Book()
        for index, profile in enumerate(allocation):
            licensee_id = licensors + 1 + index // CONTRACTS_PER_LICENSEE
            candidates = family_offers[PROFILES[profile].family]
            offer_id = rng.choice(candidates)
            while offer_id in held[licensee_id]:
                offer_id = rng.choice(candidates)
            held[licensee_id].add(offer_id)
            terms = offer_terms[offer_id]
            start = _start_for(profile, rng, on, terms)
            end, plan = _plan(terms, start)
            signed_on = start - timedelta(days=rng.randrange(0, 21))
            contract_numbers[signed_on.year] += 1
            contract_id = ids.next("licence_contracts")
            frozen = {**snapshots[offer_id], "licensee": parties[licensee_id]}
            status = licensing_rules.initial_status(terms)
            contract = {
                "id": contract_id,
                "number": licensing_rules.contract_number(signed_on.year, contract_numbers[signed_on.year]),
                "year": signed_on.year,
                "sequence": contract_numbers[signed_on.year],
                "offer_id": offer_id,
                "live_offer_id": offer_id,
                "patent_id": offer_id,
                "licensor_organisation_id": snapshots[offer_id]["licensor"]["id"],
                "licensee_organisation_id": licensee_id,
                "accepted_by_user_id": licensee_id,
                "idempotency_key": f"bench-billing-{contract_id:010d}",
                "status": status.value,
                "payment_mode": terms.mode.value,
                "pay_after_use": offer_rules.is_pay_after_use(terms),
                "terms_snapshot": None,
                "intended_field_of_use": "用于本公司储能电池热管理模组的生产与销售",
                "signatory_name": "王经理",
                "signatory_title": "总经理",
                "signed_on": signed_on,
                "start_date": start,
                "end_date": end,
                "activated_at": now if status is ContractStatus.ACTIVE else None,
                "in_default_since": None,
                "created_at": now,
                "updated_at": now,
            }
            items = {}
            for sequence, item in enumerate(plan, start=1):
                items[item.key] = {
                    "id": ids.next("payment_obligations"),
                    "contract_id": contract_id,
                    "sequence": sequence,
                    "kind": item.kind.value,
                    "description": item.description,
                    "amount_fen": item.amount_fen,
                    "due_date": item.due_date,
                    "period_start": item.period_start,
                    "period_end": item.period_end,
                    "after_first_revenue": item.after_first_revenue,
                    "key": item.key,
                    "contract_year": item.contract_year,
                    "months": item.months,
                    "billed_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            invoice_snapshot = billing_services._invoice_snapshot(
                SimpleNamespace(terms_snapshot=frozen, number=contract["number"], start_date=start, end_date=end)
            )
            reports_before = len(book.reports)
            paid_at = _history(profile, rng, on, history, book, contract, invoice_snapshot, items, terms)
            if paid_at is not None and contract["status"] == ContractStatus.AWAITING_PAYMENT.value:
                contract["status"] = ContractStatus.ACTIVE.value
                contract["activated_at"] = paid_at
            contract["terms_snapshot"] = _dumps(frozen)
            book.contracts.append(contract)
            book.obligations.extend(items.values())
            lines = _expected(items, book.reports[reports_before:], contract_id, terms, on, profile)
            book.expected.extend(lines)
            by_profile[profile] += 1
            expected_lines += len(lines)
            if lines:
                expected_invoices[profile] += 1
            if len(book.contracts) >= CHUNK or index == len(allocation) - 1:
                for table, chunk in (
                    ("licence_contracts", book.contracts),
                    ("payment_obligations", book.obligations),
                    ("royalty_reports", book.reports),
                    ("invoices", book.invoices),
                    ("invoice_lines", book.lines),
                    ("payments", book.payments),
                    ("ledger_entries", book.ledger),
                    ("bench_expected_lines", book.expected),
                ):
                    await _copy(conn, table, chunk)
                    rows[table] += len(chunk)
                book = Book()
                print(f"  {index + 1:>9,} / {contracts:,} contracts", end="\r", flush=True)
        print()
        await conn.executemany(
            "INSERT INTO contract_number_counters (year, last_value, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            [(year, n, now) for year, n in sorted(contract_numbers.items())],
        )
        await conn.executemany(
            "INSERT INTO document_counters (series, year, last_value, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $4)",
            [(billing_services.INVOICE_SERIES, year, n, now) for year, n in sorted(history.numbers.items())],
        )
        for table in (
            "organisations",
            "users",
            "patents",
            "open_licence_offers",
            "licence_contracts",
            "payment_obligations",
            "royalty_reports",
            "invoices",
            "invoice_lines",
            "payments",
            "ledger_entries",
        ):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return Seeded(
        contracts=contracts,
        licensees=licensees,
        licensors=licensors,
        offers=offers_total,
        by_profile=by_profile,
        expected_invoices_by_profile=expected_invoices,
        rows=rows,
        expected_lines=expected_lines,
        seconds=time.perf_counter() - started,
    )


def _history(
    profile: str,
    rng: random.Random,
    on: date,
    history: _History,
    book: Book,
    contract: dict,
    snapshot: dict,
    items: dict[str, dict],
    terms: offer_rules.FeeTerms,
) -> datetime | None:
    """Write what happened before today for this profile; returns when the contract was first paid."""

    def fixed(key: str, *, paid: bool, status: str) -> datetime | None:
        item = items[key]
        issued = max(item["due_date"] - timedelta(days=30), contract["start_date"])
        item["billed_at"] = datetime.combine(issued, datetime.min.time(), tzinfo=history.now.tzinfo)
        paid_on = item["due_date"] - timedelta(days=rng.randrange(0, 20)) if paid else None
        return history.invoice(
            book,
            contract,
            snapshot,
            issued_on=issued,
            due_date=item["due_date"],
            lines=[("fixed", key, item["id"], None, item["description"], item["amount_fen"])],
            paid_on=max(paid_on, issued) if paid_on else None,
            status=status,
        )

    if profile == "second_instalment_due":
        return fixed("instalment:1", paid=True, status="paid")
    if profile == "settled":
        return fixed("lump_sum", paid=True, status="paid")
    if profile == "unpaid_in_default":
        fixed("instalment:1", paid=False, status="overdue")
        return None
    if profile == "unpaid_just_due":
        fixed("lump_sum", paid=False, status="open")
        return None
    if profile != "true_up_due" or rng.random() < 0.5:
        return None
    # Royalty reports for Q1–Q3 of year 1, each invoiced when reported and paid within two weeks.
    royalty = offer_rules.royalty_of(terms)
    assert royalty is not None and royalty.annual_minimum_fen is not None
    first_paid = None
    for quarter in (1, 2, 3):
        item = items[f"royalty:1:{quarter}"]
        share = rng.uniform(0.10, 0.45)
        base = round(royalty.annual_minimum_fen * share / float(royalty.rate or 1))
        line = billing_rules.royalty_amount(royalty, contract_year=1, base=base)
        reported_on = item["period_end"] + timedelta(days=rng.randrange(3, 29))
        report_id = history.ids.next("royalty_reports")
        book.reports.append(
            {
                "id": report_id,
                "contract_id": contract["id"],
                "obligation_id": item["id"],
                "client_report_id": f"bench-report-{report_id}",
                "version": 1,
                "is_current": True,
                "nil_report": False,
                "base_amount": base,
                "breakdown": "[]",
                "contract_year": 1,
                "rate": str(line.rate),
                "unit_amount_fen": None,
                "royalty_fen": line.amount_fen,
                "formula": line.formula[:300],
                "submitted_by_user_id": contract["licensee_organisation_id"],
                "submitted_at": datetime.combine(reported_on, datetime.min.time(), tzinfo=history.now.tzinfo),
                "created_at": history.now,
                "updated_at": history.now,
            }
        )
        paid = history.invoice(
            book,
            contract,
            snapshot,
            issued_on=reported_on,
            due_date=reported_on + timedelta(days=15),
            lines=[
                (
                    "royalty",
                    item["key"],
                    item["id"],
                    report_id,
                    f"{item['description']}：{line.formula}",
                    line.amount_fen,
                )
            ],
            paid_on=reported_on + timedelta(days=rng.randrange(1, 15)),
            status="paid",
        )
        first_paid = first_paid or paid
    return first_paid


def _expected(
    items: dict[str, dict], reports: list[dict], contract_id: int, terms: offer_rules.FeeTerms, on: date, profile: str
) -> list[dict]:
    """The lines today's sweep must issue for this contract: unbilled fixed items due within the
    issue-ahead window, and the annual-minimum shortfall of each closed contract year."""
    horizon = on + timedelta(days=_SETTINGS.invoice_issue_ahead_days)
    closed_before = on - timedelta(days=_SETTINGS.royalty_report_days)
    reported: Counter[int] = Counter()
    for report in reports:
        reported[report["contract_year"]] += report["royalty_fen"]
    royalty = offer_rules.royalty_of(terms) if not isinstance(terms, offer_rules.PayAfterUseTerms) else None
    lines = []
    for item in items.values():
        if item["billed_at"] is not None or item["due_date"] is None:
            continue
        amount = 0
        if item["kind"] in FIXED and item["due_date"] <= horizon:
            amount = item["amount_fen"]
        elif item["kind"] == ObligationKind.TRUE_UP.value and item["due_date"] < closed_before:
            assert royalty is not None and royalty.annual_minimum_fen is not None
            minimum = billing_rules.prorated_minimum(royalty.annual_minimum_fen, item["months"] or 12)
            amount = max(0, minimum - reported[item["contract_year"]])
        if amount:
            lines.append(
                {"contract_id": contract_id, "item_key": item["key"], "amount_fen": amount, "profile": profile}
            )
    return lines


# ---------------------------------------------------------------------------------------------
# The sweep, in a process of its own
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _statement_key(statement: str) -> str:
    flat = " ".join(statement.split())
    verb = flat.split(" ", 1)[0].upper()
    table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", flat)
    where = re.search(r"\bWHERE (.{0,70})", flat)
    key = f"{verb} {table.group(1) if table else '?'}"
    if where:
        key += " WHERE " + re.sub(r"\$\d+(::\w+)?", "?", where.group(1)).split(" ORDER BY")[0].split(" FOR UPDATE")[0]
    if " FOR UPDATE" in flat:
        key += " … FOR UPDATE" + (" SKIP LOCKED" if "SKIP LOCKED" in flat else "")
    if verb == "INSERT" and "ON CONFLICT" in flat:
        key += " ON CONFLICT DO UPDATE"
    return key


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sweep_worker(url: str, on: date, label: str, profile_path: str | None) -> dict[str, Any]:
    settings = replace(load_settings(), database_url=url)
    # The app's engine settings (marketplace.db.make_engine), named so its backends can be found.
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": label}},
    )
    sessionmaker = make_sessionmaker(engine)
    statements: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany) -> None:
        entry = statements[_statement_key(statement)]
        took = time.perf_counter() - conn.info["bench_started"].pop()
        entry[0] += 1
        entry[1] += took
        entry[2] = max(entry[2], took)

    phases: dict[str, float] = {}
    #: Peak RSS (kB) at the end of each phase: which phase set the process's high-water mark.
    phase_peaks: dict[str, int] = {}

    def timed(name: str):
        original = getattr(sweep, name)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            begun = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                phases[name.strip("_")] = phases.get(name.strip("_"), 0.0) + time.perf_counter() - begun
                phase_peaks[name.strip("_")] = rss_kb("VmHWM")

        setattr(sweep, name, wrapper)

    for name in ("_issue_due", "_mark_overdue", "_defaults", "_report_reminders"):
        timed(name)
    rss_before = rss_kb("VmRSS")
    cpu_before = time.process_time()
    error = None
    result = None
    profiler = cProfile.Profile() if profile_path else None
    started = time.perf_counter()
    try:
        if profiler:
            profiler.enable()
        result = await sweep.run(sessionmaker, settings, on=on)
    except Exception:
        error = traceback.format_exc()
    finally:
        if profiler:
            profiler.disable()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    pg_cpu = 0.0
    async with engine.connect() as conn:
        pids = (
            await conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                {"n": label},
            )
        ).scalars()
        for pid in pids:
            pg_cpu += _proc_cpu(pid) or 0.0
    await engine.dispose()
    if profiler and profile_path:
        profiler.dump_stats(profile_path)
        out = io.StringIO()
        stats = pstats.Stats(profile_path, stream=out)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(60)
        Path(profile_path).with_suffix(".txt").write_text(out.getvalue())
    return {
        "label": label,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "pg_cpu_seconds": pg_cpu,
        "rss_before_kb": rss_before,
        "peak_rss_kb": rss_kb("VmHWM"),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "phases": phases,
        "phase_peaks_kb": phase_peaks,
        "result": None if result is None else {k: v for k, v in vars(result).items() if k != "details"},
        "error": error,
        "statements": sorted(([k, int(v[0]), v[1], v[2]] for k, v in statements.items()), key=lambda s: -s[2]),
    }


async def _run_sweep_process(url: str, on: date, label: str, profile_path: str | None = None) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.billing", "sweep-worker", url, on.isoformat(), label]
    if profile_path:
        command.append(profile_path)
    process = await asyncio.create_subprocess_exec(
        *command, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    stdout, _ = await process.communicate()
    lines = [line for line in stdout.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"sweep process {label} exited with {process.returncode}: {stdout.decode()[-2000:]}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# What PostgreSQL's backends were doing
# ---------------------------------------------------------------------------------------------


async def sample_activity(url: str, stop: asyncio.Event, every: float = 0.05) -> tuple[Counter[str], float]:
    """Sample pg_stat_activity of the bench database (running, waiting on a lock and where, idle in a
    transaction) and the CPU seconds its backends used, read from /proc (same machine)."""
    seen: Counter[str] = Counter()
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    engine = create_async_engine(url, poolclass=NullPool)
    query = text(
        "SELECT pid, state, wait_event_type, wait_event, left(query, 70) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    async with engine.connect() as conn:
        started = True
        while True:
            seen["samples"] += 1
            for pid, state, wait_type, wait_event, statement in (await conn.execute(query)).all():
                cpu = _proc_cpu(pid)
                if cpu is not None:
                    first.setdefault(pid, cpu if started else 0.0)
                    last[pid] = cpu
                if state == "active":
                    seen["active"] += 1
                    if wait_type == "Lock":
                        seen["lock"] += 1
                        seen[f"lock:{wait_event}:{' '.join((statement or '').split())}"] += 1
                elif state == "idle in transaction":
                    seen["idle_in_transaction"] += 1
            await conn.commit()
            started = False
            if stop.is_set():
                break
            await asyncio.sleep(every)
    await engine.dispose()
    return seen, sum(last[pid] - first[pid] for pid in last)


def _lock_lines(seen: Counter[str], top: int = 3) -> list[str]:
    samples = seen["samples"] or 1
    lines = [
        f"{seen['samples']:,} samples: on average {seen['active'] / samples:.1f} backends running a statement, "
        f"{seen['lock'] / samples:.1f} of them waiting on a lock, {seen['idle_in_transaction'] / samples:.1f} idle "
        "in a transaction"
    ]
    waits = sorted(((n, k) for k, n in seen.items() if k.startswith("lock:")), reverse=True)[:top]
    for n, key in waits:
        _, wait_event, statement = key.split(":", 2)
        lines.append(f"{n / samples:.2f} waiting on `{wait_event}` in `{statement}…`")
    return lines


# ---------------------------------------------------------------------------------------------
# Integrity of the sweep's work
# ---------------------------------------------------------------------------------------------

SWEEP_CHECKS = {
    "plan items on more than one invoice line": """
        SELECT count(*) FROM (SELECT contract_id, item_key FROM invoice_lines WHERE item_key IS NOT NULL
                              GROUP BY 1, 2 HAVING count(*) > 1) d""",
    "expected lines missing, or with another amount": """
        SELECT count(*) FROM bench_expected_lines e WHERE NOT EXISTS (
            SELECT 1 FROM invoice_lines l WHERE l.contract_id = e.contract_id AND l.item_key = e.item_key
            AND l.amount_fen = e.amount_fen)""",
    "lines issued today that were not expected": """
        SELECT count(*) FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
        WHERE i.issued_on = :on AND NOT EXISTS (
            SELECT 1 FROM bench_expected_lines e WHERE e.contract_id = l.contract_id AND e.item_key = l.item_key)""",
    "contracts with more than one invoice issued today": """
        SELECT count(*) FROM (SELECT contract_id FROM invoices WHERE issued_on = :on GROUP BY 1
                              HAVING count(*) > 1) d""",
    "items due by today still unbilled": """
        SELECT count(*) FROM payment_obligations WHERE billed_at IS NULL AND (
            (kind IN ('lump_sum', 'instalment', 'entry_fee') AND due_date <= :horizon)
            OR (kind = 'true_up' AND due_date < :closed_before))""",
    "invoices whose total differs from the sum of their lines": """
        SELECT count(*) FROM invoices i WHERE i.total_fen <> (
            SELECT coalesce(sum(l.amount_fen), 0) FROM invoice_lines l WHERE l.invoice_id = i.id)""",
    "duplicate invoice numbers": """
        SELECT count(*) FROM (SELECT number FROM invoices GROUP BY number HAVING count(*) > 1) d""",
    "numbers not PN + year + six-digit sequence": """
        SELECT count(*) FROM invoices WHERE number <> 'PN' || year || lpad(sequence::text, 6, '0')""",
    "gaps in the (year, sequence) numbering": """
        SELECT coalesce(sum(max_seq - n), 0) FROM (
            SELECT year, max(sequence) AS max_seq, count(DISTINCT sequence) AS n FROM invoices GROUP BY year) y""",
    "years whose counter differs from the highest number issued": """
        SELECT count(*) FROM document_counters k WHERE k.series = 'PN'
        AND k.last_value <> (SELECT coalesce(max(sequence), 0) FROM invoices i WHERE i.year = k.year)""",
    "ledger journals that do not balance": """
        SELECT count(*) FROM (SELECT journal FROM ledger_entries GROUP BY journal HAVING sum(amount_fen) <> 0) d""",
    "invoices issued today without their receivable posting": """
        SELECT count(*) FROM invoices i WHERE i.issued_on = :on AND NOT EXISTS (
            SELECT 1 FROM ledger_entries e WHERE e.journal = 'invoice:' || i.id AND e.account = 'receivable'
            AND e.amount_fen = i.total_fen)""",
    "contracts whose receivable differs from their unpaid invoices": """
        WITH r AS (SELECT contract_id, sum(amount_fen) AS s FROM ledger_entries WHERE account = 'receivable'
                   GROUP BY 1),
             o AS (SELECT contract_id, sum(total_fen - paid_fen) AS s FROM invoices WHERE status <> 'void' GROUP BY 1)
        SELECT count(*) FROM r FULL JOIN o USING (contract_id) WHERE coalesce(r.s, 0) <> coalesce(o.s, 0)""",
    "invoices issued today without an 'issued' audit record": """
        SELECT count(*) FROM invoices i WHERE i.issued_on = :on AND NOT EXISTS (
            SELECT 1 FROM audit_records a WHERE a.entity_type = 'invoice' AND a.entity_id = i.id
            AND a.action = 'issued')""",
    "invoices issued today without their notice email queued": """
        SELECT count(*) FROM invoices i WHERE i.issued_on = :on AND i.id NOT IN (
            SELECT split_part(dedupe_key, ':', 3)::bigint FROM outbox_messages
            WHERE dedupe_key LIKE 'email:invoice:%')""",
    "unpaid invoices past due not marked overdue": """
        SELECT count(*) FROM invoices WHERE status IN ('open', 'partially_paid') AND due_date < :on""",
    "contracts overdue beyond the default threshold not marked in default": """
        SELECT count(*) FROM licence_contracts c WHERE c.in_default_since IS NULL AND EXISTS (
            SELECT 1 FROM invoices i WHERE i.contract_id = c.id AND i.status = 'overdue'
            AND i.due_date <= :default_before)""",
}


async def sweep_integrity(url: str, on: date) -> tuple[dict[str, int], dict[str, int]]:
    settings = load_settings()
    params = {
        "on": on,
        "horizon": on + timedelta(days=settings.invoice_issue_ahead_days),
        "closed_before": on - timedelta(days=settings.royalty_report_days),
        "default_before": on - timedelta(days=settings.default_after_days),
    }
    engine = create_async_engine(url, poolclass=NullPool)
    problems: dict[str, int] = {}
    async with engine.connect() as conn:
        for name, sql in SWEEP_CHECKS.items():
            statement = text(sql)
            used = {k: v for k, v in params.items() if f":{k}" in sql}
            problems[name] = int(await conn.scalar(statement, used) or 0)
        totals = {
            "invoices issued today": await conn.scalar(
                text("SELECT count(*) FROM invoices WHERE issued_on = :on"), params
            ),
            "lines issued today": await conn.scalar(
                text(
                    "SELECT count(*) FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id "
                    "WHERE i.issued_on = :on"
                ),
                params,
            ),
            "emails queued": await conn.scalar(text("SELECT count(*) FROM outbox_messages WHERE kind = 'email'")),
            "audit records": await conn.scalar(text("SELECT count(*) FROM audit_records")),
            "contracts in default": await conn.scalar(
                text("SELECT count(*) FROM licence_contracts WHERE in_default_since IS NOT NULL")
            ),
        }
    await engine.dispose()
    return problems, {k: int(v or 0) for k, v in totals.items()}


# ---------------------------------------------------------------------------------------------
# The sweep benchmark
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepRun:
    name: str
    workers: list[dict[str, Any]]
    wall: float
    problems: dict[str, int]
    totals: dict[str, int]
    activity: Counter[str]
    pg_cpu: float
    load_before: float
    again: dict[str, Any] | None = None


async def _measure_sweep(server_url: str, name: str, processes: int, on: date, *, again: bool = False) -> SweepRun:
    url = await _recreate(server_url, RUN_DATABASE, template=SEED_DATABASE)
    load_before = os.getloadavg()[0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_activity(url, stop))
    started = time.perf_counter()
    workers = await asyncio.gather(
        *(_run_sweep_process(url, on, f"bench-sweep-{name}-{n + 1}") for n in range(processes))
    )
    wall = time.perf_counter() - started
    stop.set()
    activity, pg_cpu = await sampler
    problems, totals = await sweep_integrity(url, on)
    second = None
    if again:
        second = await _run_sweep_process(url, on, f"bench-sweep-{name}-again")
    return SweepRun(name, list(workers), wall, problems, totals, activity, pg_cpu, load_before, second)


def _mib(kb: float) -> str:
    return f"{kb / 1024:,.0f}"


def _error_line(worker: dict[str, Any]) -> str:
    if not worker["error"]:
        return "—"
    return worker["error"].strip().splitlines()[-1][:160].replace("|", "\\|")


def render_sweep(seeded: Seeded, single: SweepRun, pair: SweepRun, on: date) -> str:
    settings = load_settings()
    mix = [
        f"| {name} | {PROFILES[name].label} | {seeded.by_profile[name]:,} | "
        f"{seeded.expected_invoices_by_profile[name]:,} |"
        for name, _ in SWEEP_MIX
    ]
    w = single.workers[0]
    r = w["result"] or {}
    body = [
        SWEEP_PART,
        "",
        f"Measured on {datetime.now().strftime('%Y-%m-%d %H:%M')} ({machine()}) with `python -m bench sweep`, sweep "
        f"date {on} (Asia/Shanghai); {_pg_where()}.",
        "",
        f"Method: a fresh database, migrated, then filled by COPY in {seeded.seconds:.0f} s with {seeded.contracts:,} "
        f"live licence contracts between {seeded.licensees:,} enterprises and {seeded.licensors:,} licensor "
        f"universities on {seeded.rows['open_licence_offers']:,} published offers (36-month terms). Their "
        f"{seeded.rows['payment_obligations']:,} payment obligations are the app's own payment plan "
        "(`licensing.rules.obligations`); what happened before today is written the way billing writes it "
        f"({seeded.rows['invoices']:,} earlier invoices with their lines, gapless PN numbers and balanced ledger "
        f"journals, {seeded.rows['payments']:,} confirmed bank transfers, {seeded.rows['royalty_reports']:,} royalty "
        "reports); there are no written notices, audit records or e-mails from before today. "
        f"The sweep (`marketplace.billing.sweep.run`, settings: invoices issued {settings.invoice_issue_ahead_days} "
        f"days ahead, royalty reports due {settings.royalty_report_days} days after a period, default after "
        f"{settings.default_after_days} days) runs in a process of its own, on a copy of that database, with the "
        "app's engine settings. The seed records every invoice line today's sweep must issue "
        f"({seeded.expected_lines:,} lines on {seeded.expected_invoices:,} contracts) and SQL compares.",
        "",
        "| contracts | shape | count | invoices expected today |",
        "|---|---|---|---|",
        *mix,
        "",
        "| run | wall s | invoices issued | contracts billed | marked overdue | put in default | report reminders "
        "| peak RSS MiB (before the sweep) | sweep process CPU s | PostgreSQL CPU s | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("one sweep", w)]
    rows += [(f"two at once: process {n + 1}", worker) for n, worker in enumerate(pair.workers)]
    if single.again is not None:
        rows.append(("the same sweep again, right after", single.again))
    for label, worker in rows:
        res = worker["result"] or {}
        body.append(
            f"| {label} | **{worker['seconds']:,.1f}** | {res.get('invoices', '—'):,} | "
            f"{res.get('contracts_billed', '—'):,} | {res.get('overdue', '—'):,} | {res.get('defaults', '—'):,} | "
            f"{res.get('reminders', '—'):,} | **{_mib(worker['peak_rss_kb'])}** ({_mib(worker['rss_before_kb'])}) | "
            f"{worker['cpu_seconds']:,.1f} | {worker['pg_cpu_seconds']:,.1f} | {_error_line(worker)} |"
            if worker["result"] is not None
            else f"| {label} | {worker['seconds']:,.1f} | — | — | — | — | — | {_mib(worker['peak_rss_kb'])} "
            f"({_mib(worker['rss_before_kb'])}) | {worker['cpu_seconds']:,.1f} | {worker['pg_cpu_seconds']:,.1f} | "
            f"{_error_line(worker)} |"
        )
    billed = max(1, r.get("contracts_billed", 0))
    statements = w["statements"]
    peaks = w.get("phase_peaks_kb", {})
    stmt_count = sum(s[1] for s in statements)
    stmt_seconds = sum(s[2] for s in statements)
    phases = w["phases"]
    body += [
        "",
        f"Two at once: both processes started together, finished after {pair.wall:,.1f} s (wall, both); together they "
        f"issued {sum((x['result'] or {}).get('invoices', 0) for x in pair.workers):,} invoices "
        f"(one sweep: {r.get('invoices', 0):,}). PostgreSQL backends of the bench database used "
        f"{single.pg_cpu:,.1f} CPU s during the single sweep and {pair.pg_cpu:,.1f} during the pair.",
        "",
        "Where the single sweep's time goes, by phase: "
        + ", ".join(f"{name.replace('_', ' ')} {seconds:,.1f} s" for name, seconds in phases.items())
        + (
            ". Peak RSS after each phase: "
            + ", ".join(f"{name.replace('_', ' ')} {_mib(kb)} MiB" for name, kb in peaks.items())
            if peaks
            else ""
        )
        + f". SQL: {stmt_count:,} statements ({stmt_count / billed:.2f} per contract billed), "
        f"{stmt_seconds:,.1f} s waiting on them ({stmt_seconds / w['seconds']:.0%} of the wall time; the rest is "
        "Python in the sweep process). The statements that took longest, in total:",
        "",
        "| statement | count | total s | ms each | slowest ms |",
        "|---|---|---|---|---|",
    ]
    for key, count, seconds, slowest in statements[:12]:
        body.append(f"| `{key}` | {count:,} | {seconds:,.1f} | {1000 * seconds / count:.2f} | {1000 * slowest:,.1f} |")
    body += ["", "PostgreSQL activity, sampled every 50 ms:", ""]
    body += [f"- one sweep, {line}" if i == 0 else f"  - {line}" for i, line in enumerate(_lock_lines(single.activity))]
    body += [f"- two at once, {line}" if i == 0 else f"  - {line}" for i, line in enumerate(_lock_lines(pair.activity))]
    body += [
        "",
        "Integrity afterwards (SQL over the whole database; every figure must be 0):",
        "",
        "| check | one sweep | two at once |",
        "|---|---|---|",
    ]
    for name in single.problems:
        body.append(f"| {name} | {single.problems[name]:,} | {pair.problems[name]:,} |")
    for name in single.totals:
        body.append(f"| ({name}) | {single.totals[name]:,} | {pair.totals[name]:,} |")
    clean = not any(single.problems.values()) and not any(pair.problems.values())
    errors = [x for x in [*single.workers, *pair.workers] if x["error"]]
    verdict = "meets" if w["seconds"] <= SWEEP_TARGET_SECONDS else "misses"
    body += [
        "",
        f"Target ≤ {SWEEP_TARGET_SECONDS} s for {seeded.contracts:,} contracts: **{verdict}** "
        f"({w['seconds']:,.1f} s, {1000 * w['seconds'] / billed:.1f} ms per contract billed). Peak memory: "
        f"**{_mib(w['peak_rss_kb'])} MiB** RSS. Two sweeps at once: duplicate invoices "
        f"**{'none' if clean else 'FOUND — see the checks above'}**"
        + (f"; {len(errors)} sweep process(es) ended with an error (table above)" if errors else "")
        + f". Load average before the runs: {single.load_before:.1f}, {pair.load_before:.1f} (other work on the "
        "machine skews the figures).",
    ]
    return "\n".join(body)


def _pg_where() -> str:
    configured = os.environ.get("BENCH_POSTGRES_URL", "").strip()
    if configured:
        port = make_url(configured).port
        return f"PostgreSQL 15 from BENCH_POSTGRES_URL (the dev server on port {port}, same machine)"
    return "PostgreSQL 15 (the bench cluster: fsync off, shared_buffers 1 GB) on the same machine"


async def run_sweep(server_url: str) -> str:
    on = today()
    url = await _recreate(server_url, SEED_DATABASE)
    _migrate(url)
    print(f"seeding {CONTRACTS:,} contracts into {SEED_DATABASE} …", flush=True)
    seeded = await seed(url, CONTRACTS, SWEEP_MIX, on)
    print(
        f"seeded in {seeded.seconds:.0f} s: {seeded.expected_lines:,} lines expected on "
        f"{seeded.expected_invoices:,} contracts",
        flush=True,
    )
    print("one sweep …", flush=True)
    single = await _measure_sweep(server_url, "one", 1, on, again=True)
    _print_run(single)
    print("two sweeps at once …", flush=True)
    pair = await _measure_sweep(server_url, "pair", 2, on)
    _print_run(pair)
    if PROFILE:
        await profile_sweep(server_url, on)
    return render_sweep(seeded, single, pair, on)


async def profile_sweep(server_url: str, on: date) -> Path:
    url = await _recreate(server_url, RUN_DATABASE, template=SEED_DATABASE)
    path = PROJECT_ROOT / "bench" / "data" / "billing-sweep.prof"
    path.parent.mkdir(parents=True, exist_ok=True)
    print("a sweep under cProfile …", flush=True)
    worker = await _run_sweep_process(url, on, "bench-sweep-profile", str(path))
    print(f"  {worker['seconds']:.1f} s under cProfile; statistics in {path.with_suffix('.txt')}")
    return path


def _rounded(phases: dict[str, float]) -> dict[str, float]:
    return {name: round(seconds, 1) for name, seconds in phases.items()}


def _print_run(run: SweepRun) -> None:
    for worker in run.workers:
        print(
            f"  {worker['label']}: {worker['seconds']:.1f} s, peak RSS {_mib(worker['peak_rss_kb'])} MiB, "
            f"{worker['result']}, phases {_rounded(worker['phases'])}"
            + (f"\n  ERROR {worker['error']}" if worker["error"] else "")
        )
    bad = {k: v for k, v in run.problems.items() if v}
    print(f"  integrity: {bad or 'clean'}; {run.totals}")
    if run.again is not None:
        print(f"  again: {run.again['seconds']:.1f} s, {run.again['result']}")


# ---------------------------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    event_id: str
    event_type: str
    payment_id: int
    body: bytes
    duplicate: bool = False


@dataclass
class Answer:
    delivery: Delivery
    status: int
    outcome: str
    ms: float


@dataclass
class WebhookSeed:
    payments: list[dict[str, Any]]
    warmup: list[Delivery]
    deliveries: list[Delivery]
    seconds: float
    sweep_seconds: float


def _event(event_id: str, event_type: str, payment: dict[str, Any]) -> bytes:
    status = event_type.split(".", 1)[1]
    intent = {
        "id": payment["stripe_intent_id"],
        "object": "payment_intent",
        "amount": payment["amount_fen"],
        "amount_received": payment["amount_fen"] if status == "succeeded" else 0,
        "currency": "cny",
        "status": status,
        "metadata": {"payment_id": str(payment["id"]), "contract_id": str(payment["contract_id"])},
    }
    event_body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": intent},
    }
    return json.dumps(event_body).encode()


async def seed_webhooks(server_url: str, on: date) -> WebhookSeed:
    """Contracts whose invoices the sweep issues, then one card payment per invoice waiting on Stripe."""
    started = time.perf_counter()
    unique = round(DELIVERIES * (1 - DUPLICATE_SHARE))
    count = round(unique / (1 + PROCESSING_SHARE))
    url = await _recreate(server_url, WEBHOOK_SEED_DATABASE)
    _migrate(url)
    print(f"seeding {count + WARMUP_PAYMENTS:,} contracts into {WEBHOOK_SEED_DATABASE} …", flush=True)
    await seed(url, count + WARMUP_PAYMENTS, WEBHOOK_MIX, on, rng_seed=23)
    settings = replace(load_settings(), database_url=url)
    engine = create_async_engine(url, pool_size=2)
    sweep_started = time.perf_counter()
    result = await sweep.run(make_sessionmaker(engine), settings, on=on)
    sweep_seconds = time.perf_counter() - sweep_started
    print(f"  the sweep issued {result.invoices:,} invoices in {sweep_seconds:.0f} s", flush=True)
    async with engine.begin() as conn:
        invoices = (
            await conn.execute(
                text(
                    "SELECT id, contract_id, licensor_organisation_id, licensee_organisation_id, total_fen "
                    "FROM invoices WHERE status = 'open' AND total_fen > 0 ORDER BY id"
                )
            )
        ).all()
        if len(invoices) < count + WARMUP_PAYMENTS:
            raise SystemExit(f"only {len(invoices):,} open invoices for {count + WARMUP_PAYMENTS:,} payments")
        now = now_utc()
        payments = []
        for n, (invoice_id, contract_id, licensor_id, licensee_id, total) in enumerate(
            invoices[: count + WARMUP_PAYMENTS], start=1
        ):
            payments.append(
                {
                    "id": n,
                    "contract_id": contract_id,
                    "invoice_id": invoice_id,
                    "licensor_organisation_id": licensor_id,
                    "licensee_organisation_id": licensee_id,
                    "method": "card",
                    "status": "requires_payment",
                    "amount_fen": total,
                    "applied_fen": 0,
                    "excess_fen": 0,
                    "refunded_fen": 0,
                    "idempotency_key": f"card-bench-{n:08d}",
                    "created_by_user_id": licensee_id,
                    "stripe_intent_id": f"pi_bench_{n:08d}",
                    "stripe_client_secret": f"pi_bench_{n:08d}_secret_bench",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        raw = await conn.get_raw_connection()
        await _copy(raw.driver_connection, "payments", payments)
        await conn.execute(
            text("SELECT setval(pg_get_serial_sequence('payments', 'id'), (SELECT max(id) FROM payments))")
        )
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()
    rng = random.Random(29)
    warm = [
        Delivery(f"evt_bench_warm_{p['id']}", "payment_intent.succeeded", p["id"], b"")
        for p in payments[:WARMUP_PAYMENTS]
    ]
    measured = payments[WARMUP_PAYMENTS:]
    originals = [Delivery(f"evt_bench_{p['id']}_s", "payment_intent.succeeded", p["id"], b"") for p in measured]
    processing = rng.sample(measured, unique - len(measured))
    originals += [Delivery(f"evt_bench_{p['id']}_p", "payment_intent.processing", p["id"], b"") for p in processing]
    duplicates = [replace(rng.choice(originals), duplicate=True) for _ in range(DELIVERIES - len(originals))]
    deliveries = originals + duplicates
    rng.shuffle(deliveries)
    by_id = {p["id"]: p for p in payments}
    for d in [*warm, *deliveries]:
        d.body = _event(d.event_id, d.event_type, by_id[d.payment_id])
    return WebhookSeed(payments, warm, deliveries, time.perf_counter() - started, sweep_seconds)


async def _deliver(base_url: str, deliveries: list[Delivery]) -> tuple[list[Answer], float]:
    answers: list[Answer] = []
    queue = iter(deliveries)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120, cookies=no_cookies) as client:

        async def worker() -> None:
            for delivery in queue:
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign_webhook_payload(delivery.body, WEBHOOK_SECRET),
                }
                begun = time.perf_counter()
                try:
                    response = await client.post("/webhooks/stripe", content=delivery.body, headers=headers)
                    status = response.status_code
                    try:
                        outcome = str(response.json().get("outcome") or response.text[:100])
                    except ValueError:
                        outcome = response.text[:100]
                except httpx.HTTPError as exc:
                    status, outcome = 0, repr(exc)[:100]
                answers.append(Answer(delivery, status, outcome, (time.perf_counter() - begun) * 1000))

        begun = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        seconds = time.perf_counter() - begun
    return answers, seconds


WEBHOOK_CHECKS = {
    "card payments not succeeded": "SELECT count(*) FROM payments WHERE method = 'card' AND status <> 'succeeded'",
    "card payments whose money was not applied exactly once": """
        SELECT count(*) FROM payments p WHERE p.method = 'card' AND (
            p.applied_fen + p.excess_fen <> p.amount_fen OR p.received_at IS NULL
            OR (SELECT count(*) FROM ledger_entries e WHERE e.journal = 'payment:' || p.id AND e.account = 'cash'
                AND e.amount_fen = p.amount_fen) <> 1)""",
    "card payments without exactly one 'succeeded' audit record": """
        SELECT count(*) FROM payments p WHERE p.method = 'card' AND (
            SELECT count(*) FROM audit_records a WHERE a.entity_type = 'payment' AND a.entity_id = p.id
            AND a.to_state = 'succeeded') <> 1""",
    "invoices paid by card not in state paid": """
        SELECT count(*) FROM invoices i JOIN payments p ON p.invoice_id = i.id
        WHERE p.method = 'card' AND (i.status <> 'paid' OR i.paid_fen <> i.total_fen)""",
    "ledger journals that do not balance": """
        SELECT count(*) FROM (SELECT journal FROM ledger_entries GROUP BY journal HAVING sum(amount_fen) <> 0) d""",
    "contracts whose receivable differs from their unpaid invoices": SWEEP_CHECKS[
        "contracts whose receivable differs from their unpaid invoices"
    ],
    "contracts still awaiting payment with a paid invoice": """
        SELECT count(*) FROM licence_contracts c WHERE c.status = 'awaiting_payment' AND EXISTS (
            SELECT 1 FROM invoices i WHERE i.contract_id = c.id AND i.status = 'paid')""",
    "card payments without their receipt e-mails queued": """
        SELECT count(*) FROM payments p WHERE p.method = 'card' AND p.id NOT IN (
            SELECT split_part(dedupe_key, ':', 3)::bigint FROM outbox_messages
            WHERE dedupe_key LIKE 'email:payment:%:received:%')""",
}


@dataclass
class WebhookRun:
    workers: int
    seconds: float
    answers: list[Answer]
    warmup: list[Answer]
    problems: dict[str, int]
    stored: Counter[str]
    cpu: dict[str, float]
    activity: Counter[str]
    load_before: float

    @property
    def rate(self) -> float:
        return len(self.answers) / self.seconds

    def answer_problems(self) -> dict[str, int]:
        """Per event: one answer that did the work, the others 'duplicate'; a success applied exactly once."""
        by_event: dict[str, list[Answer]] = defaultdict(list)
        for answer in self.answers + self.warmup:
            by_event[answer.delivery.event_id].append(answer)
        problems = Counter()
        problems["answers other than 200"] = sum(1 for a in self.answers + self.warmup if a.status != 200)
        for answers in by_event.values():
            worked = [a for a in answers if a.outcome != "duplicate"]
            if len(worked) != 1:
                problems["events handled other than once (not exactly one non-duplicate answer)"] += 1
                continue
            expected = ("applied",) if worked[0].delivery.event_type.endswith("succeeded") else ("applied", "stale")
            if worked[0].outcome not in expected:
                problems["events answered with an unexpected outcome"] += 1
        distinct = len(by_event)
        problems["events stored − distinct events delivered"] = abs(sum(self.stored.values()) - distinct)
        problems["repeated deliveries not answered 'duplicate'"] = (
            len(self.answers) + len(self.warmup) - distinct
        ) - sum(1 for a in self.answers + self.warmup if a.outcome == "duplicate")
        return dict(problems)


async def measure_webhooks(server_url: str, seeded: WebhookSeed, workers: int) -> WebhookRun:
    url = await _recreate(server_url, f"{WEBHOOK_SEED_DATABASE}_w{workers}", template=WEBHOOK_SEED_DATABASE)
    load_before = os.getloadavg()[0]
    saved = {k: os.environ.get(k) for k in ("STRIPE_WEBHOOK_SECRET", "STRIPE_SECRET_KEY", "STRIPE_API_BASE")}
    # The key is never used (no Stripe call happens on receipt); the API base is a closed local port,
    # so a call would fail at once rather than reach Stripe.
    os.environ.update(
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_SECRET_KEY="sk_test_bench_never_used",
        STRIPE_API_BASE="http://127.0.0.1:9",
    )
    try:
        with app_server(url, workers) as (base_url, server):
            await wait_ready(base_url, server, workers)
            print(f"  {workers} worker(s): warming up with {len(seeded.warmup)} deliveries …", flush=True)
            warmup, _ = await _deliver(base_url, seeded.warmup)
            print(f"  {workers} worker(s): {len(seeded.deliveries):,} deliveries with {CLIENTS} clients …", flush=True)
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_activity(url, stop))
            server_cpu = _cpu_seconds([server.pid, *_children(server.pid)])
            client_cpu = time.process_time()
            answers, seconds = await _deliver(base_url, seeded.deliveries)
            cpu = {
                "server": _cpu_seconds([server.pid, *_children(server.pid)]) - server_cpu,
                "client": time.process_time() - client_cpu,
            }
            stop.set()
            activity, cpu["postgres"] = await sampler
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    engine = create_async_engine(url, poolclass=NullPool)
    problems = {}
    async with engine.connect() as conn:
        for name, sql in WEBHOOK_CHECKS.items():
            problems[name] = int(await conn.scalar(text(sql)) or 0)
        stored = Counter(
            dict((await conn.execute(text("SELECT outcome, count(*) FROM stripe_events GROUP BY 1"))).all())
        )
    await engine.dispose()
    return WebhookRun(workers, seconds, answers, warmup, problems, stored, cpu, activity, load_before)


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def render_webhooks(seeded: WebhookSeed, runs: list[WebhookRun]) -> str:
    deliveries = seeded.deliveries
    distinct = len({d.event_id for d in deliveries})
    kinds = Counter(d.event_type for d in deliveries if not d.duplicate)
    body = [
        WEBHOOK_PART,
        "",
        f"Measured on {datetime.now().strftime('%Y-%m-%d %H:%M')} ({machine()}) with `python -m bench webhooks`; "
        f"{_pg_where()}.",
        "",
        f"Method: {len(seeded.payments):,} contracts (lump sums, first instalments, entry fees) invoiced by the sweep "
        f"({seeded.sweep_seconds:.0f} s), each invoice with a card payment waiting on its Stripe PaymentIntent "
        "(`requires_payment`, `stripe_intent_id` = `pi_bench_…`). The app runs as a real server process, "
        "`python -m uvicorn marketplace.app:create_app --factory --workers N`, on loopback, with STRIPE_WEBHOOK_SECRET "
        "set (and a Stripe key that is never used: receiving a webhook calls no Stripe API). "
        f"{CLIENTS} concurrent clients (httpx.AsyncClient) POST signed events (`sign_webhook_payload`, signed when "
        f"sent) to `/webhooks/stripe`: {len(seeded.warmup)} successes of other payments to warm up, then "
        f"{len(deliveries):,} deliveries of {distinct:,} distinct events — {kinds['payment_intent.succeeded']:,} "
        f"`payment_intent.succeeded` and {kinds['payment_intent.processing']:,} `payment_intent.processing` — "
        f"of which {sum(d.duplicate for d in deliveries):,} ({DUPLICATE_SHARE:.0%}) repeat an event already in the "
        "list, all shuffled (a duplicate may arrive before its original, or at the same moment; a `processing` may "
        "arrive after the `succeeded` and must then change nothing).",
        "",
        "| server | events/s | p50 ms | p95 ms | p99 ms | seconds | non-200 answers | server CPU s | "
        "PostgreSQL CPU s | load generator CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        ms = [a.ms for a in r.answers]
        body.append(
            f"| uvicorn, {r.workers} worker{'s' if r.workers > 1 else ''} | **{r.rate:,.0f}** | "
            f"{statistics.median(ms):,.0f} | {_percentile(ms, 0.95):,.0f} | {_percentile(ms, 0.99):,.0f} | "
            f"{r.seconds:.1f} | {sum(1 for a in r.answers if a.status != 200)} | {r.cpu['server']:.1f} | "
            f"{r.cpu['postgres']:.1f} | {r.cpu['client']:.1f} |"
        )
    body += [
        "",
        "Answers (measured phase):",
        "",
        "| delivery | " + " | ".join(f"{r.workers} worker{'s' if r.workers > 1 else ''}" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for label, match in (
        ("first delivery of a `succeeded` event", lambda d: not d.duplicate and d.event_type.endswith("succeeded")),
        ("first delivery of a `processing` event", lambda d: not d.duplicate and d.event_type.endswith("processing")),
        ("repeated delivery", lambda d: d.duplicate),
    ):
        cells = []
        for r in runs:
            outcomes = Counter(f"{a.status} {a.outcome}" for a in r.answers if match(a.delivery))
            cells.append(", ".join(f"{n:,}× {o}" for o, n in sorted(outcomes.items())) or "—")
        body.append(f"| {label} | " + " | ".join(cells) + " |")
    body += [
        "",
        "(A repeated delivery that arrives before its original does the work and the original then answers "
        "`duplicate`; the checks below count per event.)",
        "",
        "PostgreSQL activity of the bench database, sampled every 50 ms during the measured phase:",
        "",
    ]
    for r in runs:
        body += [
            f"- {r.workers} worker(s), {line}" if i == 0 else f"  - {line}"
            for i, line in enumerate(_lock_lines(r.activity))
        ]
    body += [
        "",
        "Final state (SQL over the whole database, warm-up included, and the answers per event; every figure must "
        "be 0):",
        "",
        "| check | " + " | ".join(f"{r.workers} worker{'s' if r.workers > 1 else ''}" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    answer_problems = [r.answer_problems() for r in runs]
    for name in answer_problems[0]:
        body.append(f"| {name} | " + " | ".join(str(p[name]) for p in answer_problems) + " |")
    for name in runs[0].problems:
        body.append(f"| {name} | " + " | ".join(str(r.problems[name]) for r in runs) + " |")
    body.append(
        "| (events stored, by outcome) | "
        + " | ".join(", ".join(f"{o} {n:,}" for o, n in sorted(r.stored.items())) for r in runs)
        + " |"
    )
    clean = all(
        not any(r.problems.values()) and not any(p.values()) for r, p in zip(runs, answer_problems, strict=True)
    )
    best = max(runs, key=lambda r: r.rate)
    body += [
        "",
        f"Best: **{best.rate:,.0f} events/s** ({best.workers} worker{'s' if best.workers > 1 else ''}). Final state: "
        f"**{'correct' if clean else 'WRONG — see the checks above'}** (every payment succeeded exactly once, its "
        "invoice paid, the ledger balanced, every repeat answered `duplicate`). Load average before the runs: "
        + ", ".join(f"{r.load_before:.1f}" for r in runs)
        + ".",
    ]
    return "\n".join(body)


async def run_webhooks(server_url: str) -> str:
    on = today()
    seeded = await seed_webhooks(server_url, on)
    runs = []
    for workers in WEBHOOK_WORKERS:
        run = await measure_webhooks(server_url, seeded, workers)
        runs.append(run)
        problems = {k: v for k, v in {**run.problems, **run.answer_problems()}.items() if v}
        print(f"  {workers} worker(s): {run.rate:,.0f} events/s, problems: {problems or 'none'}; {dict(run.stored)}")
    return render_webhooks(seeded, runs)


# ---------------------------------------------------------------------------------------------
# The docs/benchmarks.md section
# ---------------------------------------------------------------------------------------------


def section(parts: dict[str, str]) -> str:
    """The "Billing (issue 4)" section: the parts measured now, and the other part as it stands in
    docs/benchmarks.md (``python -m bench sweep`` keeps the webhook figures, and the reverse)."""
    existing = ""
    if DOC.exists():
        _, sections = _split(DOC.read_text())
        existing = next((s for s in sections if s.split("\n", 1)[0] == HEADING), "")
    kept = {}
    for heading in (SWEEP_PART, WEBHOOK_PART):
        start = existing.find(heading + "\n")
        if start >= 0:
            end = existing.find("\n#### ", start + len(heading))
            kept[heading] = existing[start : end if end >= 0 else len(existing)].strip("\n")
    now = {SWEEP_PART: parts.get("sweep"), WEBHOOK_PART: parts.get("webhooks")}
    body = [now[h] or kept.get(h) for h in (SWEEP_PART, WEBHOOK_PART)]
    return "\n\n".join([HEADING, *(b for b in body if b)])


# ---------------------------------------------------------------------------------------------
# ``python -m bench.billing sweep-worker URL DATE LABEL [PROFILE]``: one sweep, as a JSON line
# ---------------------------------------------------------------------------------------------


def _worker_main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.billing")
    parser.add_argument("command", choices=["sweep-worker"])
    parser.add_argument("url")
    parser.add_argument("on", type=date.fromisoformat)
    parser.add_argument("label")
    parser.add_argument("profile", nargs="?")
    args = parser.parse_args()
    report = asyncio.run(_sweep_worker(args.url, args.on, args.label, args.profile))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    _worker_main()
