"""Taking open licences through the JSON API under load (issue 3).

A real uvicorn server process (1 and 2 workers) on loopback, PostgreSQL behind it, and 50
concurrent API clients, each request an enterprise taking the licence of an offer it does not hold
yet (``POST /api/v1/offers/{id}/accept`` with a bearer token). Mixed in: replays of earlier
idempotency keys (must answer 200 with the same contract), new keys for a licence already held (must
answer 409 ``already_licensed``), and a few pairs of requests fired at the same moment for the same
enterprise and offer (one contract, never two). Afterwards SQL checks that every contract has
exactly its notice, its audit record and a gapless number, and no licence is held twice.

Sizes can be lowered for a quick look: BENCH_ACCEPTANCES, BENCH_ENTERPRISES, BENCH_OFFERS;
BENCH_ACCEPT_WORKERS lists the server worker counts to measure (default ``1,2``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from stdnum.cn import uscc as stdnum_uscc

import marketplace.models  # noqa: F401  (every mapped class, so relationships resolve)
from bench.report import machine
from marketplace.accounts.models import (
    EnterpriseSize,
    Organisation,
    OrganisationKind,
    Role,
    User,
    VerificationStatus,
)
from marketplace.accounts.services import create_api_token, hash_password, principal_for
from marketplace.clock import now_utc, today
from marketplace.db import make_engine, make_sessionmaker
from marketplace.offers import rules as offer_rules
from marketplace.offers.models import OfferStatus, OpenLicenceOffer
from marketplace.patents.models import LegalStatus, Patent, PatentType
from marketplace.patents.rules import canonical_application_number
from marketplace.settings import PROJECT_ROOT, load_settings

ACCEPTANCES = int(os.environ.get("BENCH_ACCEPTANCES", "5000"))
ENTERPRISES = int(os.environ.get("BENCH_ENTERPRISES", "2000"))
OFFERS = int(os.environ.get("BENCH_OFFERS", "200"))
WORKER_COUNTS = tuple(int(n) for n in os.environ.get("BENCH_ACCEPT_WORKERS", "1,2").split(",") if n.strip())
LICENSORS = 4
CLIENTS = 50
WARMUP = 250
REPLAY_SHARE = 0.05
CONFLICT_SHARE = 0.02
#: Share of new pairs sent as two simultaneous requests (half with one key, half with two keys).
RACE_SHARE = 0.01
TARGET_PER_SECOND = 200
SEED_DATABASE = "bench_accept_seed"
BODY = {
    "intended_field_of_use": "用于本公司储能电池热管理模组的生产",
    "signatory_name": "王经理",
    "signatory_title": "总经理",
}
DIVISIONS = ("110108", "310104", "440305", "320102", "330106", "420111", "510107", "610113")

# Mixed payment modes, as licensors publish them (weights roughly as in the demo catalogue).
FEE_TERMS = (
    ({"mode": "free"}, 25),
    ({"mode": "lump_sum", "amount_fen": 5_000_000, "due_days": 30}, 30),
    ({"mode": "instalments", "total_fen": 9_000_000, "count": 3, "interval_months": 6, "first_due_days": 30}, 10),
    (
        {
            "mode": "royalty",
            "base": "sales",
            "rate": "0.035",
            "rate_schedule": "fixed",
            "reporting_period": "quarterly",
            "annual_minimum_fen": 2_000_000,
            "cap_fen": None,
        },
        15,
    ),
    (
        {
            "mode": "pay_after_use",
            "deferral": "months",
            "deferral_months": 12,
            "then": {"mode": "lump_sum", "amount_fen": 3_000_000, "due_days": 30},
        },
        20,
    ),
)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def _uscc(serial: int, kind_digits: str) -> str:
    body = f"{kind_digits}{DIVISIONS[serial % len(DIVISIONS)]}{serial:09d}"[:17]
    return body + stdnum_uscc.calc_check_digit(body)


async def _recreate(server_url: str, name: str, *, template: str = "template0") -> str:
    base = make_url(server_url)
    admin = create_async_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE "{template}"'))
    await admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "marketplace", "db", "upgrade"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class Seeded:
    tokens: list[str]
    offer_ids: list[int]
    modes: Counter[str]


async def seed(url: str) -> Seeded:
    """Licensor universities with published offers in mixed payment modes, and verified enterprises
    each with a confirmed administrator and an API token (made by ``create_api_token``)."""
    rng = random.Random(3)
    engine = make_engine(replace(load_settings(), database_url=url))
    sessionmaker = make_sessionmaker(engine)
    password_hash = hash_password("bench-password-1")  # argon2 once, shared by every bench user
    now = now_utc()
    modes: Counter[str] = Counter()
    async with sessionmaker() as session:
        licensors = [
            Organisation(
                name=f"基准测试大学{i + 1}",
                kind=OrganisationKind.UNIVERSITY,
                uscc=_uscc(i + 1, "12"),
                division_code=DIVISIONS[i % len(DIVISIONS)],
                address="北京市海淀区学院路1号",
                contact_name="技术转移中心",
                contact_email=f"ttc{i + 1}@university.example.cn",
                contact_phone="010-62750000",
                verification_status=VerificationStatus.VERIFIED,
                verified_at=now,
            )
            for i in range(LICENSORS)
        ]
        enterprises = [
            Organisation(
                name=f"基准测试科技有限公司{i + 1:05d}",
                kind=OrganisationKind.ENTERPRISE,
                uscc=_uscc(100_000 + i, "91"),
                division_code=DIVISIONS[i % len(DIVISIONS)],
                address="上海市徐汇区漕河泾开发区",
                contact_name="法务部",
                contact_email=f"legal{i + 1}@enterprise.example.cn",
                contact_phone="021-64850000",
                enterprise_size=rng.choice(list(EnterpriseSize)),
                industry_code="C",
                verification_status=VerificationStatus.VERIFIED,
                verified_at=now,
            )
            for i in range(ENTERPRISES)
        ]
        session.add_all([*licensors, *enterprises])
        await session.flush()
        users = [
            User(
                organisation=organisation,
                email=f"admin@{'university' if organisation.kind is OrganisationKind.UNIVERSITY else 'enterprise'}"
                f"{organisation.id}.example.cn",
                display_name="基准测试管理员",
                password_hash=password_hash,
                role=Role.ORG_ADMIN,
                email_confirmed_at=now,
            )
            for organisation in [*licensors, *enterprises]
        ]
        session.add_all(users)
        await session.flush()
        patents = []
        for i in range(OFFERS):
            licensor = licensors[i % LICENSORS]
            filing = date(rng.randrange(2012, 2023), rng.randrange(1, 13), rng.randrange(1, 29))
            patents.append(
                Patent(
                    application_number=canonical_application_number(f"{filing.year}1{500_000 + i:07d}"),
                    patent_type=PatentType.INVENTION,
                    title=f"一种高导热复合相变储能材料及其制备方法（基准{i + 1}）",
                    abstract="本发明公开了一种复合相变储能材料，导热系数高，适用于电池热管理。",
                    owner_organisation_id=licensor.id,
                    filing_date=filing,
                    grant_date=filing + timedelta(days=900),
                    expiry_date=date(filing.year + 20, filing.month, filing.day) - timedelta(days=1),
                    legal_status=LegalStatus.GRANTED,
                    annual_fee_paid_until=today() + timedelta(days=200),
                    ipc_main="C09K5/06",
                    trl=6,
                )
            )
        session.add_all(patents)
        await session.flush()
        offers = []
        for i, patent in enumerate(patents):
            raw = rng.choices([t for t, _ in FEE_TERMS], weights=[w for _, w in FEE_TERMS])[0]
            terms = offer_rules.terms_from_json(raw)
            modes[terms.mode] += 1
            offers.append(
                OpenLicenceOffer(
                    series_id=str(uuid.UUID(int=rng.getrandbits(128))),
                    version=1,
                    patent_id=patent.id,
                    licensor_organisation_id=patent.owner_organisation_id,
                    status=OfferStatus.PUBLISHED,
                    payment_mode=terms.mode,
                    pay_after_use=offer_rules.is_pay_after_use(terms),
                    fee_terms=terms.to_json(),
                    upfront_cost_fen=offer_rules.upfront_cost_fen(terms),
                    licence_term_months=36,
                    territory="中国大陆",
                    field_of_use="储能设备",
                    other_terms="",
                    announcement_number=f"CN-OL-BENCH-{i + 1:05d}",
                    announcement_date=today(),
                    submitted_at=now,
                    published_at=now,
                )
            )
        session.add_all(offers)
        await session.flush()
        tokens = []
        for user in users[LICENSORS:]:
            raw_token, _ = await create_api_token(session, actor=principal_for(user, via="web"), name="基准测试")
            tokens.append(raw_token)
        offer_ids = [offer.id for offer in offers]
        await session.commit()
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
    await engine.dispose()
    return Seeded(tokens=tokens, offer_ids=offer_ids, modes=modes)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def app_server(database_url: str, workers: int) -> Iterator[tuple[str, subprocess.Popen]]:
    """``uvicorn`` as ``marketplace run`` starts it (the factory, proxy headers), with N workers,
    the outbox worker out of process and no access log."""
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="bench-accept-")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RUN_WORKER_IN_PROCESS": "0",
        "DATA_DIR": data_dir,
        "SECRET_KEY": "bench-" + uuid.uuid4().hex,
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "marketplace.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--proxy-headers",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def wait_ready(base_url: str, server: subprocess.Popen, workers: int) -> None:
    """Poll until the server answers and every worker process is up (90 s at most)."""
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode} before it was ready")
            try:
                response = await client.get("/api/v1/contracts")
                if response.status_code == 401 and (workers == 1 or len(_children(server.pid)) >= workers):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not become ready in time")
            await asyncio.sleep(0.2)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _postmaster_pid() -> int | None:
    if os.environ.get("BENCH_POSTGRES_URL", "").strip():
        return None
    pid_file = PROJECT_ROOT / "bench" / "data" / "postgres" / "data" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class CpuMeter:
    """CPU seconds used by the server processes, the PostgreSQL backends and this load generator."""

    server_pid: int
    start: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        postmaster = _postmaster_pid()
        return {
            "server": _cpu_seconds([self.server_pid, *_children(self.server_pid)]),
            "postgres": _cpu_seconds([postmaster, *_children(postmaster)]) if postmaster else float("nan"),
            "client": time.process_time(),
        }

    def begin(self) -> None:
        self.start = self._now()

    def used(self) -> dict[str, float]:
        end = self._now()
        return {key: end[key] - self.start[key] for key in end}


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------


@dataclass
class Job:
    kind: str  # new | replay | conflict | race_same_key | race_new_key
    token: str
    offer_id: int
    key: str
    expect_contract: int | None = None


@dataclass
class Outcome:
    kind: str
    status: int
    ms: float
    ok: bool
    contract_id: int | None = None
    detail: str = ""


@dataclass
class Load:
    """The jobs one phase sends: new pairs in order, with follow-ups queued as originals succeed."""

    pairs: list[tuple[int, int]]
    seeded: Seeded
    rng: random.Random
    follow_ups: deque[Job] = field(default_factory=deque)
    position: int = 0
    mixed: bool = True

    def next(self) -> Job | None:
        if self.follow_ups:
            return self.follow_ups.popleft()
        if self.position >= len(self.pairs):
            return None
        enterprise, offer = self.pairs[self.position]
        self.position += 1
        kind = "new"
        if self.mixed and self.rng.random() < RACE_SHARE:
            kind = self.rng.choice(("race_same_key", "race_new_key"))
        return Job(
            kind,
            self.seeded.tokens[enterprise],
            self.seeded.offer_ids[offer],
            uuid.uuid4().hex,
        )

    def created(self, job: Job, contract_id: int) -> None:
        if not self.mixed:
            return
        roll = self.rng.random()
        if roll < REPLAY_SHARE:
            self.follow_ups.append(replace(job, kind="replay", expect_contract=contract_id))
        elif roll < REPLAY_SHARE + CONFLICT_SHARE:
            self.follow_ups.append(replace(job, kind="conflict", key=uuid.uuid4().hex))


async def _post(client: httpx.AsyncClient, job: Job, key: str) -> tuple[int, dict[str, Any], float]:
    start = time.perf_counter()
    try:
        response = await client.post(
            f"/api/v1/offers/{job.offer_id}/accept",
            json={**BODY, "idempotency_key": key},
            headers={"Authorization": f"Bearer {job.token}"},
        )
    except httpx.HTTPError as exc:
        return 0, {"error": repr(exc)}, (time.perf_counter() - start) * 1000
    ms = (time.perf_counter() - start) * 1000
    try:
        body = response.json()
    except ValueError:
        body = {"raw": response.text[:200]}
    return response.status_code, body if isinstance(body, dict) else {"raw": body}, ms


async def _run_job(client: httpx.AsyncClient, load: Load, job: Job) -> list[Outcome]:
    if job.kind in ("new", "replay", "conflict"):
        status, body, ms = await _post(client, job, job.key)
        contract_id = body.get("id") if isinstance(body.get("id"), int) else None
        if job.kind == "new":
            ok = status == 201 and contract_id is not None
            if ok:
                load.created(job, contract_id)
        elif job.kind == "replay":
            ok = status == 200 and contract_id == job.expect_contract
        else:
            ok = status == 409 and "already_licensed" in str(body)
        return [Outcome(job.kind, status, ms, ok, contract_id, "" if ok else str(body)[:300])]
    twin_key = job.key if job.kind == "race_same_key" else uuid.uuid4().hex
    (s1, b1, ms1), (s2, b2, ms2) = await asyncio.gather(_post(client, job, job.key), _post(client, job, twin_key))
    statuses = sorted((s1, s2))
    if job.kind == "race_same_key":
        ok = statuses == [200, 201] and b1.get("id") == b2.get("id")
    else:
        ok = statuses == [201, 409]
    detail = "" if ok else f"{s1} {str(b1)[:150]} / {s2} {str(b2)[:150]}"
    return [
        Outcome(job.kind, s1, ms1, ok, b1.get("id") if s1 == 201 else None, detail),
        Outcome(job.kind, s2, ms2, ok, b2.get("id") if s2 == 201 else None, ""),
    ]


async def drive(base_url: str, load: Load) -> tuple[list[Outcome], float]:
    """CLIENTS tasks share one HTTP/1.1 connection pool; each keeps one request in flight (a race
    pair briefly two). Returns the outcomes and the wall-clock seconds."""
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=2 * CLIENTS, max_keepalive_connections=2 * CLIENTS)
    # Stateless like curl or an ERP connector: one shared cookie jar would make 2,000 enterprises
    # share one server-side session.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120, cookies=no_cookies) as client:

        async def worker() -> None:
            while (job := load.next()) is not None:
                outcomes.extend(await _run_job(client, load, job))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        seconds = time.perf_counter() - start
    return outcomes, seconds


# ---------------------------------------------------------------------------------------------
# What PostgreSQL's backends were doing during the run
# ---------------------------------------------------------------------------------------------


async def sample_activity(url: str, stop: asyncio.Event, every: float = 0.02) -> Counter[str]:
    """Sample pg_stat_activity of the bench database: how many backends were running, idle in a
    transaction, or waiting on a lock (and on which statement)."""
    seen: Counter[str] = Counter()
    engine = create_async_engine(url, pool_size=1)
    query = text(
        "SELECT state, wait_event_type, wait_event, left(query, 60) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    async with engine.connect() as conn:
        await conn.execute(text("SET application_name = 'bench-sampler'"))
        while not stop.is_set():
            seen["samples"] += 1
            for state, wait_type, wait_event, statement in (await conn.execute(query)).all():
                if state == "active":
                    seen["active"] += 1
                    if wait_type == "Lock":
                        seen["lock"] += 1
                        seen[f"lock:{wait_event}:{' '.join(statement.split())}"] += 1
                    elif wait_type:
                        seen[f"wait:{wait_type}:{wait_event}"] += 1
                elif state == "idle in transaction":
                    seen["idle_in_transaction"] += 1
            await conn.commit()
            await asyncio.sleep(every)
    await engine.dispose()
    return seen


async def database_counters(url: str) -> dict[str, int]:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (
            await conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback, tup_inserted, (SELECT count(*) FROM web_sessions) "
                    "FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        ).one()
    await engine.dispose()
    return {"transactions": int(row[0]), "rows_inserted": int(row[1]), "web_sessions": int(row[2])}


# ---------------------------------------------------------------------------------------------
# Integrity afterwards
# ---------------------------------------------------------------------------------------------

CHECKS = {
    "licences held twice (live contracts per licensee and offer > 1)": """
        SELECT count(*) FROM (
            SELECT licensee_organisation_id, offer_id FROM licence_contracts
            WHERE status IN ('awaiting_payment', 'active') GROUP BY 1, 2 HAVING count(*) > 1) d""",
    "contracts without a written notice": """
        SELECT count(*) FROM licence_contracts c
        WHERE NOT EXISTS (SELECT 1 FROM written_notices n WHERE n.contract_id = c.id)""",
    "written notices without a contract": """
        SELECT count(*) FROM written_notices n
        WHERE NOT EXISTS (SELECT 1 FROM licence_contracts c WHERE c.id = n.contract_id)""",
    "notices whose stored SHA-256 does not match the document": """
        SELECT count(*) FROM written_notices
        WHERE encode(sha256(convert_to(document_html, 'UTF8')), 'hex') <> sha256""",
    "contracts without an 'accept' audit record": """
        SELECT count(*) FROM licence_contracts c
        WHERE NOT EXISTS (SELECT 1 FROM audit_records a WHERE a.entity_type = 'licence_contract'
                          AND a.entity_id = c.id AND a.action = 'accept')""",
    "'accept' audit records without a contract": """
        SELECT count(*) FROM audit_records a WHERE a.entity_type = 'licence_contract' AND a.action = 'accept'
        AND NOT EXISTS (SELECT 1 FROM licence_contracts c WHERE c.id = a.entity_id)""",
    "contracts without the licensee's confirmation email queued": """
        SELECT count(*) FROM licence_contracts c
        WHERE NOT EXISTS (SELECT 1 FROM outbox_messages m
                          WHERE m.dedupe_key LIKE 'email:contract:' || c.id || ':accepted:%')""",
    "contracts on priced terms without payment obligations": """
        SELECT count(*) FROM licence_contracts c WHERE c.payment_mode <> 'free'
        AND NOT EXISTS (SELECT 1 FROM payment_obligations o WHERE o.contract_id = c.id)""",
    "duplicate contract numbers": """
        SELECT count(*) FROM (SELECT number FROM licence_contracts GROUP BY number HAVING count(*) > 1) d""",
    "numbers not OL + year + six-digit sequence": """
        SELECT count(*) FROM licence_contracts WHERE number <> 'OL' || year || lpad(sequence::text, 6, '0')""",
    "gaps in the (year, sequence) numbering": """
        SELECT coalesce(sum(max_seq - n), 0) FROM (
            SELECT year, max(sequence) AS max_seq, count(DISTINCT sequence) AS n FROM licence_contracts
            GROUP BY year) y""",
    "years whose counter differs from the highest number issued": """
        SELECT count(*) FROM contract_number_counters k
        WHERE k.last_value <> (SELECT coalesce(max(sequence), 0) FROM licence_contracts c WHERE c.year = k.year)""",
}


async def integrity(url: str, created_responses: int) -> tuple[dict[str, int], int]:
    engine = create_async_engine(url)
    problems: dict[str, int] = {}
    async with engine.connect() as conn:
        for name, sql in CHECKS.items():
            problems[name] = int(await conn.scalar(text(sql)) or 0)
        contracts = int(await conn.scalar(text("SELECT count(*) FROM licence_contracts")) or 0)
    await engine.dispose()
    problems["contracts in the database − 201 responses"] = abs(contracts - created_responses)
    return problems, contracts


# ---------------------------------------------------------------------------------------------
# One measured run
# ---------------------------------------------------------------------------------------------


def _percentile(samples: list[float], share: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class Result:
    workers: int
    seconds: float
    outcomes: list[Outcome]
    warmup: list[Outcome]
    problems: dict[str, int]
    contracts: int
    cpu: dict[str, float]
    activity: Counter[str]
    load_before: float
    #: PostgreSQL transactions, rows inserted and server-side sessions stored per API request.
    database: dict[str, float]

    @property
    def created(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 201)

    @property
    def rate(self) -> float:
        return self.created / self.seconds

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes + self.warmup if not o.ok]

    @property
    def server_errors(self) -> int:
        return sum(1 for o in self.outcomes + self.warmup if o.status >= 500 or o.status == 0)


async def measure(server_url: str, seeded: Seeded, pairs: list[tuple[int, int]], workers: int) -> Result:
    url = await _recreate(server_url, f"bench_accept_w{workers}", template=SEED_DATABASE)
    rng = random.Random(workers)
    warm = Load(pairs[:WARMUP], seeded, rng, mixed=False)
    main = Load(pairs[WARMUP:], seeded, rng)
    load_before = os.getloadavg()[0]
    before = await database_counters(url)
    with app_server(url, workers) as (base_url, server):
        await wait_ready(base_url, server, workers)
        print(f"  {workers} worker(s): warming up with {WARMUP} acceptances …", flush=True)
        warmup, _ = await drive(base_url, warm)
        print(f"  {workers} worker(s): {len(main.pairs):,} acceptances with {CLIENTS} clients …", flush=True)
        meter = CpuMeter(server.pid)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_activity(url, stop))
        meter.begin()
        outcomes, seconds = await drive(base_url, main)
        cpu = meter.used()
        stop.set()
        activity = await sampler
    # Read once the server has stopped: backends flush their statistics when they exit.
    after = await database_counters(url)
    per_request = {key: after[key] - before[key] for key in after}
    per_request["transactions"] -= activity["samples"] + 2  # the sampler's own
    created = sum(1 for o in outcomes + warmup if o.status == 201)
    problems, contracts = await integrity(url, created)
    requests = len(outcomes) + len(warmup)
    database = {key: value / requests for key, value in per_request.items()}
    return Result(workers, seconds, outcomes, warmup, problems, contracts, cpu, activity, load_before, database)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------

KINDS = (
    ("new", "new licence (expects 201)"),
    ("replay", "replayed idempotency key (expects 200, same contract)"),
    ("conflict", "new key, licence already held (expects 409 already_licensed)"),
    ("race_same_key", "two simultaneous requests, same key (expects 201 + 200)"),
    ("race_new_key", "two simultaneous requests, two keys (expects 201 + 409)"),
)


def _server_stack() -> str:
    """What uvicorn picks by itself: uvloop and httptools when installed, else asyncio and h11."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio loop (uvloop not installed)"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11 (httptools not installed)"
    return f"{loop}, {http}"


