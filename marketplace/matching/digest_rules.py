"""The weekly digest (每周推荐) and licensors' pushes (定向推送): the pure parts.

* :class:`OfferIndex` holds the offers published in a digest's window once, in lists by
  concordance line, IPC subclass and token (per line), each ordered by the most an offer's tier
  and fees can add. :func:`top_matches` walks only the lists a profile can find relevant, each
  only while its offers' upper bound can still beat the N-th best so far, and gives the chosen
  offers ``rules.score``'s points and reasons (the reference the recommendations' SQL ranking
  agrees with). :func:`top_matches_by_scoring_all` is the plain definition it agrees with (a
  property test holds them together); :class:`Picker` reuses results for identical profiles.
* :func:`push_refusal` is the push rate limit; :func:`digest_week_due` says when a week's digest runs.
* Unsubscribe links carry the organisation id signed with the application's secret.

No session, no framework.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import sys
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Generic, TypeVar

from marketplace.clock import BUSINESS_TZ
from marketplace.matching import rules

#: How many new offers a digest lists.
DIGEST_SIZE = 5
#: A digest never reaches back further than this, however long ago the last one was.
DIGEST_WINDOW = timedelta(days=7)
#: The week's digest is due from Monday at this business time (Asia/Shanghai).
DIGEST_START = time(8, 0)
#: How many enterprises one push reaches at most.
PUSH_RECIPIENTS = 200
PUSH_NOTE_MAX = 200
#: Each offer at most once per this interval; each licensor at most LICENSOR_PUSHES per rolling window.
PUSH_OFFER_INTERVAL = timedelta(days=7)
PUSH_LICENSOR_WINDOW = timedelta(days=7)
PUSH_LICENSOR_LIMIT = 5
V = TypeVar("V")


# ---------------------------------------------------------------------------------------------
# New offers and the best matches of one profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOffer:
    """A published offer as the digest sees it."""

    offer_id: int
    patent_id: int
    licensor_id: int
    title: str
    published_at: datetime
    item: rules.Item

    @property
    def key(self) -> tuple[datetime, int]:
        """Ties on points: the newer offer first (then the later offer id, so the order is total)."""
        return self.published_at, self.offer_id


@dataclass(frozen=True, slots=True)
class Found:
    offer: NewOffer
    match: rules.Match

    @property
    def rank_key(self) -> tuple[int, datetime, int]:
        return (self.match.points, *self.offer.key)


def booster_ceiling(item: rules.Item, weights: rules.Weights = rules.WEIGHTS) -> int:
    """The most tier, cost and pay-after-use can add to ``item``'s points for a profile without a
    budget, outside the offer's province (what a budget and the region can add besides is
    accounted for by the parts of :class:`Ranked` lists)."""
    cost = weights.no_upfront if item.upfront_cost_fen == 0 else 0
    after_use = max(0, weights.pay_after_use, weights.pay_after_use_preferred) if item.pay_after_use else 0
    return max(0, rules.tier_points(item.tier, weights)) + cost + after_use


@lru_cache(maxsize=1024)
def _code_line_points(code: str, weights: rules.Weights) -> dict[str, int]:
    return {
        prefix: branch.points
        for branch in rules.industry_branches((code,), weights)
        for prefix in (*branch.subclasses, *branch.classes)
    }


@lru_cache(maxsize=8192)
def line_points(profile_industries: tuple[str, ...], weights: rules.Weights = rules.WEIGHTS) -> dict[str, int]:
    """The concordance lines ``profile_industries`` match and the industry points each gives (a
    line's points are the best over the profile's industries, so they are merged one code at a
    time). Shared between calls: read it, never change it."""
    merged: dict[str, int] = {}
    for code in profile_industries:
        for prefix, points in _code_line_points(code, weights).items():
            if points > merged.get(prefix, 0):
                merged[prefix] = points
    return merged


@dataclass(slots=True)
class Ranked:
    """Offers (positions in the index), highest booster ceiling first, then newest, with the parts
    whose offers may earn more than their ceiling for some profiles: per province (the region's
    points), those with an upfront fee (within a budget), and those per province with a fee."""

    positions: list[int]
    by_province: dict[str, list[int]] = field(default_factory=dict)
    paid: list[int] = field(default_factory=list)
    paid_by_province: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class OfferIndex:
    """New offers indexed by what makes an offer relevant to a profile. Lists hold positions in
    ``offers``, highest booster ceiling first, then newest."""

    offers: list[NewOffer]
    weights: rules.Weights = rules.WEIGHTS
    #: Per position: its order by (published_at, offer_id) — a larger rank is newer — its booster
    #: ceiling, its concordance line (the IPC prefix that maps its subclass to industries; "" for none).
    ranks: list[int] = field(default_factory=list)
    by_rank: list[int] = field(default_factory=list)
    ceilings: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    by_line: dict[str, Ranked] = field(default_factory=dict)
    by_subclass: dict[str, Ranked] = field(default_factory=dict)
    #: token → concordance line → offers whose text holds the token.
    by_token: dict[str, dict[str, Ranked]] = field(default_factory=dict)
    token_counts: dict[str, int] = field(default_factory=dict)
    line_subclasses: dict[str, set[str]] = field(default_factory=dict)
    #: Per position, for scoring without touching the offer: tier points plus the no-upfront-fee
    #: points (the same for every profile), the upfront fee, pay-after-use, province.
    fixed: list[int] = field(default_factory=list)
    upfronts: list[int] = field(default_factory=list)
    after_use: list[bool] = field(default_factory=list)
    provinces: list[str | None] = field(default_factory=list)
    subclasses: list[str | None] = field(default_factory=list)
    tokens: list[frozenset[str]] = field(default_factory=list)
    class_subclasses: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, offers: Iterable[NewOffer], weights: rules.Weights = rules.WEIGHTS) -> OfferIndex:
        index = cls(list(offers), weights)
        newest_last = sorted(range(len(index.offers)), key=lambda p: index.offers[p].key)
        index.ranks = [0] * len(index.offers)
        for rank, position in enumerate(newest_last):
            index.ranks[position] = rank
        index.by_rank = newest_last
        index.ceilings = [booster_ceiling(offer.item, weights) for offer in index.offers]
        items = [offer.item for offer in index.offers]
        index.fixed = [
            rules.tier_points(i.tier, weights) + (weights.no_upfront if not i.upfront_cost_fen else 0) for i in items
        ]
        index.upfronts = [i.upfront_cost_fen for i in items]
        index.after_use = [i.pay_after_use for i in items]
        index.provinces = [i.province_code for i in items]
        index.subclasses = [i.ipc_subclass for i in items]
        index.tokens = [i.tokens for i in items]
        for position, offer in enumerate(index.offers):
            subclass = offer.item.ipc_subclass
            line = rules.industries_of(subclass)[0] if subclass else ""
            index.lines.append(line)
            if subclass:
                index.by_subclass.setdefault(subclass, []).append(position)
                index.class_subclasses.setdefault(subclass[:3], set()).add(subclass)
                index.line_subclasses.setdefault(line, set()).add(subclass)
            if line:
                index.by_line.setdefault(line, []).append(position)
            for token in offer.item.tokens:
                index.by_token.setdefault(token, {}).setdefault(line, []).append(position)
        for token, per_line in index.by_token.items():
            index.token_counts[token] = sum(len(positions) for positions in per_line.values())
        for table in (index.by_line, index.by_subclass, *index.by_token.values()):
            for key, positions in table.items():
                table[key] = index._ranked(positions)  # type: ignore[index]
        return index

    def __len__(self) -> int:
        return len(self.offers)

    def rarest_token(self, keyword: str) -> str | None:
        """The keyword's token held by the fewest offers (every offer holding the keyword holds it);
        None when some token is in no offer at all."""
        tokens = rules.keyword_tokens(keyword)
        if not tokens or any(token not in self.token_counts for token in tokens):
            return None
        return min(tokens, key=self.token_counts.__getitem__)

    def _ranked(self, positions: list[int]) -> Ranked:
        ceilings, ranks = self.ceilings, self.ranks
        ranked = Ranked(sorted(positions, key=lambda p: (ceilings[p], ranks[p]), reverse=True))
        for position in ranked.positions:
            province = self.provinces[position]
            if province:
                ranked.by_province.setdefault(province, []).append(position)
            if self.upfronts[position]:
                ranked.paid.append(position)
                if province:
                    ranked.paid_by_province.setdefault(province, []).append(position)
        return ranked


@dataclass(frozen=True)
class Exclusions:
    """What one enterprise must not be shown: offers published up to ``after`` (already in a digest),
    its own offers, and patents it already holds a live licence of."""

    after: datetime | None = None
    organisation_id: int | None = None
    patent_ids: frozenset[int] = frozenset()

    def excludes(self, offer: NewOffer) -> bool:
        return (
            (self.after is not None and offer.published_at <= self.after)
            or offer.licensor_id == self.organisation_id
            or offer.patent_id in self.patent_ids
        )


class Best(Generic[V]):
    """The ``size`` best entries seen, by a totally ordered key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._heap: list[tuple[tuple, int, V]] = []
        self._serial = 0

    @property
    def floor(self) -> tuple | None:
        """The key an entry must beat to get in; None while there is room."""
        return self._heap[0][0] if len(self._heap) >= self.size else None

    def offer(self, key: tuple, value: V) -> None:
        self._serial += 1
        entry = (key, self._serial, value)
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, entry)
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, entry)

    def sorted(self) -> list[V]:
        return [value for _, _, value in sorted(self._heap, key=lambda entry: entry[0], reverse=True)]


