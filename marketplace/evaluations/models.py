"""Market evaluations (市场评价) of patents by enterprises and invited experts (评审专家)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.accounts.models import Organisation, User
from marketplace.db import Base, JsonB, enum_type
from marketplace.evaluations.tiering import Tier
from marketplace.patents.models import Patent


class CooperationWillingness(enum.StrEnum):
    """Willingness to cooperate with the university or institute (产学研合作意愿)."""

    STRONG = "strong"
    WILLING = "willing"
    NEUTRAL = "neutral"
    UNWILLING = "unwilling"

    @property
    def label(self) -> str:
        return {"strong": "强烈", "willing": "愿意", "neutral": "一般", "unwilling": "不愿意"}[self.value]


class PatentEvaluation(Base):
    """One evaluator's market evaluation of one patent (专利市场评价); edited in place, each edit audited."""

    __tablename__ = "patent_evaluations"
    __table_args__ = (
        UniqueConstraint("evaluator_user_id", "patent_id", name="uq_patent_evaluations_evaluator_patent"),
        CheckConstraint("prospects BETWEEN 1 AND 5", name="prospects_range"),
    )

    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="CASCADE"), index=True)
    evaluator_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    #: The organisation the evaluator acted for (the platform organisation for an expert).
    evaluator_organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    #: Industrialisation prospects (产业化前景), 1 (poor) to 5 (excellent).
    prospects: Mapped[int] = mapped_column(SmallInteger)
    #: Technical improvement needs (技术改进需求), free text.
    improvement_needs: Mapped[str | None] = mapped_column(Text)
    cooperation: Mapped[CooperationWillingness] = mapped_column(
        enum_type(CooperationWillingness, "cooperation_willingness")
    )
    #: Interested in taking a licence now (有意向立即取得许可).
    interested_now: Mapped[bool] = mapped_column(default=False)

    patent: Mapped[Patent] = relationship(lazy="joined", innerjoin=True)
    evaluator: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    evaluator_organisation: Mapped[Organisation] = relationship(lazy="joined", innerjoin=True)


class PatentTier(Base):
    """A catalogue patent's tier (分层) and re-evaluation flag (待重新评价), as the rule file last
    computed them (``evaluations.tiering``); rewritten only when the outcome changes."""

    __tablename__ = "patent_tiers"
    __table_args__ = (Index("ix_patent_tiers_tier_flag", "tier", "needs_re_evaluation"),)

    patent_id: Mapped[int] = mapped_column(ForeignKey("patents.id", ondelete="CASCADE"), unique=True)
    tier: Mapped[Tier] = mapped_column(enum_type(Tier, "patent_tier"))
    points: Mapped[int] = mapped_column()
    #: ``{"lines": [{"text", "points"}], "notes": [...], "summary": "..."}`` — the reason shown.
    reasons: Mapped[dict[str, Any]] = mapped_column(JsonB)
    needs_re_evaluation: Mapped[bool] = mapped_column(default=False)
    re_evaluation_reason: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    #: ``version@sha256-prefix`` of the rule file that computed it.
    rules_stamp: Mapped[str] = mapped_column(String(100))

    patent: Mapped[Patent] = relationship(lazy="joined", innerjoin=True)
