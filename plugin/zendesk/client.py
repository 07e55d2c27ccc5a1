"""Zendesk API client: reads a ticket, writes a plan in one safe update.

Every request waits for the tenant's RateBudget, reports the rate-limit headers back to it, and
maps failures onto plugin.errors. A 429 blocks the budget for Retry-After and raises
RateLimitedError: the worker reschedules, this client never sleeps through it.

Writes (zendesk.md §2.1, §2.3): one `PUT /api/v2/tickets/{id}` carries the private note, the
tags (existing ∪ new — a ticket PUT replaces tags), priority, group, assignee, audit metadata and
`safe_update` + `updated_stamp`. A 409 means the ticket changed: re-read, re-plan, retry
(bounded). An optional public auto-reply goes in a second PUT (one comment per update), journalled
so a retried job never sends it twice.
"""

from __future__ import annotations

import time
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

from ..config import TenantConfig
from ..errors import (
    ConflictError,
    PermanentVendorError,
    TransientVendorError,
)
from ..model import (
    NOTE_MARKER_PREFIX,
    Plan,
    RateLimitInfo,
    Ticket,
    TicketRef,
    find_note_markers,
    note_marker,
)
from ..http_transport import AiohttpTransport, vendor_http_client
from ..resources.country import country_from_locale
from ..vendors import ClientContext, Replan, StepJournal
from . import responses
from .auth import credentials_for

MAX_CONFLICT_RETRIES = 3
COMMENT_PAGE_SIZE = 100
MAX_COMMENT_PAGES = 20
USER_AGENT = "CareRoute (+https://careroute.example)"

TICKET = "/api/v2/tickets/{ticket_id}"
COMMENTS = "/api/v2/tickets/{ticket_id}/comments"
USER = "/api/v2/users/{user_id}"
MACRO_APPLY = "/api/v2/tickets/{ticket_id}/macros/{macro_id}/apply"
GROUP_MEMBERSHIPS = "/api/v2/groups/{group_id}/memberships"
MEMBERSHIP_PAGE_SIZE = 100  # a trained group larger than this is served from its first page
OAUTH_TOKENS = "/oauth/tokens"

# Ticket fields a macro result may change that CareRoute carries into its update.
_MACRO_FIELDS = ("priority", "group_id", "assignee_id", "status", "type")


