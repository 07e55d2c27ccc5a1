"""Privacy: canary ticket texts and secrets through every path of `careroute serve` (a subprocess
with CAREROUTE_LOG_LEVEL=debug, stderr captured), then searched for everywhere they must not be.

Paths: success (flagged and ordinary, both vendors), every refusal (401 wrong signature and wrong
token, 404 unknown tenant, 413 too large, 415 wrong type, 400 unreadable, a malformed HTTP head),
retries (the emulators at 5xx / 429 / dropped connections), crash recovery (kill -9 mid-run and a
restart), debug logging. The 503 "not stored" path is covered in-process by
test_restart_and_storage.py, which captures debug logs the same way.

Places searched: the service's log output, /metrics, the SQLite files (database, WAL and shared
memory, as bytes) and every error reply. Canaries: a phrase inside each ticket text, the
requester's e-mail address, the webhook secrets and the vendor credentials.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from integration_support import (
    SandboxProcess,
    ServiceProcess,
    create_freshdesk_tickets,
    freshdesk_delivery,
    freshdesk_tenant_table,
    sandbox_get,
    sandbox_put,
    texts_of,
    wait_drained,
    write_tenants,
    zendesk_delivery,
    zendesk_tenant_table,
)

pytestmark = pytest.mark.timeout(90)

TEXT_CANARY = "CANARY-51c9"
EMAIL_CANARY = "canary.51c9@example.org"
ZD_SECRET = "privacy-zd-secret-8e2b77"
FD_SECRET = "privacy-fd-secret-4c1d09"
FD_KEY = "privacy-fd-apikey-7731aa"
ZD_EMAIL = "privacy-bot@sandbox.test"
SECRETS = (ZD_SECRET, FD_SECRET, FD_KEY)


async def _zendesk_tickets(url: str, texts) -> list[int]:
    """Tickets whose requester has the canary e-mail address and whose text carries the canary."""
    ids = []
    async with httpx.AsyncClient(base_url=url, auth=(f"{ZD_EMAIL}/token", "sandbox-token")) as http:
        for _, locale, text in texts:
            reply = await http.post("/api/v2/tickets", json={"ticket": {
                "subject": f"Help {TEXT_CANARY}", "comment": {"body": f"{text} {TEXT_CANARY}"},
                "requester": {"name": "Customer", "email": EMAIL_CANARY, "locale": locale}}})
            reply.raise_for_status()
            ids.append(reply.json()["ticket"]["id"])
    return ids


def _raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_canaries_never_leave_the_ticket(tmp_path):
    sandboxes = SandboxProcess({"zd": {"vendor": "zendesk"},
                                "fd": {"vendor": "freshdesk", "extra_freshdesk_keys": [FD_KEY]}})
    service = None
    try:
        zd_url, fd_url = sandboxes.urls["zd"], sandboxes.urls["fd"]
        tenants = write_tenants(tmp_path / "tenants.toml", [
            zendesk_tenant_table("zd", zd_url, ZD_SECRET, email=ZD_EMAIL),
            freshdesk_tenant_table("fd", fd_url, FD_SECRET, key=FD_KEY)])
        texts = texts_of("ordinary", "idiom", "ideation", "imminent", "third_party") * 2
        zd_ids = await _zendesk_tickets(zd_url, texts)
        fd_texts = [(k, loc, f"{text} {TEXT_CANARY} {EMAIL_CANARY}") for k, loc, text in texts]
        fd_ids = await create_freshdesk_tickets(fd_url, fd_texts, key=FD_KEY)
        service = ServiceProcess(tmp_path / "data", tenants, log_path=tmp_path / "service.log",
                                 env={"CAREROUTE_LOG_LEVEL": "debug"}).start()
        replies: list[httpx.Response] = []

        async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
            async def deliver(ids_zd, ids_fd):
                sends = [http.post("/webhooks/zendesk/zd", content=b, headers=h) for b, h in
                         (zendesk_delivery(ZD_SECRET, t, invocation=f"p-{t}") for t in ids_zd)]
                sends += [http.post("/webhooks/freshdesk/fd", content=b, headers=h) for b, h in
                          (freshdesk_delivery(FD_SECRET, t) for t in ids_fd)]
                for reply in await asyncio.gather(*sends):
                    assert reply.status_code == 202

            # Success, then retries: half the tickets while the emulators misbehave.
            half = len(zd_ids) // 2
            await deliver(zd_ids[:half // 2], fd_ids[:half // 2])
            for url in (zd_url, fd_url):
                await sandbox_put(url, "/_sandbox/faults", {
                    "error_rate": 0.3, "rate_limit_rate": 0.1, "drop_rate": 0.1, "retry_after": 1})
            await deliver(zd_ids[half // 2:half], fd_ids[half // 2:half])
            await asyncio.sleep(0.5)
            # Crash recovery: killed with work in hand, restarted, the rest delivered.
            service.kill9()
            for url in (zd_url, fd_url):
                await sandbox_put(url, "/_sandbox/faults", {
                    "error_rate": 0.0, "rate_limit_rate": 0.0, "drop_rate": 0.0})
            await asyncio.to_thread(service.start)
            await deliver(zd_ids[half:], fd_ids[half:])

            # Every kind of refusal, each carrying the canaries.
            canary_body = json.dumps({"ticket_id": "1", "text": TEXT_CANARY,
                                      "email": EMAIL_CANARY}).encode()
            _, good_headers = zendesk_delivery(ZD_SECRET, 1)
            replies += [
                await http.post("/webhooks/zendesk/zd", content=canary_body, headers=good_headers),
                await http.post("/webhooks/zendesk/zd", content=canary_body, headers={
                    **good_headers, "X-Zendesk-Webhook-Signature": ZD_SECRET}),
                await http.post(f"/webhooks/zendesk/{TEXT_CANARY}", content=canary_body,
                                headers=good_headers),
                await http.post("/webhooks/zendesk/zd", content=canary_body * 20000,
                                headers=good_headers),
                await http.post("/webhooks/zendesk/zd", content=canary_body,
                                headers={**good_headers, "Content-Type": "text/plain"}),
                await http.post("/webhooks/freshdesk/fd", content=canary_body,
                                headers={"Content-Type": "application/json",
                                         "X-CareRoute-Token": TEXT_CANARY}),
                await http.post("/webhooks/freshdesk/fd", content=b"{" + TEXT_CANARY.encode(),
                                headers={"Content-Type": "application/json",
                                         "X-CareRoute-Token": FD_SECRET}),
                await http.post("/webhooks/freshdesk/fd", params={"token": FD_KEY},
                                content=canary_body, headers={"Content-Type": "application/json"}),
            ]
            assert [r.status_code for r in replies] == [401, 401, 404, 413, 415, 401, 400, 401]
            malformed = _raw_request(service.port, b"POST /webhooks/zendesk/zd HTTP/1.1\r\nX-Bad: "
                                     + (TEXT_CANARY * 2000).encode() + b"\r\n\r\n")
            assert malformed.split(b"\r\n")[0].endswith(b" 400 Bad Request")

            await wait_drained(service.db_path, timeout=40, expected_jobs=len(zd_ids) + len(fd_ids))
            metrics = (await http.get("/metrics")).text
        assert service.stop() == 0
        logs = service.logs()
        ledger = await sandbox_get(zd_url, "/_integration/ledger")
        assert {429, 503, -1} & {e["status"] for e in ledger}, "retries really happened"
        assert '"event": "job_done"' in logs and '"event": "http_request"' in logs  # debug was on
        assert logs.count('"event": "service_started"') == 2  # crash and restart happened

        db_bytes = b"".join(p.read_bytes() for p in service.data_dir.glob("careroute.sqlite3*"))
        places = {"logs": logs, "metrics": metrics, "database": db_bytes.decode("latin-1"),
                  "replies": "\n".join(r.text for r in replies) + malformed.decode("latin-1")}
        for place, content in places.items():
            for canary in (TEXT_CANARY, EMAIL_CANARY, *SECRETS):
                assert canary not in content, f"{canary!r} found in {place}"
        state = await sandbox_get(zd_url, "/_integration/state")
        assert sum(1 for t in state.values() if t["notes"]) >= 10, "the flagged ones were written"
    finally:
        if service is not None:
            service.stop()
        sandboxes.stop()
