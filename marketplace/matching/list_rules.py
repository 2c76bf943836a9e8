"""Stored recommendation lists (推荐列表): keeping an enterprise's best offers between visits, exactly.

Pure: no session, no framework. Ranking an enterprise's profile over the national stock means
visiting every catalogue row a common keyword finds (tens of thousands; docs/benchmarks.md), so the
best :data:`LIST_SIZE` rows are stored with the enterprise, and a later visit only scores the rows
that changed since. The list stays exact because of one invariant:

* every eligible catalogue row that is not in the list, and has not changed since the list's
  ``fresh_through`` instant, ranks below the list's ``boundary`` key (or, with no boundary, is not
  a candidate at all: the list holds every candidate).

Keys order rows as the ranking does: points, then the newest offer, then the highest id. A visit
replaces the listed rows that changed by their new points, drops the ones that went away (withdrawn,
no longer a candidate, licensed to the enterprise meanwhile), adds the changed rows outside the list
that now rank at or above the boundary, and serves the first ``limit`` rows when at least ``limit``
remain at or above it; otherwise the list is computed again from the whole catalogue.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from marketplace.matching import rules

#: How many rows a list keeps: the most a page or API call shows, and room for rows to leave.
LIST_SIZE = 60
#: Changed rows up to this long before a list was made are scored again when it is read: a
#: transaction that wrote a catalogue row may commit after the list's snapshot, carrying an earlier
#: ``updated_at`` (and application servers' clocks differ a little).
SETTLE = timedelta(minutes=10)
#: A list not brought up to date for this long is computed again instead: re-scoring every row
#: changed since costs more than ranking the whole catalogue once a few weeks of changes pile up
#: (a week's 2 % of the national stock: docs/benchmarks.md).
MAX_AGE = timedelta(days=14)
#: Raise when the ranking changes in a way the weights and data files do not show; every stored
#: list then counts as made for another profile and is computed again on its next use.
RANKING_VERSION = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Key = tuple[int, int, int]


def micros(instant: datetime) -> int:
    """An aware instant as whole microseconds since 1970 (keys compare as integers)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return (instant - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Entry:
    """One listed catalogue row and what it ranks by."""

    id: int
    patent_id: int
    total: int
    #: The offer's publication instant, in microseconds (the ranking's tie-break: newest first).
    published: int

    @property
    def key(self) -> Key:
        return (self.total, self.published, self.id)

    def dump(self) -> list[int]:
        return [self.id, self.patent_id, self.total, self.published]

    @classmethod
    def load(cls, stored: Sequence[int]) -> Entry:
        id_, patent_id, total, published = (int(value) for value in stored)
        return cls(id_, patent_id, total, published)


@dataclass(frozen=True)
class RankedList:
    """Rows best first, and the key every unlisted, unchanged eligible row ranks below (None: the
    list holds every candidate)."""

    entries: tuple[Entry, ...]
    boundary: Key | None

    def serves(self, limit: int) -> bool:
        """Whether the first ``limit`` rows are the full ranking's first ``limit`` (every row kept
        ranks at or above the boundary, and no unlisted row does)."""
        return self.boundary is None or len(self.entries) >= limit


def fresh(entries: Sequence[Entry], size: int = LIST_SIZE) -> RankedList:
    """The list from a full ranking's first ``size`` rows (asked for ``size``, best first)."""
    ordered = tuple(entries)
    return RankedList(ordered, ordered[-1].key if len(ordered) >= size else None)


def merge(
    stored: RankedList, *, dropped: Collection[int], rescored: Iterable[Entry], size: int = LIST_SIZE
) -> RankedList:
    """``stored`` once the rows in ``dropped`` (changed, gone or no longer eligible) are taken out and
    the changed rows in ``rescored`` (every candidate among them, with its new points) are put in.

    Rescored rows below the boundary are left out: unlisted rows may rank between them and it."""
    by_id = {entry.id: entry for entry in stored.entries if entry.id not in dropped}
    by_id.update({entry.id: entry for entry in rescored})
    kept = [entry for entry in by_id.values() if stored.boundary is None or entry.key >= stored.boundary]
    kept.sort(key=lambda entry: entry.key, reverse=True)
    if len(kept) > size:
        kept = kept[:size]
        return RankedList(tuple(kept), kept[-1].key)
    return RankedList(tuple(kept), stored.boundary)


def dump_key(key: Key | None) -> list[int] | None:
    return list(key) if key is not None else None


def load_key(stored: Sequence[int] | None) -> Key | None:
    if stored is None:
        return None
    total, published, id_ = (int(value) for value in stored)
    return (total, published, id_)


@cache
def ranking_stamp() -> str:
    """What the ranking is computed from besides the profile: the weights, the learned-signal sizes,
    the concordance, the industry codes and the keyword dictionary (a profile keyword's tokens)."""
    here = Path(rules.__file__).parent
    files = [
        here / "data" / "ipc_industries.tsv",
        here / "data" / "industries.tsv",
        here.parent / "accounts" / "data" / "industries.tsv",
        here.parent / "catalogue" / "data" / "terms.txt",
    ]
    digest = hashlib.sha256()
    digest.update(
        json.dumps([RANKING_VERSION, asdict(rules.WEIGHTS), rules.LEARNED_IPC, rules.LEARNED_KEYWORDS]).encode()
    )
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(profile: rules.Profile) -> str:
    """Identifies what a list was ranked for: the profile's own fields, its learned subclasses and
    terms that count (the most frequent few; the counts behind them change on every view), and the
    ranking itself. A list made for another fingerprint is not used."""
    signals = [
        ranking_stamp(),
        list(profile.industries),
        list(profile.keywords),
        list(profile.ipc_codes),
        list(profile.provinces),
        profile.max_upfront_fen,
        profile.prefers_pay_after_use,
        list(profile.top_learned_ipc),
        list(profile.top_learned_keywords),
    ]
    return hashlib.sha256(json.dumps(signals, ensure_ascii=False).encode()).hexdigest()
