"""Jinja2 environment: filters and globals shared by every page."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from jinja2 import Environment
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from marketplace.clock import BUSINESS_TZ
from marketplace.money import format_yuan
from marketplace.settings import PROJECT_ROOT


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"¥{format_yuan(fen)}"


def _day(value: date | datetime | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")
    return value.strftime("%Y-%m-%d")


def _label(value: Any) -> str:
    return getattr(value, "label", value if value is not None else "—")


def configure_environment(env: Environment) -> None:
    """Filters shared by pages and by documents rendered outside a request (notices, contracts)."""
    env.filters["yuan"] = _yuan
    env.filters["amount"] = format_yuan  # yuan without the sign, for form fields
    env.filters["day"] = _day
    env.filters["label"] = _label
    env.trim_blocks = True
    env.lstrip_blocks = True


def _configure(engine: JinjaTemplateEngine) -> None:
    configure_environment(engine.engine)


def template_config() -> TemplateConfig:
    return TemplateConfig(
        directory=PROJECT_ROOT / "templates",
        engine=JinjaTemplateEngine,
        engine_callback=_configure,
    )
