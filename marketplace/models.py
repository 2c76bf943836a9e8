"""Imports every domain's models so the metadata is complete (Alembic, tests, CLI)."""

from marketplace.accounts.models import AccountToken, ApiToken, Organisation, User, WebSession
from marketplace.audit.models import AuditRecord
from marketplace.billing.models import (
    DocumentCounter,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Payment,
    Refund,
    RoyaltyReport,
    StripeEvent,
)
from marketplace.catalogue.models import CatalogueEntry
from marketplace.db import metadata
from marketplace.evaluations.models import PatentEvaluation, PatentTier
from marketplace.files.models import StoredFile
from marketplace.filings.models import (
    ContractFiling,
    Discrepancy,
    FilingBatch,
    FilingBatchItem,
    FilingImport,
)
from marketplace.licensing.models import (
    ContractNumberCounter,
    LicenceContract,
    PaymentObligation,
    WrittenNotice,
)
from marketplace.matching.models import (
    InboxMessage,
    InterestProfile,
    InventoryEntry,
    InventoryInterest,
    MatchEvent,
    OfferPush,
    RecommendationList,
)
from marketplace.offers.models import OpenLicenceOffer
from marketplace.outbox.models import MailMessage, OutboxMessage
from marketplace.patents.models import Patent

__all__ = [
    "AccountToken",
    "ApiToken",
    "AuditRecord",
    "CatalogueEntry",
    "ContractFiling",
    "ContractNumberCounter",
    "Discrepancy",
    "DocumentCounter",
    "FilingBatch",
    "FilingBatchItem",
    "FilingImport",
    "InboxMessage",
    "InterestProfile",
    "InventoryEntry",
    "InventoryInterest",
    "Invoice",
    "InvoiceLine",
    "LedgerEntry",
    "LicenceContract",
    "MailMessage",
    "MatchEvent",
    "OfferPush",
    "OpenLicenceOffer",
    "Organisation",
    "OutboxMessage",
    "Patent",
    "PatentEvaluation",
    "PatentTier",
    "Payment",
    "PaymentObligation",
    "RecommendationList",
    "Refund",
    "RoyaltyReport",
    "StoredFile",
    "StripeEvent",
    "User",
    "WebSession",
    "WrittenNotice",
    "metadata",
]
