"""Filing export benchmark (issue 5): 150,000 contracts exported to the licence filing as CSV and as
XLSX on PostgreSQL — seconds and peak memory — and the same exports over a third of the contracts,
to show that peak memory does not grow with the count.

``python -m bench exports``: a fresh database is filled with the billing benchmark's contract book
(``bench.billing.seed``: real snapshots and plans of every payment mode), every contract is put in
force, and one refresh opens the filings (timed on its own: it runs hourly in production). Then, on a
copy of that database per run, a process of its own creates an export batch the way the API does and
renders it the way the worker does: wall time, peak RSS (VmHWM), file size, and checks that the file
has one row per contract and the SHA-256 the batch recorded.

BENCH_EXPORT_CONTRACTS lowers the size for a quick look. PostgreSQL comes from BENCH_POSTGRES_URL
when set (e.g. the dev server), else the bench cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import resource
import sys
import time
import traceback
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from bench.accept import _migrate, _recreate
from bench.billing import SWEEP_MIX, _dsn, _pg_where, seed
from bench.report import machine, rss_kb
from marketplace.clock import today
from marketplace.db import make_engine, make_sessionmaker
from marketplace.settings import PROJECT_ROOT, load_settings

CONTRACTS = int(os.environ.get("BENCH_EXPORT_CONTRACTS", "150000"))
SEED_DATABASE = "bench_filings_seed"
HEADING = "### Filing exports (issue 5)"
TARGET_SECONDS = 30


async def _admin_user(url: str) -> int:
    """A platform admin to make the exports (the seed has none)."""
    from marketplace.accounts.models import Role
    from marketplace.accounts.services import create_user, ensure_platform_organisation

    engine = create_async_engine(url)
    async with make_sessionmaker(engine)() as session, session.begin():
        platform = await ensure_platform_organisation(session)
        user = await create_user(
            session,
            organisation=platform,
            email="bench-admin@platform.example.cn",
            display_name="基准管理员",
            password="bench-password-1",
            role=Role.PLATFORM_ADMIN,
        )
        user_id = user.id
    await engine.dispose()
    return user_id


async def _in_force(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            "UPDATE licence_contracts SET status = 'active', activated_at = coalesce(activated_at, now()) "
            "WHERE status = 'awaiting_payment'"
        )
    finally:
        await conn.close()


async def _keep_a_third(url: str) -> int:
    """Leave a third of the filings exportable (the rest need no filing), for the memory comparison."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute("UPDATE contract_filings SET status = 'not_required' WHERE contract_id % 3 <> 0")
        return await conn.fetchval(
            "SELECT count(*) FROM contract_filings WHERE registry = 'licence_filing' AND status = 'due'"
        )
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# ``python -m bench.filings refresh URL`` / ``export URL FORMAT USER``: one step in its own process
# ---------------------------------------------------------------------------------------------


async def _refresh_worker(url: str) -> dict[str, Any]:
    from marketplace.filings import services as filings

    settings = replace(load_settings(), database_url=url)
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    started = time.perf_counter()
    async with sessionmaker() as session, session.begin():
        result = await filings.refresh(session, settings)
    seconds = time.perf_counter() - started
    await engine.dispose()
    return {"seconds": seconds, "peak_rss_kb": rss_kb("VmHWM"), "result": vars(result)}


