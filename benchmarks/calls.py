"""Vendor API calls per ticket, counted from the emulators' request logs (not from our code).

One tenant per vendor, in-process service with real clients and screening; for each kind of
ticket (ordinary, concern, high, imminent) a few tickets go through, then every logged API request
is attributed to its ticket. Used by docs/scaling.md to turn vendor rate limits into tickets/s.

    python -m benchmarks.calls [--json benchmarks/results/calls.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from integration_support import (  # noqa: E402
    create_freshdesk_tickets,
    create_zendesk_tickets,
    expected_tier,
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

RESULTS = Path(__file__).parent / "results"


async def count() -> dict[str, Any]:
    from plugin import logging as cr_logging

    cr_logging.configure(level="warning", fmt="json")
    apps = {"zendesk": sandbox_app("zendesk"), "freshdesk": sandbox_app("freshdesk")}
    texts = texts_of("ordinary", "idiom", "distress", "ideation", "third_party", "imminent")
    async with serving(apps) as urls:
        tables = {"zendesk": zendesk_tenant_table("zd", urls["zendesk"], "calls-zd-secret"),
                  "freshdesk": freshdesk_tenant_table("fd", urls["freshdesk"], "calls-fd-secret")}
        tenants = {vendor: tenant_config(table) for vendor, table in tables.items()}
        ids = {"zendesk": await create_zendesk_tickets(urls["zendesk"], texts),
               "freshdesk": await create_freshdesk_tickets(urls["freshdesk"], texts)}
        for url in urls.values():
            async with __import__("httpx").AsyncClient(base_url=url) as http:
                await http.delete("/_integration/ledger")
        with tempfile.TemporaryDirectory() as tmp:
            async with in_process_service(Path(tmp), list(tenants.values())) as running:
                for vendor, ticket_ids in ids.items():
                    for ticket in ticket_ids:
                        body, headers = (zendesk_delivery("calls-zd-secret", ticket)
                                         if vendor == "zendesk"
                                         else freshdesk_delivery("calls-fd-secret", ticket))
                        tenant_id = tenants[vendor].id
                        reply = await running.post(f"/webhooks/{vendor}/{tenant_id}", body, headers)
                        assert reply.status_code == 202
                assert await running.service.worker.drain(60)
        figures: dict[str, Any] = {}
        for vendor, url in urls.items():
            per_ticket: dict[str, Counter] = defaultdict(Counter)
            for entry in await sandbox_get(url, "/_integration/ledger"):
                parts = entry["path"].split("/")
                if len(parts) > 4 and parts[3] == "tickets":
                    kind = "write" if entry["method"] in ("PUT", "POST") else "read"
                    per_ticket[parts[4]][kind] += 1
                else:  # user / contact look-ups: attributed evenly below
                    per_ticket["_other"]["read"] += 1
            by_tier: dict[str, list[Counter]] = defaultdict(list)
            for ticket, (_, locale, text) in zip(ids[vendor], texts):
                by_tier[expected_tier(text, locale, tenants[vendor])].append(per_ticket[str(ticket)])
            other_reads = per_ticket["_other"]["read"] / len(texts)
            figures[vendor] = {tier: {
                "tickets": len(counts),
                "reads": round(sum(c["read"] for c in counts) / len(counts) + other_reads, 2),
                "writes": round(sum(c["write"] for c in counts) / len(counts), 2),
                "update_ticket_calls": round(sum(c["write"] for c in counts) / len(counts), 2)
                if vendor == "zendesk" else None}
                for tier, counts in sorted(by_tier.items())}
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS / "calls.json")
    args = parser.parse_args(argv)
    figures = asyncio.run(count())
    for vendor, tiers in figures.items():
        for tier, row in tiers.items():
            print(f"  {vendor:9} {tier:9} reads {row['reads']:>5}  writes {row['writes']:>5}  "
                  f"({row['tickets']} tickets)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"calls_per_ticket": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
