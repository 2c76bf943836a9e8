"""Matching (匹配推荐) rules: an enterprise's interest profile (兴趣画像) against a patent's facts.

Pure: no session, no framework. The same points table serves the SQL ranking of the
recommendations page (``services``, which pushes each signal into the database) and the in-memory
scoring of the weekly digest and of a licensor's push; ``score`` is the reference both agree with,
and every recommendation carries the reason lines that add up to its points.

Signals (points in :data:`WEIGHTS`):

* industry — the patent's main IPC subclass → GB/T 4754 industries through the concordance file
  (``data/ipc_industries.tsv``, longest IPC prefix wins), compared with the profile's industries;
* IPC — the profile's own IPC classes or subclasses, and the subclasses it viewed and evaluated;
* keywords — every jieba token of a profile keyword in the patent's indexed text;
* tier, cost fit (no upfront fee, within budget, pay-after-use), region (same province).

Only the first three say that a patent is *relevant*; the others order relevant patents and
never recommend one on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import islice
from pathlib import Path

from marketplace.catalogue.rules import PROVINCES, query_tokens
from marketplace.errors import FieldError
from marketplace.money import format_yuan

_DATA = Path(__file__).with_name("data")

# ---------------------------------------------------------------------------------------------
# Reference data: GB/T 4754 industries and the IPC concordance
# ---------------------------------------------------------------------------------------------

_SECTIONS_FILE = Path(__file__).parents[1] / "accounts" / "data" / "industries.tsv"


def _read_tsv(path: Path) -> list[list[str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.rstrip("\n").split("\t"))
    return rows


@cache
def industries() -> dict[str, str]:
    """Every industry code a profile may hold: sections (``C``), divisions (``C38``), groups (``C384``)."""
    names = {code: name for code, name in _read_tsv(_SECTIONS_FILE)}
    names.update({code: name for code, name in _read_tsv(_DATA / "industries.tsv")})
    return dict(sorted(names.items()))


def industry_label(code: str) -> str:
    name = industries().get(code, "")
    return f"{code} {name}" if name else code


INDUSTRY_MATCHES = 12


def industry_matches(query: str, limit: int = INDUSTRY_MATCHES) -> list[tuple[str, str]]:
    """Industries whose code starts with ``query`` (any case) or whose name contains it, in code order."""
    text = query.strip()
    if not text:
        return []
    code = text.upper()
    if code.isascii() and code.isalnum():
        found = ((known, name) for known, name in industries().items() if known.startswith(code))
    else:
        found = ((known, name) for known, name in industries().items() if text in name)
    return list(islice(found, limit))


@dataclass(frozen=True)
class IndustryLookup:
    """What the lookup beside a profile's industries input shows: the name of each code typed, and
    for each other word the industries it might mean (the person picks one, or types its code)."""

    #: Every word typed, in order.
    words: tuple[str, ...]
    known: tuple[tuple[str, str], ...]
    #: (word, [(code, name) …]); an empty list means nothing matched.
    unknown: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

    def choosing(self, word: str, code: str) -> str:
        """The input's value once ``word`` is replaced by the suggested ``code``."""
        return ", ".join(code if typed == word else typed for typed in self.words)


def lookup_industries(raw: str) -> IndustryLookup:
    names = industries()
    known: list[tuple[str, str]] = []
    unknown: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    words = _split(raw)
    # A few more words than a profile may hold, so the person sees the ones past the limit too.
    for word in words[: MAX_INDUSTRIES + 5]:
        code = word.upper()
        if code in names:
            known.append((code, names[code]))
        else:
            unknown.append((word, tuple(industry_matches(word))))
    return IndustryLookup(tuple(words), tuple(known), tuple(unknown))