class _Bounds:
    """One profile's points for the offers of an index, added as ``rules.score`` adds them but
    looked up rather than explained (cheap enough for every offer visited), and the lists to visit
    with the upper bound of the points of their offers."""

    def __init__(self, index: OfferIndex, profile: rules.Profile) -> None:
        w = self.weights = index.weights
        self.index = index
        self.line_points = line_points(profile.industries, w)  # positional, as every caller: one cache key
        self.subclasses = frozenset(code for code in profile.ipc_codes if len(code) == 4)
        self.classes = frozenset(code for code in profile.ipc_codes if len(code) == 3)
        self.learned_ipc = frozenset(profile.top_learned_ipc)
        self.has_ipc = bool(self.subclasses or self.classes or self.learned_ipc)
        self.keywords = [frozenset(t) for t in map(rules.keyword_tokens, profile.keywords) if t]
        self.learned = [frozenset(t) for t in map(rules.keyword_tokens, profile.top_learned_keywords) if t]
        self.budget = profile.max_upfront_fen
        self.after_use = w.pay_after_use_preferred if profile.prefers_pay_after_use else w.pay_after_use
        self.provinces = frozenset(profile.provinces)
        self._line_ipc: dict[str, int] = {}
        # The weights as attributes of their own: ``points`` runs for every offer visited.
        self.keyword, self.keyword_cap = w.keyword, w.keyword_cap
        self.learned_keyword, self.learned_cap = w.keyword_learned, w.keyword_learned_cap
        self.within_budget, self.over_budget, self.region = w.within_budget, w.over_budget, w.same_region

    def ipc(self, subclass: str | None) -> int:
        if not subclass or not self.has_ipc:
            return 0
        w = self.weights
        if subclass in self.subclasses:
            return w.ipc_subclass
        if subclass[:3] in self.classes:
            return w.ipc_class
        return w.ipc_learned if subclass in self.learned_ipc else 0

    def line_ipc(self, line: str) -> int:
        """The most IPC points any offer of a concordance line can earn."""
        if not self.has_ipc:
            return 0
        if line not in self._line_ipc:
            self._line_ipc[line] = max((self.ipc(s) for s in self.index.line_subclasses.get(line, ())), default=0)
        return self._line_ipc[line]

    def keyword_points(self, explicit: int, learned: int) -> int:
        w = self.weights
        return min(w.keyword_cap, w.keyword * explicit) + min(w.keyword_learned_cap, w.keyword_learned * learned)

    def points(self, position: int) -> int | None:
        """The offer's points, as ``rules.score`` adds them; None when it is not relevant."""
        index = self.index
        relevance = self.line_points.get(index.lines[position], 0)
        if self.has_ipc:
            relevance += self.ipc(index.subclasses[position])
        if self.keywords:
            tokens = index.tokens[position]
            hits = 0
            for wanted in self.keywords:
                if wanted <= tokens:
                    hits += 1
            if hits:
                relevance += min(self.keyword_cap, self.keyword * hits)
        if self.learned:
            tokens = index.tokens[position]
            hits = 0
            for wanted in self.learned:
                if wanted <= tokens:
                    hits += 1
            if hits:
                relevance += min(self.learned_cap, self.learned_keyword * hits)
        if not relevance:
            return None
        points = relevance + index.fixed[position]
        upfront = index.upfronts[position]
        if upfront and self.budget is not None:
            points += self.within_budget if upfront <= self.budget else self.over_budget
        if index.after_use[position]:
            points += self.after_use
        if self.provinces and index.provinces[position] in self.provinces:
            points += self.region
        return points

    def streams(self, profile: rules.Profile) -> list[tuple[int, list[int]]]:
        """(constant, positions) lists, best first, that cover every offer that can be relevant:
        an offer's points never exceed the constant plus its booster ceiling on at least one list
        it is on (others may cut it off early; it is scored where it is reached):

        1. each concordance line the profile's industries match (industry and IPC points; an
           offer that also holds a keyword is covered by 3.);
        2. the offers of the profile's IPC subclasses (own, learned, or in its IPC classes) in
           lines it does not match (IPC points; with a keyword, 3.);
        3. per keyword (own or learned) and concordance line, the offers holding the keyword's
           rarest token, with the line's industry and best IPC points and the points of this
           keyword and those after it (an offer holding an earlier one is covered by that one's);
        4. each of those lists' parts whose offers may earn more than their ceiling (see
           :meth:`_parts`).
        """
        index = self.index
        lists: list[tuple[int, Ranked]] = []
        if len(self.line_points) < len(index.by_line):
            matched = [(line, p) for line, p in self.line_points.items() if line in index.by_line]
        else:
            matched = [(line, self.line_points[line]) for line in index.by_line if line in self.line_points]
        for line, points in matched:
            lists.append((points + self.line_ipc(line), index.by_line[line]))
        if self.has_ipc:
            # Offers of a matched line are on its list already (its constant holds the line's best
            # IPC points); those of other lines earn only their subclass's IPC points here.
            codes = {*self.subclasses, *self.learned_ipc}
            codes.update(s for c in self.classes for s in index.class_subclasses.get(c, ()))
            for code in codes:
                ranked = index.by_subclass.get(code)
                if ranked is not None and index.lines[ranked.positions[0]] not in self.line_points:
                    lists.append((self.ipc(code), ranked))
        # The loosest constant (every keyword still to come) goes with the shortest lists.
        keywords = [(index.rarest_token(k), True) for k in profile.keywords if rules.keyword_tokens(k)]
        keywords += [(index.rarest_token(k), False) for k in profile.top_learned_keywords if rules.keyword_tokens(k)]
        keywords.sort(key=lambda k: index.token_counts[k[0]] if k[0] else 0)
        explicit_left, learned_left = len(self.keywords), len(self.learned)
        for token, explicit in keywords:
            extra = self.keyword_points(explicit_left, learned_left)
            if explicit:
                explicit_left -= 1
            else:
                learned_left -= 1
            if token is None:
                continue  # some token of the keyword is in no offer: no offer holds it
            for line, ranked in index.by_token[token].items():
                lists.append((self.line_points.get(line, 0) + self.line_ipc(line) + extra, ranked))
        return self._parts(lists)

    def _parts(self, lists: list[tuple[int, Ranked]]) -> list[tuple[int, list[int]]]:
        """The lists, best first, with their parts whose offers may earn more than their ceiling:
        those in the profile's provinces (the region's points) and, for a profile with a budget,
        those with an upfront fee (within it)."""
        w = self.weights
        region, budget = max(0, w.same_region), max(0, w.within_budget)
        ceilings = self.index.ceilings
        expanded: list[tuple[int, int, list[int]]] = []
        for constant, ranked in lists:
            expanded.append((constant + ceilings[ranked.positions[0]], constant, ranked.positions))
            for province in self.provinces:
                part = ranked.by_province.get(province)
                if part:
                    expanded.append((constant + region + ceilings[part[0]], constant + region, part))
            if self.budget is not None and ranked.paid:
                part = ranked.paid
                expanded.append((constant + budget + ceilings[part[0]], constant + budget, part))
                for province in self.provinces:
                    part = ranked.paid_by_province.get(province)
                    if part:
                        both = constant + budget + region
                        expanded.append((both + ceilings[part[0]], both, part))
        expanded.sort(key=itemgetter(0), reverse=True)
        return [(constant, positions) for _, constant, positions in expanded]


