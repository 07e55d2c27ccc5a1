"""Freshdesk API v2 client: read a ticket, write a plan exactly once.

Freshdesk needs two writes for one plan (`PUT /tickets/{id}` replaces the whole tag array, and the
note is its own `POST`), so each is a journalled step:

- "ticket": a fresh read just before the PUT (a change since `fetch` → `replan`), the union of
  the ticket's tags and ours in one PUT with priority / group / assignee, then a re-read: if a
  concurrent writer replaced the tags with a stale list, merge and PUT again (bounded).
- "note": skipped if journalled; otherwise the ticket's conversations are read and a note that
  already carries this job's marker counts as written (the journal may be lost in a crash).
- "auto_reply": the same for the public reply.

Canned responses cannot be applied through the API: the plan's note already carries the reply text.
Rate limits come from `X-Ratelimit-*` headers; a 429 blocks the tenant's budget for `Retry-After`
and raises at once (the worker decides when to try again). Error bodies are never echoed.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

from plugin import __version__
from plugin.http_transport import AiohttpTransport, vendor_http_client
from plugin.config import TenantConfig
from plugin.errors import (
    ConfigError,
    ConflictError,
    PermanentVendorError,
    RateLimitedError,
    TicketClosedError,
    TransientVendorError,
    VendorError,
)
from plugin.model import (
    Plan,
    RateLimitInfo,
    Ticket,
    TicketRef,
    find_note_markers,
    note_marker,
    priority_rank,
)
from plugin.vendors import ClientContext, Replan, StepJournal

PRIORITY_NAMES = {1: "low", 2: "normal", 3: "high", 4: "urgent"}
PRIORITY_CODES = {name: code for code, name in PRIORITY_NAMES.items()}
STATUS_NAMES = {2: "open", 3: "pending", 4: "solved", 5: "closed"}
PER_PAGE = 100
MAX_CONVERSATION_PAGES = 20
MAX_TAG_MERGES = 3
_SAFE_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")

TICKET = "/api/v2/tickets/{id}"
CONVERSATIONS = "/api/v2/tickets/{id}/conversations"
NOTES = "/api/v2/tickets/{id}/notes"
REPLY = "/api/v2/tickets/{id}/reply"
CONTACT = "/api/v2/contacts/{id}"
GROUPS = "/api/v2/groups"
GROUP = "/api/v2/groups/{id}"


def check_base_url(tenant: TenantConfig) -> str:
    """Only https://<name>.freshdesk.com, unless the tenant names a base_url (sandbox, tests)."""
    if tenant.base_url:
        return tenant.base_url.rstrip("/")
    url = tenant.api_base_url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https" or not host.endswith(".freshdesk.com") or parts.port:
        raise ConfigError(f"tenant {tenant.id!r}: domain: must be a *.freshdesk.com host")
    return url


def rate_limit_info(headers: Mapping[str, str], status: int) -> RateLimitInfo:
    def number(name: str) -> float | None:
        value = headers.get(name)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    total, remaining = number("x-ratelimit-total"), number("x-ratelimit-remaining")
    retry_after = number("retry-after") if status == 429 else None
    if status == 429 and retry_after is None:
        retry_after = 60.0  # Freshdesk's window is a minute
    return RateLimitInfo(
        limit=int(total) if total is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        retry_after=retry_after,
    )


def _safe_token(value: Any) -> str | None:
    """A field name or error code from an error body, only if it is a plain identifier."""
    if isinstance(value, str) and 0 < len(value) <= 40 and set(value.lower()) <= _SAFE_TOKEN:
        return value.lower()
    return None


