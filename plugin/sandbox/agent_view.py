"""A small agent's-eye view of the sandbox tickets (for the demo): what an agent sees in the helpdesk.

    create_app(*, zendesk_url: str | None, freshdesk_url: str | None) -> aiohttp.web.Application

GET /            the page: every sandbox ticket, newest first, with subject, requester language,
                 tags, priority, group and its internal notes; refreshes itself every few seconds
GET /tickets     the same list as an HTML fragment (what the page's script fetches)
GET /api/tickets the same list as JSON

Tickets are read the way the vendors' own UIs would show them: Zendesk through the sandbox's
/_sandbox/tickets listing (Zendesk has no plain "list every ticket" call we need) plus
GET /api/v2/users/{id}; Freshdesk through GET /api/v2/tickets, …/conversations and
/api/v2/contacts/{id}, with the sandbox credentials. Notes are sanitised to the tags Zendesk and
Freshdesk render in notes (p, strong, em, ul, li, a, br, span), so what shows here is what an agent
sees; the hidden job-id marker stays hidden. This page is for the local sandboxes only.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

import httpx
from aiohttp import web

ZENDESK_AUTH = ("agent@sandbox.test/token", "sandbox-token")
FRESHDESK_AUTH = ("sandbox-key", "X")
FRESHDESK_PRIORITIES = {1: "low", 2: "medium", 3: "high", 4: "urgent"}
REFRESH_SECONDS = 3

ALLOWED_TAGS = frozenset({"p", "strong", "em", "ul", "li", "a", "br", "span"})
DROP_WITH_CONTENT = frozenset({"script", "style", "head", "title", "iframe", "object", "template"})
SAFE_SCHEMES = ("https://", "http://", "mailto:", "tel:")


class _Sanitiser(HTMLParser):
    """Keeps only the allowed tags; a span is kept hidden when its style hides it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping += 1
            return
        if self.skipping or tag not in ALLOWED_TAGS:
            return
        values = {k: (v or "") for k, v in attrs}
        if tag == "br":
            self.out.append("<br>")
            return
        if tag == "a":
            href = values.get("href", "").strip()
            if href.lower().startswith(SAFE_SCHEMES):
                self.out.append(f'<a href="{html.escape(href, quote=True)}" rel="noopener" '
                                'target="_blank">')
            else:
                self.out.append("<a>")
        elif tag == "span" and "display:none" in values.get("style", "").replace(" ", "").lower():
            self.out.append("<span hidden>")
        else:
            self.out.append(f"<{tag}>")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_WITH_CONTENT:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping or tag not in ALLOWED_TAGS or tag == "br" or tag not in self.open:
            return
        while self.open:  # close anything left open inside it
            name = self.open.pop()
            self.out.append(f"</{name}>")
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))


def sanitise_note(body: str) -> str:
    """Note HTML as the helpdesk renders it: allowed tags only, every text escaped."""
    parser = _Sanitiser()
    parser.feed(body)
    parser.close()
    return "".join(parser.out) + "".join(f"</{t}>" for t in reversed(parser.open))


@dataclass
class AgentTicket:
    vendor: str
    id: int
    subject: str
    created_at: str
    language: str
    tags: list[str] = field(default_factory=list)
    priority: str | None = None
    group: str | None = None
    notes: list[str] = field(default_factory=list)  # sanitised HTML


# ------------------------------------------------------------------ reading the sandboxes


@dataclass
class ReadCache:
    """What changes rarely is read once, so a page that refreshes every few seconds costs about
    one API call per refresh (the sandboxes enforce the vendors' rate limits, shared with the
    service)."""

    languages: dict[int, str] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    # Freshdesk ticket id → (updated_at, sanitised private notes)
    notes: dict[int, tuple[str, list[str]]] = field(default_factory=dict)


async def zendesk_tickets(http: httpx.AsyncClient, cache: ReadCache | None = None) -> list[AgentTicket]:
    cache = cache or ReadCache()
    listing = (await http.get("/_sandbox/tickets")).raise_for_status().json()
    if any(r.get("group_id") and int(r["group_id"]) not in cache.groups for r in listing):
        cache.groups.update(await _names(http, "/api/v2/groups", "groups"))
    found = []
    for raw in listing:
        requester = raw.get("requester_id")
        if requester not in cache.languages:
            response = await http.get(f"/api/v2/users/{requester}")
            cache.languages[requester] = (response.json().get("user", {}).get("locale", "")
                                          if response.status_code == 200 else "")
        found.append(AgentTicket(
            vendor="zendesk", id=int(raw["id"]), subject=raw.get("subject") or "",
            created_at=raw.get("created_at") or "",
            language=cache.languages[requester] or "unknown",
            tags=list(raw.get("tags") or []), priority=raw.get("priority"),
            group=_group(raw.get("group_id"), cache.groups),
            notes=[sanitise_note(c.get("html_body") or html.escape(c.get("body") or ""))
                   for c in raw.get("comments", []) if not c.get("public", True)]))
    return found