def top_matches(
    index: OfferIndex, profile: rules.Profile, exclusions: Exclusions = Exclusions(), size: int = DIGEST_SIZE
) -> list[Found]:
    """The ``size`` best relevant new offers for ``profile``, best first (ties: newer first), each
    with ``rules.score``'s points and reasons.

    Every offer that can be relevant is on one of :meth:`_Bounds.streams`' lists, each in
    descending order of its bound; a list is left as soon as its next bound cannot beat the
    N-th best so far. The offers are compared by :meth:`_Bounds.points` (which adds the points
    as ``rules.score`` does, without the reason texts) and the chosen ones are then scored by
    ``rules.score``, the reference; :func:`top_matches_by_scoring_all` is the definition.
    """
    if size <= 0 or not index.offers or profile.is_empty:
        return []
    offers, ranks, ceilings = index.offers, index.ranks, index.ceilings
    bounds = _Bounds(index, profile)
    # (points, rank) as one integer: ranks are below ``scale``.
    scale = len(offers)
    best: list[int] = []
    floor: int | None = None
    seen: set[int] = set()
    for constant, positions in bounds.streams(profile):
        for position in positions:
            rank = ranks[position]
            if floor is not None and (constant + ceilings[position]) * scale + rank <= floor:
                break  # the rest of this list ranks lower still
            if position in seen:
                continue
            seen.add(position)
            points = bounds.points(position)
            if points is None:
                continue
            key = points * scale + rank
            if (floor is not None and key <= floor) or exclusions.excludes(offers[position]):
                continue
            if floor is None:
                heapq.heappush(best, key)
                if len(best) == size:
                    floor = best[0]
            else:
                heapq.heapreplace(best, key)
                floor = best[0]
    chosen = [index.by_rank[key % scale] for key in best]
    found = [Found(offers[p], rules.score(profile, offers[p].item, index.weights)) for p in chosen]
    found.sort(key=lambda f: f.rank_key, reverse=True)
    return found


