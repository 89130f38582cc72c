"""Accent- and case-insensitive fragment search over a folded text column (pg_trgm-indexed)."""

from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal

MAX_TERMS = 8


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_terms(q: str) -> list[str]:
    """Words of `q`; phone-like words also match without their punctuation."""
    terms = []
    for word in q.split()[:MAX_TERMS]:
        digits = "".join(ch for ch in word if ch.isdigit())
        if digits and all(ch.isdigit() or ch in "+-().#/" for ch in word):
            word = digits
        terms.append(word)
    return terms


def matches_all_terms(folded_column: Any, q: str) -> ColumnElement[bool]:
    """Every word of `q` is a fragment of the column, compared after `crm_fold` (unaccent+lower)."""
    return and_(
        *(
            folded_column.like(
                literal("%") + func.crm_fold(escape_like(term)) + literal("%"), escape="\\"
            )
            for term in search_terms(q)
        )
    )
