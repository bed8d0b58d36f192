"""Helpers for testing code that uses hookbus, and the conformance suite of backends.

* :class:`Recorder`: a handler that records what it receives and lets a test
  wait for it (no sleeps).
* :func:`test_settings`: settings with short retry delays and stop timeout.
* :mod:`hookbus.testing.conformance`: the behaviour every backend must have,
  as a test class to subclass.
"""

from ._recorder import Recorder, test_settings

__all__ = ["Recorder", "test_settings"]
