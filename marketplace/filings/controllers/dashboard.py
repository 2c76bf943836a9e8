"""The platform admin's filings dashboard (备案登记): filings per registry and status, the licence filing
deadlines, open discrepancies, the quarterly summary, and the list of contracts in a state."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from marketplace import paging
from marketplace.errors import ValidationFailed
from marketplace.filings import reconciliation
from marketplace.filings.models import FilingStatus, Registry, Severity
from marketplace.settings import Settings
from marketplace.web.auth import require_platform_admin
from marketplace.web.forms import form_error

#: Deadline flags shown on the dashboard; the rest are one click away in the list.
FLAGS_SHOWN = 50
PageNumber = Annotated[int, Parameter(ge=1, le=paging.MAX_PAGE, description="页码（从1开始）")]
CONTRACTS_TEMPLATE = "filings/dashboard_contracts.html.j2"


class FilingDashboardController(Controller):
    path = "/admin/filings"
    guards = [require_platform_admin]
    include_in_schema = False

    @get("/")
    async def dashboard(self, db_session: AsyncSession, settings: Settings) -> Template:
        from marketplace.filings import statistics

        return Template(
            "filings/dashboard.html.j2",
            context={
                "registries": list(Registry),
                "statuses": list(FilingStatus),
                "counts": await reconciliation.status_counts(db_session),
                "flags": await reconciliation.deadline_flags(db_session, settings, limit=FLAGS_SHOWN),
                "flag_counts": await reconciliation.deadline_counts(db_session, settings),
                "warning_days": settings.filing_warning_days,
                "severities": list(Severity),
                "open_discrepancies": await reconciliation.open_by_severity(db_session),
                "statistics": await statistics.dashboard_summary(db_session),
            },
        )

    @get("/contracts")
    async def contracts(
        self,
        db_session: AsyncSession,
        settings: Settings,
        registry: str = "",
        status: str = "",
        deadline: str = "",
        page: PageNumber = 1,
    ) -> Template:
        context: dict[str, Any] = {
            "form": {"registry": registry, "status": status, "deadline": deadline},
            "errors": {},
            "result": None,
            "registry_options": [("", "全部"), *((r.value, r.label) for r in Registry)],
            "status_options": [("", "全部"), *((s.value, s.label) for s in FilingStatus)],
            "deadline_options": [("", "不限"), ("overdue", "已逾期"), ("approaching", "临近期限")],
        }
        try:
            filters = reconciliation.parse_filing_filters(registry=registry, status=status, deadline=deadline)
            result = await reconciliation.list_filings(db_session, settings, filters, page=page)
        except ValidationFailed as exc:
            return form_error(CONTRACTS_TEMPLATE, exc, context)
        query = urlencode({key: value for key, value in filters.query().items() if value})
        context.update(result=result, filters=filters, pager_base=f"/admin/filings/contracts?{query}&")
        return Template(CONTRACTS_TEMPLATE, context=context)


ROUTES = [FilingDashboardController]
