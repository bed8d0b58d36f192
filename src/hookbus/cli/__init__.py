"""The ``hookbus`` command (``pip install 'hookbus[cli]'``): run workers, look at the
bus, repair it. One module per command; exit codes in :mod:`._errors`."""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
