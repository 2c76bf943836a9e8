"""HTTP for filings: platform admins only (pages under /admin/filings, API under /api/v1)."""

from marketplace.filings.controllers.dashboard import ROUTES as DASHBOARD_ROUTES
from marketplace.filings.controllers.discrepancies import ROUTES as DISCREPANCY_ROUTES
from marketplace.filings.controllers.exports import ROUTES as EXPORT_ROUTES
from marketplace.filings.controllers.results import ROUTES as RESULT_ROUTES
from marketplace.filings.controllers.statistics import ROUTES as STATISTICS_ROUTES

ROUTES = [*DASHBOARD_ROUTES, *EXPORT_ROUTES, *RESULT_ROUTES, *DISCREPANCY_ROUTES, *STATISTICS_ROUTES]