@cache
def concordance() -> dict[str, tuple[str, ...]]:
    """IPC class or subclass → industry codes, most relevant first."""
    known = industries()
    table: dict[str, tuple[str, ...]] = {}
    for prefix, codes in _read_tsv(_DATA / "ipc_industries.tsv"):
        values = tuple(code.strip() for code in codes.split(",") if code.strip())
        unknown = [code for code in values if code not in known]
        if unknown or not values or prefix in table:
            raise ValueError(f"ipc_industries.tsv: bad line for {prefix}: {codes}")
        table[prefix] = values
    return table


def ipc_subclass(ipc: str | None) -> str | None:
    """``H01M 10/0525`` → ``H01M``; None when the code has no subclass."""
    code = (ipc or "").replace(" ", "").upper()
    return code[:4] if _SUBCLASS.fullmatch(code[:4]) else None


def industries_of(subclass: str | None) -> tuple[str, tuple[str, ...]]:
    """The concordance entry for a patent's subclass: (the IPC prefix that matched, its industries)."""
    if not subclass:
        return "", ()
    table = concordance()
    for prefix in (subclass, subclass[:3]):
        if prefix in table:
            return prefix, table[prefix]
    return "", ()


# ---------------------------------------------------------------------------------------------
# The points table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    industry_group: int = 30  # the patent's industry is one of the profile's groups (中类)
    industry_division: int = 24  # … lies in one of the profile's divisions (大类)
    industry_related: int = 16  # … shares a division with one of the profile's groups
    industry_section: int = 10  # … lies in one of the profile's sections (门类)
    ipc_subclass: int = 25
    ipc_class: int = 15
    ipc_learned: int = 12
    keyword: int = 15
    keyword_cap: int = 30
    keyword_learned: int = 6
    keyword_learned_cap: int = 12
    #: Only 高价值 counts: enterprises see this one mark of the tiering, never 一般 or 低.
    tier_high: int = 10
    no_upfront: int = 6
    within_budget: int = 6
    over_budget: int = -15
    pay_after_use: int = 4
    pay_after_use_preferred: int = 8
    same_region: int = 6


WEIGHTS = Weights()
#: How many viewed or evaluated subclasses and keywords a profile uses (the most frequent).
LEARNED_IPC = 3
LEARNED_KEYWORDS = 5


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------

MAX_INDUSTRIES = 10
MAX_KEYWORDS = 10
MAX_IPC = 10
MAX_KEYWORD_LENGTH = 20
MAX_BUDGET_FEN = 10**13
_SUBCLASS = re.compile(r"[A-H][0-9]{2}[A-Z]")
_IPC_CODE = re.compile(r"[A-H][0-9]{2}[A-Z]?")


@dataclass(frozen=True)
class Profile:
    """What an enterprise is interested in (企业兴趣画像)."""

    industries: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    ipc_codes: tuple[str, ...] = ()
    provinces: tuple[str, ...] = ()
    max_upfront_fen: int | None = None
    prefers_pay_after_use: bool = False
    #: Subclasses and keywords taken from what the enterprise viewed and evaluated, with counts.
    learned_ipc: Mapping[str, int] = field(default_factory=dict)
    learned_keywords: Mapping[str, int] = field(default_factory=dict)

    @property
    def top_learned_ipc(self) -> tuple[str, ...]:
        return _top(self.learned_ipc, LEARNED_IPC, exclude=self.ipc_codes)

    @property
    def top_learned_keywords(self) -> tuple[str, ...]:
        return _top(self.learned_keywords, LEARNED_KEYWORDS, exclude=self.keywords)

    @property
    def is_empty(self) -> bool:
        signals = (self.industries, self.keywords, self.ipc_codes, self.top_learned_ipc, self.top_learned_keywords)
        return not any(signals)

    @property
    def is_broad(self) -> bool:
        """Only whole sections (门类, such as sign-up's ``C``) say what is relevant: wide recommendations."""
        narrower = (self.keywords, self.ipc_codes, self.top_learned_ipc, self.top_learned_keywords)
        return bool(self.industries) and all(len(code) == 1 for code in self.industries) and not any(narrower)


