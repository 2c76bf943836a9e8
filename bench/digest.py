"""The weekly digest at national scale (issue 6): ``push.run_digest`` over all 460,000 enterprises of
the matching benchmark's database — total time and peak memory.

``python -m bench digest``: the matching benchmark's database (``bench.matching.prepare``: 680,000
published offers, 460,000 enterprises with interest profiles and one administrator each; generated
once and reused) is copied (``CREATE DATABASE … TEMPLATE``) for the run and dropped after it, so that
every run starts from the same state and the reused database is never written by a digest.

When the digest runs (``at``): the Monday 08:00 Asia/Shanghai — when the worker sends a week's digest
— at or after the moment the data was generated. The generator dates 2 % of the offers in the seven
days before that moment and the rest earlier; on the copy those recent offers (catalogue entries and
offers alike) are moved forward by the time from generation to ``at``, so the digest's window, the
seven days up to ``at``, holds exactly them, as a Monday's window holds a week's new offers. Every
profile's ``digest_through`` (generation − 7 days) lies before the window, as after last week's run.

In a process of its own (like the filing exports) the digest runs as in the worker: the modules
``marketplace worker`` imports, its GC tuning, the production chunk (``push.CHUNK`` enterprises per
transaction). Reported: wall time, CPU time, peak RSS (VmHWM), the time to load the week's offers,
the median and slowest chunk; then the rows it wrote, counted on the copy and checked against what
``run_digest`` reports. A run that sends nothing fails: it would measure nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
import traceback
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from bench.report import load_average, machine, rss_kb
from marketplace.clock import BUSINESS_TZ
from marketplace.matching import digest_rules, push
from marketplace.settings import PROJECT_ROOT

# bench.matching (the data generator and its vocabulary) is imported by the parent only, so that the
# digest process holds what the worker holds and nothing more.

HEADING = "### Weekly digest (issue 6)"
#: How many of the week's new offers a push is timed for.
PUSH_SAMPLE = 5
#: How many of the digest's e-mails the outbox is timed sending.
SEND_SAMPLE = 5_000
#: Rows the digest writes, counted on the copy before and after the run.
COUNTED = {
    "inbox_messages": "SELECT count(*) FROM inbox_messages",
    "outbox e-mails": "SELECT count(*) FROM outbox_messages WHERE kind = 'email'",
    "match_events": "SELECT count(*) FROM match_events",
}
TABLES = ("inbox_messages", "outbox_messages", "match_events")


def copy_name(source: str) -> str:
    return f"{source}_digest"


def monday_morning(after: datetime) -> datetime:
    """The first Monday ``digest_rules.DIGEST_START`` (Asia/Shanghai) at or after ``after``, in UTC."""
    local = after.astimezone(BUSINESS_TZ)
    day = local.date() + timedelta(days=-local.weekday() % 7)
    at = datetime.combine(day, digest_rules.DIGEST_START, BUSINESS_TZ)
    if at < local:
        at += timedelta(days=7)
    return at.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# ``python -m bench.digest URL AT``: the digest in its own process
# ---------------------------------------------------------------------------------------------


async def _digest_worker(url: str, at: datetime) -> dict[str, Any]:
    # What ``marketplace worker`` imports, so that the process's memory starts where the worker's does.
    import marketplace.billing.sweep
    import marketplace.evaluations.tiers
    import marketplace.filings.exports
    import marketplace.licensing.services
    import marketplace.matching.inventory  # noqa: F401
    from marketplace.db import make_engine, make_sessionmaker
    from marketplace.settings import load_settings

    # No SMTP server: the e-mails sent below go to the local mailbox (what is timed is the outbox's work).
    settings = replace(load_settings(), database_url=url, smtp_host="")
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    # What the run spends loading the week's offers, and on each chunk: the functions run_digest
    # calls, wrapped (they behave exactly as before).
    timings: dict[str, Any] = {"chunks": []}
    load_new_offers, digest_chunk = push.load_new_offers, push._digest_chunk

    async def timed_load(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        index = await load_new_offers(*args, **kwargs)
        timings["load_seconds"] = time.perf_counter() - started
        timings["rss_after_load_kb"] = rss_kb("VmRSS")
        return index

    async def timed_chunk(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        await digest_chunk(*args, **kwargs)
        timings["chunks"].append(time.perf_counter() - started)

    push.load_new_offers, push._digest_chunk = timed_load, timed_chunk  # type: ignore[assignment]
    rss_before = rss_kb("VmRSS")
    error = None
    run = None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    try:
        run = await push.run_digest(sessionmaker, settings, at=at)
    except Exception:
        error = traceback.format_exc()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak = rss_kb("VmHWM")
    pushes = await _push_scans(sessionmaker, at) if error is None else []
    sending = await _send_sample(sessionmaker, settings) if error is None else {}
    await engine.dispose()
    chunks = timings["chunks"]
    return {
        "pushes": pushes,
        "sending": sending,
        "error": error,
        "run": {**vars(run), "cutoff": run.cutoff.isoformat()} if run else None,
        "wall_seconds": wall,
        "cpu_seconds": (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime),
        "rss_before_kb": rss_before,
        "rss_after_load_kb": timings.get("rss_after_load_kb", 0),
        "peak_rss_kb": peak,
        "load_seconds": timings.get("load_seconds", 0.0),
        "chunk_p50_seconds": statistics.median(chunks) if chunks else 0.0,
        "chunk_max_seconds": max(chunks, default=0.0),
    }


async def _push_scans(sessionmaker: Any, at: datetime) -> list[dict[str, float]]:
    """A licensor's push over the same enterprises: ``push.push_recipients`` (what the worker does
    before it writes the messages) for PUSH_SAMPLE of the week's new offers, spread over their ids."""
    from marketplace.catalogue.models import CatalogueEntry

    entries = CatalogueEntry.__table__
    async with sessionmaker() as session:
        recent = list(
            await session.execute(
                select(entries).where(entries.c.published_at > at - timedelta(days=7)).order_by(entries.c.id)
            )
        )
    chosen = recent[:: max(1, len(recent) // PUSH_SAMPLE)][:PUSH_SAMPLE]
    scans = []
    for entry in chosen:
        async with sessionmaker() as session:
            started = time.perf_counter()
            recipients = await push.push_recipients(session, entry)
            scans.append({"seconds": time.perf_counter() - started, "recipients": len(recipients)})
    return scans


async def _send_sample(sessionmaker: Any, settings: Any) -> dict[str, float]:
    """The worker's outbox passes (``drain_once``, 50 messages each) over the first SEND_SAMPLE of the
    digest's e-mails, delivered to the local mailbox: the outbox's own cost per e-mail, without an SMTP
    server's."""
    from marketplace.outbox import services as outbox

    sent = 0
    started = time.perf_counter()
    while sent < SEND_SAMPLE:
        done = await outbox.drain_once(sessionmaker, settings)
        if not done:
            break
        sent += done
    return {"emails": sent, "seconds": time.perf_counter() - started}


def _worker_main() -> None:
    from marketplace.runtime import tune_gc

    tune_gc()  # as ``marketplace worker`` does
    parser = argparse.ArgumentParser(prog="python -m bench.digest")
    parser.add_argument("url")
    parser.add_argument("at", type=datetime.fromisoformat)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_digest_worker(args.url, args.at))), flush=True)


