"""The events the shop's modules exchange: the only module they all import."""

from __future__ import annotations

from decimal import Decimal

from hookbus import Event

__all__ = ["CashSessionClosed", "ProgressUpdated", "SaleClosed"]


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


class ProgressUpdated(Event, durable=False):
    """Live progress of a long job (ephemeral: nobody listening, nothing kept)."""

    job_id: str
    percent: float