def _top(counts: Mapping[str, int], size: int, *, exclude: Sequence[str]) -> tuple[str, ...]:
    ranked = sorted((item for item in counts.items() if item[0] not in exclude), key=lambda kv: (-kv[1], kv[0]))
    return tuple(name for name, _ in ranked[:size])


def _split(raw: str | Sequence[str]) -> list[str]:
    items = re.split(r"[,，、;；\s]+", raw) if isinstance(raw, str) else list(raw)
    seen: dict[str, None] = {}
    for item in items:
        item = str(item).strip()
        if item:
            seen.setdefault(item, None)
    return list(seen)


@dataclass(frozen=True)
class ProfileInput:
    """A profile as a form or the API sends it, before checking."""

    industries: str | Sequence[str] = ()
    keywords: str | Sequence[str] = ()
    ipc_codes: str | Sequence[str] = ()
    provinces: str | Sequence[str] = ()
    max_upfront_fen: int | None = None
    prefers_pay_after_use: bool = False


def check_profile(data: ProfileInput) -> tuple[dict[str, object], list[FieldError]]:
    """The profile's stored values and every problem, each against its field."""
    errors: list[FieldError] = []
    known = industries()
    codes = [code.upper() for code in _split(data.industries)]
    bad = [code for code in codes if code not in known]
    if bad:
        errors.append(
            FieldError(
                "industries",
                f"未知的行业代码：{'、'.join(bad)}（应为 GB/T 4754 门类、大类或中类代码，如 C、C38、C384）",
                "unknown_industry",
            )
        )
    if len(codes) > MAX_INDUSTRIES:
        errors.append(FieldError("industries", f"行业最多选择 {MAX_INDUSTRIES} 个", "too_many"))
    keywords = [word.lower() for word in _split(data.keywords)]
    if len(keywords) > MAX_KEYWORDS:
        errors.append(FieldError("keywords", f"关键词最多 {MAX_KEYWORDS} 个", "too_many"))
    long_words = [word for word in keywords if len(word) > MAX_KEYWORD_LENGTH]
    if long_words:
        errors.append(FieldError("keywords", f"每个关键词不超过 {MAX_KEYWORD_LENGTH} 个字", "too_long"))
    empty = [word for word in keywords if not query_tokens(word)]
    if empty:
        errors.append(FieldError("keywords", f"关键词无可检索的字词：{'、'.join(empty)}", "no_tokens"))
    ipc = [code.replace(" ", "").upper() for code in _split(data.ipc_codes)]
    bad_ipc = [code for code in ipc if not _IPC_CODE.fullmatch(code)]
    if bad_ipc:
        errors.append(
            FieldError("ipc_codes", f"IPC 分类应为大类或小类，如 H01 或 H01M：{'、'.join(bad_ipc)}", "bad_ipc")
        )
    if len(ipc) > MAX_IPC:
        errors.append(FieldError("ipc_codes", f"IPC 分类最多 {MAX_IPC} 个", "too_many"))
    provinces = _split(data.provinces)
    bad_regions = [code for code in provinces if code not in PROVINCES]
    if bad_regions:
        errors.append(FieldError("provinces", f"未知的省级行政区代码：{'、'.join(bad_regions)}", "unknown_province"))
    budget = data.max_upfront_fen
    if budget is not None and not 0 <= budget <= MAX_BUDGET_FEN:
        errors.append(FieldError("max_upfront", "预算应为不小于 0 的金额", "bad_budget"))
    values = {
        "industries": codes,
        "keywords": keywords,
        "ipc_codes": ipc,
        "province_codes": provinces,
        "max_upfront_fen": budget,
        "prefers_pay_after_use": bool(data.prefers_pay_after_use),
    }
    return values, errors


