"""Precision@10 of the recommendations on the labelled evaluation set (issue 6).

tests/data/matching/evaluation_set.toml holds 181 realistic synthetic patents and 30 enterprises,
each with the patents a domain expert judged relevant to it (the criteria are at the top of that
file). Every enterprise is ranked by ``services.rank(limit=10)`` over the whole set, on SQLite and
PostgreSQL; the database's order is checked against ``rules.score`` applied to every catalogue row in
Python, so the figure cannot depend on the dialect.

Measured on 2026-12-04, identical on SQLite and PostgreSQL: mean precision@10 = 0.869 over the 30
enterprises (0.873 while 一般 still earned 4 tier points; the lowest, 0.60, is the TCM maker, whose
A61K profile also brings chemical drugs and biologics). The floor sits just below it, so a
regression in the points table, the concordance or the query fails here. ``pytest -s`` prints each
enterprise's first ten.
"""

from __future__ import annotations

import random
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from marketplace.accounts.models import OrganisationKind
from marketplace.catalogue.models import CatalogueEntry
from marketplace.matching import rules, services
from marketplace.offers.models import PaymentMode
from marketplace.patents.models import PatentType
from tests.catalogue_factories import BASE_TIME, make_licensor, publish_offer

SET = Path(__file__).parents[1] / "data" / "matching" / "evaluation_set.toml"
MEASURED = 0.869
FLOOR = 0.86
RELEVANCE_KINDS = {"industry", "ipc", "keyword"}


def _load() -> dict:
    with SET.open("rb") as handle:
        return tomllib.load(handle)


def profile_of(enterprise: dict) -> rules.Profile:
    budget = enterprise.get("budget_yuan")
    return rules.Profile(
        industries=tuple(enterprise.get("industries", ())),
        keywords=tuple(enterprise.get("keywords", ())),
        ipc_codes=tuple(enterprise.get("ipc", ())),
        provinces=tuple(enterprise.get("provinces", ())),
        max_upfront_fen=budget * 100 if budget is not None else None,
        prefers_pay_after_use=enterprise.get("pay_after_use", False),
        learned_ipc=enterprise.get("learned_ipc", {}),
        learned_keywords=enterprise.get("learned_keywords", {}),
    )


def precision_at_10(shown: list[str], relevant: set[str]) -> float:
    return len([key for key in shown[:10] if key in relevant]) / min(10, len(relevant))


def test_the_set_is_well_formed():
    """Every reference resolves, every profile passes the profile rules, and each enterprise has at
    least three judged patents (fewer would make its precision a coin toss)."""
    data = _load()
    ids = [patent["id"] for patent in data["patent"]]
    assert len(ids) == len(set(ids)) and 120 <= len(ids) <= 200
    for patent in data["patent"]:
        assert rules.industries_of(rules.ipc_subclass(patent["ipc"]))[0], patent["id"]
        assert patent["province"] in rules.PROVINCES, patent["id"]
    assert 20 <= len(data["enterprise"]) <= 30
    for enterprise in data["enterprise"]:
        relevant = enterprise["relevant"]
        assert len(relevant) >= 3 and set(relevant) <= set(ids), enterprise["id"]
        profile = profile_of(enterprise)
        _, errors = rules.check_profile(
            rules.ProfileInput(
                industries=profile.industries,
                keywords=profile.keywords,
                ipc_codes=profile.ipc_codes,
                provinces=profile.provinces,
                max_upfront_fen=profile.max_upfront_fen,
            )
        )
        assert errors == [], (enterprise["id"], errors)


async def _publish(db, patents: list[dict]) -> dict[int, str]:
    """Every patent as a published offer of a university in its province; returns patent id → set id.
    Publication instants are a fixed shuffle, so that ties (broken by newest) owe nothing to the
    order of the file."""
    licensors = {}
    order = list(range(len(patents)))
    random.Random(6).shuffle(order)
    keys: dict[int, str] = {}
    tiers: dict[str, list[int]] = {}
    for position, patent in zip(order, patents, strict=True):
        province = patent["province"]
        if province not in licensors:
            licensors[province] = await make_licensor(db, f"评测{province}大学", division_code=f"{province}0100")
        offer = await publish_offer(
            db,
            licensors[province],
            patent["title"],
            patent["abstract"],
            patent_type=PatentType(patent.get("type", "invention")),
            ipc_main=patent["ipc"],
            mode=PaymentMode(patent["mode"]),
            amount_fen=patent.get("upfront_yuan", 0) * 100,
            published_at=BASE_TIME + timedelta(hours=position),
        )
        keys[offer.patent_id] = patent["id"]
        if patent.get("tier"):
            tiers.setdefault(patent["tier"], []).append(offer.patent_id)
    # The tier the tiering rule would have copied into each catalogue row.
    for tier, patent_ids in tiers.items():
        await db.execute(update(CatalogueEntry).where(CatalogueEntry.patent_id.in_(patent_ids)).values(tier=tier))
    await db.commit()
    return keys


def _reference_top(profile: rules.Profile, rows: list, keys: dict[int, str]) -> list[str]:
    """The first ten by ``rules.score`` over every row, in the ranking's order (points, newest, id)."""
    scored = []
    for row in rows:
        match = rules.score(profile, services.item_of(row))
        if match.relevant:
            scored.append((-match.points, -row.published_at.timestamp(), -row.id, keys[row.patent_id]))
    return [key for *_, key in sorted(scored)[:10]]


@dataclass
class Line:
    enterprise: str
    precision: float
    shown: list[str]


async def test_precision_at_10_on_the_labelled_set(db):
    data = _load()
    keys = await _publish(db, data["patent"])
    rows = list((await db.execute(select(CatalogueEntry.__table__))).all())
    assert len(rows) == len(data["patent"])
    lines = []
    shortcuts: Counter[str] = Counter()
    for enterprise in data["enterprise"]:
        organisation = await make_licensor(
            db, enterprise["name"], kind=OrganisationKind.ENTERPRISE, division_code=f"{enterprise['provinces'][0]}0100"
        )
        profile = profile_of(enterprise)
        recommended = await services.rank(db, profile, organisation.id, limit=10)
        shown = [keys[item.patent_id] for item in recommended]
        # Where rank() took a shortcut, the order above (checked below) is the full one.
        dialect = db.get_bind().dialect.name
        if await services.keywords_first(db, dialect, profile, organisation.id, 10) is not None:
            shortcuts["keywords first"] += 1
        elif await services.pruned_rows(db, dialect, profile, organisation.id, 10) is not None:
            shortcuts["pruned"] += 1
        for item in recommended:
            assert {reason.kind for reason in item.match.reasons} & RELEVANCE_KINDS, (enterprise["id"], item.title)
        assert shown == _reference_top(profile, rows, keys), enterprise["id"]
        lines.append(Line(enterprise["id"], precision_at_10(shown, set(enterprise["relevant"])), shown))
    # Both shortcuts must be exercised: they decide for 5 and 3 of the 30 (7 for pruning while 一般 still
    # earned tier points, which raised the bound); the others scored every candidate.
    assert shortcuts["keywords first"] >= 4 and shortcuts["pruned"] >= 3, shortcuts
    mean = sum(line.precision for line in lines) / len(lines)
    table = "\n".join(f"{line.enterprise} {line.precision:.2f} {' '.join(line.shown)}" for line in lines)
    print(f"\nmean precision@10 = {mean:.3f}\n{table}")
    assert mean >= FLOOR, f"mean precision@10 {mean:.3f} < {FLOOR} (it was {MEASURED} when the floor was set)\n{table}"
