"""Members: joining the association emits ``MemberCreated``; the newsletter subscribes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from hookbus import EventBus
from hookbus.fastapi import get_bus

from ..events import CacheInvalidated, MemberCreated
from .cache import Cache
from .store import connect, create_tables

__all__ = ["NEWSLETTER", "MemberIn", "MemberOut", "install", "routes"]

NEWSLETTER = "newsletter"
CACHE_KEY = "members"

SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS newsletter (member_id INTEGER PRIMARY KEY);
"""


class MemberIn(BaseModel):
    """Someone joining."""

    name: str = Field(min_length=1, max_length=80)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=120)


class MemberOut(BaseModel):
    """A member."""

    member_id: int
    name: str
    subscribed: bool = False


def _insert(db_path: Path, member: MemberIn) -> int | None:
    with connect(db_path) as conn:
        try:
            cursor = conn.execute(
                "INSERT INTO members (name, email) VALUES (?, ?)", (member.name, member.email)
            )
        except sqlite3.IntegrityError:
            return None
        return int(cursor.lastrowid or 0)


def _members(db_path: Path) -> list[MemberOut]:
    query = """
        SELECT m.id, m.name, n.member_id IS NOT NULL AS subscribed
        FROM members m LEFT JOIN newsletter n ON n.member_id = m.id
        ORDER BY m.id DESC LIMIT 50
    """
    with connect(db_path) as conn:
        return [
            MemberOut(member_id=r["id"], name=r["name"], subscribed=bool(r["subscribed"]))
            for r in conn.execute(query)
        ]


def install(bus: EventBus, db_path: Path) -> None:
    """The newsletter signs every new member up (once, however often it is told)."""
    create_tables(db_path, SCHEMA)

    @bus.on(MemberCreated, name=NEWSLETTER)
    def sign_up(event: MemberCreated) -> None:
        with connect(db_path) as conn:
            conn.execute("INSERT OR IGNORE INTO newsletter VALUES (?)", (event.member_id,))


def routes(db_path: Path, cache: Cache) -> APIRouter:
    """The members' JSON routes, under ``/api/members``."""
    router = APIRouter(prefix="/api/members", tags=["members"])

    @router.post("", status_code=201)
    async def create_member(
        member: MemberIn, bus: Annotated[EventBus, Depends(get_bus)]
    ) -> MemberOut:
        """Register a member: emits ``member_created``; 409 if the e-mail is taken."""
        member_id = await asyncio.to_thread(_insert, db_path, member)
        if member_id is None:
            raise HTTPException(status_code=409, detail=f"{member.email} is already a member")
        await bus.emit(MemberCreated(member_id=member_id, name=member.name))
        await bus.emit(CacheInvalidated(key=CACHE_KEY))
        return MemberOut(member_id=member_id, name=member.name)

    @router.get("")
    async def list_members() -> Any:
        """The last 50 members (cached in each process until a member joins)."""

        async def load() -> list[MemberOut]:
            return await asyncio.to_thread(_members, db_path)

        return await cache.get(CACHE_KEY, load)

    return router