async def freshdesk_tickets(http: httpx.AsyncClient, cache: ReadCache | None = None) -> list[AgentTicket]:
    cache = cache or ReadCache()
    listing = (await http.get("/api/v2/tickets", params={"per_page": 100})).raise_for_status().json()
    if any(r.get("group_id") and int(r["group_id"]) not in cache.groups for r in listing):
        cache.groups.update(await _names(http, "/api/v2/groups", None))
    found = []
    for raw in listing:
        requester = raw.get("requester_id")
        if requester not in cache.languages:
            response = await http.get(f"/api/v2/contacts/{requester}")
            cache.languages[requester] = (response.json().get("language", "")
                                          if response.status_code == 200 else "")
        found.append(AgentTicket(
            vendor="freshdesk", id=int(raw["id"]), subject=raw.get("subject") or "",
            created_at=raw.get("created_at") or "",
            language=cache.languages[requester] or "unknown",
            tags=list(raw.get("tags") or []),
            priority=FRESHDESK_PRIORITIES.get(raw.get("priority")),
            group=_group(raw.get("group_id"), cache.groups),
            notes=await _freshdesk_notes(http, raw, cache)))
    return found


async def _freshdesk_notes(http: httpx.AsyncClient, raw: dict[str, Any],
                           cache: ReadCache) -> list[str]:
    ticket_id, updated = int(raw["id"]), str(raw.get("updated_at") or "")
    known = cache.notes.get(ticket_id)
    # updated_at has one-second steps: a note posted in the same second as our last read would
    # not change it, so a ticket touched in the last few seconds is read again.
    if known is not None and known[0] == updated and not _recent(updated):
        return known[1]
    response = await http.get(f"/api/v2/tickets/{ticket_id}/conversations")
    response.raise_for_status()
    notes = [sanitise_note(c.get("body") or "") for c in response.json()
             if isinstance(c, dict) and c.get("private")]
    cache.notes[ticket_id] = (updated, notes)
    return notes


def _recent(stamp: str, seconds: float = 10.0) -> bool:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True
    return (datetime.now(timezone.utc) - moment).total_seconds() < seconds


async def _names(http: httpx.AsyncClient, path: str, key: str | None) -> dict[int, str]:
    response = await http.get(path)
    if response.status_code != 200:
        return {}
    items = response.json()
    items = items.get(key, []) if key else items
    return {int(g["id"]): str(g.get("name", "")) for g in items}


def _group(group_id: Any, names: dict[int, str]) -> str | None:
    if group_id is None:
        return None
    return names.get(int(group_id)) or str(group_id)


# ------------------------------------------------------------------ the page


def render_tickets(tickets: list[AgentTicket], problems: list[str]) -> str:
    parts = [f'<p class="problem" role="alert">{html.escape(p)}</p>' for p in problems]
    if not tickets:
        parts.append('<p class="empty">No tickets yet.</p>')
    for ticket in tickets:
        vendor = "Zendesk" if ticket.vendor == "zendesk" else "Freshdesk"
        tags = "".join(f'<li class="tag{" flag" if t.startswith("careroute_") else ""}">'
                       f"{html.escape(t)}</li>" for t in ticket.tags) or "<li>none</li>"
        notes = "".join(f'<div class="note"><h4>Internal note</h4>{n}</div>'
                        for n in ticket.notes)
        parts.append(
            f'<article class="ticket" data-vendor="{ticket.vendor}" data-id="{ticket.id}">'
            f"<h3><span class=\"vendor\">{vendor} #{ticket.id}</span> {html.escape(ticket.subject)}</h3>"
            '<dl>'
            f"<dt>Requester language</dt><dd>{html.escape(ticket.language)}</dd>"
            f"<dt>Priority</dt><dd class=\"priority\">{html.escape(ticket.priority or 'none')}</dd>"
            f"<dt>Group</dt><dd class=\"group\">{html.escape(ticket.group or 'none')}</dd>"
            f"<dt>Created</dt><dd>{html.escape(ticket.created_at)}</dd>"
            "</dl>"
            f'<ul class="tags" aria-label="Tags">{tags}</ul>{notes}</article>')
    return "\n".join(parts)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CareRoute sandbox: agent view</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
