"""Every Redis key and channel name hookbus uses, built in one place.

All names live under one prefix (setting ``redis_prefix``, default
``hookbus``). With ``redis_hash_tag`` on, the prefix is wrapped in a hash tag
(``{hookbus}``) so that every key lands in one Redis Cluster slot, which the
multi-key commands hookbus sends need.

=============================================  ==========================================
``<p>:stream:<event type>``                    stream of one durable event type
``<p>:requeue:<event type>:<subscriber>``      dead letters sent back to one subscriber
``<p>:dead``                                   dead-letter stream (every subscriber)
``<p>:live:<event type>``                      Pub/Sub channel: ephemeral events, and
                                               announcements of stored durable ones
``<p>:sync:<consumer>``                        Pub/Sub channel of one process, for drain
``<p>:lost``                                   hash: counters of entries found missing
``<p>:published``                              hash: ephemeral messages sent, per channel
=============================================  ==========================================

Consumer groups are named by subscriber id; consumers by process
(``<host>:<pid>:<random>``).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

__all__ = ["Keys", "consumer_name"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds key and channel names under one prefix."""

    prefix: str = "hookbus"
    hash_tag: bool = False

    @property
    def base(self) -> str:
        """The prefix as it appears in names (``{prefix}`` with a hash tag)."""
        return f"{{{self.prefix}}}" if self.hash_tag else self.prefix

    def stream(self, event_type: str) -> str:
        """The stream holding every durable event of ``event_type``."""
        return f"{self.base}:stream:{event_type}"

    def requeue(self, event_type: str, subscriber: str) -> str:
        """The stream of dead letters re-queued for one subscriber."""
        return f"{self.base}:requeue:{event_type}:{subscriber}"

    def dead(self) -> str:
        """The dead-letter stream."""
        return f"{self.base}:dead"

    def live(self, event_type: str) -> str:
        """The Pub/Sub channel of ``event_type``."""
        return f"{self.base}:live:{event_type}"

    def event_type_of_channel(self, channel: str) -> str:
        """Inverse of :meth:`live`."""
        return channel[len(self.base) + len(":live:") :]

    def sync(self, consumer: str) -> str:
        """Pub/Sub channel a process publishes to itself, to know its feed caught up."""
        return f"{self.base}:sync:{consumer}"

    def published(self) -> str:
        """Hash counting ephemeral messages published, per channel (to count gaps)."""
        return f"{self.base}:published"

    def lost(self) -> str:
        """Hash counting, per stream, pending entries that vanished before being handled."""
        return f"{self.base}:lost"

    def pattern(self) -> str:
        """Glob matching every key hookbus creates (for ACLs: ``~<pattern>``)."""
        return f"{self.base}:*"


def consumer_name() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
