"""An ASGI app reached in-process by httpx clients, sync and async alike: no port, no socket.

httpx ships `ASGITransport` for `AsyncClient` only, and LangChain's `ChatOpenAI.invoke` runs on a sync
`httpx.Client`. So the app runs on one private event loop in a daemon thread, and both transports hand their
requests to that loop: the app's asyncio state (locks, queues) then always lives on a single loop, and a
blocking step inside the app never stalls the caller's loop.

httpx's ASGI transport buffers the whole response body, so a streamed (SSE) reply arrives all at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[MutableMapping[str, Any]]], Callable[..., Awaitable[None]]],
    Awaitable[None],
]

_Reply = tuple[int, list[tuple[bytes, bytes]], bytes]


class ASGIBridge:
    """One ASGI app served on a private event loop in a daemon thread."""

    def __init__(self, app: ASGIApp, *, name: str = "asgi-bridge") -> None:
        self._transport = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: httpx.Request, body: bytes) -> Future[_Reply]:
        """Schedule one request on the bridge's loop; the future yields (status, raw headers, body)."""
        if self._loop.is_closed() or not self._loop.is_running():
            raise httpx.ConnectError("the in-process endpoint is closed", request=request)
        return asyncio.run_coroutine_threadsafe(self._serve(request, body), self._loop)

    async def _serve(self, request: httpx.Request, body: bytes) -> _Reply:
        inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await self._transport.handle_async_request(inner)
        content = await response.aread()
        return response.status_code, list(response.headers.raw), content

    def close(self) -> None:
        """Stop the loop and its thread; later requests fail with ConnectError."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout") or {}
    value = timeout.get("read")
    return float(value) if value is not None else None


def _response(reply: _Reply) -> httpx.Response:
    status, headers, content = reply
    return httpx.Response(status, headers=headers, content=content)


class SyncASGIBridgeTransport(httpx.BaseTransport):
    """A sync httpx transport that blocks on the bridge's loop."""

    def __init__(self, bridge: ASGIBridge) -> None:
        self.bridge = bridge

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request to the app and wait (up to the read timeout) for its reply."""
        future = self.bridge.submit(request, request.read())
        try:
            return _response(future.result(timeout=_read_timeout(request)))
        except FutureTimeout:
            future.cancel()
            raise httpx.ReadTimeout("the in-process endpoint did not answer in time", request=request) from None


class AsyncASGIBridgeTransport(httpx.AsyncBaseTransport):
    """An async httpx transport that awaits the bridge's loop from the caller's loop."""

    def __init__(self, bridge: ASGIBridge) -> None:
        self.bridge = bridge

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request to the app and await (up to the read timeout) its reply."""
        future = self.bridge.submit(request, await request.aread())
        try:
            reply = await asyncio.wait_for(asyncio.wrap_future(future), timeout=_read_timeout(request))
        except TimeoutError:
            raise httpx.ReadTimeout("the in-process endpoint did not answer in time", request=request) from None
        return _response(reply)


def bridge_clients(bridge: ASGIBridge, *, timeout_s: float) -> tuple[httpx.Client, httpx.AsyncClient]:
    """A sync and an async httpx client whose every request goes to the bridged app."""
    timeout = httpx.Timeout(timeout_s)
    return (
        httpx.Client(transport=SyncASGIBridgeTransport(bridge), timeout=timeout),
        httpx.AsyncClient(transport=AsyncASGIBridgeTransport(bridge), timeout=timeout),
    )
