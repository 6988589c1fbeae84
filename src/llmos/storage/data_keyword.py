"""Keyword search over chunk text: SQLite FTS5 (bm25) or PostgreSQL full text (ts_rank_cd).

A user's query is never passed as query syntax: it is split into words, and a chunk matches
when it holds any of them (OR), ranked by the engine's relevance. Only the latest version of
each document is searched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERMS = 64


def query_terms(query: str) -> list[str]:
    """The distinct words of ``query``, lowercased, in order (at most :data:`MAX_TERMS`)."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(query.lower()):
        seen.setdefault(w, None)
    return list(seen)[:MAX_TERMS]


def keyword_search(s: Session, query: str, collection_ids: Sequence[int], k: int) -> list[tuple[int, float]]:
    """Up to ``k`` ``(chunk id, relevance)`` pairs, most relevant first (relevance > 0)."""
    terms = query_terms(query)
    if not terms or not collection_ids:
        return []
    if s.get_bind().dialect.name == "sqlite":
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        stmt = text(
            # CROSS JOIN fixes the order: full-text matches first, then their rows by id (left to
            # itself, SQLite may walk the chunks and run MATCH once per row, 100x slower).
            "SELECT c.id, bm25(data_chunks_fts) AS rank FROM data_chunks_fts "
            "CROSS JOIN data_chunks c ON c.id = data_chunks_fts.rowid "
            "CROSS JOIN data_documents d ON d.id = c.document_id "
            "WHERE data_chunks_fts MATCH :match AND c.collection_id IN :cids AND d.latest "
            "ORDER BY rank LIMIT :k"
        ).bindparams(bindparam("cids", expanding=True))
        rows = s.execute(stmt, {"match": match, "cids": list(collection_ids), "k": k})
        return [(int(i), -float(r)) for i, r in rows]
    tsquery = " | ".join(terms)
    stmt = text(
        "SELECT c.id, ts_rank_cd(c.tsv, q) AS rank "
        "FROM data_chunks c JOIN data_documents d ON d.id = c.document_id, "
        "to_tsquery('english', :q) q "
        "WHERE c.tsv @@ q AND c.collection_id = ANY(:cids) AND d.latest "
        "ORDER BY rank DESC, c.id LIMIT :k"
    )
    return [
        (int(i), float(r)) for i, r in s.execute(stmt, {"q": tsquery, "cids": list(collection_ids), "k": k})
    ]
