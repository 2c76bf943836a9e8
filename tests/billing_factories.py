"""Arranging billing: a licence taken some time ago (so periods have ended and payments fall due),
fee terms of every mode, and checks every billing test makes (the ledger balances)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from marketplace.accounts.services import principal_for
from marketplace.billing.models import Account as LedgerAccount
from marketplace.billing.models import Invoice, LedgerEntry
from marketplace.billing.services import balances
from marketplace.clock import today
from marketplace.licensing import services as licensing
from marketplace.licensing.models import LicenceContract, PaymentObligation
from marketplace.offers.rules import add_months
from tests.factories import Account
from tests.licensing_factories import Listing, enterprise, notice_form, published_listing

LUMP_SUM = {"mode": "lump_sum", "amount_fen": 5_000_000, "due_days": 30}
INSTALMENTS = {"mode": "instalments", "total_fen": 10_000_000, "count": 3, "interval_months": 6, "first_due_days": 30}
ROYALTY = {
    "mode": "royalty",
    "base": "sales",
    "rate": "0.035",
    "rate_schedule": "fixed",
    "reporting_period": "quarterly",
    "annual_minimum_fen": 5_000_000,
    "cap_fen": None,
}
UNITS = {"mode": "royalty", "base": "units", "unit_amount_fen": 250, "reporting_period": "quarterly"}
ENTRY_FEE = {
    "mode": "entry_fee_royalty",
    "entry_fee_fen": 1_000_000,
    "entry_due_days": 30,
    "royalty": {"base": "sales", "rate": "0.02", "reporting_period": "quarterly"},
}
FIRST_REVENUE = {
    "mode": "pay_after_use",
    "deferral": "first_revenue",
    "then": {"mode": "royalty", "base": "sales", "rate": "0.03", "reporting_period": "quarterly"},
}


@dataclass
class Licence:
    listing: Listing
    licensee: Account
    contract: LicenceContract

    @property
    def licensor(self) -> Account:
        return self.listing.licensor


async def licence(
    db, *, fee_terms: dict[str, Any], months_ago: int = 0, licensee: Account | None = None, **patent: Any
) -> Licence:
    """A licence taken by written notice ``months_ago`` months ago (its plan computed from that start)."""
    listing = await published_listing(db, fee_terms=fee_terms, **patent)
    licensee = licensee or await enterprise(db)
    contract, _ = await licensing.accept(
        db,
        actor=principal_for(licensee.user),
        offer_id=listing.offer.id,
        values=notice_form(),
        client=licensing.ClientInfo(),
    )
    if months_ago:
        await licensing.move_start(db, contract, add_months(today(), -months_ago))
    await db.commit()
    contract = await db.get(LicenceContract, contract.id, populate_existing=True)
    return Licence(listing, licensee, contract)


async def obligation(db, contract_id: int, key: str) -> PaymentObligation:
    return await db.scalar(
        select(PaymentObligation).where(PaymentObligation.contract_id == contract_id, PaymentObligation.key == key)
    )


async def invoices_of(db, contract_id: int) -> list[Invoice]:
    return list(
        await db.scalars(
            select(Invoice)
            .where(Invoice.contract_id == contract_id)
            .order_by(Invoice.id)
            .execution_options(populate_existing=True)
        )
    )


async def assert_ledger_consistent(db, contract_id: int) -> dict[LedgerAccount, int]:
    """Every journal balances, and the receivable equals what the invoices still owe."""
    journals = await db.execute(
        select(LedgerEntry.journal, func.sum(LedgerEntry.amount_fen))
        .where(LedgerEntry.contract_id == contract_id)
        .group_by(LedgerEntry.journal)
    )
    unbalanced = {journal: total for journal, total in journals if total != 0}
    assert unbalanced == {}, unbalanced
    totals = await balances(db, contract_id)
    assert sum(totals.values()) == 0
    outstanding = sum(invoice.outstanding_fen for invoice in await invoices_of(db, contract_id))
    assert totals[LedgerAccount.RECEIVABLE] == outstanding, (totals, outstanding)
    assert totals[LedgerAccount.LICENSEE_CREDIT] <= 0
    return totals
