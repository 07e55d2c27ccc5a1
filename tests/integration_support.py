"""Shared helpers for tests/integration/: sandboxes with a ledger, processes, tenants, deliveries.

- `sandbox_app(vendor, ...)`: a Zendesk or Freshdesk emulator with rate limits raised for load,
  plus an outer *ledger* (who called what, with which credentials, when it arrived and when it
  was answered), a write-fault knob and a compact state dump under `/_integration/`.
- Run as a script (`python tests/integration_support.py sandboxes SPEC_JSON`) it serves several
  such apps in their own process and prints `{"name": "http://127.0.0.1:port", ...}` on stdout.
- `ServiceProcess`: `python -m plugin.cli serve` as a subprocess (stderr captured to a file).
- `InProcessService`: the same app started in the test's event loop (fast tests).
- Ticket texts for every kind of ticket (no method detail), signed deliveries, tenants files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Iterable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from aiohttp import web  # noqa: E402

from plugin.sandbox import freshdesk as fd_sandbox  # noqa: E402
from plugin.sandbox import zendesk as zd_sandbox  # noqa: E402
from plugin.sandbox.zendesk_hooks import signature as zendesk_signature  # noqa: E402

ZD_TOKEN = zd_sandbox.SANDBOX_TOKEN
FD_ADMIN_KEY = fd_sandbox.ADMIN_KEY
HIGH_RATE = 1_000_000  # sandbox per-minute limits raised so load tests measure CareRoute

# --------------------------------------------------------------------------- ticket texts
# (kind, locale, text). Kinds: ordinary, idiom (look-alike, must stay unflagged), distress,
# ideation, third_party, imminent. Crisis texts describe feelings and timing, never a method.
TICKET_TEXTS: list[tuple[str, str, str]] = [
    ("ordinary", "en-US", "Where is my parcel? The tracking page has not changed for a week."),
    ("ordinary", "en-GB", "I was charged twice for order 4411, please refund the duplicate payment."),
    ("ordinary", "es", "¿Dónde está mi pedido? Lleva una semana sin moverse."),
    ("ordinary", "de", "Meine Rechnung zeigt die alte Adresse, bitte korrigieren Sie das."),
    ("ordinary", "fr", "Je n'arrive pas à changer mon mot de passe, le lien ne fonctionne pas."),
    ("ordinary", "pt-BR", "Meu pedido chegou com a caixa amassada, podem trocar o produto?"),
    ("ordinary", "it", "Vorrei cambiare il mio piano da mensile ad annuale, è possibile?"),
    ("idiom", "en-US", "This update is killing me, the sync fails every single time."),
    ("idiom", "en-US", "I'm dying to try the new blue jacket, when is it back in stock?"),
    ("idiom", "fr", "Ce bug me tue, la synchronisation échoue tout le temps."),
    ("distress", "en-US", "Honestly I can't cope anymore with these debts and I'm crying every day."),
    ("ideation", "en-US", "I feel like a burden to everyone and I want to die."),
    ("ideation", "en-GB", "Sometimes I wish I could go to sleep and not wake up."),
    ("ideation", "es", "Quiero morirme, ya no puedo más con todo esto."),
    ("ideation", "fr", "Je veux mourir, je n'en peux plus."),
    ("ideation", "pt-BR", "Quero me matar, não aguento mais."),
    ("ideation", "it", "Voglio morire, non ce la faccio più."),
    ("third_party", "en-US", "My son told me he wants to kill himself, I don't know what to do."),
    ("third_party", "en-US", "My friend said she wants to end her life and I am worried about her."),
    ("imminent", "en-US", "I have decided to kill myself tonight, this is my goodbye."),
    ("imminent", "de", "Ich bringe mich heute Nacht um. Das ist mein Abschied."),
    ("imminent", "en-GB", "Please make sure my mother gets the refund, I won't be around after "
                          "tonight."),
]
CRISIS_KINDS = ("distress", "ideation", "third_party", "imminent")


def texts_of(*kinds: str) -> list[tuple[str, str, str]]:
    return [t for t in TICKET_TEXTS if t[0] in kinds]


def expected_tier(text: str, locale: str, tenant: Any) -> str:
    """The tier the service must reach: the same screener and tenant thresholds (an oracle for
    which tags to expect; the tests separately assert ordinary → none and imminent → imminent)."""
    from plugin.policy import tier_for_tenant
    from plugin.screening import screen

    return tier_for_tenant(screen(text, locale=locale.split("-")[0]), tenant)


# --------------------------------------------------------------------------- sandbox apps

LEDGER = web.AppKey("integration_ledger", list)
WRITE_FAULTS = web.AppKey("integration_write_faults", dict)


def _identity(header: str) -> str:
    """Which credentials a request carried: the Zendesk e-mail, the Freshdesk key, or 'oauth'."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return "oauth"
    if scheme.lower() != "basic":
        return "none"
    try:
        decoded = base64.b64decode(value).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return "unreadable"
    user, _, _ = decoded.partition("/token:") if "/token:" in decoded else decoded.partition(":")
    return user


