"""Catalogue search at national scale: keyword plus two facets through the JSON API, and the same
SQL run raw, so the application's overhead shows as a ratio."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
from sqlalchemy import event

from bench.report import Timing, time_async
from marketplace.app import create_app
from marketplace.db import make_engine
from marketplace.settings import load_settings

# Keyword + two facets, as a licensee would narrow a search.
QUERIES = (
    {"q": "石墨烯", "patent_type": "invention", "province": "31"},
    {"q": "锂电池", "payment_mode": "lump_sum", "min_trl": "6"},
    {"q": "图像识别", "ipc_section": "G", "max_upfront_fen": "5000000"},
    {"q": "负极 材料", "patent_type": "invention", "pay_after_use": "true"},
    {"q": "污水处理", "province": "44", "payment_mode": "free"},
    {"q": "机器人 控制方法", "ipc_class": "B25", "sort": "newest"},
)
RUNS_PER_QUERY = 30


async def run(label: str, url: str, patents: int) -> str:
    settings = replace(load_settings(), database_url=url, run_worker_in_process=False)
    app = create_app(settings)
    api: list[float] = []
    raw: list[float] = []
    hits: list[str] = []
    # httpx over the ASGI transport runs the app on this event loop; Litestar's test client would
    # hand every request to a portal thread and charge that hop to the application.
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for params in QUERIES:
            timing = await time_async(lambda p=params: _get(client, p), runs=RUNS_PER_QUERY)
            api.extend(timing.samples_ms)
            body = (await client.get("/api/v1/catalogue", params=params)).json()
            hits.append(f"`{params}` → {body['total']:,}")
        raw_engine = make_engine(settings)
        try:
            for params in QUERIES:
                statements = await _captured_sql(app, client, params)
                raw.extend(await _time_raw(raw_engine, statements))
        finally:
            await raw_engine.dispose()
    api_t, raw_t = Timing(api), Timing(raw)
    ratio = api_t.p50 / raw_t.p50 if raw_t.p50 else float("nan")
    verdict = "meets" if api_t.p95 <= 50 else "misses"
    return "\n".join(
        [
            f"### Catalogue search — {label}, {patents:,} catalogue entries",
            "",
            f"{len(QUERIES)} queries (keyword + two facets, first page with facet counts) × {RUNS_PER_QUERY} runs "
            "through `GET /api/v1/catalogue` in-process (httpx over ASGI on the same event loop, no network).",
            "",
            "| measure | p50 ms | p95 ms |",
            "|---|---|---|",
            f"| API request | {api_t.p50:.1f} | {api_t.p95:.1f} |",
            f"| the same SQL, raw | {raw_t.p50:.1f} | {raw_t.p95:.1f} |",
            "",
            f"Target p95 ≤ 50 ms: **{verdict}** ({api_t.p95:.1f} ms). Application overhead: API p50 / raw SQL p50 = "
            f"{ratio:.2f}×.",
            "",
            "Matches per query: " + "; ".join(hits),
        ]
    )


async def _get(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/api/v1/catalogue", params=params)
    response.raise_for_status()


async def _captured_sql(app, client: httpx.AsyncClient, params: dict[str, str]) -> list[tuple[str, object]]:
    """Every statement one API request sends to the database, with its parameters."""
    engine = app.state["sessionmaker"].kw["bind"]
    captured: list[tuple[str, object]] = []

    def _capture(conn, cursor, statement, parameters, context, executemany):
        # Transaction control (SQLite's explicit BEGIN) is the connection's business, not the query's.
        if statement.strip().upper() not in {"BEGIN", "COMMIT", "ROLLBACK"}:
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", _capture)
    try:
        await _get(client, params)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", _capture)
    return captured


async def _time_raw(engine, statements: list[tuple[str, object]]) -> list[float]:
    samples = []
    async with engine.connect() as conn:
        for _ in range(RUNS_PER_QUERY + 3):
            start = time.perf_counter()
            for statement, parameters in statements:
                result = await conn.exec_driver_sql(statement, parameters)
                if result.returns_rows:
                    result.fetchall()
            samples.append((time.perf_counter() - start) * 1000)
    return samples[3:]
