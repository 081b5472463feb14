"""Refuse oversize request bodies before they are read into memory, and JSON text that cannot be
stored."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zvonar.core.text import lone_surrogate_path, may_hold_surrogate


class BodyTooLarge(Exception):
    pass


def _reply(status: int, code: str, message: str) -> tuple[Message, Message]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodySizeLimit:
    """ASGI middleware: 413 ``body_too_large`` for a declared or streamed body over the limit."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        overrides: dict[str, int] | None = None,
        prefix_overrides: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default_max = max_bytes
        self.overrides = overrides or {}
        self.prefix_overrides = prefix_overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.overrides.get(path, self.default_max)
        for prefix, size in self.prefix_overrides.items():
            if path.startswith(prefix):
                limit = size
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._refuse(send, declared < 0, limit)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, False, limit)

    async def _refuse(self, send: Send, bad_length: bool, limit: int) -> None:
        if bad_length:
            start, body = _reply(400, "bad_content_length", "invalid Content-Length")
        else:
            start, body = _reply(413, "body_too_large", f"request body exceeds {limit} bytes")
        await send(start)
        await send(body)


class JsonText:
    """ASGI middleware: 400 ``malformed_json`` for a JSON body whose text holds a lone UTF-16
    surrogate (``"\\ud800"``): JSON's escapes allow one, but no column, file or response can
    encode it, so it would fail far from here, after a write (zvonar.core.text). Only bodies
    with such an escape are decoded here (a cheap byte search); the rest pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to check
                await self.app(scope, _replay(b"", receive, first=message), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if may_hold_surrogate(body):
            path = _surrogate_in(body)
            if path is not None:
                where = f" at {path}" if path else ""
                start, reply = _reply(
                    400, "malformed_json", f"text{where} is not valid Unicode (a lone surrogate)"
                )
                await send(start)
                await send(reply)
                return
        await self.app(scope, _replay(body, receive), send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def _surrogate_in(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # not JSON: the route's own parsing says so
        return None
    return lone_surrogate_path(doc)


def _replay(body: bytes, receive: Receive, *, first: Message | None = None) -> Receive:
    """A receive that gives the buffered body once, then the client's own messages."""
    pending = [first or {"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
