"""The written notice (书面通知) and the licence contract as documents: self-contained, print-ready
HTML (styles inline, so the stored notice is the whole document its SHA-256 covers) and PDF rendered
from that HTML by WeasyPrint with the Noto CJK fonts from Debian's fonts-noto-cjk package."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date, datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader

from marketplace.clock import BUSINESS_TZ
from marketplace.settings import PROJECT_ROOT
from marketplace.web.templating import configure_environment

_ENV = Environment(loader=FileSystemLoader(PROJECT_ROOT / "templates"), autoescape=True)
configure_environment(_ENV)


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def local_time(instant: datetime) -> str:
    return instant.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S")


def render_notice(
    snapshot: dict[str, Any],
    *,
    intended_field_of_use: str,
    start_date: date,
    end_date: date,
    signatory_name: str,
    signatory_title: str,
    signed_on: date,
    notified_at: datetime,
) -> str:
    """The notice exactly as stored and hashed: everything in it comes from the arguments."""
    return _ENV.get_template("licensing/documents/notice.html.j2").render(
        **snapshot,
        intended_field_of_use=intended_field_of_use,
        start_date=start_date.isoformat(),
        end_date=end_date.isoformat(),
        signatory_name=signatory_name,
        signatory_title=signatory_title,
        signed_on=signed_on.isoformat(),
        notified_at=local_time(notified_at),
    )


def render_contract(contract: Any, *, notice_sha256: str, notified_at: datetime) -> str:
    return _ENV.get_template("licensing/documents/contract.html.j2").render(
        contract=contract,
        obligations=contract.obligations,
        notice_sha256=notice_sha256,
        notified_at=local_time(notified_at),
    )


def _pdf(document: str) -> bytes:
    # Imported here: WeasyPrint loads Pango at import time, which only the PDF routes need.
    import weasyprint

    return weasyprint.HTML(string=document, base_url=str(PROJECT_ROOT)).write_pdf()


async def to_pdf(document: str) -> bytes:
    """Render in a worker thread: a page takes a few hundred milliseconds of CPU."""
    return await asyncio.to_thread(_pdf, document)