class Picker:
    """:func:`top_matches` for many enterprises against one index. Enterprises often share a
    profile (sign-up defaults: an industry section and a province), so the best offers for a
    profile and ``after`` are kept (up to ``cache_size`` profiles) and reused unless one of them is
    the enterprise's own offer or a patent it holds a licence of."""

    def __init__(self, index: OfferIndex, size: int = DIGEST_SIZE, cache_size: int = 4096) -> None:
        self.index = index
        self.size = size
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, list[Found]] = OrderedDict()

    @staticmethod
    def signature(profile: rules.Profile) -> tuple:
        """Everything of a profile that ``rules.score`` reads."""
        return (
            profile.industries, profile.keywords, profile.ipc_codes, profile.provinces, profile.max_upfront_fen,
            profile.prefers_pay_after_use, profile.top_learned_ipc, profile.top_learned_keywords,
        )  # fmt: skip

    def pick(self, profile: rules.Profile, exclusions: Exclusions) -> list[Found]:
        if not self.index.offers or profile.is_empty:
            return []
        key = (self.signature(profile), exclusions.after)
        found = self._cache.get(key)
        if found is None:
            found = top_matches(self.index, profile, Exclusions(after=exclusions.after), self.size)
            self._cache[key] = found
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        if any(exclusions.excludes(f.offer) for f in found):
            return top_matches(self.index, profile, exclusions, self.size)
        return found


