"""Text normalisation shared by indexing and querying, so "ЗАКАЗ", "заказ" and "Заказ" find each other."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)


def search_text(text: str) -> str:
    """Case-folded, with ё read as е (Russian writers use both)."""
    return (text or "").casefold().replace("ё", "е")


def fts_query(user_query: str) -> str:
    """Words of a free-text query as an FTS5 expression: every word must occur, each as a prefix.

    Quoting each word keeps FTS5 operators out of user input; the prefix match stands in for stemming
    (заказ* finds заказа, заказом).
    """
    words = _WORD.findall(search_text(user_query))
    return " ".join(f'"{w}"*' for w in words)
