"""An httpx transport that sends over aiohttp's client.

The vendor clients speak httpx (requests, responses, MockTransport in tests), but httpx's own
connection pool costs 0.6–1.6 ms of CPU a request on this machine, and more the more
connections it holds, against about 0.1 ms for aiohttp's (`python -m benchmarks.vendor_client`).
At 200 tickets/s with 3–4 vendor calls each, that difference is most of a core. This adapter
keeps httpx's API and hands the wire to aiohttp, which is already the server's dependency.

Errors map onto httpx's exception types so callers keep one `except httpx.…` vocabulary:
timeouts → `httpx.ConnectTimeout`/`httpx.ReadTimeout`, refused or dropped connections →
`httpx.ConnectError`/`httpx.ReadError`. Messages are ours, never the peer's bytes.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import aiohttp
import httpx
import yarl

# Keep-alive connections per client (one client per tenant): enough for the worker's concurrency.
DEFAULT_CONNECTION_LIMIT = 32


class _AiohttpBody(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(64 * 1024):
                yield chunk
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            raise httpx.ReadTimeout("response body timed out", request=self._request) from None
        except aiohttp.ClientError:
            raise httpx.ReadError("response body interrupted", request=self._request) from None

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx transport on one aiohttp `ClientSession`, opened on first use inside the loop."""

    def __init__(self, *, connection_limit: int = DEFAULT_CONNECTION_LIMIT) -> None:
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connection_limit,
                                             limit_per_host=self._connection_limit)
            # No cookie jar, no auto-decompression: httpx decodes, and state must not leak
            # between requests of different purposes.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            response = await self._session_for_loop().request(
                # As httpx encoded it: aiohttp must not re-quote what a signature may cover.
                request.method, yarl.URL(str(request.url), encoded=True),
                # The body is read whole above, so it goes with a Content-Length, not chunked.
                headers=[(name, value) for name, value in request.headers.multi_items()
                         if name.lower() != "transfer-encoding"],
                data=body or None,
                allow_redirects=False, compress=None, skip_auto_headers=("Content-Type",),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"), connect=timeout.get("pool")))
        except (aiohttp.ConnectionTimeoutError, aiohttp.ServerTimeoutError, asyncio.TimeoutError) as exc:
            kind = (httpx.ConnectTimeout if isinstance(exc, aiohttp.ConnectionTimeoutError)
                    else httpx.ReadTimeout)
            raise kind("request timed out", request=request) from None
        except aiohttp.ClientConnectorError:
            raise httpx.ConnectError("connection failed", request=request) from None
        except aiohttp.ClientError:
            raise httpx.ReadError("connection interrupted", request=request) from None
        return httpx.Response(status_code=response.status, headers=response.raw_headers,
                              stream=_AiohttpBody(response, request), request=request,
                              extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _CookiesNeverKept(httpx.Cookies):
    """A jar that learns nothing from responses. Vendor APIs authenticate every request with a
    header; a cookie one response sets must not ride along on a later request of the same
    tenant. Not parsing Set-Cookie also saves httpx's urllib round trip on every response
    (~7 % of the service's CPU at 200 crisis tickets/s)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def vendor_http_client(**options) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for vendor APIs: aiohttp underneath (unless `transport` is
    given), cookies never kept."""
    options.setdefault("transport", AiohttpTransport())
    client = httpx.AsyncClient(**options)
    client._cookies = _CookiesNeverKept()  # httpx's `cookies` setter would copy into a plain jar
    return client