def _ledger_middleware(ledger: list[dict[str, Any]], write_faults: dict[str, Any]) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        entry = {"who": _identity(request.headers.get("Authorization", "")),
                 "method": request.method, "path": request.path, "arrived": time.time(),
                 "answered": None, "status": -1, "retry_after": None}
        ledger.append(entry)
        is_write = request.method in ("PUT", "POST")
        if is_write and write_faults.get("fail_writes"):
            entry.update(status=503, answered=time.time())
            return web.json_response({"error": "ServiceUnavailable"}, status=503)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            entry.update(status=exc.status, answered=time.time())
            raise
        entry.update(status=response.status, answered=time.time(),
                     retry_after=response.headers.get("Retry-After"))
        return response

    return middleware


def _zendesk_state_dump(state: Any) -> dict[str, Any]:
    from plugin.model import find_note_markers

    dump = {}
    for ticket in state.tickets.values():
        private = [c for c in ticket.comments if not c["public"]]
        dump[str(ticket.id)] = {
            "tags": list(ticket.tags), "priority": ticket.priority, "group_id": ticket.group_id,
            "notes": [sorted(find_note_markers(c["html_body"] or c["plain_body"])) for c in private],
            "public_comments": sum(1 for c in ticket.comments if c["public"])}
    return dump


def _freshdesk_state_dump(state: Any) -> dict[str, Any]:
    from plugin.model import find_note_markers

    dump = {}
    for ticket_id, ticket in state.tickets.items():
        conversations = state.conversations.get(ticket_id, [])
        private = [c for c in conversations if c.get("private")]
        dump[str(ticket_id)] = {
            "tags": list(ticket.get("tags") or []), "priority": ticket.get("priority"),
            "group_id": ticket.get("group_id"),
            "notes": [sorted(find_note_markers(c.get("body") or "")) for c in private],
            "public_comments": sum(1 for c in conversations if not c.get("private"))}
    return dump


def sandbox_app(vendor: str, *, extra_freshdesk_keys: Iterable[str] = (),
                **kwargs: Any) -> web.Application:
    """An emulator with high rate limits, the ledger and the `/_integration/` routes."""
    if vendor == "zendesk":
        options = {"account_rate_per_minute": HIGH_RATE, "ticket_updates_per_minute": HIGH_RATE,
                   "per_ticket_updates": 1000, **kwargs}
        app = zd_sandbox.create_app(**options)
        state = app[zd_sandbox.ZENDESK_STATE]
        dump = lambda: _zendesk_state_dump(state)  # noqa: E731
    else:
        app = fd_sandbox.create_app(**{"rate_per_minute": HIGH_RATE, **kwargs})
        state = app[fd_sandbox.FRESHDESK_STATE]
        for key in extra_freshdesk_keys:
            state.keys[key] = 1  # another admin key: a second tenant on the same account
        dump = lambda: _freshdesk_state_dump(state)  # noqa: E731
    ledger: list[dict[str, Any]] = []
    write_faults: dict[str, Any] = {"fail_writes": False}
    app[LEDGER] = ledger
    app[WRITE_FAULTS] = write_faults
    app.middlewares.insert(0, _ledger_middleware(ledger, write_faults))

    async def get_state(_: web.Request) -> web.Response:
        return web.json_response(dump())

    async def get_ledger(_: web.Request) -> web.Response:
        return web.json_response(ledger)

    async def clear_ledger(_: web.Request) -> web.Response:
        ledger.clear()
        return web.Response(status=204)

    async def put_write_faults(request: web.Request) -> web.Response:
        write_faults.update(await request.json())
        return web.json_response(write_faults)

    app.router.add_get("/_integration/state", get_state)
    app.router.add_get("/_integration/ledger", get_ledger)
    app.router.add_delete("/_integration/ledger", clear_ledger)
    app.router.add_put("/_integration/write_faults", put_write_faults)
    return app


@contextlib.asynccontextmanager
async def serving(apps: dict[str, web.Application]) -> AsyncIterator[dict[str, str]]:
    """Serve apps in this event loop on ephemeral ports → {name: base URL}."""
    runners, urls = [], {}
    try:
        for name, app in apps.items():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            urls[name] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for runner in runners:
            await runner.cleanup()


