"""HTTP routes of matching: the interest profile and recommendations (``profile``), the inbox,
weekly digest and licensors' pushes (``inbox``), stock patents (``stock``), and the conversion funnel (``funnel``)."""

from marketplace.matching.controllers.funnel import ROUTES as FUNNEL_ROUTES
from marketplace.matching.controllers.inbox import ROUTES as INBOX_ROUTES
from marketplace.matching.controllers.profile import ROUTES as PROFILE_ROUTES
from marketplace.matching.controllers.stock import ROUTES as STOCK_ROUTES

ROUTES = [*PROFILE_ROUTES, *STOCK_ROUTES, *INBOX_ROUTES, *FUNNEL_ROUTES]
