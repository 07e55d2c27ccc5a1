"""plugin.http_transport.AiohttpTransport under a real httpx.AsyncClient, against real servers on 127.0.0.1.

Well-behaved peers are aiohttp test servers; misbehaving peers (silent, rude, truncating) are raw
asyncio servers so the bytes on the wire are exactly the ones each test writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from plugin.http_transport import AiohttpTransport, vendor_http_client
from plugin.model import TicketRef
from tests.zendesk_support import api_token_tenant, customer_ticket, make_client, running_sandbox

# Bytes a misbehaving server sends; they must never surface in an exception's text.
CANARY = "CANARY-7f3a-peer-bytes"


# ------------------------------------------------------------------ servers


@dataclass
class Seen:
    """What the echo server received for one request."""

    method: str
    path: str
    raw_path: str
    query_string: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    peer_port: int


@dataclass
class EchoServer:
    url: str
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0


@contextlib.asynccontextmanager
async def running_echo_server() -> AsyncIterator[EchoServer]:
    """Records every request; routes answer JSON, gzip, redirects, or slowly (for concurrency)."""
    echo = EchoServer(url="")

    async def record(request: web.Request) -> Seen:
        seen = Seen(method=request.method, path=request.path, raw_path=request.raw_path,
                    query_string=request.query_string, query=list(request.query.items()),
                    headers=list(request.headers.items()),
                    body=await request.read(),
                    peer_port=request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        echo.seen.append(seen)
        return seen

    async def reflect(request: web.Request) -> web.Response:
        seen = await record(request)
        answer = {"method": seen.method, "path": seen.path, "query": seen.query_string,
                  "body_length": len(seen.body)}
        response = web.json_response(answer, status=201, headers={
            "X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699", "ETag": '"v42"'})
        response.headers.add("X-Repeated", "first")
        response.headers.add("X-Repeated", "second")
        return response

    async def gzipped(request: web.Request) -> web.Response:
        await record(request)
        payload = json.dumps({"tickets": [{"id": n, "subject": "compressed"} for n in range(50)]})
        return web.Response(body=gzip.compress(payload.encode()), status=200, headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip"})

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=302, headers={"Location": "/landing"})

    async def cookie(request: web.Request) -> web.Response:
        await record(request)
        response = web.json_response({"set": True})
        response.set_cookie("session", "vendor-set-cookie-canary", path="/")
        return response

    async def landing(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"landed": True})

    async def slow(request: web.Request) -> web.Response:
        seen = await record(request)
        echo.in_flight += 1
        echo.peak_in_flight = max(echo.peak_in_flight, echo.in_flight)
        try:
            await asyncio.sleep(0.01)
        finally:
            echo.in_flight -= 1
        return web.json_response({"n": int(request.query["n"]), "port": seen.peer_port})

    app = web.Application()
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/landing", landing)
    app.router.add_get("/cookie", cookie)
    app.router.add_get("/slow", slow)
    app.router.add_route("*", "/{tail:.*}", reflect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    echo.url = str(server.make_url("")).rstrip("/")
    try:
        yield echo
    finally:
        await server.close()


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def running_raw_server(behaviour: Behaviour) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 whose every connection runs `behaviour` (reads/writes raw bytes)."""
    handlers: set[asyncio.Task[None]] = set()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await behaviour(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def respond_then_close(raw: bytes) -> Behaviour:
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(raw)
        await writer.drain()
        # Abort (no graceful shutdown): the peer sees the connection drop mid-response.
        writer.transport.abort()
    return behaviour


def closed_port() -> int:
    """A port on 127.0.0.1 that was just bound and released, so nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def aiohttp_client(base_url: str = "", *, transport: AiohttpTransport | None = None,
                         timeout: httpx.Timeout | float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    client = httpx.AsyncClient(base_url=base_url, transport=transport or AiohttpTransport(),
                               timeout=timeout)
    try:
        yield client
    finally:
        await client.aclose()


def every_text_of(exc: BaseException) -> str:
    """Everything a log line with exc_info could show for this exception."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


# ------------------------------------------------------------------ requests reach the server unchanged


async def test_method_path_query_headers_and_json_body_reach_the_server_unchanged() -> None:
    payload = {"ticket": {"comment": {"body": "Merci — ça va", "public": False}, "tags": ["a", "b"]}}
    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        response = await client.request(
            "PUT", "/api/v2/tickets/17.json",
            params={"include": "users,groups", "q": "a b&c=d/é", "tag": ["x", "y"]},
            headers=[("Authorization", "Basic YWdlbnRAc2FuZGJveC50ZXN0L3Rva2VuOnNlY3JldA=="),
                     ("X-Request-Id", "req-123"), ("X-Multi", "one"), ("X-Multi", "two")],
            json=payload)
    sent = response.request
    assert response.status_code == 201
    [seen] = echo.seen
    assert seen.method == "PUT"
    assert seen.path == "/api/v2/tickets/17.json"
    # The decoded query the server reads is the one httpx encoded (byte-exactness: next test).
    assert seen.query == [("include", "users,groups"), ("q", "a b&c=d/é"), ("tag", "x"), ("tag", "y")]
    headers = [(name.lower(), value) for name, value in seen.headers]
    assert ("authorization", "Basic YWdlbnRAc2FuZGJveC50ZXN0L3Rva2VuOnNlY3JldA==") in headers
    assert ("x-request-id", "req-123") in headers
    assert [value for name, value in headers if name == "x-multi"] == ["one", "two"]
    assert [value for name, value in headers if name == "content-type"] == ["application/json"]
    assert [value for name, value in headers if name == "content-length"] == [str(len(sent.content))]
    assert seen.body == sent.content and json.loads(seen.body) == payload


async def test_the_url_reaches_the_server_byte_for_byte_as_httpx_encoded_it() -> None:
    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        response = await client.get("/api/v2/users/x%7Ey%41/tickets.json",
                                    params={"query": "type:ticket tags:a,b", "page[size]": "100"})
    sent_target = response.request.url.raw_path.decode()
    assert echo.seen[0].raw_path == sent_target


async def test_every_method_and_a_raw_body_without_content_type_arrive_as_sent() -> None:
    raw = bytes(range(256)) * 300  # binary, larger than one read chunk
    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        for method in ("GET", "DELETE", "HEAD", "OPTIONS", "PATCH"):
            assert (await client.request(method, f"/m/{method.lower()}")).status_code == 201
        posted = await client.post("/upload", content=raw)
    assert [(s.method, s.path) for s in echo.seen[:5]] == [
        ("GET", "/m/get"), ("DELETE", "/m/delete"), ("HEAD", "/m/head"),
        ("OPTIONS", "/m/options"), ("PATCH", "/m/patch")]
    upload = echo.seen[5]
    assert posted.json()["body_length"] == len(raw)
    assert upload.body == raw
    # The transport must not invent a Content-Type httpx did not send.
    assert not [value for name, value in upload.headers if name.lower() == "content-type"]


async def test_a_streamed_request_body_reaches_the_server_whole() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"ticket": ', b'{"status": "open"}', b"}"):
            yield part

    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        response = await client.post("/stream", content=parts(),
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == 201
    assert echo.seen[0].body == b'{"ticket": {"status": "open"}}'


# ------------------------------------------------------------------ responses come back


async def test_status_headers_and_json_body_come_back() -> None:
    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        response = await client.post("/api/v2/tickets.json", params={"page": "2"}, json={"a": 1})
    assert response.status_code == 201
    assert response.headers["x-rate-limit"] == "700"
    assert response.headers["X-Rate-Limit-Remaining"] == "699"
    assert response.headers["etag"] == '"v42"'
    assert response.headers.get_list("x-repeated") == ["first", "second"]
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"method": "POST", "path": "/api/v2/tickets.json", "query": "page=2",
                               "body_length": len(b'{"a":1}')}
    assert response.http_version == "HTTP/1.1"


async def test_gzip_encoded_response_is_decoded_by_httpx_once() -> None:
    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        response = await client.get("/gzip")
    # The header survives (the transport did not decode), and httpx decoded the body.
    assert response.headers["content-encoding"] == "gzip"
    body = response.json()
    assert len(body["tickets"]) == 50 and body["tickets"][49] == {"id": 49, "subject": "compressed"}
    assert int(response.headers["content-length"]) < len(response.content)


async def test_redirect_is_returned_not_followed() -> None:
    async with running_echo_server() as echo, aiohttp_client(echo.url) as client:
        response = await client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/landing"
    assert [s.path for s in echo.seen] == ["/redirect"]


async def test_client_level_redirects_still_work_through_the_transport() -> None:
    async with running_echo_server() as echo:
        client = httpx.AsyncClient(base_url=echo.url, transport=AiohttpTransport(), timeout=5,
                                   follow_redirects=True)
        try:
            response = await client.get("/redirect")
        finally:
            await client.aclose()
    assert response.status_code == 200 and response.json() == {"landed": True}
    assert [r.status_code for r in response.history] == [302]
    assert [s.path for s in echo.seen] == ["/redirect", "/landing"]


# ------------------------------------------------------------------ faults map onto httpx errors


async def test_server_that_never_answers_raises_read_timeout_within_the_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        await asyncio.sleep(30)

    async with running_raw_server(silent) as url, \
            aiohttp_client(url, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.get("/api/v2/tickets/1.json")
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 1.5
    assert caught.value.request.url.path == "/api/v2/tickets/1.json"


async def test_body_that_stalls_after_the_headers_raises_read_timeout() -> None:
    async def stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                     + b'{"subject": "' + CANARY.encode())
        await writer.drain()
        await asyncio.sleep(30)

    async with running_raw_server(stall_mid_body) as url, \
            aiohttp_client(url, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.get("/slow-body")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5
    assert CANARY not in every_text_of(caught.value)


async def test_connection_refused_raises_connect_error() -> None:
    async with aiohttp_client(timeout=2.0) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(f"http://127.0.0.1:{closed_port()}/api/v2/tickets/1.json")
    assert caught.value.request.url.host == "127.0.0.1"


BROKEN_RESPONSES = {
    # Headers promise more body than arrives before the connection drops.
    "truncated_body": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                       + b'{"comment": "' + CANARY.encode()),
    # A chunked body cut inside a chunk.
    "truncated_chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + b"40\r\n" + CANARY.encode()),
    # The status line never finishes.
    "truncated_status_line": b"HTTP/1.1 200 " + CANARY.encode(),
    # Headers start but the connection drops before the blank line.
    "truncated_headers": b"HTTP/1.1 200 OK\r\nX-Note: " + CANARY.encode(),
    # Not HTTP at all.
    "garbage_status_line": CANARY.encode() + b" nonsense\r\n\r\n",
    # A malformed header line.
    "malformed_header": b"HTTP/1.1 200 OK\r\n" + CANARY.encode() + b"\r\nContent-Length: 2\r\n\r\n{}",
    # Nothing at all.
    "closed_without_a_byte": b"",
}


@pytest.mark.parametrize("raw", BROKEN_RESPONSES.values(), ids=BROKEN_RESPONSES.keys())
async def test_broken_response_raises_transport_error_without_the_peer_bytes(raw: bytes) -> None:
    async with running_raw_server(respond_then_close(raw)) as url, aiohttp_client(url) as client:
        with pytest.raises(httpx.TransportError) as caught:
            response = await client.get("/api/v2/tickets/1.json")
            await response.aread()
    assert isinstance(caught.value, (httpx.ReadError, httpx.ConnectError)), type(caught.value)
    assert CANARY not in every_text_of(caught.value)


# ------------------------------------------------------------------ lifecycle and concurrency


async def test_aclose_closes_the_session_and_a_later_request_opens_a_new_one() -> None:
    transport = AiohttpTransport()
    async with running_echo_server() as echo:
        async with aiohttp_client(echo.url, transport=transport) as first:
            await first.get("/one")
            await first.get("/two")
            first_session = transport._session
            assert first_session is not None and not first_session.closed
        # aiohttp_client's exit ran httpx's aclose, which closes the transport.
        assert first_session.closed
        async with aiohttp_client(echo.url, transport=transport) as second:
            response = await second.get("/three")
            second_session = transport._session
            assert second_session is not None and second_session is not first_session
            assert not second_session.closed
        assert second_session.closed
    assert response.status_code == 201
    ports = [s.peer_port for s in echo.seen]
    # Keep-alive reused the first connection; the new session had to open a new one.
    assert ports[0] == ports[1] and ports[2] != ports[0]


async def test_two_hundred_concurrent_requests_over_thirty_two_connections_all_succeed() -> None:
    async with running_echo_server() as echo, \
            aiohttp_client(echo.url, transport=AiohttpTransport(connection_limit=32),
                           timeout=10.0) as client:
        responses = await asyncio.gather(*(client.get("/slow", params={"n": n}) for n in range(200)))
    assert [r.status_code for r in responses] == [200] * 200
    assert sorted(r.json()["n"] for r in responses) == list(range(200))
    assert len(echo.seen) == 200
    assert 1 < echo.peak_in_flight <= 32
    assert len({s.peer_port for s in echo.seen}) <= 32


# ------------------------------------------------------------------ the vendor client's default


async def test_a_vendor_client_never_sends_back_a_cookie_a_response_set() -> None:
    async with running_echo_server() as echo:
        plain = httpx.AsyncClient(base_url=echo.url, transport=AiohttpTransport())
        vendor = vendor_http_client(base_url=echo.url)
        try:
            for client in (plain, vendor):
                await client.get("/cookie")
                await client.get("/after")
        finally:
            await plain.aclose()
            await vendor.aclose()
    cookies_sent = [[value for name, value in seen.headers if name.lower() == "cookie"]
                    for seen in echo.seen if seen.path == "/after"]
    # httpx's own jar would send it back (first client); the vendor client must not.
    assert cookies_sent == [["session=vendor-set-cookie-canary"], []]
    assert not vendor.cookies


async def test_zendesk_client_fetches_over_the_default_aiohttp_transport(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent_through_aiohttp: list[str] = []
    original = AiohttpTransport.handle_async_request

    async def counting(self: AiohttpTransport, request: httpx.Request) -> httpx.Response:
        sent_through_aiohttp.append(request.url.path)
        return await original(self, request)

    monkeypatch.setattr(AiohttpTransport, "handle_async_request", counting)
    text = "I have had a really hard week and need to cancel my subscription."
    async with running_sandbox() as sandbox:
        ticket_id = customer_ticket(sandbox.state, text)
        client = make_client(api_token_tenant(sandbox.url))  # no transport argument
        try:
            ticket = await client.fetch(TicketRef(vendor="zendesk", tenant_id="acme",
                                                  ticket_id=str(ticket_id), delivery_id="01HDELIVERY"))
        finally:
            await client.aclose()
    assert ticket.ticket_id == str(ticket_id) and ticket.text == text
    # Every call of the fetch (ticket, requester) went through the aiohttp transport.
    assert len(sent_through_aiohttp) >= 2
    assert sent_through_aiohttp[0].startswith(f"/api/v2/tickets/{ticket_id}")
    assert [e.path for e in sandbox.state.log.entries] == sent_through_aiohttp