def top_matches_by_scoring_all(
    offers: Iterable[NewOffer],
    profile: rules.Profile,
    exclusions: Exclusions = Exclusions(),
    size: int = DIGEST_SIZE,
    weights: rules.Weights = rules.WEIGHTS,
) -> list[Found]:
    """What :func:`top_matches` returns, by scoring every offer (the definition; for tests)."""
    found = []
    for offer in offers:
        if exclusions.excludes(offer):
            continue
        match = rules.score(profile, offer.item, weights)
        if match.relevant:
            found.append(Found(offer, match))
    found.sort(key=lambda f: f.rank_key, reverse=True)
    return found[:size]


def item_tokens(search_tokens: str) -> frozenset[str]:
    """An offer's indexed tokens; interned, as thousands of offers share the same words."""
    return frozenset(sys.intern(token) for token in search_tokens.split())


# ---------------------------------------------------------------------------------------------
# The week a digest belongs to
# ---------------------------------------------------------------------------------------------


def week_key(at: datetime) -> str:
    """The ISO week of ``at``'s business date (Asia/Shanghai), e.g. ``2026-W49``."""
    year, week, _ = at.astimezone(BUSINESS_TZ).isocalendar()
    return f"{year}-W{week:02d}"


def week_number(at: datetime) -> int:
    """The ISO week as a number (202649), for the audit record of a week's run."""
    year, week, _ = at.astimezone(BUSINESS_TZ).isocalendar()
    return year * 100 + week