header{background:#1f3a5f;color:#fff;padding:12px 24px}
header h1{margin:0;font-size:1.3rem} header p{margin:4px 0 0;font-size:.9rem}
main{max-width:960px;margin:0 auto;padding:16px}
.ticket{background:#fff;border:1px solid #c9ced6;border-radius:6px;padding:12px 16px;margin:0 0 16px}
.ticket h3{margin:0 0 8px;font-size:1.1rem} .vendor{color:#4a5566;font-weight:normal}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 8px}
dt{color:#4a5566} dd{margin:0}
.tags{list-style:none;padding:0;margin:0 0 8px;display:flex;flex-wrap:wrap;gap:6px}
.tag{background:#e8ebf0;border-radius:4px;padding:0 8px;font-size:.9rem}
.tag.flag{background:#fde2cf;color:#6b2600;font-weight:600}
.note{background:#fff8dc;border-left:4px solid #c99700;padding:8px 12px;margin-top:8px}
.note h4{margin:0 0 4px;font-size:.85rem;color:#5c4600;text-transform:uppercase}
.note a{color:#0b4f9c} .problem{color:#8a1c1c;font-weight:600}
</style></head><body>
<header><h1>Agent view (sandbox)</h1>
<p>What agents see in Zendesk and Freshdesk: tags, priority, group and CareRoute's internal notes.
Newest first; refreshes every %(refresh)s seconds.</p></header>
<main><div id="tickets" aria-live="polite">%(tickets)s</div></main>
<script>
setInterval(async () => {
  try {
    const reply = await fetch("tickets", {cache: "no-store"});
    if (!reply.ok) return;
    const body = await reply.text();
    const list = document.getElementById("tickets");
    if (list.dataset.last !== body) { list.innerHTML = body; list.dataset.last = body; }
  } catch (e) { /* the sandbox may be restarting: try again next tick */ }
}, %(refresh_ms)s);
</script></body></html>
"""


class _Sources:
    """The sandboxes' HTTP APIs, read at most once per MIN_READ_SECONDS however many pages poll."""

    MIN_READ_SECONDS = 1.5

    def __init__(self, zendesk_url: str | None, freshdesk_url: str | None) -> None:
        self.zendesk = (httpx.AsyncClient(base_url=zendesk_url, auth=ZENDESK_AUTH, timeout=5)
                        if zendesk_url else None)
        self.freshdesk = (httpx.AsyncClient(base_url=freshdesk_url, auth=FRESHDESK_AUTH, timeout=5)
                          if freshdesk_url else None)
        self.caches = {"Zendesk": ReadCache(), "Freshdesk": ReadCache()}
        self._lock = asyncio.Lock()
        self._last: tuple[float, list[AgentTicket], list[str]] | None = None

    async def tickets(self) -> tuple[list[AgentTicket], list[str]]:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            if self._last is not None and now - self._last[0] < self.MIN_READ_SECONDS:
                return self._last[1], self._last[2]
            tickets, problems = await self._read()
            self._last = (now, tickets, problems)
            return tickets, problems

    async def _read(self) -> tuple[list[AgentTicket], list[str]]:
        jobs = []
        if self.zendesk is not None:
            jobs.append(("Zendesk", zendesk_tickets(self.zendesk, self.caches["Zendesk"])))
        if self.freshdesk is not None:
            jobs.append(("Freshdesk", freshdesk_tickets(self.freshdesk, self.caches["Freshdesk"])))
        results = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
        tickets: list[AgentTicket] = []
        problems: list[str] = []
        for (name, _), result in zip(jobs, results):
            if isinstance(result, BaseException):
                problems.append(f"{name} sandbox is not answering ({type(result).__name__}).")
            else:
                tickets.extend(result)
        tickets.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return tickets, problems

    async def aclose(self) -> None:
        for client in (self.zendesk, self.freshdesk):
            if client is not None:
                await client.aclose()


SOURCES: web.AppKey[_Sources] = web.AppKey("agent_view_sources", _Sources)


async def page(request: web.Request) -> web.Response:
    tickets, problems = await request.app[SOURCES].tickets()
    body = PAGE % {"tickets": render_tickets(tickets, problems), "refresh": REFRESH_SECONDS,
                   "refresh_ms": REFRESH_SECONDS * 1000}
    return web.Response(text=body, content_type="text/html", headers=_NO_CACHE)


async def fragment(request: web.Request) -> web.Response:
    tickets, problems = await request.app[SOURCES].tickets()
    return web.Response(text=render_tickets(tickets, problems), content_type="text/html",
                        headers=_NO_CACHE)


async def as_json(request: web.Request) -> web.Response:
    tickets, problems = await request.app[SOURCES].tickets()
    return web.json_response({"tickets": [asdict(t) for t in tickets], "problems": problems})


_NO_CACHE = {"Cache-Control": "no-store",
             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                        "script-src 'unsafe-inline'; connect-src 'self'"}


def create_app(*, zendesk_url: str | None, freshdesk_url: str | None) -> web.Application:
    app = web.Application()
    sources = _Sources(zendesk_url, freshdesk_url)
    app[SOURCES] = sources

    async def close_clients(_: web.Application) -> None:
        await sources.aclose()

    app.on_cleanup.append(close_clients)
    app.router.add_get("/", page)
    app.router.add_get("/tickets", fragment)
    app.router.add_get("/api/tickets", as_json)
    return app