async def _export_worker(url: str, file_format: str, user_id: int) -> dict[str, Any]:
    from marketplace.accounts.models import User
    from marketplace.accounts.services import principal_for
    from marketplace.filings import exports, sheets
    from marketplace.filings.models import FilingBatch

    # The XLSX writer process reports its own peak memory when it finishes.
    writer_peaks: list[int] = []
    finish = sheets.XlsxProcess.finish

    async def finish_and_note(self: sheets.XlsxProcess) -> None:
        await finish(self)
        writer_peaks.append(self.peak_rss_kb or 0)

    sheets.XlsxProcess.finish = finish_and_note  # type: ignore[method-assign]
    settings = replace(load_settings(), database_url=url)
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    rss_before = rss_kb("VmRSS")
    error = None
    created = rendered = 0.0
    batch_id = None
    try:
        started = time.perf_counter()
        async with sessionmaker() as session, session.begin():
            actor = principal_for(await session.get(User, user_id))
            batch = await exports.create_batch(session, actor, registry="licence_filing", file_format=file_format)
            batch_id = batch.id
        created = time.perf_counter() - started
        # What the worker's ``filings.render_batch`` handler does (the outbox also holds the deadline
        # mails the refresh queued, which are not the export's work).
        started = time.perf_counter()
        async with sessionmaker() as session, session.begin():
            await exports.render_batch(session, settings, batch_id)
        rendered = time.perf_counter() - started
    except Exception:
        error = traceback.format_exc()
    peak = rss_kb("VmHWM")
    report: dict[str, Any] = {
        "format": file_format,
        "create_seconds": created,
        "render_seconds": rendered,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        # The XLSX writer process; 0 for CSV (written in the export's own process).
        "child_maxrss_kb": max(writer_peaks, default=0),
        "error": error,
    }
    if batch_id is not None and error is None:
        async with sessionmaker() as session:
            batch = await session.scalar(select(FilingBatch).where(FilingBatch.id == batch_id))
            report |= {
                "status": batch.status.value,
                "contracts": batch.contract_count,
                "held_back": batch.held_back_count,
                "sha256": batch.sha256,
                "size_bytes": batch.size_bytes,
                "path": str(settings.upload_dir / batch.sha256) if batch.sha256 else None,
            }
    await engine.dispose()
    return report


def _worker_main() -> None:
    from marketplace.runtime import tune_gc

    tune_gc()  # as ``marketplace worker`` does
    parser = argparse.ArgumentParser(prog="python -m bench.filings")
    parser.add_argument("command", choices=["refresh", "export"])
    parser.add_argument("url")
    parser.add_argument("format", nargs="?")
    parser.add_argument("user", nargs="?", type=int)
    args = parser.parse_args()
    if args.command == "refresh":
        report = asyncio.run(_refresh_worker(args.url))
    else:
        report = asyncio.run(_export_worker(args.url, args.format, args.user))
    print(json.dumps(report), flush=True)