def error_for(status: int, body: Any, template: str) -> VendorError:
    """Map an error answer to the exception tree (reasons are ours; bodies are not echoed)."""
    if status >= 500:
        return TransientVendorError(f"freshdesk server error {status}", status=status)
    if status == 409:
        return ConflictError("freshdesk reported a conflicting state", status=status)
    if status == 401:
        return PermanentVendorError("freshdesk rejected the API key", status=status)
    if status == 403:
        return PermanentVendorError("freshdesk denied access for this API key", status=status)
    if status == 404 and template in (TICKET, CONVERSATIONS, NOTES, REPLY):
        return TicketClosedError("ticket not found or deleted", status=status)
    if status == 400:
        details = []
        errors = body.get("errors") if isinstance(body, dict) else None
        for item in errors if isinstance(errors, list) else []:
            if isinstance(item, dict):
                field, code = _safe_token(item.get("field")), _safe_token(item.get("code"))
                details.append(f"{field or '-'}:{code or '-'}")
        suffix = f" ({', '.join(details[:5])})" if details else ""
        return PermanentVendorError(f"freshdesk rejected the request{suffix}", status=status)
    return PermanentVendorError(f"freshdesk refused the request ({status})", status=status)


def _union(first: tuple[str, ...] | list[str], second: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def _with_marker(html: str, marker: str | None) -> str:
    """Make sure a body we post carries the job marker (hidden), so a retry can find it."""
    if not marker or note_marker(marker) in html:
        return html
    return f'{html}<span style="display:none">{note_marker(marker)}</span>'


class FreshdeskClient:
    def __init__(self, tenant: TenantConfig, context: ClientContext, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if tenant.vendor != "freshdesk" or tenant.auth.kind != "api_key":
            raise ConfigError(f"tenant {tenant.id!r}: auth: freshdesk needs an api_key")
        self.tenant = tenant
        self.context = context
        self._http = vendor_http_client(
            base_url=check_base_url(tenant),
            auth=(tenant.auth.key.get_secret_value(), "X"),
            timeout=context.timeout_seconds,
            headers={"Accept": "application/json", "User-Agent": f"careroute/{__version__}"},
            follow_redirects=False,
            transport=transport or AiohttpTransport(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ transport

    async def call(self, method: str, template: str, *, params: Mapping[str, Any] | None = None,
                   json: Mapping[str, Any] | None = None, **path_args: Any) -> Any:
        """One API request → the decoded JSON body; errors mapped to plugin.errors."""
        budget = self.context.budget
        await budget.acquire()
        path = template.format(**path_args)
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            self._report(method, template, 0, started)
            raise TransientVendorError("freshdesk request timed out") from None
        except httpx.TransportError:
            self._report(method, template, 0, started)
            raise TransientVendorError("freshdesk connection failed") from None
        self._report(method, template, response.status_code, started)
        status = response.status_code
        info = rate_limit_info(response.headers, status)
        budget.observe(info)
        if status == 429:
            raise RateLimitedError("freshdesk rate limit", retry_after=info.retry_after or 60.0)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if status >= 400:
            raise error_for(status, body, template)
        if status >= 300:
            raise PermanentVendorError(f"freshdesk answered {status}", status=status)
        return body

    def _report(self, method: str, template: str, status: int, started: float) -> None:
        if self.context.on_call is not None:
            self.context.on_call(method, template, status, time.perf_counter() - started)

    # ---------------------------------------------------------------------- reads

    async def _ticket_json(self, ticket_id: str) -> dict[str, Any]:
        body = await self.call("GET", TICKET, id=ticket_id)
        if not isinstance(body, dict):
            raise TransientVendorError("freshdesk returned an unreadable ticket")
        if body.get("deleted"):
            raise TicketClosedError("ticket deleted")
        if body.get("spam"):
            raise TicketClosedError("ticket marked as spam")
        return body

    async def conversations(self, ticket_id: str) -> list[dict[str, Any]]:
        """All conversations of a ticket, oldest first (paginated)."""
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_CONVERSATION_PAGES + 1):
            body = await self.call("GET", CONVERSATIONS, id=ticket_id,
                                   params={"page": page, "per_page": PER_PAGE})
            batch = [c for c in body if isinstance(c, dict)] if isinstance(body, list) else []
            items.extend(batch)
            if len(batch) < PER_PAGE:
                break
        return items

    async def _contact(self, requester_id: Any) -> dict[str, Any]:
        if not isinstance(requester_id, int):
            return {}
        try:
            body = await self.call("GET", CONTACT, id=requester_id)
        except PermanentVendorError:
            return {}  # deleted contact or no permission: language unknown, not fatal
        return body if isinstance(body, dict) else {}

    async def groups(self) -> dict[int, str]:
        """Group id → name: lets the CLI check a tenant's trained_group_id before it is used."""
        found: dict[int, str] = {}
        for page in range(1, MAX_CONVERSATION_PAGES + 1):
            body = await self.call("GET", GROUPS, params={"page": page, "per_page": PER_PAGE})
            batch = groups_from_json(body)
            found.update(batch)
            if len(batch) < PER_PAGE:
                break
        return found

    async def group_members(self, group_id: int) -> tuple[int, ...]:
        """Agent ids in a group (the wellbeing rota's candidates): the group's `agent_ids`."""
        body = await self.call("GET", GROUP, id=int(group_id))
        agents = body.get("agent_ids") if isinstance(body, dict) else None
        if not isinstance(agents, list):
            raise TransientVendorError("freshdesk group unreadable")
        return tuple(dict.fromkeys(a for a in agents if isinstance(a, int)))

    async def fetch(self, ref: TicketRef) -> Ticket:
        data = await self._ticket_json(ref.ticket_id)
        conversations = await self.conversations(ref.ticket_id)
        contact = await self._contact(data.get("requester_id"))
        return ticket_from_json(self.tenant.id, data, conversations, contact, ref)

    # --------------------------------------------------------------------- writes

    async def apply(self, ref: TicketRef, ticket: Ticket, plan: Plan, *, replan: Replan,
                    journal: StepJournal) -> tuple[str, ...]:
        if plan.is_empty:
            return ()
        written: list[str] = []
        if await journal.get("ticket") is None:
            plan, actions = await self._write_ticket(ref.ticket_id, ticket, plan, replan)
            written.extend(actions)
            await journal.put("ticket", {"actions": list(actions)})
        if plan.note_html:
            if await self._post_once(ref.ticket_id, NOTES, "note", plan.note_html, plan.marker,
                                     journal, private=True):
                written.append("note")
        if plan.auto_reply_html:
            if await self._post_once(ref.ticket_id, REPLY, "auto_reply", plan.auto_reply_html,
                                     plan.marker, journal, private=False):
                written.append("auto_reply")
        return tuple(written)

    async def _write_ticket(self, ticket_id: str, ticket: Ticket, plan: Plan,
                            replan: Replan) -> tuple[Plan, tuple[str, ...]]:
        fresh_json = await self._ticket_json(ticket_id)
        if fresh_json.get("updated_at") != ticket.updated_stamp:
            # Changed since we read it (an agent, a rule): plan again on what is there now.
            ticket = refreshed(ticket, fresh_json)
            plan = replan(ticket)
        body, actions = ticket_update(fresh_json, plan)
        if not body:
            return plan, ()
        await self.call("PUT", TICKET, id=ticket_id, json=body)
        wanted = set(plan.add_tags)
        for _ in range(MAX_TAG_MERGES):
            after = await self._ticket_json(ticket_id)
            current = [t for t in after.get("tags") or [] if isinstance(t, str)]
            if wanted <= set(current):
                return plan, actions
            # A concurrent writer replaced the tags with a list read before ours: merge again.
            await self.call("PUT", TICKET, id=ticket_id,
                            json={"tags": _union(current, plan.add_tags)})
        raise ConflictError("ticket tags kept changing during the update")

    async def _post_once(self, ticket_id: str, template: str, step: str, html: str,
                         marker: str | None, journal: StepJournal, *, private: bool) -> bool:
        """POST a note or reply unless the journal or the ticket says it is already there."""
        if await journal.get(step) is not None:
            return False
        if marker:
            for conversation in await self.conversations(ticket_id):
                if bool(conversation.get("private")) == private and marker in _markers(conversation):
                    await journal.put(step, {"found": conversation.get("id")})
                    return False
        body: dict[str, Any] = {"body": _with_marker(html, marker)}
        if private:
            body["private"] = True
        created = await self.call("POST", template, id=ticket_id, json=body)
        await journal.put(step, {"id": created.get("id") if isinstance(created, dict) else None})
        return True


def _markers(conversation: Mapping[str, Any]) -> frozenset[str]:
    found: frozenset[str] = frozenset()
    for key in ("body", "body_text"):
        value = conversation.get(key)
        if isinstance(value, str):
            found |= find_note_markers(value)
    return found


def _priority(value: Any) -> Any:
    return PRIORITY_NAMES.get(value) if isinstance(value, int) else None


def ticket_update(current: Mapping[str, Any], plan: Plan) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The PUT body for a plan against the ticket as it is now; empty when nothing changes."""
    body: dict[str, Any] = {}
    actions: list[str] = []
    tags = [t for t in current.get("tags") or [] if isinstance(t, str)]
    merged = _union(tags, plan.add_tags)
    if merged != tags:
        body["tags"] = merged
        actions.append("tags")
    if plan.priority and priority_rank(plan.priority) > priority_rank(_priority(current.get("priority"))):
        body["priority"] = PRIORITY_CODES[plan.priority]  # never lowered
        actions.append("priority")
    if plan.group_id is not None and plan.group_id != current.get("group_id"):
        body["group_id"] = plan.group_id
        actions.append("group")
    if plan.assignee_id is not None:
        if plan.assignee_id != current.get("responder_id"):
            body["responder_id"] = plan.assignee_id
            actions.append("assign")
    elif plan.unassign and current.get("responder_id") is not None:
        body["responder_id"] = None
        actions.append("unassign")
    return body, tuple(actions)


def refreshed(ticket: Ticket, data: Mapping[str, Any]) -> Ticket:
    """The same ticket (text, requester, markers kept) with the writable fields read again."""
    return replace(
        ticket,
        tags=tuple(t for t in data.get("tags") or [] if isinstance(t, str)),
        priority=_priority(data.get("priority")),
        group_id=data.get("group_id") if isinstance(data.get("group_id"), int) else None,
        assignee_id=data.get("responder_id") if isinstance(data.get("responder_id"), int) else None,
        status=STATUS_NAMES.get(data.get("status"), "open"),  # type: ignore[arg-type]
        updated_stamp=data.get("updated_at"),
    )


def groups_from_json(body: Any) -> dict[int, str]:
    items = body if isinstance(body, list) else []
    return {g["id"]: str(g.get("name") or "") for g in items
            if isinstance(g, dict) and isinstance(g.get("id"), int)}


def _comment(conversations: list[dict[str, Any]], ref: TicketRef) -> dict[str, Any] | None:
    if ref.comment_id:
        for conversation in conversations:
            if str(conversation.get("id")) == ref.comment_id:
                return conversation
        return None
    incoming = [c for c in conversations if c.get("incoming") and not c.get("private")]
    return max(incoming, key=lambda c: (str(c.get("created_at") or ""), c.get("id") or 0),
               default=None)


def ticket_from_json(tenant_id: str, data: Mapping[str, Any],
                     conversations: list[dict[str, Any]], contact: Mapping[str, Any],
                     ref: TicketRef) -> Ticket:
    """Build a Ticket from `GET /tickets/{id}`, its conversations and the requester contact."""
    markers: frozenset[str] = frozenset()
    for conversation in conversations:
        if conversation.get("private"):
            markers |= _markers(conversation)
    text = data.get("description_text") or ""
    comment_id = None
    if ref.event == "comment":
        comment = _comment(conversations, ref)
        text = (comment or {}).get("body_text") or ""
        comment_id = str(comment["id"]) if comment and comment.get("id") is not None else None
    requester = data.get("requester_id")
    language = contact.get("language")
    time_zone = contact.get("time_zone")
    base = Ticket(
        vendor="freshdesk", tenant_id=tenant_id, ticket_id=str(data.get("id", ref.ticket_id)),
        text=text if isinstance(text, str) else "",
        subject=data.get("subject") or "",
        requester_id=str(requester) if requester is not None else None,
        requester_locale=language if isinstance(language, str) and language else None,
        requester_time_zone=time_zone if isinstance(time_zone, str) and time_zone else None,
        note_markers=markers,
        comment_id=comment_id,
    )
    return refreshed(base, data)


def make_client(tenant: TenantConfig, context: ClientContext) -> FreshdeskClient:
    return FreshdeskClient(tenant, context)
