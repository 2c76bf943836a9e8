"""Application assembly: plugins, middleware, routes and exception handlers. Nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from advanced_alchemy.extensions.litestar.store import SQLAlchemyStore
from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.static_files import create_static_files_router

import marketplace.billing.sweep  # registers the billing sweep with the worker
import marketplace.evaluations.tiers  # registers the daily tiering with the worker
import marketplace.filings.services  # registers the filings refresh with the worker
import marketplace.matching.inventory  # registers the stock-patent sync with the worker
import marketplace.matching.lists  # registers the stored lists' computation with the worker
import marketplace.matching.push  # noqa: F401  (registers the weekly digest and push delivery)
from marketplace.accounts.controllers import ROUTES as ACCOUNT_ROUTES
from marketplace.accounts.models import WebSession
from marketplace.billing.controllers import ROUTES as BILLING_ROUTES
from marketplace.catalogue.controllers import ROUTES as CATALOGUE_ROUTES
from marketplace.db import TransactionMiddleware, make_alchemy_config, make_engine, make_sessionmaker
from marketplace.evaluations.controllers import ROUTES as EVALUATION_ROUTES
from marketplace.evaluations.tiering import load_rules
from marketplace.files.controllers import ROUTES as FILE_ROUTES
from marketplace.filings.controllers import ROUTES as FILING_ROUTES
from marketplace.licensing.controllers import ROUTES as LICENSING_ROUTES
from marketplace.matching.controllers import ROUTES as MATCHING_ROUTES
from marketplace.offers.controllers import ROUTES as OFFER_ROUTES
from marketplace.outbox.controllers import ROUTES as OUTBOX_ROUTES
from marketplace.outbox.services import run_worker
from marketplace.patents.controllers import ROUTES as PATENT_ROUTES
from marketplace.settings import PROJECT_ROOT, Settings, load_settings
from marketplace.web.auth import PrincipalMiddleware
from marketplace.web.errors import EXCEPTION_HANDLERS
from marketplace.web.templating import template_config


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    load_rules(settings.tiering_rules_file)  # a bad rule file stops the start with its problems
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    alchemy = make_alchemy_config(settings, engine)
    session_config = ServerSideSessionConfig(
        key="mp_session",
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        store="sessions",
        # The API authenticates with bearer tokens only; a session per call would be a stored row each.
        exclude=["^/api/", "^/webhooks/"],
    )

    @asynccontextmanager
    async def worker_lifespan(_: Litestar) -> AsyncIterator[None]:
        if not settings.run_worker_in_process:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(sessionmaker, settings, stop))
        try:
            yield
        finally:
            stop.set()
            await task

    return Litestar(
        route_handlers=[
            *ACCOUNT_ROUTES,
            *PATENT_ROUTES,
            *OFFER_ROUTES,
            *LICENSING_ROUTES,
            *BILLING_ROUTES,
            *CATALOGUE_ROUTES,
            *EVALUATION_ROUTES,
            *MATCHING_ROUTES,
            *FILE_ROUTES,
            *FILING_ROUTES,
            *OUTBOX_ROUTES,
            create_static_files_router(path="/static", directories=[PROJECT_ROOT / "static"], include_in_schema=False),
        ],
        plugins=[SQLAlchemyPlugin(config=alchemy)],
        middleware=[session_config.middleware, PrincipalMiddleware(sessionmaker), TransactionMiddleware(alchemy)],
        stores={"sessions": SQLAlchemyStore(config=alchemy, model=WebSession, namespace="sessions")},
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="csrftoken",
            cookie_secure=settings.secure_cookies,
            cookie_samesite="lax",
            header_name="x-csrftoken",
            exclude=["/api/", "/webhooks/"],
        ),
        template_config=template_config(),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        dependencies={"settings": Provide(lambda: settings, sync_to_thread=False)},
        state=State({"settings": settings, "sessionmaker": sessionmaker}),
        lifespan=[worker_lifespan],
        openapi_config=OpenAPIConfig(
            title="专利开放许可平台 API",
            version="1.0.0",
            description="Open-licence patent marketplace. Authenticate with `Authorization: Bearer <token>`.",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        request_max_body_size=settings.upload_max_bytes,
        debug=settings.debug,
    )
