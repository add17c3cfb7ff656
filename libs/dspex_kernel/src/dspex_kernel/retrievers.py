"""Built-in retrievers: BM25 over an in-memory corpus, backed by the ``bm25s`` library."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BM25Retriever:
    """Lexical BM25 search over ``corpus``; English stop words removed. Indexing happens
    once, at construction."""

    def __init__(self, corpus: Sequence[str]) -> None:
        import bm25s

        if not corpus:
            raise ValueError("a BM25 corpus needs at least one passage")
        self._corpus = list(corpus)
        self._bm25s: Any = bm25s
        self._index = bm25s.BM25()
        tokens = bm25s.tokenize(self._corpus, stopwords="en", show_progress=False)
        self._index.index(tokens, show_progress=False)

    def search_sync(self, query: str, k: int) -> list[str]:
        k = max(0, min(k, len(self._corpus)))
        if k == 0 or not query.strip():
            return []
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not any(len(ids) for ids in tokens.ids):
            return []
        docs, scores = self._index.retrieve(tokens, k=k, show_progress=False)
        return [self._corpus[int(i)] for i, s in zip(docs[0], scores[0], strict=True) if s > 0]

    async def search(self, query: str, k: int) -> list[str]:
        return self.search_sync(query, k)
