"""Every setting of the marketplace, read from the environment in one place.

The README lists each variable; nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIERING_RULES_FILE = PROJECT_ROOT / "marketplace" / "evaluations" / "data" / "tiering.toml"

DEFAULT_ADVERTISING_WORDS = (
    "最佳", "最好", "最优", "最先进", "最高", "最低", "最大", "第一", "唯一", "顶级", "顶尖", "极品",
    "国家级", "世界级", "全球领先", "国际领先", "遥遥领先", "首选", "独家", "绝对", "万能", "100%", "史无前例",
)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _env_decimal(name: str, default: str) -> Decimal:
    return Decimal(_env(name, default))


def _env_bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    return tuple(word.strip() for word in raw.replace("，", ",").split(",") if word.strip())


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :func:`load_settings`."""

    data_dir: Path
    database_url: str
    secret_key: str
    host: str
    port: int
    debug: bool
    secure_cookies: bool
    session_max_age_seconds: int
    upload_max_bytes: int
    max_royalty_rate_sales: Decimal
    max_royalty_rate_profit: Decimal
    max_royalty_rate_added_output: Decimal
    max_fixed_fee_fen: int
    design_term_cutover: str
    advertising_words: tuple[str, ...] = field(default=DEFAULT_ADVERTISING_WORDS)
    worker_poll_seconds: float = 1.0
    run_worker_in_process: bool = True
    smtp_host: str = ""
    smtp_port: int = 25
    mail_from: str = "noreply@marketplace.local"
    #: Where people reach the site (scheme, host, port; no trailing slash); emailed links start with it.
    public_base_url: str = "http://127.0.0.1:8000"
    #: Stripe secret key (sk_…); empty disables card payments.
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    #: Where the Stripe API and Stripe.js are served from (tests point these at localstripe).
    stripe_api_base: str = "https://api.stripe.com"
    stripe_js_url: str = "https://js.stripe.com/v3/"
    #: Signing secret (whsec_…) of the webhook endpoint that receives Stripe's events.
    stripe_webhook_secret: str = ""
    stripe_payment_method_types: tuple[str, ...] = ("card",)
    stripe_timeout_seconds: float = 10.0
    #: Fixed payments are invoiced this many days before they fall due.
    invoice_issue_ahead_days: int = 30
    #: Days to pay an invoice raised from a royalty report or a true-up.
    invoice_due_days: int = 15
    #: Days after a royalty period ends within which the licensee reports it.
    royalty_report_days: int = 30
    #: An invoice overdue this many days puts the contract in default (违约).
    default_after_days: int = 60
    filing_warning_days: int = 30
    #: The tiering (分层) points table; checked when the app and the worker start.
    tiering_rules_file: Path = DEFAULT_TIERING_RULES_FILE

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def stripe_enabled(self) -> bool:
        return bool(self.stripe_secret_key)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _secret_key(data_dir: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in the data folder."""
    configured = os.environ.get("SECRET_KEY", "").strip()
    if configured:
        return configured
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR", str(PROJECT_ROOT / "data"))).resolve()
    database_url = _env("DATABASE_URL", f"sqlite+aiosqlite:///{data_dir / 'marketplace.sqlite3'}")
    if database_url.startswith("postgresql://") or database_url.startswith("postgres://"):
        database_url = "postgresql+asyncpg://" + database_url.split("://", 1)[1]
    host = _env("HOST", "127.0.0.1")
    port = _env_int("PORT", 8000)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=_secret_key(data_dir),
        host=host,
        port=port,
        debug=_env_bool("DEBUG", False),
        secure_cookies=_env_bool("SECURE_COOKIES", False),
        session_max_age_seconds=_env_int("SESSION_MAX_AGE_SECONDS", 8 * 3600),
        upload_max_bytes=_env_int("UPLOAD_MAX_BYTES", 20 * 1024 * 1024),
        max_royalty_rate_sales=_env_decimal("MAX_ROYALTY_RATE_SALES", "0.20"),
        max_royalty_rate_profit=_env_decimal("MAX_ROYALTY_RATE_PROFIT", "0.40"),
        max_royalty_rate_added_output=_env_decimal("MAX_ROYALTY_RATE_ADDED_OUTPUT", "0.20"),
        max_fixed_fee_fen=_env_int("MAX_FIXED_FEE_FEN", 2_000_000_000),
        design_term_cutover=_env("DESIGN_TERM_CUTOVER", "2021-06-01"),
        advertising_words=_env_list("ADVERTISING_WORDS", DEFAULT_ADVERTISING_WORDS),
        worker_poll_seconds=float(_env("WORKER_POLL_SECONDS", "1.0")),
        run_worker_in_process=_env_bool("RUN_WORKER_IN_PROCESS", True),
        smtp_host=_env("SMTP_HOST", ""),
        smtp_port=_env_int("SMTP_PORT", 25),
        mail_from=_env("MAIL_FROM", "noreply@marketplace.local"),
        public_base_url=_env("PUBLIC_BASE_URL", f"http://{host}:{port}").rstrip("/"),
        stripe_secret_key=_env("STRIPE_SECRET_KEY", ""),
        stripe_publishable_key=_env("STRIPE_PUBLISHABLE_KEY", ""),
        stripe_api_base=_env("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        stripe_js_url=_env("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        stripe_webhook_secret=_env("STRIPE_WEBHOOK_SECRET", ""),
        stripe_payment_method_types=_env_list("STRIPE_PAYMENT_METHOD_TYPES", ("card",)),
        stripe_timeout_seconds=float(_env("STRIPE_TIMEOUT_SECONDS", "10")),
        invoice_issue_ahead_days=_env_int("INVOICE_ISSUE_AHEAD_DAYS", 30),
        invoice_due_days=_env_int("INVOICE_DUE_DAYS", 15),
        royalty_report_days=_env_int("ROYALTY_REPORT_DAYS", 30),
        default_after_days=_env_int("DEFAULT_AFTER_DAYS", 60),
        filing_warning_days=_env_int("FILING_WARNING_DAYS", 30),
        tiering_rules_file=Path(_env("TIERING_RULES_FILE", str(DEFAULT_TIERING_RULES_FILE))),
    )
