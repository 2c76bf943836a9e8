"""The ``marketplace`` command: serve, run the worker, migrate, load demo data, create the first admin."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from marketplace.settings import PROJECT_ROOT, load_settings


def _alembic_config():
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


@click.group()
def main() -> None:
    """专利开放许可平台 — open-licence patent marketplace."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every Alembic migration (alembic upgrade head)."""
    from alembic import command

    command.upgrade(_alembic_config(), "head")


def _check_tiering_rules(settings) -> None:
    """A bad tiering rule file stops the start, its problems printed (not a traceback)."""
    from marketplace.evaluations.tiering import TieringRulesError, load_rules

    try:
        load_rules(settings.tiering_rules_file)
    except TieringRulesError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--host", default=None, help="Defaults to HOST (127.0.0.1).")
@click.option("--port", default=None, type=int, help="Defaults to PORT (8000).")
def run(host: str | None, port: int | None) -> None:
    """Serve the web application (the outbox worker runs in-process unless RUN_WORKER_IN_PROCESS=0)."""
    import uvicorn

    from marketplace.runtime import tune_gc

    settings = load_settings()
    _check_tiering_rules(settings)
    tune_gc()
    uvicorn.run(
        "marketplace.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        proxy_headers=True,
        log_level="info",
    )


@main.command()
def worker() -> None:
    """Drain the outbox (emails, exports, provider calls) until interrupted."""
    import marketplace.billing.sweep  # registers the billing sweep and the Stripe outbox handlers
    import marketplace.evaluations.tiers  # the daily tiering
    import marketplace.filings.exports  # the export renderer and the hourly filings refresh
    import marketplace.licensing.services  # its periodic jobs
    import marketplace.matching.inventory  # the stock-patent sync
    import marketplace.matching.lists  # the stored recommendation lists
    import marketplace.matching.push  # noqa: F401  (the weekly digest and the push delivery)
    from marketplace.db import make_engine, make_sessionmaker
    from marketplace.outbox.services import run_worker
    from marketplace.runtime import tune_gc

    settings = load_settings()
    _check_tiering_rules(settings)
    tune_gc()

    async def _main() -> None:
        engine = make_engine(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo("worker: draining the outbox (Ctrl-C to stop)")
        await run_worker(make_sessionmaker(engine), settings, stop)
        await engine.dispose()

    asyncio.run(_main())


def _with_sessionmaker(work):
    """Run ``work(sessionmaker, settings)`` against the configured database."""
    from marketplace.db import make_engine, make_sessionmaker

    settings = load_settings()

    async def _main():
        engine = make_engine(settings)
        try:
            return await work(make_sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(_main())


@main.group()
def payments() -> None:
    """Payments (Stripe, bank transfer)."""


@payments.command("reconcile")
def payments_reconcile() -> None:
    """Re-read unfinished Stripe payments and refunds from Stripe and repair their state
    (for a webhook that never arrived)."""
    from marketplace.billing.payments import reconcile

    counts = _with_sessionmaker(reconcile)
    click.echo(f"checked {counts['checked']}, repaired {counts['repaired']}, re-queued {counts['requeued']}")


@main.group()
def billing() -> None:
    """Invoices and royalty reports."""


@billing.command("sweep")
@click.option("--on", "on", default=None, help="Business date (YYYY-MM-DD); defaults to today in Asia/Shanghai.")
def billing_sweep(on: str | None) -> None:
    """Issue due invoices, mark overdue ones, flag defaults and send report reminders, once."""
    from datetime import date

    from marketplace.billing.sweep import run

    day = date.fromisoformat(on) if on else None
    result = _with_sessionmaker(lambda sessionmaker, settings: run(sessionmaker, settings, on=day))
    click.echo(
        f"invoices {result.invoices} (contracts checked {result.contracts_billed}), overdue {result.overdue}, "
        f"defaults {result.defaults}, reminders {result.reminders}"
    )


@main.command("digest")
def digest() -> None:
    """Send the weekly digest of new matches (每周推荐) now, to every enterprise that takes it.
    Repeating it within the same ISO week writes nothing twice; the worker then skips that week."""
    from marketplace.matching.push import run_digest

    run = _with_sessionmaker(run_digest)
    click.echo(
        f"digest {run.week}: {run.offers} new offers, {run.enterprises} enterprises, {run.messages} messages, "
        f"{run.emails} emails ({run.already} already had this week's) in {run.seconds:.1f} s"
    )


@main.command("create-admin")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, display_name: str, password: str) -> None:
    """Create a platform administrator (平台管理员)."""
    from marketplace.accounts.models import Role
    from marketplace.accounts.services import create_user, ensure_platform_organisation
    from marketplace.db import make_engine, make_sessionmaker
    from marketplace.errors import ValidationFailed

    async def _main() -> None:
        engine = make_engine(load_settings())
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                platform = await ensure_platform_organisation(session)
                await create_user(
                    session,
                    organisation=platform,
                    email=email,
                    display_name=display_name,
                    password=password,
                    role=Role.PLATFORM_ADMIN,
                )
        finally:
            await engine.dispose()

    try:
        asyncio.run(_main())
    except ValidationFailed as exc:
        for error in exc.errors:
            click.echo(f"{error.field}: {error.message}", err=True)
        raise SystemExit(2) from exc
    click.echo(f"平台管理员 {email} 已创建")


@main.group()
def demo() -> None:
    """Demonstration data."""


@demo.command("load")
@click.option("--seed", default=20261123, show_default=True)
def demo_load(seed: int) -> None:
    """Load demo organisations, users, patents and offers once (does nothing if already loaded)."""
    from marketplace.demo.loader import load_demo

    logins = asyncio.run(load_demo(load_settings(), seed=seed))
    if logins is None:
        click.echo("演示数据已存在，未重复导入。")
        logins_path = Path(load_settings().data_dir) / "demo-logins.txt"
        if logins_path.exists():
            click.echo(logins_path.read_text())
        return
    click.echo(logins)