@cache
def _terms() -> frozenset[str]:
    lines = (Path(__file__).parents[1] / "catalogue" / "data" / "terms.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line.split()[0].lower() for line in lines if line.strip() and not line.startswith("#"))


def domain_terms(title: str) -> list[str]:
    """The technical terms (the catalogue's jieba dictionary) in a patent title, for learned keywords."""
    return [token for token in query_tokens(title) if token in _terms()]


def learn(counts: Mapping[str, int], items: Iterable[str], weight: int, *, keep: int = 20) -> dict[str, int]:
    """Add ``weight`` to each item's count, keeping the ``keep`` most frequent (the profile stays small)."""
    merged = dict(counts)
    for item in items:
        merged[item] = merged.get(item, 0) + weight
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]
    return dict(ranked)


# ---------------------------------------------------------------------------------------------
# Items and scoring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A patent as matching sees it."""

    ipc_subclass: str | None
    tokens: frozenset[str]
    tier: str | None
    #: None for a stock patent: no terms announced, so cost fit says nothing.
    upfront_cost_fen: int | None
    pay_after_use: bool
    province_code: str | None


@dataclass(frozen=True)
class Reason:
    kind: str  # industry | ipc | keyword | tier | cost | region
    text: str
    points: int


@dataclass(frozen=True)
class Match:
    points: int
    reasons: tuple[Reason, ...]
    #: At least one of industry, IPC or keyword matched: the patent is worth showing.
    relevant: bool

    @property
    def why(self) -> str:
        """The reasons in one line, as the digest and the lists show them."""
        return "；".join(reason.text for reason in self.reasons)


def _industry_level(profile_code: str, item_code: str, weights: Weights) -> int:
    if profile_code == item_code or (item_code.startswith(profile_code) and len(profile_code) >= 3):
        return {1: weights.industry_section, 3: weights.industry_division}.get(
            len(profile_code), weights.industry_group
        )
    if len(profile_code) == 1 and item_code.startswith(profile_code):
        return weights.industry_section
    if len(profile_code) >= 3 and len(item_code) >= 3 and profile_code[:3] == item_code[:3]:
        return weights.industry_related
    return 0


def _line_points(profile_industries: Sequence[str], prefix: str, weights: Weights) -> tuple[int, str]:
    """The best pairing of a profile industry with one concordance line's industries."""
    best, best_code = 0, ""
    for item_code in concordance()[prefix]:
        for profile_code in profile_industries:
            points = _industry_level(profile_code, item_code, weights)
            if points > best:
                best, best_code = points, item_code
    return best, best_code


def industry_match(
    profile_industries: Sequence[str], subclass: str | None, weights: Weights = WEIGHTS
) -> tuple[int, str]:
    """Points and reason text for the best pairing of a profile industry and the patent's industries."""
    prefix, _ = industries_of(subclass)
    if not prefix:
        return 0, ""
    points, code = _line_points(profile_industries, prefix, weights)
    return points, (f"IPC {subclass} ↔ {industries()[code]}" if points else "")


@lru_cache(maxsize=4096)
def keyword_tokens(keyword: str) -> tuple[str, ...]:
    return tuple(query_tokens(keyword))


def keyword_hit(keyword: str, tokens: frozenset[str]) -> bool:
    wanted = keyword_tokens(keyword)
    return bool(wanted) and all(token in tokens for token in wanted)


def tier_points(tier: str | None, weights: Weights = WEIGHTS) -> int:
    return weights.tier_high if tier == "high_value" else 0


def cost_points(profile: Profile, upfront_fen: int, pay_after_use: bool, weights: Weights = WEIGHTS) -> list[Reason]:
    reasons = []
    if upfront_fen == 0:
        reasons.append(Reason("cost", "无需预付费用", weights.no_upfront))
    elif profile.max_upfront_fen is not None:
        if upfront_fen <= profile.max_upfront_fen:
            reasons.append(Reason("cost", f"首付 ¥{format_yuan(upfront_fen)} 在预算内", weights.within_budget))
        else:
            reasons.append(Reason("cost", f"首付 ¥{format_yuan(upfront_fen)} 超出预算", weights.over_budget))
    if pay_after_use:
        points = weights.pay_after_use_preferred if profile.prefers_pay_after_use else weights.pay_after_use
        reasons.append(Reason("cost", "先用后付", points))
    return reasons


