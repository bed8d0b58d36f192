"""The catalogue as the shop floor sees it: the last articles, with their barcodes.

Cached in each process; an import's ``CacheInvalidated("articles")`` empties it.
Barcodes arrive after the import (their subscriber works on its own), so a
list with an article still waiting for its barcode is served but not kept.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from .cache import Cache
from .imports import CACHE_KEY
from .store import connect

__all__ = ["ArticleOut", "routes"]


class ArticleOut(BaseModel):
    """An article of the catalogue; ``barcode`` is None until generated."""

    article_id: int
    label: str
    category: str
    price: Decimal
    barcode: str | None


def _articles(db_path: Path) -> list[ArticleOut]:
    query = "SELECT id, label, category, price, barcode FROM articles ORDER BY id DESC LIMIT 50"
    with connect(db_path) as conn:
        return [
            ArticleOut(
                article_id=r["id"],
                label=r["label"],
                category=r["category"],
                price=Decimal(r["price"]),
                barcode=r["barcode"],
            )
            for r in conn.execute(query)
        ]


def routes(db_path: Path, cache: Cache) -> APIRouter:
    """``GET /api/articles``."""
    router = APIRouter(prefix="/api/articles", tags=["catalogue"])

    @router.get("", response_model=list[ArticleOut])
    async def list_articles() -> Any:
        """The last 50 articles (cached in each process until an import finishes)."""

        async def load() -> list[ArticleOut]:
            return await asyncio.to_thread(_articles, db_path)

        def complete(articles: list[ArticleOut]) -> bool:
            return all(article.barcode is not None for article in articles)

        return await cache.get(CACHE_KEY, load, keep=complete)

    return router
