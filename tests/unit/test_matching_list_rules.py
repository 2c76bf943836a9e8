"""Stored recommendation lists (``matching.list_rules``): after any sequence of catalogue changes, a
list brought up to date serves exactly the full ranking's first rows, or says it cannot."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.matching import list_rules, rules
from marketplace.matching.list_rules import Entry, RankedList


@dataclass(frozen=True)
class Row:
    """A catalogue row as the ranking sees it for one enterprise."""

    id: int
    total: int
    published: int
    #: Selected by a relevance signal.
    candidate: bool = True
    #: Licensed to the enterprise (left out).
    licensed: bool = False

    @property
    def entry(self) -> Entry:
        return Entry(self.id, self.id + 1000, self.total, self.published)

    @property
    def shown(self) -> bool:
        return self.candidate and not self.licensed


def full_ranking(rows: dict[int, Row]) -> list[Entry]:
    return sorted((row.entry for row in rows.values() if row.shown), key=lambda e: e.key, reverse=True)


# Small totals and publication instants: ties on points and on dates happen often.
rows_strategy = st.builds(
    Row,
    id=st.integers(1, 60),
    total=st.integers(0, 12),
    published=st.integers(0, 5),
    candidate=st.booleans(),
    licensed=st.booleans(),
)
change = st.one_of(
    st.tuples(st.just("rescore"), st.integers(1, 80), st.integers(0, 12)),
    st.tuples(st.just("withdraw"), st.integers(1, 80), st.just(0)),
    st.tuples(st.just("publish"), st.integers(61, 80), st.integers(0, 12)),
    st.tuples(st.just("licence"), st.integers(1, 80), st.just(0)),
    st.tuples(st.just("licence_ends"), st.integers(1, 80), st.just(0)),
    st.tuples(st.just("relevance"), st.integers(1, 80), st.just(0)),
)


def apply(rows: dict[int, Row], stored: RankedList, changes: list[tuple[str, int, int]], size: int) -> RankedList:
    """Change ``rows`` as the catalogue and contracts would, and bring ``stored`` up to date the way
    ``matching.lists`` does: listed rows that changed, went away or are licensed now are dropped;
    every row that changed or whose licence ended is scored again."""
    listed = {entry.id for entry in stored.entries}
    excluded = {id_ for id_, row in rows.items() if row.licensed}
    changed: set[int] = set()
    for kind, id_, value in changes:
        row = rows.get(id_)
        if kind == "publish" and row is None:
            rows[id_] = Row(id_, value, 6 + id_)
            changed.add(id_)
        elif row is None:
            continue
        elif kind == "rescore":
            rows[id_] = replace(row, total=value)
            changed.add(id_)
        elif kind == "withdraw":
            del rows[id_]
        elif kind == "licence":
            rows[id_] = replace(row, licensed=True)
        elif kind == "licence_ends":
            rows[id_] = replace(row, licensed=False)
        elif kind == "relevance":
            rows[id_] = replace(row, candidate=not row.candidate)
            changed.add(id_)
    ended = {id_ for id_ in excluded if id_ in rows and not rows[id_].licensed}
    dropped = {id_ for id_ in listed if id_ not in rows or id_ in changed or rows[id_].licensed}
    rescored = [rows[id_].entry for id_ in changed | ended if id_ in rows and rows[id_].shown]
    return list_rules.merge(stored, dropped=dropped, rescored=rescored, size=size)


@settings(max_examples=300, deadline=None)
@given(
    initial=st.lists(rows_strategy, max_size=40, unique_by=lambda row: row.id),
    rounds=st.lists(st.lists(change, max_size=6), max_size=6),
    size=st.integers(1, 12),
    limit=st.integers(1, 12),
)
def test_a_list_brought_up_to_date_serves_the_full_ranking_or_refuses(initial, rounds, size, limit):
    rows = {row.id: row for row in initial}
    stored = list_rules.fresh(full_ranking(rows)[:size], size)
    for changes in rounds:
        stored = apply(rows, stored, changes, size)
        expected = full_ranking(rows)
        assert len(stored.entries) <= size
        if stored.serves(limit):
            assert list(stored.entries[:limit]) == expected[:limit]
        else:
            # Too few rows left above the boundary: matching.lists ranks the whole catalogue again.
            stored = list_rules.fresh(expected[:size], size)


def test_a_short_full_ranking_holds_every_candidate():
    entries = [Entry(1, 1, 9, 0), Entry(2, 2, 5, 0)]
    assert list_rules.fresh(entries, 5).boundary is None
    assert list_rules.fresh(entries, 5).serves(50)
    full = list_rules.fresh(entries, 2)
    assert full.boundary == (5, 0, 2) and full.serves(2) and not full.serves(3)


def test_a_rescored_row_below_the_boundary_stays_out():
    stored = list_rules.fresh([Entry(1, 1, 9, 0), Entry(2, 2, 7, 0)], 2)
    merged = list_rules.merge(stored, dropped={1}, rescored=[Entry(1, 1, 3, 0)], size=2)
    # Unlisted rows may have 4 to 6 points: row 1 (3 points) cannot be placed, and one row is left.
    assert [entry.id for entry in merged.entries] == [2]
    assert merged.serves(1) and not merged.serves(2)


def test_the_fingerprint_follows_what_the_ranking_uses():
    base = rules.Profile(industries=("C38",), keywords=("石墨烯",), learned_keywords={"负极": 5, "导热": 1})
    same = list_rules.fingerprint(base)
    # A view that raises a count without changing the top terms keeps the list.
    assert list_rules.fingerprint(replace(base, learned_keywords={"负极": 6, "导热": 1})) == same
    assert list_rules.fingerprint(replace(base, keywords=("石墨烯", "锂电池"))) != same
    assert list_rules.fingerprint(replace(base, provinces=("33",))) != same
    assert list_rules.fingerprint(replace(base, max_upfront_fen=100)) != same
    assert list_rules.fingerprint(replace(base, learned_ipc={"H01M": 1})) != same
    many = {f"词{i}": 10 for i in range(rules.LEARNED_KEYWORDS)}
    assert list_rules.fingerprint(replace(base, learned_keywords=many)) != same
