"""Limits that keep one client from holding the service: body size and the time a request may take.

`BodyLimits` (ASGI middleware) answers 413 as soon as a body is announced or streamed past the
limit, without reading the rest, and 408 when a body does not arrive within the request
timeout (a client trickling bytes). `HeaderTimeoutH11` closes connections whose request line
and headers do not arrive in time: uvicorn times out idle keep-alive connections, but not a
request that is still arriving.
"""

from __future__ import annotations

import asyncio
import json
import time

from uvicorn.protocols.http.h11_impl import H11Protocol


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


async def _reply(send, status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """ASGI middleware: at most `max_body` bytes per request body, arriving within `timeout` seconds."""

    def __init__(self, app, max_body: int, timeout: float):
        self.app = app
        self.max_body = max_body
        self.timeout = timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = dict(scope["headers"]).get(b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.max_body:
            await _reply(send, 413, f"body over {self.max_body} bytes")
            return
        deadline = time.monotonic() + self.timeout
        received = 0
        started = complete = False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # the body is in: later calls wait for a disconnect, which may take any time
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise _TooSlow() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
                complete = not message.get("more_body", False)
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except (_TooLarge, _TooSlow) as error:
            if started:
                raise
            if isinstance(error, _TooLarge):
                await _reply(send, 413, f"body over {self.max_body} bytes")
            else:
                await _reply(send, 408, f"the request did not arrive within {self.timeout:g} s")


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers take over `header_timeout`."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        previous = getattr(self, "_header_timer", None)
        if previous is not None:
            previous.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete  # no request in progress: headers pending
        if waiting and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)
