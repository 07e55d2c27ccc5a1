"""`careroute demo`: the whole product on one machine, in one process, in under a minute.

1. starts the Zendesk and Freshdesk sandboxes and the CareRoute service on 127.0.0.1;
2. provisions one Zendesk and one Freshdesk tenant through their real APIs (webhook, triggers,
   automation rules, macros / canned responses), exactly as `careroute provision` does;
3. creates a dozen sample tickets in several languages; the sandboxes deliver signed webhooks;
4. waits for CareRoute to screen and route them, then prints what each ticket looks like now;
5. serves the agent view (tickets with their tags and internal notes) until Ctrl-C (`--once`: exit).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from .config import ServiceSettings, TenantConfig, tenant_from_dict
from .handlers.http import create_app
from .logging import configure
from .ratelimit import RateBudget
from .replay import note_as_text
from .sandbox import freshdesk as fd_sandbox
from .sandbox import zendesk as zd_sandbox
from .sandbox.freshdesk_state import DOMAIN as FRESHDESK_DOMAIN
from .service import Service
from .tenants import TenantDirectory
from .vendors import ClientContext


@dataclass(frozen=True)
class Sample:
    vendor: str
    language: str
    subject: str
    text: str
    kind: str  # what the sample shows, for the reader of the table


# Written for the demo; crisis samples carry no method detail.
SAMPLES = (
    Sample("zendesk", "en", "Wrong VAT number", "Hi, my last invoice shows the wrong VAT number. "
           "Could you issue a corrected one? Thanks, Priya", "ordinary"),
    Sample("zendesk", "en", "Export button gone", "This update is killing me, the export button "
           "is gone and I'm dying to get my reports out before Friday.", "idiom"),
    Sample("freshdesk", "es", "Error al pagar", "Este error me está matando, no puedo pagar con "
           "tarjeta desde ayer. ¿Pueden revisarlo?", "idiom (es)"),
    Sample("freshdesk", "en", "Late fees", "I can't keep up with these late fees. I'm exhausted, "
           "I barely sleep and I honestly don't know how much longer I can go on like this.",
           "distress"),
    Sample("zendesk", "de", "Kündigung", "Bitte kündigen Sie mein Abo. Ich will nicht mehr leben, "
           "alles ist zu viel.", "ideation (de)"),
    Sample("freshdesk", "fr", "Abonnement de mon fils", "Bonjour, mon fils m'a dit hier qu'il "
           "voulait se suicider. Je dois gérer son abonnement et je ne sais plus quoi faire.",
           "third party (fr)"),
    Sample("zendesk", "en", "Cancel my plan", "Please cancel my plan and make sure my mother gets "
           "the refund. I won't be around after tonight.", "imminent"),
    Sample("freshdesk", "pt", "Cancelar conta", "Quero cancelar minha conta. Às vezes penso que "
           "todos estariam melhor sem mim.", "ideation (pt)"),
    Sample("zendesk", "it", "Rimborso", "Non sono depresso, solo frustrato: aspetto il rimborso "
           "da tre settimane!", "negation (it)"),
    Sample("zendesk", "nl", "Pakket", "Mijn pakket is nog steeds niet aangekomen. Kunnen jullie "
           "kijken waar het blijft?", "ordinary (nl)"),
    Sample("freshdesk", "en", "Refund", "Years ago I tried to end my life, I'm doing OK now. I just "
           "need a refund for the duplicate charge.", "history"),
    Sample("zendesk", "es", "Última vez", "Ya me despedí de mi familia y regalé a mi perro. Esta "
           "noche termino con todo. Cancelen la cuenta.", "imminent (es)"),
)
LOCALES = {"en": "en-GB", "es": "es-ES", "de": "de-DE", "fr": "fr-FR", "pt": "pt-BR",
           "it": "it-IT", "nl": "nl-NL"}


def say(message: str) -> None:
    print(message, flush=True)


async def start_site(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{bound}"


def demo_tenants(zd_url: str, fd_url: str, zd_secret: str, fd_secret: str) -> list[TenantConfig]:
    common = {"requests_per_minute": 6000, "admin_token": "demo-admin-token"}
    zendesk = tenant_from_dict({
        "id": "demo-zendesk", "vendor": "zendesk", "subdomain": "demo", "base_url": zd_url,
        "webhook_secret": zd_secret, "trained_group_id": zd_sandbox.TRAINED_GROUP_ID,
        "auth": {"kind": "api_token", "email": "agent@sandbox.test",
                 "token": zd_sandbox.SANDBOX_TOKEN}, **common})
    freshdesk = tenant_from_dict({
        "id": "demo-freshdesk", "vendor": "freshdesk", "domain": FRESHDESK_DOMAIN,
        "base_url": fd_url, "webhook_secret": fd_secret, "trained_group_id": 2,
        "auth": {"kind": "api_key", "key": fd_sandbox.ADMIN_KEY}, **common})
    return [zendesk, freshdesk]


async def create_sample(http: httpx.AsyncClient, zd_url: str, fd_url: str, index: int,
                        sample: Sample) -> tuple[str, str]:
    email = f"customer{index}@example.org"
    if sample.vendor == "zendesk":
        reply = await http.post(f"{zd_url}/api/v2/tickets", auth=(
            "agent@sandbox.test/token", zd_sandbox.SANDBOX_TOKEN), json={"ticket": {
                "subject": sample.subject, "comment": {"body": sample.text},
                "requester": {"name": f"Customer {index}", "email": email,
                              "locale": LOCALES[sample.language]}, "tags": ["demo"]}})
        reply.raise_for_status()
        return "zendesk", str(reply.json()["ticket"]["id"])
    auth = (fd_sandbox.ADMIN_KEY, "X")
    contact = await http.post(f"{fd_url}/api/v2/contacts", auth=auth, json={
        "name": f"Customer {index}", "email": email, "language": sample.language})
    contact.raise_for_status()
    reply = await http.post(f"{fd_url}/api/v2/tickets", auth=auth, json={
        "subject": sample.subject, "description": f"<div>{sample.text}</div>",
        "requester_id": contact.json()["id"], "tags": ["demo"], "priority": 1, "status": 2})
    reply.raise_for_status()
    return "freshdesk", str(reply.json()["id"])


async def read_ticket(http: httpx.AsyncClient, vendor: str, url: str, ticket_id: str) -> dict:
    """The ticket as an agent sees it: tags, priority, group, CareRoute's note."""
    if vendor == "zendesk":
        auth = ("agent@sandbox.test/token", zd_sandbox.SANDBOX_TOKEN)
        ticket = (await http.get(f"{url}/api/v2/tickets/{ticket_id}", auth=auth)).json()["ticket"]
        comments = (await http.get(f"{url}/api/v2/tickets/{ticket_id}/comments",
                                   auth=auth)).json()["comments"]
        notes = [c.get("html_body", "") for c in comments if not c.get("public")]
        return {"tags": ticket["tags"], "priority": ticket.get("priority"),
                "group": ticket.get("group_id"), "notes": notes}
    auth = (fd_sandbox.ADMIN_KEY, "X")
    ticket = (await http.get(f"{url}/api/v2/tickets/{ticket_id}", auth=auth)).json()
    conversations = (await http.get(f"{url}/api/v2/tickets/{ticket_id}/conversations",
                                    auth=auth)).json()
    notes = [c.get("body", "") for c in conversations if c.get("private")]
    priority = {1: "low", 2: "normal", 3: "high", 4: "urgent"}.get(ticket.get("priority"))
    return {"tags": ticket["tags"], "priority": priority, "group": ticket.get("group_id"),
            "notes": notes}