def digest_week_due(at: datetime) -> bool:
    """Whether this ISO week's digest may run at ``at``: from Monday ``DIGEST_START`` (business
    time) on, so a worker that was down on Monday still sends it later in the week."""
    local = at.astimezone(BUSINESS_TZ)
    return local.isoweekday() > 1 or local.time() >= DIGEST_START


def digest_subject(count: int) -> str:
    return f"每周推荐：{count} 项新公告的开放许可专利与贵单位匹配"


# ---------------------------------------------------------------------------------------------
# Push rate limits
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushRefusal:
    code: str
    message: str
    #: The first instant at which the push would be allowed.
    next_at: datetime


def _local(at: datetime) -> str:
    return at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")


def push_refusal(
    now: datetime, offer_pushed_at: Iterable[datetime], licensor_pushed_at: Iterable[datetime]
) -> PushRefusal | None:
    """Why a push at ``now`` is refused, or None. ``offer_pushed_at``: earlier pushes of this offer;
    ``licensor_pushed_at``: earlier pushes of all the licensor's offers (older ones may be left out).

    Each offer at most once per :data:`PUSH_OFFER_INTERVAL`; each licensor at most
    :data:`PUSH_LICENSOR_LIMIT` pushes in any rolling :data:`PUSH_LICENSOR_WINDOW` (a push at ``t``
    counts while ``now < t + window``).
    """
    last = max(offer_pushed_at, default=None)
    offer_next = last + PUSH_OFFER_INTERVAL if last is not None and now < last + PUSH_OFFER_INTERVAL else None
    recent = sorted(t for t in licensor_pushed_at if now < t + PUSH_LICENSOR_WINDOW)
    licensor_next = recent[-PUSH_LICENSOR_LIMIT] + PUSH_LICENSOR_WINDOW if len(recent) >= PUSH_LICENSOR_LIMIT else None
    if offer_next is None and licensor_next is None:
        return None
    next_at = max(t for t in (offer_next, licensor_next) if t is not None)
    reasons = []
    if last is not None and offer_next is not None:
        reasons.append(f"该声明已于 {_local(last)} 推送，每项声明 {PUSH_OFFER_INTERVAL.days} 日内只能推送一次")
    if licensor_next is not None:
        days = PUSH_LICENSOR_WINDOW.days
        reasons.append(f"贵单位 {days} 日内已推送 {len(recent)} 次，{days} 日内最多推送 {PUSH_LICENSOR_LIMIT} 次")
    code = "licensor_push_limit" if licensor_next is not None else "offer_pushed_recently"
    return PushRefusal(code, f"{'；'.join(reasons)}。可于 {_local(next_at)} 后再次推送", next_at)


def check_note(note: str) -> str | None:
    """Why a push's note is refused, or None."""
    if len(note) > PUSH_NOTE_MAX:
        return f"推送附言不超过 {PUSH_NOTE_MAX} 字（现有 {len(note)} 字）"
    return None


# ---------------------------------------------------------------------------------------------
# Unsubscribe links
# ---------------------------------------------------------------------------------------------

_UNSUBSCRIBE = b"digest-unsubscribe:"


def _signature(secret: str, organisation_id: int) -> str:
    mac = hmac.new(secret.encode(), _UNSUBSCRIBE + str(organisation_id).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode()


def unsubscribe_token(secret: str, organisation_id: int) -> str:
    """``<organisation id>.<signature>``: needs no login and never expires (an old email still works)."""
    return f"{organisation_id}.{_signature(secret, organisation_id)}"


def unsubscribe_organisation(secret: str, token: str) -> int | None:
    """The organisation a well-signed token names; None for anything else."""
    raw_id, _, signature = token.partition(".")
    if not (raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18 and signature.isascii()):
        return None
    organisation_id = int(raw_id)
    if not hmac.compare_digest(signature, _signature(secret, organisation_id)):
        return None
    return organisation_id


def why_lines(found: Sequence[Found]) -> list[Mapping[str, object]]:
    """The digest's items as the inbox stores them."""
    return [
        {
            "offer_id": f.offer.offer_id,
            "patent_id": f.offer.patent_id,
            "title": f.offer.title,
            "why": f.match.why,
            "points": f.match.points,
        }
        for f in found
    ]
