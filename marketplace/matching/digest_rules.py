"""The weekly digest (每周推荐) and licensors' pushes (定向推送): the pure parts.

* :class:`OfferIndex` holds the offers published in a digest's window once, indexed by concordance
  line, IPC subclass and class, and token, so that :func:`top_matches` scores (with
  :func:`marketplace.matching.rules.score`, the reference) only the offers a profile can find
  relevant, and of those only the ones that can still enter its top N: offers reached through the
  industry concordance alone are visited best possible points first and the visit stops once none
  can beat the N-th best. :func:`top_matches_by_scoring_all` is the plain definition it agrees with.
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
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
    """The most tier, cost and region can add to ``item``'s points, for any profile."""
    cost = weights.no_upfront if item.upfront_cost_fen == 0 else max(0, weights.within_budget, weights.over_budget)
    after_use = max(0, weights.pay_after_use, weights.pay_after_use_preferred) if item.pay_after_use else 0
    region = max(0, weights.same_region) if item.province_code else 0
    return max(0, rules.tier_points(item.tier, weights)) + cost + after_use + region


@lru_cache(maxsize=8192)
def line_points(
    profile_industries: tuple[str, ...], weights: rules.Weights = rules.WEIGHTS
) -> tuple[tuple[str, int], ...]:
    """The concordance lines ``profile_industries`` match and the industry points each gives, best first."""
    lines = []
    for branch in rules.industry_branches(profile_industries, weights):
        lines.extend((prefix, branch.points) for prefix in (*branch.subclasses, *branch.classes))
    return tuple(sorted(lines, key=lambda line: -line[1]))


@dataclass
class OfferIndex:
    """New offers indexed by what makes an offer relevant to a profile (positions in ``offers``)."""

    offers: list[NewOffer]
    weights: rules.Weights = rules.WEIGHTS
    #: Concordance line (the IPC prefix that maps the offer's subclass to industries) → positions,
    #: highest booster ceiling first, then newest.
    by_line: dict[str, list[int]] = field(default_factory=dict)
    by_subclass: dict[str, list[int]] = field(default_factory=dict)
    by_class: dict[str, list[int]] = field(default_factory=dict)
    by_token: dict[str, list[int]] = field(default_factory=dict)
    ceilings: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, offers: Iterable[NewOffer], weights: rules.Weights = rules.WEIGHTS) -> OfferIndex:
        index = cls(list(offers), weights)
        index.ceilings = [booster_ceiling(offer.item, weights) for offer in index.offers]
        for position, offer in enumerate(index.offers):
            subclass = offer.item.ipc_subclass
            if subclass:
                index.by_subclass.setdefault(subclass, []).append(position)
                index.by_class.setdefault(subclass[:3], []).append(position)
                prefix, _ = rules.industries_of(subclass)
                if prefix:
                    index.by_line.setdefault(prefix, []).append(position)
            for token in offer.item.tokens:
                index.by_token.setdefault(token, []).append(position)
        for positions in index.by_line.values():
            positions.sort(key=lambda p: (index.ceilings[p], *index.offers[p].key), reverse=True)
        return index

    def __len__(self) -> int:
        return len(self.offers)

    def with_keyword(self, keyword: str) -> Sequence[int]:
        """Positions that may hold every token of ``keyword`` (the shortest token list; score decides)."""
        tokens = rules.keyword_tokens(keyword)
        if not tokens:
            return ()
        return min((self.by_token.get(token, ()) for token in tokens), key=len)

    def signal_candidates(self, profile: rules.Profile) -> set[int]:
        """Every offer that IPC codes (own or learned) or keywords (own or learned) can make relevant."""
        found: set[int] = set()
        for code in profile.ipc_codes:
            found.update((self.by_subclass if len(code) == 4 else self.by_class).get(code, ()))
        for code in profile.top_learned_ipc:
            found.update(self.by_subclass.get(code, ()))
        for keyword in (*profile.keywords, *profile.top_learned_keywords):
            found.update(self.with_keyword(keyword))
        return found


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


def top_matches(
    index: OfferIndex, profile: rules.Profile, exclusions: Exclusions = Exclusions(), size: int = DIGEST_SIZE
) -> list[Found]:
    """The ``size`` best relevant new offers for ``profile``, best first (ties: newer first)."""
    if size <= 0 or not index.offers or profile.is_empty:
        return []
    weights = index.weights
    offers = index.offers
    best: Best[Found] = Best(size)
    special = index.signal_candidates(profile)
    for position in special:
        offer = offers[position]
        if exclusions.excludes(offer):
            continue
        match = rules.score(profile, offer.item, weights)
        if match.relevant:
            found = Found(offer, match)
            best.offer(found.rank_key, found)
    ceilings = index.ceilings
    # Offers reached only through the concordance earn exactly the line's industry points plus
    # tier, cost and region (no IPC or keyword points: those offers are in ``special``).
    for prefix, points in line_points(profile.industries, weights):
        for position in index.by_line.get(prefix, ()):
            offer = offers[position]
            floor = best.floor
            if floor is not None and (points + ceilings[position], *offer.key) <= floor:
                break  # the rest of this line ranks lower still
            if position in special or exclusions.excludes(offer):
                continue
            match = rules.score(profile, offer.item, weights)
            found = Found(offer, match)
            best.offer(found.rank_key, found)
    return best.sorted()


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
