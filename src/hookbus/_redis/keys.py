"""Every Redis key and channel name hookbus uses, built in one place.

All names live under one prefix (setting ``redis_prefix``, default
``hookbus``). Two layouts:

* **One server** (default): the names below as they are. With
  ``redis_hash_tag`` on, the prefix is wrapped in a hash tag (``{hookbus}``)
  so that every key lands in one Redis Cluster slot.
* **Cluster** (``cluster=true``): the keys of one event type share a hash tag,
  the type's name (``<p>:stream:{sale_closed}``), so that different types
  spread over the shards while every multi-key command (the scripts, a dead
  letter written with its acknowledgement) stays in one slot. What one server
  keeps across types is then kept per type (dead letters, counts of
  ephemeral messages); ``<p>:types`` lists the durable types, to find them.

=============================================  ==========================================
one server                                     cluster
=============================================  ==========================================
``<p>:stream:<type>``                          ``<p>:stream:{<type>}``
  stream of one durable event type
``<p>:requeue:<type>:<subscriber>``            ``<p>:requeue:{<type>}:<subscriber>``
  dead letters sent back to one subscriber
``<p>:done:<type>:<subscriber>``              ``<p>:done:{<type>}:<subscriber>``
  sorted set: events an idempotent subscriber
  completed (event id -> time, in ms)
``<p>:live-consumers:<type>:<subscriber>``      ``<p>:live-consumers:{<type>}:<subscriber>``
  sorted set: the processes consuming a group
  (consumer name -> heartbeat expiry, in ms)
``<p>:dead``                                   ``<p>:dead:{<type>}``
  dead-letter stream
``<p>:published``                              ``<p>:published:{<type>}``
  hash: ephemeral messages sent, per channel
``<p>:live:<type>``                            same (Pub/Sub channels have no slot)
  ephemeral events, announcements of stored durable ones
``<p>:sync:<consumer>``                        same
  Pub/Sub channel of one process, for drain
``<p>:lost``                                   same (single-key commands only)
  hash: counters of entries found missing
(none)                                         ``<p>:types`` (single-key commands only)
  set: the durable event types with consumer groups
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
    """Builds key and channel names under one prefix, in one of the two layouts."""

    prefix: str = "hookbus"
    hash_tag: bool = False
    #: The cluster layout: one hash tag per event type.
    cluster: bool = False

    @property
    def base(self) -> str:
        """The prefix as it appears in names (``{prefix}`` with a hash tag)."""
        return f"{{{self.prefix}}}" if self.hash_tag and not self.cluster else self.prefix

    def _of_type(self, kind: str, event_type: str) -> str:
        tag = f"{{{event_type}}}" if self.cluster else event_type
        return f"{self.base}:{kind}:{tag}"

    def stream(self, event_type: str) -> str:
        """The stream holding every durable event of ``event_type``."""
        return self._of_type("stream", event_type)

    def requeue(self, event_type: str, subscriber: str) -> str:
        """The stream of dead letters re-queued for one subscriber."""
        return f"{self._of_type('requeue', event_type)}:{subscriber}"

    def done(self, event_type: str, subscriber: str) -> str:
        """The sorted set of events an idempotent subscriber completed (id -> time in ms)."""
        return f"{self._of_type('done', event_type)}:{subscriber}"

    def live_consumers(self, event_type: str, subscriber: str) -> str:
        """Sorted set of the processes consuming a subscriber's group (name -> expiry ms)."""
        return f"{self._of_type('live-consumers', event_type)}:{subscriber}"

    def dead(self, event_type: str) -> str:
        """The dead-letter stream holding ``event_type``'s dead letters (one stream for
        every type on one server, one per type on a cluster)."""
        return self._of_type("dead", event_type) if self.cluster else f"{self.base}:dead"

    def published(self, event_type: str) -> str:
        """Hash counting ephemeral messages published, per channel (to count gaps)."""
        if self.cluster:
            return self._of_type("published", event_type)
        return f"{self.base}:published"

    def live(self, event_type: str) -> str:
        """The Pub/Sub channel of ``event_type``."""
        return f"{self.base}:live:{event_type}"

    def event_type_of_channel(self, channel: str) -> str:
        """Inverse of :meth:`live`."""
        return channel[len(self.base) + len(":live:") :]

    def sync(self, consumer: str) -> str:
        """Pub/Sub channel a process publishes to itself, to know its feed caught up."""
        return f"{self.base}:sync:{consumer}"

    def lost(self) -> str:
        """Hash counting, per stream, pending entries that vanished before being handled."""
        return f"{self.base}:lost"

    def types(self) -> str:
        """Set of the durable event types that have consumer groups."""
        return f"{self.base}:types"

    def pattern(self) -> str:
        """Glob matching every key hookbus creates (for ACLs: ``~<pattern>``)."""
        return f"{self.base}:*"


def consumer_name() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