def _cpu(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.1f}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _activity_lines(result: Result) -> list[str]:
    seen = result.activity
    samples = seen["samples"] or 1
    lines = [
        f"- {result.workers} worker(s), {seen['samples']:,} samples: on average {seen['active'] / samples:.1f} "
        f"backends running a statement, {seen['lock'] / samples:.1f} of them waiting on a lock, "
        f"{seen['idle_in_transaction'] / samples:.1f} idle in a transaction (waiting for the application)."
    ]
    waits = sorted(((n, k) for k, n in seen.items() if k.startswith("lock:")), reverse=True)[:3]
    for n, key in waits:
        _, event, statement = key.split(":", 2)
        lines.append(f"  - {n / samples:.1f} waiting on `{event}` in `{statement}…`")
    return lines


def render(results: list[Result], seeded: Seeded) -> str:
    mix = ", ".join(f"{mode} {count}" for mode, count in sorted(seeded.modes.items()))
    header = [
        "### Accepting licences (issue 3)",
        "",
        f"Measured on {datetime.now().strftime('%Y-%m-%d %H:%M')} ({machine()}) with `python -m bench accept`; "
        + (
            "PostgreSQL from BENCH_POSTGRES_URL."
            if _postmaster_pid() is None
            else "PostgreSQL 15 (the bench cluster: fsync off, shared_buffers 1 GB) on the same machine as the "
            "server and the load generator."
        ),
        "",
        f"Method: a fresh database (migrated, then seeded: {LICENSORS} licensor universities with {OFFERS} "
        f"published offers — {mix} — and {ENTERPRISES:,} verified enterprises, each with an email-confirmed "
        "administrator and an API token). The app runs as a real server process, "
        f"`python -m uvicorn marketplace.app:create_app --factory --workers N` ({_server_stack()}; outbox worker "
        "out of process, no access log), on loopback. "
        f"{CLIENTS} concurrent clients (asyncio tasks sharing one httpx connection pool) send "
        "`POST /api/v1/offers/{id}/accept` with bearer tokens: "
        f"{WARMUP} acceptances to warm up, then {ACCEPTANCES:,} acceptances of distinct (enterprise, offer) "
        f"pairs nobody holds yet. Mixed in: after ~{REPLAY_SHARE:.0%} of the successes a replay of the same "
        f"idempotency key, after ~{CONFLICT_SHARE:.0%} a new key for the same pair, and ~{RACE_SHARE:.0%} of "
        "the pairs are sent as two simultaneous requests (same key, or two keys). Throughput counts new "
        "contracts (201) per second of the measured phase.",
        "",
        "| server | new contracts/s | requests/s | p50 ms | p95 ms | p99 ms | seconds | 5xx / transport errors | "
        "unexpected answers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for r in results:
        samples = [o.ms for o in r.outcomes]
        rows.append(
            f"| uvicorn, {r.workers} worker{'s' if r.workers > 1 else ''} | **{r.rate:,.0f}** | "
            f"{len(r.outcomes) / r.seconds:,.0f} | {_ms(statistics.median(samples))} | "
            f"{_ms(_percentile(samples, 0.95))} | {_ms(_percentile(samples, 0.99))} | {r.seconds:.1f} | "
            f"{r.server_errors} | {len(r.failures)} |"
        )
    kinds = [
        "",
        "Requests by kind and answer (measured phase; the warm-up sent only new licences):",
        "",
        "| kind | " + " | ".join(f"{r.workers} worker{'s' if r.workers > 1 else ''}" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for kind, label in KINDS:
        cells = []
        for r in results:
            statuses = Counter(o.status for o in r.outcomes if o.kind == kind)
            cells.append(", ".join(f"{n:,}× {s}" for s, n in sorted(statuses.items())) or "—")
        kinds.append(f"| {label} | " + " | ".join(cells) + " |")
    cpu = [
        "",
        "CPU seconds used during the measured phase (2 cores = 2 CPU-seconds per second):",
        "",
        "| server | wall s | uvicorn | PostgreSQL | load generator | uvicorn ms per request | "
        "PostgreSQL ms per request |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = len(r.outcomes)
        cpu.append(
            f"| {r.workers} worker(s) | {r.seconds:.1f} | {r.cpu['server']:.1f} | {_cpu(r.cpu['postgres'])} | "
            f"{r.cpu['client']:.1f} | {1000 * r.cpu['server'] / n:.1f} | {_cpu(1000 * r.cpu['postgres'] / n)} |"
        )
    cpu += [
        "",
        "Per API request (whole run, warm-up included): "
        + "; ".join(
            f"{r.workers} worker(s): {r.database['transactions']:.1f} PostgreSQL transactions, "
            f"{r.database['rows_inserted']:.1f} rows inserted, {r.database['web_sessions']:.2f} server-side "
            "sessions stored"
            for r in results
        )
        + ".",
    ]
    activity = [
        "",
        "PostgreSQL activity of the bench database, sampled every 20 ms during the measured phase:",
        "",
    ]
    for r in results:
        activity.extend(_activity_lines(r))
    checks = [
        "",
        "Integrity afterwards (SQL over the whole database, warm-up included; every figure must be 0):",
        "",
        "| check | " + " | ".join(f"{r.workers} worker{'s' if r.workers > 1 else ''}" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in results[0].problems:
        checks.append(f"| {name} | " + " | ".join(str(r.problems[name]) for r in results) + " |")
    checks.append("| contracts in the database | " + " | ".join(f"{r.contracts:,}" for r in results) + " |")
    best = max(results, key=lambda r: r.rate)
    clean = all(not r.failures and not any(r.problems.values()) for r in results)
    verdict = "meets" if best.rate >= TARGET_PER_SECOND else "misses"
    summary = [
        "",
        f"Target ≥ {TARGET_PER_SECOND} acceptances/s: **{verdict}** (best {best.rate:,.0f}/s with "
        f"{best.workers} worker{'s' if best.workers > 1 else ''}). Duplicate or orphan contracts: "
        f"**{'none' if clean else 'FOUND — see the tables above'}**. Load average before the runs: "
        + ", ".join(f"{r.load_before:.1f}" for r in results)
        + " (other work on the machine skews the figures).",
    ]
    failures = [o for r in results for o in r.failures][:5]
    if failures:
        summary += ["", "First unexpected answers:", ""]
        summary += [f"- {o.kind}: {o.status} {o.detail}" for o in failures]
    return "\n".join(header + rows + kinds + cpu + activity + checks + summary)


async def run(server_url: str) -> str:
    """``server_url``: a PostgreSQL server (its ``postgres`` database) the bench may create databases on."""
    seed_url = await _recreate(server_url, SEED_DATABASE)
    _migrate(seed_url)
    print(f"seeding {ENTERPRISES:,} enterprises and {OFFERS} offers …", flush=True)
    seeded = await seed(seed_url)
    needed = WARMUP + ACCEPTANCES
    if needed > ENTERPRISES * OFFERS:
        raise SystemExit(f"{needed:,} acceptances need more than {ENTERPRISES:,} × {OFFERS} pairs")
    pairs = [divmod(n, OFFERS) for n in random.Random(5).sample(range(ENTERPRISES * OFFERS), needed)]
    results = []
    for workers in WORKER_COUNTS:
        results.append(await measure(server_url, seeded, pairs, workers))
        r = results[-1]
        print(f"  {workers} worker(s): {r.rate:,.0f} new contracts/s, {len(r.failures)} unexpected answers")
    return render(results, seeded)