async def _serve_spec(spec: dict[str, dict[str, Any]]) -> None:
    apps = {name: sandbox_app(opts.pop("vendor"), **opts) for name, opts in spec.items()}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serving(apps) as urls:
        print(json.dumps(urls), flush=True)
        await stop.wait()


class SandboxProcess:
    """Emulators in their own process: `spec` = {name: {"vendor": …, **create_app kwargs}}."""

    def __init__(self, spec: dict[str, dict[str, Any]], cpus: set[int] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "sandboxes", json.dumps(spec)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.proc.kill()
            raise RuntimeError("sandbox process did not start")
        self.urls: dict[str, str] = json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --------------------------------------------------------------------------- talking to sandboxes

def zendesk_auth(email: str = "agent@sandbox.test") -> tuple[str, str]:
    return (f"{email}/token", ZD_TOKEN)


async def create_zendesk_tickets(url: str, texts: list[tuple[str, str, str]],
                                 email: str = "agent@sandbox.test", concurrency: int = 16
                                 ) -> list[int]:
    """Create tickets through the Zendesk API (one requester per locale) → ticket ids, in order."""
    async with httpx.AsyncClient(base_url=url, auth=zendesk_auth(email), timeout=30) as http:
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int, locale: str, text: str) -> int:
            async with gate:
                reply = await http.post("/api/v2/tickets", json={"ticket": {
                    "subject": "Support request", "comment": {"body": text},
                    "requester": {"name": "Customer", "email": f"c-{locale.lower()}@example.com",
                                  "locale": locale}, "via_channel": "web_form"}})
                reply.raise_for_status()
                return reply.json()["ticket"]["id"]

        return list(await asyncio.gather(*(one(i, loc, text)
                                            for i, (_, loc, text) in enumerate(texts))))


async def create_freshdesk_tickets(url: str, texts: list[tuple[str, str, str]],
                                   key: str = FD_ADMIN_KEY, concurrency: int = 16) -> list[int]:
    async with httpx.AsyncClient(base_url=url, auth=(key, "X"), timeout=30) as http:
        known: set[str] = set()
        for _, locale, _ in texts:
            email = f"c-{locale.lower()}@example.com"
            if email not in known:
                known.add(email)
                reply = await http.post("/api/v2/contacts", json={
                    "email": email, "name": "Customer", "language": locale.split("-")[0]})
                if reply.status_code not in (201, 409):
                    reply.raise_for_status()
        gate = asyncio.Semaphore(concurrency)

        async def one(locale: str, text: str) -> int:
            async with gate:
                reply = await http.post("/api/v2/tickets", json={
                    "subject": "Support request", "description": text,
                    "email": f"c-{locale.lower()}@example.com"})
                reply.raise_for_status()
                return reply.json()["id"]

        return list(await asyncio.gather(*(one(loc, text) for _, loc, text in texts)))


