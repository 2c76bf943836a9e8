"""Chinese text segmentation for catalogue search (jieba), shared by indexing and querying.

Both sides segment with the same dictionary and without the HMM guesser, so a word is cut the
same way in a patent's abstract as in a query. Indexing uses search mode (words plus their
shorter dictionary words), querying uses precise mode, so every query token is among the
tokens indexed for the same text.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import jieba

jieba.setLogLevel(logging.WARNING)
# Technical terms jieba's general dictionary lacks (石墨烯 would otherwise be 石墨 + 烯).
jieba.load_userdict(str(Path(__file__).with_name("data") / "terms.txt"))

# Title words count three times so that a title match outranks a passing mention in an abstract.
TITLE_WEIGHT = 3
_WORD = re.compile(r"[\w\u4e00-\u9fff]+", re.UNICODE)
_STOP = frozenset("的 了 和 与 及 或 在 是 一种 所述 其 为 对 由 中 上 下 用 于 及其 以及 等 该 将 可 并".split())


def _clean(tokens: list[str]) -> list[str]:
    out = []
    for token in tokens:
        token = token.strip().lower()
        if token and token not in _STOP and _WORD.fullmatch(token):
            out.append(token)
    return out


def index_tokens(title: str, abstract: str = "", extra: str = "") -> str:
    """The space-separated token string stored in ``catalogue_entries.search_tokens``."""
    title_tokens = _clean(list(jieba.cut_for_search(title, HMM=False)))
    body = f"{abstract} {extra}"
    body_tokens = _clean(list(jieba.cut_for_search(body, HMM=False)))
    return " ".join(title_tokens * TITLE_WEIGHT + body_tokens)


def query_tokens(query: str) -> list[str]:
    """Distinct tokens of a user's query, in order; empty when it has no searchable word."""
    seen: dict[str, None] = {}
    for token in _clean(list(jieba.cut(query, HMM=False))):
        seen.setdefault(token, None)
    return list(seen)