def headline(note_html: str) -> str:
    lines = note_as_text(note_html).splitlines()
    return next((line for line in lines if line.startswith("CareRoute")), lines[0] if lines else "")


def table(rows: list[dict[str, Any]]) -> str:
    columns = [("#", 2), ("desk", 9), ("lang", 4), ("sample", 16), ("tier", 8), ("score", 5),
               ("tags", 38), ("prio", 6), ("group", 12), ("note (first line)", 58)]
    out = ["  ".join(name.ljust(width) for name, width in columns)]
    out.append("  ".join("-" * width for _, width in columns))
    for row in rows:
        values = [row["n"], row["vendor"], row["language"], row["kind"], row["tier"],
                  row["score"], row["tags"], row["priority"], row["group"], row["note"]]
        out.append("  ".join(str(v)[:w].ljust(w) for v, (_, w) in zip(values, columns)))
    return "\n".join(out)


async def wait_for(service: Service, expected: int, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        decisions = await service.audit.recent(limit=1000)
        done = len({(d["tenant_id"], d["ticket_id"]) for d in decisions if d["event"] == "created"})
        if done != seen:
            say(f"  … {done}/{expected} tickets screened")
            seen = done
        if done >= expected and await service.worker.drain(0.1):
            return done
        await asyncio.sleep(0.25)
    return seen


async def run_demo(*, once: bool, data_dir: Path | None, view_port: int) -> int:
    configure(level="warning", fmt="json")
    say("CareRoute demo — everything runs on 127.0.0.1; nothing leaves this machine.")
    say("[1/5] starting the Zendesk and Freshdesk sandboxes …")
    fd_secret = secrets.token_urlsafe(24)
    zd_runner, zd_url = await start_site(zd_sandbox.create_app())
    fd_runner, fd_url = await start_site(fd_sandbox.create_app())
    runners = [zd_runner, fd_runner]
    say(f"      Zendesk {zd_url} · Freshdesk {fd_url}")

    say("[2/5] starting CareRoute …")
    workdir = data_dir or Path(tempfile.mkdtemp(prefix="careroute-demo-"))
    settings = ServiceSettings(data_dir=workdir, worker_concurrency=4)
    tenants = TenantDirectory(demo_tenants(zd_url, fd_url, "pending-provisioning", fd_secret))
    service = Service(settings, tenants, insecure_dev=True)
    await service.start()
    service_runner, service_url = await start_site(create_app(service, manage_service=False))
    runners.append(service_runner)
    say(f"      service {service_url} (data in {workdir})")

    try:
        say("[3/5] provisioning both tenants through the vendors' APIs …")
        from .freshdesk.provision import provision as provision_freshdesk
        from .zendesk.provision import provision as provision_zendesk

        zd_tenant, fd_tenant = list(tenants)
        zd_result = await provision_zendesk(zd_tenant, service_url, context=ClientContext(
            budget=RateBudget(6000)))
        if not zd_result.webhook_secret:
            raise RuntimeError("the Zendesk sandbox returned no signing secret")
        # Zendesk generates the signing secret: the tenant record takes it.
        tenants.put(demo_tenants(zd_url, fd_url, zd_result.webhook_secret, fd_secret)[0])
        fd_result = await provision_freshdesk(fd_tenant, service_url, context=ClientContext(
            budget=RateBudget(6000)))
        for line in [*zd_result.steps, *fd_result.steps]:
            say(f"      {line}")

        say(f"[4/5] creating {len(SAMPLES)} sample tickets; the sandboxes send signed webhooks …")
        created = []
        async with httpx.AsyncClient(timeout=15) as http:
            for n, sample in enumerate(SAMPLES, 1):
                created.append((n, sample, *await create_sample(http, zd_url, fd_url, n, sample)))
            screened = await wait_for(service, len(SAMPLES))
            if screened < len(SAMPLES):
                say(f"      only {screened} of {len(SAMPLES)} were screened in time")
            decisions = {(d["vendor"], d["ticket_id"]): d for d in
                         reversed(await service.audit.recent(limit=1000)) if d["event"] == "created"}
            rows = []
            for n, sample, vendor, ticket_id in created:
                now = await read_ticket(http, vendor, zd_url if vendor == "zendesk" else fd_url,
                                        ticket_id)
                decision = decisions.get((vendor, ticket_id), {})
                notes = [note for note in now["notes"] if "careroute-job:" in note]
                rows.append({"n": n, "vendor": vendor, "language": sample.language,
                             "kind": sample.kind, "tier": decision.get("tier", "?"),
                             "score": f"{decision.get('score', 0):.2f}",
                             "tags": " ".join(t for t in now["tags"] if t != "demo") or "—",
                             "priority": now["priority"] or "—", "group": now["group"] or "—",
                             "note": headline(notes[0]) if notes else "— (left untouched)"})
        say("[5/5] results — each ticket as the helpdesk now shows it:\n")
        say(table(rows))
        say("")
        if once:
            return 0 if screened >= len(SAMPLES) else 1

        from .sandbox.agent_view import create_app as create_agent_view

        view_runner, view_url = await start_site(
            create_agent_view(zendesk_url=zd_url, freshdesk_url=fd_url), view_port)
        runners.append(view_runner)
        say(f"Agent view: {view_url}  (tickets with their tags and internal notes)")
        say(f"Admin page: {service_url}/admin  (admin token: demo-admin-token)")
        say("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        await service.stop()


def main(once: bool = False, data_dir: Path | None = None, view_port: int = 8090) -> int:
    try:
        return asyncio.run(run_demo(once=once, data_dir=data_dir, view_port=view_port))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"careroute demo: {exc.strerror or exc}", file=sys.stderr)
        return 1
