"""Timing statistics and the docs/benchmarks.md writer."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass
class Timing:
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def time_async(func: Callable[[], Awaitable[object]], *, runs: int, warmup: int = 3) -> Timing:
    for _ in range(warmup):
        await func()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await func()
        samples.append((time.perf_counter() - start) * 1000)
    return Timing(samples)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for a report (the 2 cores are shared)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def rss_kb(field_name: str) -> int:
    """A memory figure of this process from /proc (``VmRSS`` now, ``VmHWM`` its peak), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def write(sections: list[str]) -> None:
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now().strftime('%Y-%m-%d %H:%M')} ({machine()}).\n"
        "Figures are from that run; rerun `make bench` to refresh them.\n"
    )
    DOC.write_text(header + "\n" + "\n\n".join(sections) + "\n")


def _split(document: str) -> tuple[str, list[str]]:
    """The text before the first ``### `` heading, and each section from its heading on."""
    parts = ("\n" + document).split("\n### ")
    return parts[0].lstrip("\n"), ["### " + part.strip("\n") for part in parts[1:]]


def replace_sections(sections: list[str]) -> None:
    """Refresh only these sections of docs/benchmarks.md (``python -m bench <name>``): a section with
    the same heading is replaced in place, a new one is appended; the others stay as they were."""
    if not DOC.exists():
        write(sections)
        return
    head, existing = _split(DOC.read_text())
    for section in sections:
        heading = section.split("\n", 1)[0]
        index = next((i for i, old in enumerate(existing) if old.split("\n", 1)[0] == heading), None)
        if index is None:
            existing.append(section.strip("\n"))
        else:
            existing[index] = section.strip("\n")
    DOC.write_text(head.rstrip("\n") + "\n\n" + "\n\n".join(existing) + "\n")
