"""Downloading uploaded files (evaluation reports) for those allowed to read them."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import File
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace.files.services import file_for_download
from marketplace.settings import Settings
from marketplace.web.auth import current


@get("/files/{file_id:int}", include_in_schema=False)
async def download(request: Request, db_session: AsyncSession, settings: Settings, file_id: int) -> File:
    stored, path = await file_for_download(db_session, actor=current(request), settings=settings, file_id=file_id)
    return File(
        path=path,
        filename=stored.filename,
        media_type=stored.content_type,
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff"},
    )


ROUTES = [download]