async def _run_process(url: str, at: datetime) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.digest",
        url,
        at.isoformat(),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stdout, _ = await process.communicate()
    lines = [line for line in stdout.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"the digest process exited with {process.returncode}: {stdout.decode()[-2000:]}")
    report = json.loads(lines[-1])
    if report["error"]:
        raise SystemExit(f"the digest failed:\n{report['error']}")
    return report


# ---------------------------------------------------------------------------------------------
# The copy of the matching database
# ---------------------------------------------------------------------------------------------


async def _admin(server_url: str, *statements: str) -> None:
    admin = create_async_engine(make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def _copy_database(server_url: str, source: str) -> str:
    """A fresh copy of the matching database. FILE_COPY copies its files (after a checkpoint) instead
    of writing every page through shared buffers and the WAL, as the default strategy would."""
    name = copy_name(source)
    try:
        await _admin(
            server_url,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" TEMPLATE "{source}" STRATEGY FILE_COPY',
        )
    except DBAPIError as error:
        if "being accessed by other users" in str(error):
            raise SystemExit(
                f"{source} cannot be copied while other sessions are connected to it (PostgreSQL refuses): "
                "wait for them to finish, e.g. another benchmark on it"
            ) from error
        raise
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def _scalars(url: str, statements: dict[str, str]) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {key: await conn.scalar(text(sql)) for key, sql in statements.items()}
    finally:
        await engine.dispose()


async def _generated_at(url: str) -> datetime:
    """When the data was generated: every generated row carries that moment as ``created_at``."""
    found = await _scalars(url, {"at": "SELECT created_at FROM organisations WHERE id = 1"})
    return found["at"]


async def _move_recent_offers(url: str, generated_at: datetime, at: datetime) -> int:
    """Move the offers published in the seven days before generation forward to the seven days
    before ``at``; returns how many."""
    engine = create_async_engine(url)
    since = generated_at - digest_rules.DIGEST_WINDOW
    values = {"shift": at - generated_at, "since": since}
    try:
        async with engine.begin() as conn:
            moved = await conn.execute(
                text(
                    "UPDATE catalogue_entries SET published_at = published_at + :shift, updated_at = now() "
                    "WHERE published_at > :since"
                ),
                values,
            )
            await conn.execute(
                text(
                    "UPDATE open_licence_offers SET published_at = published_at + :shift, "
                    "announcement_date = ((published_at + :shift) AT TIME ZONE 'UTC')::date, updated_at = now() "
                    "WHERE status = 'published' AND published_at > :since"
                ),
                values,
            )
        return moved.rowcount
    finally:
        await engine.dispose()


async def _counts(url: str, at: datetime) -> dict[str, Any]:
    statements = {
        **COUNTED,
        "profiles moved on": (
            f"SELECT count(*) FROM interest_profiles WHERE digest_through = '{at.isoformat()}'::timestamptz"
        ),
        "audit records": "SELECT count(*) FROM audit_records WHERE entity_type = 'weekly_digest'",
        **{f"bytes {table}": f"SELECT pg_total_relation_size('{table}')" for table in TABLES},
        "users": "SELECT count(*) FROM users WHERE is_active AND email_confirmed_at IS NOT NULL",
    }
    return await _scalars(url, statements)


# ---------------------------------------------------------------------------------------------
# The run and its report
# ---------------------------------------------------------------------------------------------


def _mib(kb: float) -> str:
    return f"{kb / 1024:,.0f} MiB"


def _local(at: datetime) -> str:
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")


def render(
    matching: ModuleType,
    report: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    server: str,
    at: datetime,
    generated_at: datetime,
    moved: int,
    load_before: str,
    load_after: str,
    reused: bool,
) -> str:
    run = report["run"]
    written = {key: after[key] - before[key] for key in (*COUNTED, "profiles moved on", "audit records")}
    grown = sum(after[f"bytes {t}"] - before[f"bytes {t}"] for t in TABLES) / 1024 / 1024
    wall = report["wall_seconds"]
    per_thousand = wall * 1000 / max(1, run["enterprises"]) * 1000
    # The rows counted on the copy against what run_digest says it wrote.
    reported = {"inbox_messages": run["messages"], "outbox e-mails": run["emails"], "match_events": run["events"]}

    def rows(key: str) -> str:
        found = f"{written[key]:,}"
        if key in reported and written[key] != reported[key]:
            return f"{found} (MISMATCH: run_digest reported {reported[key]:,})"
        return found

    made = "reused from an earlier run" if reused else "generated for this run"
    return "\n".join(
        [
            HEADING,
            "",
            f"`python -m bench digest` on {datetime.now().strftime('%Y-%m-%d %H:%M')} ({machine()}; {server}); "
            f"load average {load_before} before and {load_after} after the run (1, 5, 15 min; the 2 cores are "
            "shared with other work).",
            "",
            f"Data: the matching benchmark's database ({made}, generator v{matching.GENERATOR}: "
            f"{matching.ENTRIES:,} published offers, {matching.ENTERPRISES:,} enterprises with interest "
            f"profiles, 90 % of them subscribed to the digest, {before['users']:,} administrators with confirmed "
            "addresses, one per enterprise), copied for the run and dropped after it. The digest runs at "
            f"**{_local(at)} Asia/Shanghai** (a Monday, when the worker sends it): the first Monday morning "
            f"after the data was generated ({_local(generated_at)}); on the copy the {moved:,} offers dated in "
            "the seven days before generation (about 2 %) were moved forward by the same "
            f"{(at - generated_at).total_seconds() / 3600:.1f} h, so the digest's seven-day window holds exactly "
            "them.",
            "",
            f"Measured: `push.run_digest(sessionmaker, settings, at=…)` in a process of its own, "
            f"{push.CHUNK:,} enterprises per transaction (the production default), with the worker's imports "
            "and GC tuning; then the rows written, counted on the copy.",
            "",
            "| | |",
            "|---|---:|",
            f"| enterprises taking the digest | {run['enterprises']:,} |",
            f"| new offers in the window | {run['offers']:,} |",
            f"| inbox messages written | {run['messages']:,} |",
            f"| e-mails queued | {run['emails']:,} |",
            f"| chunks (transactions) | {run['chunks']:,} |",
            f"| enterprises that had this week's digest already | {run['already']:,} |",
            f"| **wall time** | **{wall:,.1f} s** ({per_thousand:.0f} ms per 1,000 enterprises) |",
            f"| CPU time of the digest process | {report['cpu_seconds']:,.1f} s (the rest: PostgreSQL, waiting) |",
            f"| loading the window's offers and indexing them | {report['load_seconds']:.1f} s |",
            f"| chunk p50 / slowest | {report['chunk_p50_seconds']:.2f} s / {report['chunk_max_seconds']:.2f} s |",
            f"| **peak RSS (VmHWM)** | **{_mib(report['peak_rss_kb'])}** |",
            f"| RSS before the run (application loaded) / after loading the offers | "
            f"{_mib(report['rss_before_kb'])} / {_mib(report['rss_after_load_kb'])} |",
            f"| rows written: inbox_messages | {rows('inbox_messages')} |",
            f"| rows written: outbox_messages (e-mails) | {rows('outbox e-mails')} |",
            f"| rows written: match_events (`shown`, channel digest) | {rows('match_events')} |",
            f"| profiles whose `digest_through` moved on | {rows('profiles moved on')} |",
            f"| growth of those three tables | {grown:,.0f} MiB |",
            "",
            f"Enterprises with nothing new that matches get no message ({run['enterprises'] - run['messages']:,} "
            "here); each message lists at most "
            f"{digest_rules.DIGEST_SIZE} offers, each with a `shown` event.",
            *_push_lines(report["pushes"]),
            *_sending_lines(report["sending"], run["emails"]),
        ]
    )


def _push_lines(pushes: list[dict[str, float]]) -> list[str]:
    if not pushes:
        return []
    seconds = [scan["seconds"] for scan in pushes]
    recipients = sorted(int(scan["recipients"]) for scan in pushes)
    return [
        "",
        f"A licensor's push, in the same process after the digest: `push.push_recipients` (scoring every "
        f"enterprise that takes pushes against the offer, keeping the best {digest_rules.PUSH_RECIPIENTS}) for "
        f"{len(pushes)} of the week's new offers took p50 {statistics.median(seconds):.1f} s, slowest "
        f"{max(seconds):.1f} s, and found {recipients[0]}–{recipients[-1]} recipients. The worker does this once per "
        "push (at most 5 per licensor in 7 days), before it writes the messages.",
    ]


def _sending_lines(sending: dict[str, float], queued: int) -> list[str]:
    if not sending.get("emails"):
        return []
    per_email = sending["seconds"] / sending["emails"]
    return [
        "",
        f"Sending: the worker's outbox passes delivered the first {int(sending['emails']):,} of the e-mails to "
        f"the local mailbox in {sending['seconds']:.1f} s ({per_email * 1000:.1f} ms each, one transaction per "
        f"e-mail); at that rate the week's {queued:,} take {queued * per_email / 3600:.1f} h, plus whatever the "
        "SMTP server takes per message (the worker opens one connection per e-mail).",
    ]


async def run(server_url: str) -> str:
    from bench import matching

    source, generated = await matching.prepare(server_url)
    generated_at = await _generated_at(source)
    at = monday_morning(generated_at)
    server = await matching.server_description(source)
    name = matching.database_name()
    print(f"copying {name} to {copy_name(name)} …", flush=True)
    url = await _copy_database(server_url, name)
    try:
        moved = await _move_recent_offers(url, generated_at, at)
        before = await _counts(url, at)
        print(f"digest at {_local(at)} Asia/Shanghai over {moved:,} new offers …", flush=True)
        load_before = load_average()
        report = await _run_process(url, at)
        load_after = load_average()
        after = await _counts(url, at)
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{copy_name(name)}" WITH (FORCE)')
    digest = report["run"]
    print(
        f"{digest['enterprises']:,} enterprises, {digest['messages']:,} messages, {digest['emails']:,} e-mails in "
        f"{report['wall_seconds']:.1f} s, peak {_mib(report['peak_rss_kb'])}",
        flush=True,
    )
    if not digest["messages"] or not digest["emails"]:
        raise SystemExit(f"the digest sent nothing ({digest}): there is nothing to report")
    return render(
        matching,
        report,
        before,
        after,
        server=server,
        at=at,
        generated_at=generated_at,
        moved=moved,
        load_before=load_before,
        load_after=load_after,
        reused=generated is None,
    )


if __name__ == "__main__":
    _worker_main()
