"""Tenant isolation: a webhook for tenant A never causes a call with B's credentials or for B's
tickets, and never reaches B's helpdesk.

Set-up (real service in-process, real clients and screening, emulators over HTTP):
two Zendesk accounts (zd-a, zd-b: two emulator apps) and two Freshdesk tenants (fd-c, fd-d)
sharing ONE Freshdesk emulator with different API keys; every emulator keeps a ledger of each
API call with the credentials it carried. All four tenants get crisis deliveries at the same time.

Proves: every call for a ticket carries exactly its owner's credentials and goes to its owner's
helpdesk; a delivery signed with another tenant's secret makes no call at all; the notes and tags
land only on the tickets of the tenant whose webhook named them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from integration_support import (
    LEDGER,
    create_freshdesk_tickets,
    create_zendesk_tickets,
    freshdesk_delivery,
    freshdesk_tenant_table,
    in_process_service,
    sandbox_app,
    sandbox_get,
    serving,
    tenant_config,
    texts_of,
    zendesk_delivery,
    zendesk_tenant_table,
)

KEY_C, KEY_D = "fd-key-tenant-c-111", "fd-key-tenant-d-222"
SECRETS = {"zd-a": "iso-secret-a-0001", "zd-b": "iso-secret-b-0002",
           "fd-c": "iso-secret-c-0003", "fd-d": "iso-secret-d-0004"}
EMAILS = {"zd-a": "bot@a.example", "zd-b": "bot@b.example"}


async def test_no_call_ever_crosses_tenants(tmp_path):
    apps = {"zd_a": sandbox_app("zendesk"), "zd_b": sandbox_app("zendesk"),
            "fd": sandbox_app("freshdesk", extra_freshdesk_keys=[KEY_C, KEY_D])}
    async with serving(apps) as urls:
        tables = {
            "zd-a": zendesk_tenant_table("zd-a", urls["zd_a"], SECRETS["zd-a"], email=EMAILS["zd-a"]),
            "zd-b": zendesk_tenant_table("zd-b", urls["zd_b"], SECRETS["zd-b"], email=EMAILS["zd-b"]),
            "fd-c": freshdesk_tenant_table("fd-c", urls["fd"], SECRETS["fd-c"], key=KEY_C),
            "fd-d": freshdesk_tenant_table("fd-d", urls["fd"], SECRETS["fd-d"], key=KEY_D)}
        crisis = texts_of("ideation", "imminent")[:4]
        ids = {
            "zd-a": await create_zendesk_tickets(urls["zd_a"], crisis, email="setup@a.example"),
            "zd-b": await create_zendesk_tickets(urls["zd_b"], crisis, email="setup@b.example"),
            "fd-c": await create_freshdesk_tickets(urls["fd"], crisis, key=KEY_C),
            "fd-d": await create_freshdesk_tickets(urls["fd"], crisis, key=KEY_D)}
        # The Zendesk accounts number their tickets alike (1, 2, …): only the account tells them apart.
        assert ids["zd-a"] == ids["zd-b"]
        for ledger_app in apps.values():
            ledger_app[LEDGER].clear()  # only the service's calls from here on

        async with in_process_service(tmp_path / "data", [tenant_config(t) for t in tables.values()],
                                      worker_concurrency=6) as running:
            sends = []
            for tenant_id, ticket_ids in ids.items():
                for ticket_id in ticket_ids:
                    body, headers = (zendesk_delivery(SECRETS[tenant_id], ticket_id)
                                     if tenant_id.startswith("zd")
                                     else freshdesk_delivery(SECRETS[tenant_id], ticket_id))
                    vendor = "zendesk" if tenant_id.startswith("zd") else "freshdesk"
                    sends.append(running.post(f"/webhooks/{vendor}/{tenant_id}", body, headers))
            # Deliveries for a's and c's paths signed with b's and d's secrets: refused.
            body, headers = zendesk_delivery(SECRETS["zd-b"], ids["zd-b"][0], invocation="x")
            crossed_zd = running.post("/webhooks/zendesk/zd-a", body, headers)
            body, headers = freshdesk_delivery(SECRETS["fd-d"], ids["fd-d"][0])
            crossed_fd = running.post("/webhooks/freshdesk/fd-c", body, headers)
            replies = await asyncio.gather(*sends, crossed_zd, crossed_fd)
            assert [r.status_code for r in replies[:-2]] == [202] * len(sends)
            assert [r.status_code for r in replies[-2:]] == [401, 401]
            assert await running.service.worker.drain(20)
            assert (await running.service.queue.counts())["dead"] == 0

        # Who called which helpdesk, for which ticket.
        callers: dict[tuple[str, str], set[str]] = defaultdict(set)
        for name, url in urls.items():
            for entry in await sandbox_get(url, "/_integration/ledger"):
                parts = entry["path"].split("/")
                ticket = parts[4] if len(parts) > 4 and parts[3] == "tickets" else "-"
                callers[(name, ticket)].add(entry["who"])
        owner_of_fd = {str(t): "fd-c" for t in ids["fd-c"]} | {str(t): "fd-d" for t in ids["fd-d"]}
        for (sandbox, ticket), who in callers.items():
            if sandbox == "zd_a":
                assert who == {EMAILS["zd-a"]}, (sandbox, ticket, who)
            elif sandbox == "zd_b":
                assert who == {EMAILS["zd-b"]}, (sandbox, ticket, who)
            elif ticket != "-":
                expected_key = KEY_C if owner_of_fd[ticket] == "fd-c" else KEY_D
                assert who == {expected_key}, (ticket, who)
            else:  # contact look-ups: either Freshdesk key, each for its own requesters
                assert who <= {KEY_C, KEY_D}
        for name, url in urls.items():
            state = await sandbox_get(url, "/_integration/state")
            for ticket_id, ticket in state.items():
                assert len([n for n in ticket["notes"] if n]) == 1, (name, ticket_id)
                assert "careroute_screened" in ticket["tags"]