class ZendeskClient:
    def __init__(self, tenant: TenantConfig, context: ClientContext, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.tenant = tenant
        self.context = context
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if tenant.marketplace is not None:
            headers["X-Zendesk-Marketplace-Name"] = tenant.marketplace.name
            headers["X-Zendesk-Marketplace-Organization-Id"] = tenant.marketplace.organization_id
            headers["X-Zendesk-Marketplace-App-Id"] = tenant.marketplace.app_id
        self._http = vendor_http_client(base_url=tenant.api_base_url, headers=headers,
                                        timeout=context.timeout_seconds,
                                        transport=transport or AiohttpTransport(),
                                        follow_redirects=False)
        self._credentials = credentials_for(tenant, context.token_store, self._request_tokens)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ transport

    async def _send(self, method: str, template: str, *, path: Mapping[str, Any] | None = None,
                    json: Any = None, params: Mapping[str, Any] | None = None,
                    authenticated: bool = True, url: str | None = None) -> httpx.Response:
        """One request: budget, auth, metrics, rate-limit bookkeeping, error mapping."""
        target = url or template.format(**(path or {}))
        retried_auth = False
        while True:
            headers: dict[str, str] = {}
            if authenticated:
                headers["Authorization"] = await self._credentials.header()
            await self.context.budget.acquire()
            started = time.monotonic()
            try:
                response = await self._http.request(method, target, json=json, params=params,
                                                    headers=headers)
            except httpx.TimeoutException:
                self._record(method, template, 0, started)
                raise TransientVendorError("zendesk request timed out") from None
            except httpx.TransportError:
                self._record(method, template, 0, started)
                raise TransientVendorError("zendesk connection failed") from None
            self._record(method, template, response.status_code, started)
            info = responses.rate_limit_info(response.headers, now=time.time())
            if response.status_code < 400:
                if info.limit is not None or info.remaining is not None:
                    self.context.budget.observe(info)
                return response
            body = _json_or_none(response)
            error = responses.error_for(response.status_code, body, response.headers,
                                        now=time.time())
            if response.status_code == 429:
                self.context.budget.observe(RateLimitInfo(
                    limit=info.limit, remaining=info.remaining, reset_seconds=info.reset_seconds,
                    retry_after=error.retry_after))  # type: ignore[attr-defined]
                raise error
            if (response.status_code == 401 and authenticated and not retried_auth
                    and self._credentials.can_refresh
                    and (responses.error_code(body) == "invalid_token"
                         or "invalid_token" in response.headers.get("www-authenticate", ""))):
                retried_auth = True
                if await self._credentials.refresh_after_rejection(headers["Authorization"]):
                    continue
            raise error

    def _record(self, method: str, template: str, status: int, started: float) -> None:
        if self.context.on_call is not None:
            self.context.on_call(method, template, status, time.monotonic() - started)

    async def _request_tokens(self, grant: dict[str, str]) -> tuple[str, str | None, float | None]:
        try:
            response = await self._send("POST", OAUTH_TOKENS, json=grant, authenticated=False)
        except PermanentVendorError as exc:
            raise PermanentVendorError("zendesk refused the token refresh", status=exc.status) from None
        return responses.parse_oauth_tokens(_json_or_none(response))

    async def request_json(self, method: str, template: str, *,
                           path: Mapping[str, Any] | None = None, json: Any = None,
                           params: Mapping[str, Any] | None = None) -> Any:
        """One API call with this client's auth, budget and error mapping → decoded JSON body."""
        response = await self._send(method, template, path=path, json=json, params=params)
        return _json_or_none(response)

    # ------------------------------------------------------------ reads

    async def _comments(self, ticket_id: str) -> list[responses.CommentRecord]:
        comments: list[responses.CommentRecord] = []
        next_url: str | None = None
        for _ in range(MAX_COMMENT_PAGES):
            if next_url is None:
                response = await self._send("GET", COMMENTS, path={"ticket_id": ticket_id},
                                            params={"page[size]": COMMENT_PAGE_SIZE})
            else:
                # Follow the cursor on our own base URL only: credentials never go to another host.
                parts = urlsplit(next_url)
                expected = COMMENTS.format(ticket_id=ticket_id)
                if parts.path.removesuffix(".json") != expected:
                    raise TransientVendorError("zendesk comments cursor unreadable")
                response = await self._send("GET", COMMENTS,
                                            url=f"{expected}?{parts.query}" if parts.query else expected)
            page, next_url = responses.parse_comments(_json_or_none(response))
            comments.extend(page)
            if next_url is None:
                break
        return comments

    async def group_members(self, group_id: int) -> tuple[int, ...]:
        """Agent ids in a group (the wellbeing rota's candidates), in membership order."""
        response = await self._send("GET", GROUP_MEMBERSHIPS, path={"group_id": int(group_id)},
                                    params={"page[size]": MEMBERSHIP_PAGE_SIZE})
        body = _json_or_none(response)
        items = body.get("group_memberships") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise TransientVendorError("zendesk group memberships unreadable")
        return tuple(dict.fromkeys(int(m["user_id"]) for m in items
                                   if isinstance(m, dict) and isinstance(m.get("user_id"), int)))

    async def _requester(self, requester_id: str | None) -> dict[str, Any]:
        if not requester_id:
            return {}
        try:
            response = await self._send("GET", USER, path={"user_id": requester_id})
        except PermanentVendorError:
            return {}  # a deleted or hidden requester: screen without locale
        return responses.parse_user(_json_or_none(response))

    async def fetch(self, ref: TicketRef) -> Ticket:
        response = await self._send("GET", TICKET, path={"ticket_id": ref.ticket_id})
        fields = responses.parse_ticket(_json_or_none(response))
        if self._untouched_by_us(ref, fields):
            # A new ticket without any CareRoute tag has no CareRoute note either (our note and
            # our tags go in one update), and its text is the description: the comments read
            # would add nothing. One call fewer per new ticket.
            comments: list[responses.CommentRecord] = []
        else:
            comments = await self._comments(ref.ticket_id)
        hinted_locale = ref.hints.get("requester_locale")
        if country_from_locale(hinted_locale):
            # The webhook already said the requester's locale with its region: the user record
            # would add only a time zone, which country resolution no longer needs.
            requester: dict[str, Any] = {"locale": hinted_locale}
        else:
            requester = await self._requester(fields["requester_id"])
        markers: set[str] = set()
        for comment in comments:
            if not comment.public:
                markers |= find_note_markers(comment.html or comment.plain_text)
        text, comment_id = _text_to_screen(ref, fields, comments)
        return Ticket(
            vendor="zendesk", tenant_id=self.tenant.id, ticket_id=fields["id"], text=text,
            subject=fields["subject"], tags=fields["tags"], priority=fields["priority"],
            group_id=fields["group_id"], assignee_id=fields["assignee_id"],
            status=fields["status"], updated_stamp=fields["updated_at"],
            requester_id=fields["requester_id"],
            requester_locale=requester.get("locale") or ref.hints.get("requester_locale"),
            requester_time_zone=requester.get("time_zone"),
            note_markers=frozenset(markers), comment_id=comment_id)

    def _untouched_by_us(self, ref: TicketRef, fields: Mapping[str, Any]) -> bool:
        ours = {self.tenant.marker_tag, *self.tenant.tier_tags}
        return (ref.event == "created" and bool(fields["description"])
                and not ours.intersection(t.lower() for t in fields["tags"]))

    # ------------------------------------------------------------ writes

    async def apply(self, ref: TicketRef, ticket: Ticket, plan: Plan, *, replan: Replan,
                    journal: StepJournal) -> tuple[str, ...]:
        done = await journal.get("update")
        if done is not None:
            written = tuple(done.get("actions", ()))
        else:
            ticket, plan, written = await self._update_with_retries(ref, ticket, plan, replan)
            if not written and plan.is_empty:
                return ()
            await journal.put("update", {"actions": list(written)})
        if plan.auto_reply_html:
            if await journal.get("auto_reply") is None:
                await self._send("PUT", TICKET, path={"ticket_id": ref.ticket_id}, json={
                    "ticket": {"comment": {"html_body": plan.auto_reply_html, "public": True}}})
                await journal.put("auto_reply", {"sent": True})
            if "auto_reply" not in written:
                written = (*written, "auto_reply")
        return written

    async def _update_with_retries(self, ref: TicketRef, ticket: Ticket, plan: Plan,
                                   replan: Replan) -> tuple[Ticket, Plan, tuple[str, ...]]:
        for attempt in range(MAX_CONFLICT_RETRIES + 1):
            if plan.is_empty:
                return ticket, plan, ()
            if plan.marker and _marker_id(plan.marker) in ticket.note_markers:
                # Our note is there, so the single update that carried it already happened.
                return ticket, plan, tuple(a for a in plan.actions() if a != "auto_reply")
            body, actions = await self._update_body(ref, ticket, plan)
            if not body["ticket"]:
                return ticket, plan, ()
            try:
                await self._send("PUT", TICKET, path={"ticket_id": ref.ticket_id}, json=body)
                return ticket, plan, actions
            except ConflictError:
                if attempt == MAX_CONFLICT_RETRIES:
                    raise
                ticket = await self.fetch(ref)
                plan = replan(ticket)
        raise ConflictError("ticket kept changing")

    async def _update_body(self, ref: TicketRef, ticket: Ticket,
                           plan: Plan) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The single update for `plan` against `ticket` as last read, and its action names."""
        update: dict[str, Any] = {}
        actions = [a for a in plan.actions() if a != "auto_reply"]
        note_html = plan.note_html
        tags = list(dict.fromkeys((*ticket.tags, *plan.add_tags)))
        if plan.apply_macro and plan.macro_id is not None:
            response = await self._send("GET", MACRO_APPLY, path={
                "ticket_id": ref.ticket_id, "macro_id": plan.macro_id})
            result = responses.parse_macro_result(_json_or_none(response))
            note_html = _merge_macro(update, result, ticket, plan, note_html)
            macro_tags = result.get("tags")
            if isinstance(macro_tags, list):  # union: a macro's set_tags never drops a tag
                tags = list(dict.fromkeys((*tags, *(str(t) for t in macro_tags))))
            update["macro_id"] = plan.macro_id
        if note_html:
            marker_id = _marker_id(plan.marker) if plan.marker else None
            if marker_id and marker_id not in find_note_markers(note_html):
                note_html += f'<p class="careroute-marker">{note_marker(marker_id)}</p>'
            update["comment"] = {"html_body": note_html, "public": False}
        if set(tags) != set(ticket.tags):
            update["tags"] = tags
        if plan.priority and plan.priority != ticket.priority:
            update["priority"] = plan.priority
        if plan.group_id is not None and plan.group_id != ticket.group_id:
            update["group_id"] = plan.group_id
        if plan.assignee_id is not None and plan.assignee_id != ticket.assignee_id:
            update["assignee_id"] = plan.assignee_id
        elif plan.unassign and ticket.assignee_id is not None:
            update["assignee_id"] = None
        if update and plan.metadata:
            update["metadata"] = {"custom": dict(plan.metadata)}
        if update and ticket.updated_stamp:
            update["safe_update"] = True
            update["updated_stamp"] = ticket.updated_stamp
        return {"ticket": update}, tuple(actions)


def _merge_macro(update: dict[str, Any], result: Mapping[str, Any], ticket: Ticket, plan: Plan,
                 note_html: str | None) -> str | None:
    """Carry a macro's field changes into `update`; a private macro comment joins the note.

    A public macro comment is not sent: CareRoute never writes to the customer except the
    tenant's explicit imminent auto-reply. Our plan's own priority / group / assignee win over the macro's.
    """
    for name in _MACRO_FIELDS:
        value = result.get(name)
        if (name == "priority" and plan.priority or name == "group_id" and plan.group_id is not None
                or name == "assignee_id" and plan.assignee_id is not None):
            continue
        if value is not None and value != getattr(ticket, name, None):
            update[name] = value
    comment = result.get("comment")
    if isinstance(comment, dict) and comment.get("public") is False:
        macro_html = comment.get("html_body") or comment.get("body")
        if isinstance(macro_html, str) and macro_html.strip():
            note_html = f"{note_html or ''}{macro_html}"
    return note_html


def _text_to_screen(ref: TicketRef, fields: Mapping[str, Any],
                    comments: list[responses.CommentRecord]) -> tuple[str, str | None]:
    """The first comment for a new ticket; the given (or latest requester) comment otherwise."""
    if ref.event == "comment":
        if ref.comment_id:
            for comment in comments:
                if comment.id == ref.comment_id:
                    return comment.plain_text, comment.id
            raise PermanentVendorError("zendesk comment not found", status=404)
        for comment in reversed(comments):
            if comment.author_id == fields["requester_id"] and comment.public:
                return comment.plain_text, comment.id
        raise PermanentVendorError("zendesk ticket has no requester comment", status=404)
    if comments:
        return comments[0].plain_text, None
    return fields["description"], None


def _marker_id(marker: str) -> str:
    return marker.removeprefix(NOTE_MARKER_PREFIX)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def make_client(tenant: TenantConfig, context: ClientContext) -> ZendeskClient:
    return ZendeskClient(tenant, context)