async def _run_process(*args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.filings", *args]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    stdout, _ = await process.communicate()
    lines = [line for line in stdout.decode().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(args[:1])} exited with {process.returncode}: {stdout.decode()[-2000:]}")
    report = json.loads(lines[-1])
    if report.get("error"):
        raise SystemExit(f"{args[0]} failed:\n{report['error']}")
    return report


# ---------------------------------------------------------------------------------------------
# Checking the files
# ---------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_rows(path: Path, file_format: str) -> int:
    if file_format == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return sum(1 for _ in csv.reader(handle)) - 1
    with zipfile.ZipFile(path) as archive, archive.open("xl/worksheets/sheet1.xml") as sheet:
        return sum(chunk.count(b"<row") for chunk in iter(lambda: sheet.read(1 << 20), b"")) - 1


def _check(report: dict[str, Any]) -> dict[str, Any]:
    path = Path(report["path"])
    report["sha256_ok"] = _sha256(path) == report["sha256"]
    report["file_rows"] = _data_rows(path, report["format"])
    return report


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


async def _export_on_copy(server_url: str, name: str, file_format: str, user_id: int, *, third: bool) -> dict:
    url = await _recreate(server_url, name, template=SEED_DATABASE)
    exportable = await _keep_a_third(url) if third else None
    report = await _run_process("export", url, file_format, str(user_id))
    report["exportable"] = exportable
    print(
        f"{file_format}{' (a third)' if third else ''}: create {report['create_seconds']:.1f} s, render "
        f"{report['render_seconds']:.1f} s, {report['contracts']:,} contracts, peak {_mib(report['peak_rss_kb'])}",
        flush=True,
    )
    return _check(report)


def _mib(kb: float) -> str:
    return f"{kb / 1024:.0f} MiB"


def render(seed_seconds: float, refresh: dict[str, Any], runs: list[dict[str, Any]], on: date) -> str:
    full = [r for r in runs if r["exportable"] is None]
    thirds = [r for r in runs if r["exportable"] is not None]
    lines = [
        HEADING,
        "",
        f"`python -m bench exports` on {on.isoformat()} ({machine()}; {_pg_where()}). "
        f"{CONTRACTS:,} licence contracts of every payment mode (the billing benchmark's contract book, seeded "
        f"in {seed_seconds:.0f} s), all in force. Each export runs in a process of its own on a fresh copy of "
        "that database: the batch is created as `POST /api/v1/filing-exports` creates it, then the worker "
        "renders it (sync the filings' states, select and lock the due filings in chunks, build each row, write items, "
        "move "
        "each filing to exported with its audit record, stream the file to disk, hash it, store it).",
        "",
        f"The refresh that opens the {2 * CONTRACTS:,} filings (one per contract and registry; it runs hourly, "
        f"so in production it opens each contract's filings once, soon after acceptance) took "
        f"**{refresh['seconds']:.1f} s**, peak RSS {_mib(refresh['peak_rss_kb'])}.",
        "",
        "| export | contracts | create | render | total | target | peak RSS | writer process | file | rows in file "
        "| SHA-256 |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for run in full + thirds:
        total = run["create_seconds"] + run["render_seconds"]
        target = f"≤ {TARGET_SECONDS} s: {'met' if total <= TARGET_SECONDS else 'missed'}" if run in full else "—"
        lines.append(
            f"| {run['format'].upper()}{' (a third)' if run in thirds else ''} | {run['contracts']:,} | "
            f"{run['create_seconds']:.2f} s | {run['render_seconds']:.1f} s | **{total:.1f} s** | {target} | "
            f"{_mib(run['peak_rss_kb'])} | {_mib(run['child_maxrss_kb']) if run['child_maxrss_kb'] else '—'} | "
            f"{run['size_bytes'] / 1024 / 1024:.1f} MiB | {run['file_rows']:,} | "
            f"{'matches the batch' if run['sha256_ok'] else 'MISMATCH'} |"
        )
    lines += [
        "",
        "Where the time goes (profiled on 2026-12-04, CSV): about 14 s of CPU in the export process (reading "
        "and decoding the contracts' rows and snapshots, building the file rows and the items) and about 13 s "
        "in PostgreSQL (the chunk queries 4 s, the `UPDATE`s 3.5 s, the items' `COPY` 3.4 s, the audit "
        "`INSERT … SELECT` 2.5 s), mostly one after the other. An XLSX export adds the writer process "
        "(XlsxWriter, about 17 s of CPU for 150,000 rows, then a few seconds compressing the sheet at the "
        "end); it runs beside the export, but on this 2-core machine the three processes share two cores. "
        "Peak RSS of the export process is reached while loading the application and stays there.",
        "",
    ]
    for file_format in ("csv", "xlsx"):
        big = next((r for r in full if r["format"] == file_format), None)
        small = next((r for r in thirds if r["format"] == file_format), None)
        if big and small:
            lines.append(
                f"- {file_format.upper()}: peak RSS {_mib(small['peak_rss_kb'])} for {small['contracts']:,} contracts "
                f"and {_mib(big['peak_rss_kb'])} for {big['contracts']:,} "
                f"({big['peak_rss_kb'] / small['peak_rss_kb']:.2f}× the memory for "
                f"{big['contracts'] / max(1, small['contracts']):.1f}× the contracts)"
                + (
                    f"; the writer process {_mib(small['child_maxrss_kb'])} and {_mib(big['child_maxrss_kb'])}."
                    if big["child_maxrss_kb"]
                    else "."
                )
            )
    return "\n".join(lines)


async def run(server_url: str) -> str:
    on = today()
    url = await _recreate(server_url, SEED_DATABASE)
    _migrate(url)
    print(f"seeding {CONTRACTS:,} contracts into {SEED_DATABASE} …", flush=True)
    seeded = await seed(url, CONTRACTS, SWEEP_MIX, on)
    await _in_force(url)
    user_id = await _admin_user(url)
    print(f"seeded in {seeded.seconds:.0f} s; refreshing …", flush=True)
    refresh = await _run_process("refresh", url)
    print(f"refresh {refresh['seconds']:.1f} s: {refresh['result']}", flush=True)
    runs = []
    for third in (False, True):
        for file_format in ("csv", "xlsx"):
            name = f"bench_filings_{file_format}{'_third' if third else ''}"
            runs.append(await _export_on_copy(server_url, name, file_format, user_id, third=third))
    return render(seeded.seconds, refresh, runs, on)


if __name__ == "__main__":
    _worker_main()
