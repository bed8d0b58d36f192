"""The ``hookbus`` command (``pip install 'hookbus[cli]'``): run workers, look at the
bus, repair it. One module per command; exit codes in :mod:`._errors`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hookbus`` command; returns the exit status."""
    missing = [name for name in ("click", "rich") if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"hookbus: the hookbus command needs {' and '.join(missing)}: "
            "pip install 'hookbus[cli]'",
            file=sys.stderr,
        )
        return 2
    from ._main import main as run

    return run(argv)
