"""Uploaded files (上传文件): validating PDFs, storing content by SHA-256 under the upload folder,
and deciding who may download a file."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.accounts.rules import Principal
from marketplace.audit.services import record
from marketplace.billing.models import Payment, RoyaltyReport
from marketplace.errors import FieldError, NotFound
from marketplace.files.models import StoredFile
from marketplace.licensing.models import LicenceContract
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.settings import Settings

PDF_MAGIC = b"%PDF"
PDF_CONTENT_TYPE = "application/pdf"
MAX_FILENAME_LENGTH = 255


@dataclass(frozen=True)
class Upload:
    """A file as received from a form or the API, before it is stored."""

    filename: str
    content: bytes


def pdf_errors(upload: Upload, *, field: str, max_bytes: int) -> list[FieldError]:
    """Why an upload is not an acceptable PDF (checked by its first bytes, not its name)."""
    if not upload.content:
        return [FieldError(field, "上传的文件是空的", "empty_file")]
    if len(upload.content) > max_bytes:
        return [FieldError(field, f"文件不能超过{max_bytes / 1024 / 1024:.0f}MB", "too_large")]
    if not upload.content.startswith(PDF_MAGIC):
        return [FieldError(field, "请上传 PDF 格式的文件", "not_pdf")]
    return []


def _safe_filename(raw: str) -> str:
    # Browsers on Windows may send a full path; keep only the last component.
    name = PureWindowsPath(raw.replace("\x00", "")).name.strip() or "document.pdf"
    return name[-MAX_FILENAME_LENGTH:]


def _write_once(folder: Path, digest: str, content: bytes) -> None:
    target = folder / digest
    if target.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a reader never sees half a file.
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def store_pdf(
    session: AsyncSession, *, actor: Principal, settings: Settings, upload: Upload, purpose: str
) -> StoredFile:
    """Store an already validated PDF (see :func:`pdf_errors`) for the actor's organisation.

    Content is addressed by its SHA-256, so storing the same document twice keeps one copy on disk;
    a file left behind by a rolled-back request is harmless for the same reason.
    """
    digest = hashlib.sha256(upload.content).hexdigest()
    await asyncio.to_thread(_write_once, settings.upload_dir, digest, upload.content)
    stored = StoredFile(
        organisation_id=actor.organisation_id,
        uploaded_by_user_id=actor.user_id,
        purpose=purpose,
        filename=_safe_filename(upload.filename),
        content_type=PDF_CONTENT_TYPE,
        size_bytes=len(upload.content),
        sha256=digest,
    )
    session.add(stored)
    await session.flush()
    await record(
        session,
        entity_type="stored_file",
        entity_id=stored.id,
        action="upload",
        actor=actor,
        details={"purpose": purpose, "sha256": digest, "size_bytes": len(upload.content)},
    )
    return stored


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _move_once(folder: Path, digest: str, source: Path) -> None:
    """Move ``source`` to ``folder/digest`` (kept if already there); a reader never sees half a file."""
    target = folder / digest
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists():
        source.unlink(missing_ok=True)
        return
    try:
        os.replace(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Another filesystem: copy beside the target, then rename.
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    source.unlink(missing_ok=True)


async def store_file_from_path(
    session: AsyncSession,
    *,
    settings: Settings,
    organisation_id: int,
    user_id: int | None,
    purpose: str,
    filename: str,
    content_type: str,
    path: Path,
) -> StoredFile:
    """Store a file the application wrote (e.g. an export) without reading it into memory: hashed
    in blocks, then moved under the upload folder by its SHA-256 (``path`` is gone afterwards)."""
    digest, size = await asyncio.to_thread(_hash_file, path)
    await asyncio.to_thread(_move_once, settings.upload_dir, digest, path)
    stored = StoredFile(
        organisation_id=organisation_id,
        uploaded_by_user_id=user_id,
        purpose=purpose,
        filename=_safe_filename(filename),
        content_type=content_type,
        size_bytes=size,
        sha256=digest,
    )
    session.add(stored)
    await session.flush()
    return stored


async def file_for_download(
    session: AsyncSession, *, actor: Principal | None, settings: Settings, file_id: int
) -> tuple[StoredFile, Path]:
    """The file and where its content is, if the caller may read it: the owning organisation,
    a platform admin, or anyone when the file is attached to a published offer."""
    stored = await session.get(StoredFile, file_id)
    if stored is None:
        raise NotFound("文件不存在")
    # Experts belong to the platform organisation but must not read its files (filing exports).
    allowed = actor is not None and (
        actor.is_platform_admin or (actor.organisation_id == stored.organisation_id and not actor.is_expert)
    )
    if not allowed and actor is not None:
        allowed = await _billing_evidence_for(session, actor, file_id)
    if not allowed:
        published = await session.scalar(
            select(OpenLicenceOffer.id)
            .where(OpenLicenceOffer.evaluation_report_file_id == file_id)
            .where(OpenLicenceOffer.status == OfferStatus.PUBLISHED)
            .limit(1)
        )
        allowed = published is not None
    if not allowed:
        raise NotFound("文件不存在")
    path = settings.upload_dir / stored.sha256
    if not path.is_file():
        raise NotFound("文件内容缺失，请联系平台管理员")
    return stored, path


async def _billing_evidence_for(session: AsyncSession, actor: Principal, file_id: int) -> bool:
    """A royalty report's evidence or a transfer's bank receipt is also the licensor's to read."""
    report = await session.scalar(
        select(RoyaltyReport.id)
        .join(LicenceContract, LicenceContract.id == RoyaltyReport.contract_id)
        .where(RoyaltyReport.attachment_file_id == file_id)
        .where(LicenceContract.licensor_organisation_id == actor.organisation_id)
        .limit(1)
    )
    if report is not None:
        return True
    receipt = await session.scalar(
        select(Payment.id)
        .where(Payment.receipt_file_id == file_id, Payment.licensor_organisation_id == actor.organisation_id)
        .limit(1)
    )
    return receipt is not None
