"""Business time: dates are Asia/Shanghai calendar dates, instants are aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def now_utc() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    """Today's business date in Asia/Shanghai."""
    return datetime.now(BUSINESS_TZ).date()


def business_date(instant: datetime) -> date:
    return instant.astimezone(BUSINESS_TZ).date()
