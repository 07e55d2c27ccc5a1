"""Socket-level limits of the served app (plugin.handlers.http.start_server, as `serve` uses it).

Proves, over raw TCP on 127.0.0.1:
- an oversized body is refused with 413 whether announced (Content-Length) or streamed (chunked);
- an oversized header line, request line or too many headers → 400 with a fixed reason, the
  input not echoed (aiohttp's own error page would quote it);
- a client that sends its head and stalls mid-body gets 408 and is cut off after the body
  timeout; a client that trickles its head is cut off after the head timeout; neither delays a
  normal webhook on another connection;
- past the connection cap a new connection is answered 503 + Retry-After and closed, and
  service resumes once connections go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from integration_support import in_process_service, tenant_config, zendesk_delivery, \
    zendesk_tenant_table
from plugin.handlers.http import ServerLimits

SECRET = "limits-secret-0123456789"
CANARY = "LIMIT-CANARY-4411"
TENANT = tenant_config(zendesk_tenant_table("acme", "http://127.0.0.1:9", SECRET))


@contextlib.asynccontextmanager
async def served(tmp_path, **limits):
    options = {"head_timeout_seconds": 0.6, "body_timeout_seconds": 0.6, **limits}
    async with in_process_service(tmp_path / "data", [TENANT], run_worker=False,
                                  body_limit_bytes=4096, limits=ServerLimits(**options)) as running:
        yield running, int(running.url.rsplit(":", 1)[1])


async def _raw(port: int, data: bytes, *, read_timeout: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    finally:
        writer.close()


def _webhook_request(ticket: int, *, extra_headers: bytes = b"") -> bytes:
    body, headers = zendesk_delivery(SECRET, ticket, invocation=f"lim-{ticket}")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (f"POST /webhooks/zendesk/acme HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{head}").encode() + extra_headers + b"\r\n" + body


async def _timed_webhook(port: int, ticket: int) -> tuple[bytes, float]:
    started = time.monotonic()
    answer = await _raw(port, _webhook_request(ticket))
    return answer, time.monotonic() - started


async def test_body_size_limit_announced_and_streamed(tmp_path):
    async with served(tmp_path) as (running, port):
        big = b'{"ticket_id": "1", "x": "' + CANARY.encode() * 1000 + b'"}'
        announced = await running.http.post("/webhooks/zendesk/acme", content=big,
                                            headers={"Content-Type": "application/json"})
        assert announced.status_code == 413 and CANARY not in announced.text

        async def stream():
            for _ in range(100):
                yield CANARY.encode() * 10

        streamed = await running.http.post("/webhooks/zendesk/acme", content=stream(),
                                           headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and CANARY not in streamed.text
        assert (await running.service.queue.counts())["queued"] == 0


async def test_chunked_body_that_arrives_with_the_head_is_still_held_to_the_limit(tmp_path):
    # The whole body is in the first read and there is no Content-Length to refuse early: the
    # handler reads it without its streaming loop, and the limit must still hold.
    async with served(tmp_path) as (running, port):
        payload = b'{"ticket_id": "1", "x": "' + CANARY.encode() * 500 + b'"}'
        chunk = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
        request = (b"POST /webhooks/zendesk/acme HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                   b"Connection: close\r\n\r\n" + chunk)
        answer = await _raw(port, request)
        assert answer.startswith(b"HTTP/1.1 413") and CANARY.encode() not in answer
        assert (await running.service.queue.counts())["queued"] == 0


@pytest.mark.parametrize("case", ["long header", "many headers", "long request line"])
async def test_header_limits_refuse_without_echo(tmp_path, case):
    async with served(tmp_path, max_field_size=2048, max_line_size=2048, max_headers=20) as (_, port):
        if case == "long header":
            request = _webhook_request(1, extra_headers=b"X-Big: " + CANARY.encode() * 300 + b"\r\n")
        elif case == "many headers":
            request = _webhook_request(1, extra_headers=b"".join(
                b"X-N%d: %s\r\n" % (i, CANARY.encode()) for i in range(40)))
        else:
            request = b"POST /webhooks/zendesk/" + CANARY.encode() * 300 + b" HTTP/1.1\r\n\r\n"
        answer = await _raw(port, request)
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:60]
        assert CANARY.encode() not in answer and b'{"error": "bad request"}' in answer


async def test_stalled_body_is_cut_off_and_blocks_nobody(tmp_path):
    async with served(tmp_path) as (running, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body, headers = zendesk_delivery(SECRET, 7, invocation="stall")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write((f"POST /webhooks/zendesk/acme HTTP/1.1\r\nHost: x\r\n"
                      f"Content-Length: {len(body)}\r\n{head}\r\n").encode() + body[:10])
        await writer.drain()
        started = time.monotonic()
        answer, took = await _timed_webhook(port, 8)  # another client, meanwhile
        assert b" 202 " in answer.split(b"\r\n")[0] and took < 0.4
        status_line = await asyncio.wait_for(reader.readline(), 3)
        answered = time.monotonic() - started
        await asyncio.wait_for(reader.read(), 3)  # then the server hangs up
        hung_up = time.monotonic() - started
        writer.close()
        assert b" 408 " in status_line and 0.4 < answered < 1.0 and hung_up < 2.0
        assert (await running.service.queue.counts())["queued"] == 1  # only ticket 8


async def test_trickled_head_is_cut_off_and_blocks_nobody(tmp_path):
    async with served(tmp_path) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()

        async def trickle():
            for piece in (b"POST /webhooks/zendesk/acme HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n",
                          b"X-B: 2\r\n", b"X-C: 3\r\n", b"X-D: 4\r\n"):
                if writer.is_closing():
                    return
                writer.write(piece)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(0.25)

        trickling = asyncio.create_task(trickle())
        answer, took = await _timed_webhook(port, 9)
        assert b" 202 " in answer.split(b"\r\n")[0] and took < 0.4
        leftover = await asyncio.wait_for(reader.read(), 3)  # EOF: the server hung up
        closed_after = time.monotonic() - started
        trickling.cancel()
        writer.close()
        assert leftover == b"" and 0.5 < closed_after < 1.4


async def test_connection_cap_answers_503_then_recovers(tmp_path):
    async with served(tmp_path, max_connections=5, head_timeout_seconds=5.0) as (_, port):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        await asyncio.sleep(0.05)
        over = await _raw(port, _webhook_request(10))
        assert over.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in over
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.1)
        answer, _ = await _timed_webhook(port, 11)
        assert b" 202 " in answer.split(b"\r\n")[0]
