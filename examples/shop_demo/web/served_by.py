"""``X-Served-By``: which web process answered (to see several workers at work).

A plain ASGI middleware rather than ``@app.middleware("http")``, which would
buffer and wrap streaming responses such as the event feed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "ServedBy"]

HEADER = "x-served-by"


class ServedBy:
    """Adds ``X-Served-By: <process>`` to every HTTP response."""

    def __init__(self, app: ASGIApp, process: str) -> None:
        self.app = app
        self.header = (HEADER.encode(), process.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)
