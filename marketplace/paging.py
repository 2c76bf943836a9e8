"""One page of a listing, and the bounds every paged listing accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from marketplace.errors import ValidationFailed

T = TypeVar("T")

PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_PAGE = 100_000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    if not 1 <= page <= MAX_PAGE:
        raise ValidationFailed.single("page", f"页码应在1至{MAX_PAGE}之间")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise ValidationFailed.single("per_page", f"每页条数应在1至{MAX_PER_PAGE}之间")
    return page, per_page
