"""The digest's pure parts: picking the best new offers for a profile (pruned, yet the same as
scoring every offer), the push rate limit, the digest week and the signed unsubscribe link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.matching import digest_rules as dr
from marketplace.matching import rules

T0 = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)  # Monday 08:30 in Shanghai


def offer(offer_id: int, subclass: str | None, tokens: str = "", *, hours: int = 0, **item) -> dr.NewOffer:
    fields = {"tier": None, "upfront_cost_fen": 100_000, "pay_after_use": False, "province_code": None} | item
    return dr.NewOffer(
        offer_id=offer_id,
        patent_id=1000 + offer_id,
        licensor_id=fields.pop("licensor_id", 1),
        title=f"专利{offer_id}",
        published_at=T0 - timedelta(hours=hours),
        item=rules.Item(ipc_subclass=subclass, tokens=frozenset(tokens.split()), **fields),
    )


# ---------------------------------------------------------------------------------------------
# Best matches
# ---------------------------------------------------------------------------------------------


def test_top_matches_known_answer():
    offers = [
        offer(1, "H01M", "石墨烯 负极 材料", hours=5),  # 电池制造 via the concordance, 石墨烯 keyword
        offer(2, "H01M", "电池 外壳", hours=1, upfront_cost_fen=0),  # concordance + no upfront fee
        offer(3, "H01M", "电池 外壳", hours=2, upfront_cost_fen=0),  # the same points, older
        offer(4, "C02F", "污水 处理", hours=1),  # not relevant to this profile
        offer(5, None, "石墨烯 薄膜", hours=3),  # keyword only
        offer(6, "H01M", "石墨烯", hours=0, licensor_id=77),  # the enterprise's own offer
    ]
    index = dr.OfferIndex.of(offers)
    profile = rules.Profile(industries=("C384",), keywords=("石墨烯",))
    found = dr.top_matches(index, profile, dr.Exclusions(organisation_id=77), size=3)
    assert [f.offer.offer_id for f in found] == [1, 2, 3]
    assert found[0].match.why == "IPC H01M ↔ 电池制造；关键词 石墨烯"
    assert [f.match.points for f in found] == [45, 36, 36]
    # Already in last week's digest: offers published up to ``after`` are left out.
    later = dr.top_matches(index, profile, dr.Exclusions(after=T0 - timedelta(hours=3), organisation_id=77))
    assert [f.offer.offer_id for f in later] == [2, 3]
    assert dr.top_matches(index, rules.Profile(provinces=("11",)), size=5) == []


def test_licensed_patents_are_left_out():
    offers = [offer(1, "H01M"), offer(2, "H01M", hours=1)]
    found = dr.top_matches(
        dr.OfferIndex.of(offers), rules.Profile(ipc_codes=("H01",)), dr.Exclusions(patent_ids=frozenset({1001}))
    )
    assert [f.offer.offer_id for f in found] == [2]
    assert found[0].match.why == "IPC H01M 属关注的 H01 大类"


SUBCLASSES = ["H01M", "H01L", "C02F", "A61K", "G06F", "B60L", "H02J", "C08L", "A01B", "F24S", None]
WORDS = ["石墨烯", "电池", "负极", "污水", "处理", "芯片", "算法", "光伏", "农机", "材料"]
INDUSTRIES = ["C", "C38", "C384", "C26", "C39", "I65", "D44", "A01", "N77", "C35", "C357"]
PROVINCES = ["11", "31", "33", "44"]

offers_strategy = st.lists(
    st.tuples(
        # Mostly a few subclasses, so that lists are long enough to be cut short.
        st.one_of(st.sampled_from(["H01M", "H01L", "C02F"]), st.sampled_from(SUBCLASSES)),
        st.sets(st.sampled_from(WORDS), max_size=4),
        st.integers(0, 6),  # published hours ago: ties are frequent
        st.sampled_from([None, "high_value", "general", "low"]),
        st.sampled_from([0, 500_000, 5_000_000]),
        st.booleans(),
        st.sampled_from([None, *PROVINCES]),
        st.integers(1, 4),  # licensor
    ),
    max_size=60,
)
profile_strategy = st.builds(
    rules.Profile,
    industries=st.lists(st.sampled_from(INDUSTRIES), max_size=3, unique=True).map(tuple),
    keywords=st.lists(st.sampled_from(WORDS), max_size=3, unique=True).map(tuple),
    ipc_codes=st.lists(
        st.sampled_from(["H01M", "H01", "H01L", "C02F", "C02", "G06", "A61K"]), max_size=2, unique=True
    ).map(tuple),
    provinces=st.lists(st.sampled_from(PROVINCES), max_size=2, unique=True).map(tuple),
    max_upfront_fen=st.sampled_from([None, 0, 1_000_000]),
    prefers_pay_after_use=st.booleans(),
    learned_ipc=st.dictionaries(st.sampled_from(["H01L", "B60L", "C08L"]), st.integers(1, 5), max_size=2),
    learned_keywords=st.dictionaries(st.sampled_from(WORDS), st.integers(1, 5), max_size=3),
)


@settings(max_examples=600, deadline=None)
@given(
    offers_strategy,
    profile_strategy,
    st.integers(1, 4),
    st.sampled_from([None, 2, 5]),
    st.sets(st.integers(1001, 1060), max_size=3),
)
def test_pruned_top_matches_equal_scoring_every_offer(raw, profile, size, after_hours, licensed):
    offers = [
        offer(
            n,
            sub,
            " ".join(words),
            hours=h,
            tier=tier,
            upfront_cost_fen=up,
            pay_after_use=pau,
            province_code=prov,
            licensor_id=lic,
        )
        for n, (sub, words, h, tier, up, pau, prov, lic) in enumerate(raw, start=1)
    ]
    after = T0 - timedelta(hours=after_hours) if after_hours is not None else None
    exclusions = dr.Exclusions(after=after, organisation_id=2, patent_ids=frozenset(licensed))
    index = dr.OfferIndex.of(offers)
    # The quick points the walk compares are rules.score's.
    bounds = dr._Bounds(index, profile)
    for position, one in enumerate(offers):
        match = rules.score(profile, one.item)
        assert bounds.points(position) == (match.points if match.relevant else None)
    pruned = dr.top_matches(index, profile, exclusions, size)
    reference = dr.top_matches_by_scoring_all(offers, profile, exclusions, size)
    assert [(f.offer.offer_id, f.match) for f in pruned] == [(f.offer.offer_id, f.match) for f in reference]
    assert all(f.match.relevant and f.offer.licensor_id != 2 for f in pruned)
    # The picker reuses another enterprise's result for the same profile unless it must not.
    picker = dr.Picker(index, size)
    others = picker.pick(profile, dr.Exclusions(after=after, organisation_id=99))
    assert others == dr.top_matches_by_scoring_all(offers, profile, dr.Exclusions(after=after), size)
    picked = picker.pick(profile, exclusions)
    assert [(f.offer.offer_id, f.match) for f in picked] == [(f.offer.offer_id, f.match) for f in reference]


# ---------------------------------------------------------------------------------------------
# Push rate limit
# ---------------------------------------------------------------------------------------------

DAY = timedelta(days=1)


def test_push_rate_limit_known_answers():
    assert dr.push_refusal(T0, [], []) is None
    again = dr.push_refusal(T0, [T0 - 3 * DAY], [T0 - 3 * DAY])
    assert again.code == "offer_pushed_recently" and again.next_at == T0 + 4 * DAY
    assert again.message == (
        "该声明已于 2026-12-04 08:30 推送，每项声明 7 日内只能推送一次。可于 2026-12-11 08:30 后再次推送"
    )
    assert dr.push_refusal(T0, [T0 - 7 * DAY], [T0 - 7 * DAY]) is None  # exactly seven days later
    five = [T0 - timedelta(days=d) for d in (6, 5, 4, 2, 1)]
    busy = dr.push_refusal(T0, [], five)
    assert busy.code == "licensor_push_limit" and busy.next_at == T0 + DAY  # when the oldest leaves the window
    assert "贵单位 7 日内已推送 5 次，7 日内最多推送 5 次" in busy.message
    assert dr.push_refusal(T0, [], [*five[1:], T0 - 8 * DAY]) is None
    both = dr.push_refusal(T0, [T0 - 2 * DAY], five)
    assert both.next_at == T0 + 5 * DAY and both.code == "licensor_push_limit"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30 * 24), st.integers(1, 4)), max_size=40))
def test_push_rate_limit_holds_for_any_sequence_of_attempts(attempts):
    """Attempts (hour, offer) in time order, pushed whenever allowed: no offer twice within seven
    days, never more than five pushes in any seven days; a refusal names the first moment allowed."""
    accepted: list[tuple[datetime, int]] = []
    for hour, offer_id in sorted(attempts):
        now = T0 + timedelta(hours=hour)
        mine = [t for t, o in accepted if o == offer_id]
        everyone = [t for t, _ in accepted]
        refusal = dr.push_refusal(now, mine, everyone)
        if refusal is None:
            accepted.append((now, offer_id))
            continue
        assert refusal.next_at > now
        assert dr.push_refusal(refusal.next_at, mine, everyone) is None
        assert dr.push_refusal(refusal.next_at - timedelta(microseconds=1), mine, everyone) is not None
    for at, offer_id in accepted:
        window = [t for t, _ in accepted if at <= t < at + dr.PUSH_LICENSOR_WINDOW]
        assert len(window) <= dr.PUSH_LICENSOR_LIMIT
        same = [t for t, o in accepted if o == offer_id and at < t < at + dr.PUSH_OFFER_INTERVAL]
        assert same == []


def test_note_length():
    assert dr.check_note("欢迎洽谈" * 50) is None
    assert dr.check_note("长" * 201) == "推送附言不超过 200 字（现有 201 字）"


# ---------------------------------------------------------------------------------------------
# Week and unsubscribe link
# ---------------------------------------------------------------------------------------------


def test_digest_week_is_the_business_week_from_monday_morning():
    sunday_night_utc = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)  # Monday 01:00 in Shanghai
    assert dr.week_key(sunday_night_utc) == "2026-W50" and dr.week_number(sunday_night_utc) == 202650
    assert not dr.digest_week_due(sunday_night_utc)
    assert dr.digest_week_due(datetime(2026, 12, 7, 0, 0, tzinfo=UTC))  # Monday 08:00
    assert dr.digest_week_due(datetime(2026, 12, 9, 1, 0, tzinfo=UTC))  # Wednesday: a missed Monday
    assert dr.week_key(datetime(2027, 1, 1, 4, 0, tzinfo=UTC)) == "2026-W53"


def test_unsubscribe_token_round_trip_and_tampering():
    token = dr.unsubscribe_token("secret", 42)
    assert token.startswith("42.") and dr.unsubscribe_organisation("secret", token) == 42
    signature = token.split(".")[1]
    assert dr.unsubscribe_organisation("secret", f"43.{signature}") is None
    assert dr.unsubscribe_organisation("other-secret", token) is None
    assert dr.unsubscribe_organisation("secret", token[:-2]) is None
    for junk in ("", ".", "42", "abc.def", "４２." + signature, "42." + "签名"):
        assert dr.unsubscribe_organisation("secret", junk) is None
