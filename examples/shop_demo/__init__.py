"""A second-hand shop on hookbus: till, accounting sync, receipt printer, progress.

Run it with ``make demo`` or ``python -m examples.shop_demo``; call
:func:`run_demo` from a test.
"""

from .demo import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