async def sandbox_get(url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        reply = await http.get(path)
        reply.raise_for_status()
        return reply.json()


async def sandbox_put(url: str, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        reply = await http.put(path, json=body)
        reply.raise_for_status()
        return reply.json()


# --------------------------------------------------------------------------- deliveries

def zendesk_delivery(secret: str, ticket_id: int | str, *, invocation: str | None = None,
                     at: float | None = None, locale: str = "") -> tuple[bytes, dict[str, str]]:
    """A trigger delivery signed the way Zendesk signs (the sandbox's own signer)."""
    body = json.dumps({"event": "created", "ticket_id": str(ticket_id),
                       "requester_locale": locale, "via": "Web Form"}).encode()
    stamp = datetime.fromtimestamp(at if at is not None else time.time(),
                                   tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"Content-Type": "application/json; charset=utf-8",
               "X-Zendesk-Webhook-Signature": zendesk_signature(secret, stamp, body),
               "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    if invocation:
        headers["X-Zendesk-Webhook-Invocation-Id"] = invocation
    return body, headers


def freshdesk_delivery(secret: str, ticket_id: int | str) -> tuple[bytes, dict[str, str]]:
    """The CREATE rule's body with the tenant's token header."""
    body = json.dumps({"event": "created", "ticket_id": str(ticket_id), "source": "Portal",
                       "portal": "Help"}).encode()
    return body, {"Content-Type": "application/json", "X-CareRoute-Token": secret}


# --------------------------------------------------------------------------- tenants

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(type(value).__name__)


def write_tenants(path: Path, tenants: list[dict[str, Any]]) -> Path:
    lines = []
    for tenant in tenants:
        lines.append("[[tenants]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in tenant.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def zendesk_tenant_table(tenant_id: str, base_url: str, secret: str, *,
                         email: str = "agent@sandbox.test", **extra: Any) -> dict[str, Any]:
    return {"id": tenant_id, "vendor": "zendesk", "base_url": base_url, "webhook_secret": secret,
            "auth": {"kind": "api_token", "email": email, "token": ZD_TOKEN},
            "requests_per_minute": 600_000, **extra}


def freshdesk_tenant_table(tenant_id: str, base_url: str, secret: str, *,
                           key: str = FD_ADMIN_KEY, **extra: Any) -> dict[str, Any]:
    return {"id": tenant_id, "vendor": "freshdesk", "domain": "sandbox.freshdesk.com",
            "base_url": base_url, "webhook_secret": secret,
            "auth": {"kind": "api_key", "key": key}, "requests_per_minute": 600_000, **extra}


def tenant_config(table: dict[str, Any]) -> Any:
    from plugin.config import tenant_from_dict

    return tenant_from_dict(table)


# --------------------------------------------------------------------------- the service

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAST_SETTINGS = {"CAREROUTE_RETRY_BASE_SECONDS": "0.05", "CAREROUTE_RETRY_MAX_SECONDS": "0.5",
                 "CAREROUTE_MAX_ATTEMPTS": "30", "CAREROUTE_WORKER_CONCURRENCY": "8",
                 "CAREROUTE_SHUTDOWN_GRACE_SECONDS": "2", "CAREROUTE_LOG_FORMAT": "json",
                 "CAREROUTE_VENDOR_TIMEOUT_SECONDS": "5"}


class ServiceProcess:
    """`python -m plugin.cli serve` on a fixed port; stderr (the logs) appended to `log_path`."""

    def __init__(self, data_dir: Path, tenants_file: Path, *, port: int | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 cpus: set[int] | None = None) -> None:
        self.data_dir, self.tenants_file = data_dir, tenants_file
        self.cpus = cpus  # pin the process (and every thread it starts) to these cores
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **FAST_SETTINGS, **(env or {})}
        self.log_path = log_path or data_dir.parent / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "careroute.sqlite3"

    def start(self, timeout: float = 20.0) -> "ServiceProcess":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "plugin.cli", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--data-dir", str(self.data_dir),
                 "--tenants", str(self.tenants_file)],
                cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=log,
                preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("service did not become ready")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") \
            if self.log_path.exists() else ""


def job_counts(db_path: Path) -> dict[str, int]:
    """Jobs by state, read from the service's SQLite file with a separate read-only connection."""
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                            timeout=5)) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    counts = {"queued": 0, "leased": 0, "done": 0, "dead": 0}
    counts.update(dict(rows))
    return counts


def query(db_path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                            timeout=5)) as conn:
        return conn.execute(sql, args).fetchall()


async def wait_drained(db_path: Path, timeout: float = 30.0, expected_jobs: int | None = None
                       ) -> dict[str, int]:
    """Until nothing is queued or leased (and at least `expected_jobs` exist)."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = job_counts(db_path)
        total = sum(counts.values())
        if counts["queued"] == 0 and counts["leased"] == 0 and (
                expected_jobs is None or total >= expected_jobs):
            return counts
        await asyncio.sleep(0.1)
    raise AssertionError(f"queue did not drain: {counts}")


@dataclass
class InProcessService:
    """The real Service and HTTP app (real clients, real screening) in this event loop."""

    service: Any
    url: str
    http: httpx.AsyncClient
    runner: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(path, content=body, headers=headers)


@contextlib.asynccontextmanager
async def in_process_service(data_dir: Path, tenants: list[Any], *, run_worker: bool = True,
                             limits: Any = None, **settings: Any
                             ) -> AsyncIterator[InProcessService]:
    from plugin.config import ServiceSettings
    from plugin.handlers.http import create_app, start_server
    from plugin.service import Service
    from plugin.tenants import TenantDirectory

    options = {"retry_base_seconds": 0.05, "retry_max_seconds": 0.5, "max_attempts": 30,
               "worker_concurrency": 4, "shutdown_grace_seconds": 1.0,
               "vendor_timeout_seconds": 5.0, **settings}
    service = Service(ServiceSettings(data_dir=data_dir, **options), TenantDirectory(tenants))
    app = create_app(service, manage_service=False, limits=limits)
    runner, port = await start_server(app, "127.0.0.1", 0, shutdown_timeout=1.0)
    await service.start(run_worker=run_worker)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        try:
            yield InProcessService(service, url, http, runner)
        finally:
            await service.stop()
            await runner.cleanup()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "sandboxes":
        asyncio.run(_serve_spec(json.loads(sys.argv[2])))
    else:
        sys.exit("usage: integration_support.py sandboxes SPEC_JSON")
