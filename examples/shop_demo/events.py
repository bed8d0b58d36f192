"""The events the shop's modules exchange: the only module they all import.

Durable (critical) events are stored and handled at least once by every
subscriber; ephemeral ones (``durable=False``) are broadcast live and may be
lost: progress, presence, cache invalidation, counters.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel

from hookbus import Event

__all__ = [
    "ArticleImported",
    "CacheInvalidated",
    "CashSessionClosed",
    "CashSessionOpened",
    "CountersReported",
    "ImportFinished",
    "MemberCreated",
    "ProgressUpdated",
    "SaleClosed",
    "SubscriberCounters",
    "UserConnected",
]


class CashSessionOpened(Event):
    """The till was opened."""

    session_id: int
    cashier: str


class SaleClosed(Event):
    """A sale was paid at the till (durable: accounting must book it)."""

    session_id: int
    sale_id: int
    total: Decimal
    payment_method: str


class CashSessionClosed(Event):
    """The till was closed for the day: how many sales, for how much."""

    session_id: int
    sales: int
    total: Decimal


class MemberCreated(Event):
    """Someone joined the association."""

    member_id: int
    name: str


class ArticleImported(Event):
    """One article of an imported CSV file is in the catalogue (barcodes needs it)."""

    job_id: str
    article_id: int
    label: str
    category: str
    price: Decimal


class ImportFinished(Event):
    """Every article of an import job is in the catalogue."""

    job_id: str
    articles: int


class ProgressUpdated(Event, durable=False):
    """Live progress of a long job (ephemeral: nobody listening, nothing kept)."""

    job_id: str
    percent: float
    done: int = 0
    total: int = 0


class UserConnected(Event, durable=False):
    """A volunteer has the dashboard open (sent again while it stays open).

    ``visitor`` stays the same for one browser whatever name it gives: a
    hello under a new name replaces the old one.
    """

    visitor: str
    user: str


class CacheInvalidated(Event, durable=False):
    """Every process drops its cached copy of ``key``."""

    key: str


class SubscriberCounters(BaseModel):
    """What one subscription of one process went through."""

    subscriber: str
    event_type: str
    handled: int
    retried: int
    dead_lettered: int


class CountersReported(Event, durable=False):
    """One web process's subscriber counters (the dashboard adds the processes up)."""

    process: str
    counters: list[SubscriberCounters]
