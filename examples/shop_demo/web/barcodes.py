"""Barcode generation: each imported article gets an in-store EAN-13 code.

Subscribes to ``ArticleImported``; the import module does not know it exists.
"""

from __future__ import annotations

from pathlib import Path

from hookbus import EventBus

from ..events import ArticleImported
from .store import connect

__all__ = ["SUBSCRIBER", "check_digit", "ean13", "install"]

SUBSCRIBER = "barcodes"
IN_STORE_PREFIX = "2"  # EAN-13 prefixes 20-29 are for in-store use


def check_digit(body: str) -> str:
    """The check digit of the 12 first digits of an EAN-13."""
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return str((10 - weighted % 10) % 10)


def ean13(article_id: int) -> str:
    """The in-store EAN-13 of an article: prefix, zero-padded id, check digit."""
    body = f"{IN_STORE_PREFIX}{article_id:011d}"
    if len(body) != 12:
        raise ValueError(f"article id {article_id} does not fit in an EAN-13")
    return body + check_digit(body)


def install(bus: EventBus, db_path: Path) -> None:
    """Subscribe barcode generation to ``ArticleImported``."""

    @bus.on(ArticleImported, name=SUBSCRIBER)
    def generate(event: ArticleImported) -> None:
        with connect(db_path) as conn:
            conn.execute(
                "UPDATE articles SET barcode = ? WHERE id = ?",
                (ean13(event.article_id), event.article_id),
            )
