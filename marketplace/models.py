"""Imports every domain's models so the metadata is complete (Alembic, tests, CLI)."""

from marketplace.accounts.models import ApiToken, Organisation, User, WebSession
from marketplace.audit.models import AuditRecord
from marketplace.catalogue.models import CatalogueEntry
from marketplace.db import metadata
from marketplace.files.models import StoredFile
from marketplace.offers.models import OpenLicenceOffer
from marketplace.outbox.models import MailMessage, OutboxMessage
from marketplace.patents.models import Patent

__all__ = [
    "ApiToken",
    "AuditRecord",
    "CatalogueEntry",
    "MailMessage",
    "OpenLicenceOffer",
    "Organisation",
    "OutboxMessage",
    "Patent",
    "StoredFile",
    "User",
    "WebSession",
    "metadata",
]