def score(profile: Profile, item: Item, weights: Weights = WEIGHTS) -> Match:
    """The points ``item`` earns for ``profile`` and the reason for each one."""
    reasons: list[Reason] = []
    points, text = industry_match(profile.industries, item.ipc_subclass, weights)
    if points:
        reasons.append(Reason("industry", text, points))
    ipc_reason = _ipc_reason(profile, item.ipc_subclass, weights)
    if ipc_reason:
        reasons.append(ipc_reason)
    explicit = [word for word in profile.keywords if keyword_hit(word, item.tokens)]
    if explicit:
        reasons.append(
            Reason(
                "keyword", f"关键词 {'、'.join(explicit)}", min(weights.keyword_cap, weights.keyword * len(explicit))
            )
        )
    learned = [word for word in profile.top_learned_keywords if keyword_hit(word, item.tokens)]
    if learned:
        reasons.append(
            Reason(
                "keyword",
                f"您关注过 {'、'.join(learned)}",
                min(weights.keyword_learned_cap, weights.keyword_learned * len(learned)),
            )
        )
    relevant = bool(reasons)
    tier = tier_points(item.tier, weights)
    if tier:
        reasons.append(Reason("tier", "高价值专利", tier))
    if item.upfront_cost_fen is not None:
        reasons.extend(cost_points(profile, item.upfront_cost_fen, item.pay_after_use, weights))
    if item.province_code and item.province_code in profile.provinces:
        reasons.append(
            Reason("region", f"同在{PROVINCES.get(item.province_code, item.province_code)}", weights.same_region)
        )
    return Match(sum(reason.points for reason in reasons), tuple(reasons), relevant)


def _ipc_reason(profile: Profile, subclass: str | None, weights: Weights) -> Reason | None:
    if not subclass:
        return None
    if subclass in profile.ipc_codes:
        return Reason("ipc", f"IPC {subclass} 与关注分类一致", weights.ipc_subclass)
    if subclass[:3] in profile.ipc_codes:
        return Reason("ipc", f"IPC {subclass} 属关注的 {subclass[:3]} 大类", weights.ipc_class)
    if subclass in profile.top_learned_ipc:
        return Reason("ipc", f"IPC {subclass}（您浏览或评价过同类专利）", weights.ipc_learned)
    return None


# ---------------------------------------------------------------------------------------------
# What the database query needs: the signals as code lists with their points
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndustryBranch:
    """Patents whose concordance line is one of ``prefixes`` earn ``points`` for industry."""

    points: int
    subclasses: tuple[str, ...]
    classes: tuple[str, ...]
    #: Subclasses with a line of their own, which a class-level line does not cover.
    overridden: tuple[str, ...]


@lru_cache(maxsize=1024)
def industry_branches(profile_industries: tuple[str, ...], weights: Weights = WEIGHTS) -> tuple[IndustryBranch, ...]:
    """The concordance lines a profile's industries match, grouped by the points they give."""
    by_points: dict[int, list[str]] = {}
    for prefix in concordance():
        points, _ = _line_points(profile_industries, prefix, weights)
        if points:
            by_points.setdefault(points, []).append(prefix)
    table = concordance()
    subclass_lines = [prefix for prefix in table if len(prefix) == 4]
    branches = []
    for points, prefixes in sorted(by_points.items(), reverse=True):
        classes = tuple(sorted(p for p in prefixes if len(p) == 3))
        overridden = tuple(sorted(s for s in subclass_lines if s[:3] in classes))
        branches.append(IndustryBranch(points, tuple(sorted(p for p in prefixes if len(p) == 4)), classes, overridden))
    return tuple(branches)
