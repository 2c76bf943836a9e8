"""Process-wide tuning for the long-running processes (the server and the worker)."""

from __future__ import annotations

import gc

#: A young-generation collection every 50,000 net allocations instead of 700. Exports, imports and
#: the hourly refresh build hundreds of thousands of short-lived rows; at the default the collector
#: ran thousands of times per export and took about a tenth of its time (bench/filings.py). Older
#: generations keep their default ratios.
GC_THRESHOLDS = (50_000, 10, 10)


def tune_gc() -> None:
    """Move what is loaded at start-up out of the collector's sight, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
