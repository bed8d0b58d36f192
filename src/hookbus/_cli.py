"""The ``hookbus`` command.

``hookbus worker myapp.events:bus``
    Import the bus and run its subscribers until SIGTERM or SIGINT, then
    stop gracefully (stop reading, let in-flight handlers finish within the
    stop timeout, acknowledge) and exit 0. Several workers, and the web
    processes, share the work in redis and rabbitmq modes.

``hookbus dead-letters myapp.events:bus [--subscriber S] [--retry ID ...] [--discard ID ...]``
    List dead letters, or re-queue / delete some.

The target is ``module:attribute`` naming an :class:`~hookbus.EventBus` or a
function returning one; the current directory is importable.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

from ._bus import EventBus
from ._dead_letter import DeadLetter
from ._exceptions import HookbusError

__all__ = ["load_bus", "main"]

logger = logging.getLogger("hookbus")


def load_bus(target: str) -> EventBus:
    """The bus named by ``module:attribute`` (an EventBus or a function returning one)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(
            f"hookbus: expected module:attribute (e.g. myapp.events:bus), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"hookbus: cannot import {module_name!r}: {exc}") from exc
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(
            f"hookbus: module {module_name!r} has no attribute {attribute!r}"
        ) from None
    if not isinstance(obj, EventBus) and callable(obj):
        obj = obj()
    if not isinstance(obj, EventBus):
        raise SystemExit(f"hookbus: {target} is {type(obj).__name__}, not an EventBus")
    return obj


async def run_worker(bus: EventBus, stop_timeout: float | None = None) -> None:
    """Run ``bus`` until SIGTERM/SIGINT, then stop it gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await bus.start()
    logger.info(
        "hookbus worker running: mode=%s, %d subscription(s), pid %d",
        bus.mode,
        len(bus.subscriptions),
        os.getpid(),
    )
    try:
        await stop.wait()
        logger.info("hookbus worker stopping")
    finally:
        await bus.stop(stop_timeout)
    logger.info("hookbus worker stopped")


async def dead_letters(bus: EventBus, args: argparse.Namespace) -> None:
    """The ``dead-letters`` sub-command.

    It runs no handler: it works on a bus with the same settings and no
    subscriptions (in redis and rabbitmq modes the dead letters are in the broker; in local mode
    they live in the memory of the running process, so there are none here).
    """
    settings = bus.settings.with_options(
        redis=replace(bus.settings.redis, consume=False),
        rabbitmq=replace(bus.settings.rabbitmq, consume=False),
    )
    async with EventBus(settings=settings) as admin:
        await _dead_letter_actions(admin, args)
    if bus.mode == "local":
        print("(local mode keeps dead letters in the memory of the running process)")


async def _dead_letter_actions(bus: EventBus, args: argparse.Namespace) -> None:
    for letter_id in args.retry:
        await bus.retry_dead_letter(letter_id)
        print(f"re-queued {letter_id}")
    for letter_id in args.discard:
        await bus.discard_dead_letter(letter_id)
        print(f"discarded {letter_id}")
    if args.retry or args.discard:
        return
    letters = await bus.dead_letters(args.subscriber, limit=args.limit)
    for letter in letters:
        print(_letter_line(letter))
    print(f"{len(letters)} dead letter(s)")


def _letter_line(letter: DeadLetter) -> str:
    """One dead letter on one line: id, subscriber, type, event id, attempts, error,
    then where it came from and, if it could not be decoded, the start of its bytes."""
    message = " ".join(letter.error_message.split())
    line = (
        f"{letter.id}  {letter.subscriber}  {letter.event_type}  {letter.event_id or '-'}  "
        f"attempts={letter.attempts}  {letter.error_type}: {message}"
    )
    if letter.source is not None:
        line += f"  [from {letter.source} entry {letter.position}]"
    if letter.envelope is None and letter.payload is not None:
        line += f"  [payload, {len(letter.payload)} bytes: {_preview(letter.payload)}]"
    return line


def _preview(payload: bytes, limit: int = 120) -> str:
    """The start of a raw payload, printable whatever its bytes."""
    text = repr(payload[:limit])[2:-1]
    return text + ("..." if len(payload) > limit else "")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookbus", description="hookbus command line")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a bus's subscribers until SIGTERM")
    worker.add_argument("target", help="module:attribute of the EventBus")
    worker.add_argument(
        "--stop-timeout",
        type=float,
        default=None,
        help="seconds granted to in-flight handlers on stop",
    )
    letters = commands.add_parser("dead-letters", help="list, re-queue or discard dead letters")
    letters.add_argument("target", help="module:attribute of the EventBus")
    letters.add_argument("--subscriber", default=None, help="only this subscriber's")
    letters.add_argument("--limit", type=int, default=None)
    letters.add_argument("--retry", action="append", default=[], metavar="ID")
    letters.add_argument("--discard", action="append", default=[], metavar="ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hookbus`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        bus = load_bus(args.target)
    except HookbusError as exc:
        print(f"hookbus: cannot load {args.target}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"hookbus: cannot load {args.target}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "worker":
            asyncio.run(run_worker(bus, args.stop_timeout))
        else:
            asyncio.run(dead_letters(bus, args))
    except HookbusError as exc:
        print(f"hookbus: {exc}", file=sys.stderr)
        return 1
    return 0
