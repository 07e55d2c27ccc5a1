"""A local Zendesk for everything CareRoute touches (aiohttp), on the real `/api/v2/…` paths.

    app = create_app(webhook_target="http://127.0.0.1:8080/webhooks/zendesk/acme",
                     webhook_secret="…")
    runner = web.AppRunner(app); await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 9001).start()      # or `await run_sandbox(...)`
    state = app[ZENDESK_STATE]                                 # tickets, users, deliveries

Credentials: API token `{any e-mail}/token:sandbox-token` (that e-mail becomes an admin agent),
or OAuth client `sandbox-client` / `sandbox-secret` at `POST /oauth/tokens` (grants
`authorization_code` with any code from `state.issue_code()`, `refresh_token` (rotates), and
`client_credentials`). Access tokens expire after `token_ttl` seconds.

Behaviour copied from the real API (reference/zendesk.md): a ticket PUT replaces tags, `PUT /tags`
adds, `POST /tags` sets; `safe_update` + stale `updated_stamp` → 409; closed tickets → 422
"Status closed prevents ticket update"; unknown keys → `x-zendesk-api-warn`; account rate limit
(`ratelimit-*`, `x-rate-limit*`) and Update Ticket limits (`zendesk-rate-limit-tickets-update`,
`zendesk-ratelimit-per-ticket-updates`) with 429 + Retry-After; 401 bodies for both auth kinds.
Outgoing webhooks: see zendesk_hooks.py. Test-only routes live under `/_sandbox/`.
"""

from __future__ import annotations

import base64
import collections
import html
import itertools
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from .common import Faults, RequestLog, add_control_routes, fault_middleware
from .zendesk_routes import ACTING_USER, add_api_routes, clean_tags
from .zendesk_hooks import VIA_IDS, WebhookSender, event_envelope, render, trigger_fires

SANDBOX_TOKEN = "sandbox-token"
OAUTH_CLIENT_ID = "sandbox-client"
OAUTH_CLIENT_SECRET = "sandbox-secret"
OAUTH_USER_EMAIL = "oauth-admin@sandbox.test"
REFRESH_TOKEN_TTL = 30 * 24 * 3600
PER_TICKET_WINDOW_SECONDS = 600
SUPPORT_GROUP_ID = 360000000001
TRAINED_GROUP_ID = 360000000002

_IANA_ZONES = {"Eastern Time (US & Canada)": "America/New_York", "Pacific Time (US & Canada)":
               "America/Los_Angeles", "Alaska": "America/Juneau", "London": "Europe/London",
               "Berlin": "Europe/Berlin", "Madrid": "Europe/Madrid", "Paris": "Europe/Paris",
               "Rome": "Europe/Rome", "Amsterdam": "Europe/Amsterdam", "Lisbon": "Europe/Lisbon",
               "Brasilia": "America/Sao_Paulo", "Sydney": "Australia/Sydney", "UTC": "Etc/UTC"}
_LOCALE_IDS = {"en-US": 1, "es": 2, "de": 8, "nl": 9, "fr": 16, "pt-BR": 19, "it": 22,
               "en-GB": 1176, "pt": 1175}
def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(html_body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", html_body)).strip()


@dataclass
class SandboxTicket:
    id: int
    subject: str
    requester_id: int
    created_at: str
    updated_epoch: int
    status: str = "new"
    priority: str | None = None
    type: str | None = None
    group_id: int | None = None
    assignee_id: int | None = None
    tags: list[str] = field(default_factory=list)
    via: str = "api"
    brand_id: int = 1
    comments: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    last_actor_id: int | None = None

    @property
    def updated_at(self) -> str:
        return _iso(self.updated_epoch)

    def touch(self) -> None:
        # Seconds, like Zendesk, but strictly increasing so every write changes the stamp.
        self.updated_epoch = max(int(time.time()), self.updated_epoch + 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "url": f"/api/v2/tickets/{self.id}.json", "external_id": None,
            "via": {"channel": self.via, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": self.created_at, "updated_at": self.updated_at, "type": self.type,
            "subject": self.subject, "raw_subject": self.subject,
            "description": self.comments[0]["plain_body"] if self.comments else "",
            "priority": self.priority, "status": self.status, "requester_id": self.requester_id,
            "submitter_id": self.requester_id, "assignee_id": self.assignee_id,
            "group_id": self.group_id, "tags": list(self.tags), "brand_id": self.brand_id,
            "is_public": True, "custom_fields": [], "satisfaction_rating": None,
        }


class ZendeskState:
    """Everything the sandbox holds. Tests reach it through `app[ZENDESK_STATE]`."""

    def __init__(self, *, faults: Faults, token_ttl: float, account_rate_per_minute: int,
                 ticket_updates_per_minute: int, per_ticket_updates: int,
                 webhook_target: str | None, webhook_secret: str | None,
                 webhook_timeout: float) -> None:
        self.faults = faults
        self.log = RequestLog()
        self.token_ttl = token_ttl
        self.account_rate_per_minute = account_rate_per_minute
        self.ticket_updates_per_minute = ticket_updates_per_minute
        self.per_ticket_updates = per_ticket_updates
        self.webhook_target = webhook_target
        self.webhook_secret = webhook_secret
        self.sender = WebhookSender(timeout=webhook_timeout)
        self.users: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, SandboxTicket] = {}
        self.groups: dict[int, dict[str, Any]] = {}
        self.macros: dict[int, dict[str, Any]] = {}
        self.triggers: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.webhook_secrets: dict[str, str] = {}
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: dict[str, float] = {}
        self.auth_codes: set[str] = set()
        self.token_grants: list[str] = []  # grant types served, for assertions
        self._ticket_ids = itertools.count(1)
        self._user_ids = itertools.count(9_100_000_000_001)
        self._comment_ids = itertools.count(33_000_000_000_001)
        self._other_ids = itertools.count(360_000_000_101)
        self._account_calls: collections.deque[float] = collections.deque()
        self._update_calls: collections.deque[float] = collections.deque()
        self._ticket_update_calls: dict[int, collections.deque[float]] = {}
        for group_id, name in ((SUPPORT_GROUP_ID, "Support"), (TRAINED_GROUP_ID, "Wellbeing trained")):
            self.groups[group_id] = {"id": group_id, "name": name, "default": False, "deleted": False}

    # ------------------------------------------------------------ people and tokens

    def create_user(self, *, name: str, email: str | None = None, role: str = "end-user",
                    locale: str = "en-US", time_zone: str = "UTC") -> dict[str, Any]:
        user_id = next(self._user_ids)
        iana = time_zone if "/" in time_zone else _IANA_ZONES.get(time_zone, "Etc/UTC")
        user = {"id": user_id, "url": f"/api/v2/users/{user_id}.json", "name": name,
                "email": email, "role": role, "locale": locale,
                "locale_id": _LOCALE_IDS.get(locale, 1), "time_zone": time_zone,
                "iana_time_zone": iana, "active": True, "verified": True, "tags": [],
                "created_at": _iso(time.time()), "updated_at": _iso(time.time())}
        self.users[user_id] = user
        return user

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u.get("email") == email), None)

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh access + refresh token pair (what an OAuth install stores)."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = time.time() + self.token_ttl
        self.refresh_tokens[refresh] = time.time() + REFRESH_TOKEN_TTL
        ttl = int(self.token_ttl) if float(self.token_ttl).is_integer() else self.token_ttl
        return {"access_token": access, "token_type": "bearer", "scope": "read write",
                "expires_in": ttl, "refresh_token": refresh,
                "refresh_token_expires_in": REFRESH_TOKEN_TTL}

    def issue_code(self) -> str:
        code = secrets.token_urlsafe(16)
        self.auth_codes.add(code)
        return code

    def revoke_access_tokens(self) -> None:
        """Invalidate every access token now (a client learns it from a 401 invalid_token)."""
        self.access_tokens.clear()

    # ------------------------------------------------------------ tickets

    def create_ticket(self, *, subject: str, body: str | None = None, html_body: str | None = None,
                      requester_id: int, author_id: int | None = None, tags: list[str] = (),
                      priority: str | None = None, group_id: int | None = None,
                      via: str = "api", public: bool = True) -> SandboxTicket:
        now = time.time()
        ticket = SandboxTicket(id=next(self._ticket_ids), subject=subject, requester_id=requester_id,
                               created_at=_iso(now), updated_epoch=int(now), tags=clean_tags(tags),
                               priority=priority, group_id=group_id, via=via)
        ticket.last_actor_id = author_id or requester_id
        self.tickets[ticket.id] = ticket
        comment = self.add_comment(ticket, body=body, html_body=html_body,
                                   author_id=author_id or requester_id, public=public)
        self._after_change(ticket, update_type="Create", actor_id=ticket.last_actor_id,
                           comment=comment, tags_before=None)
        return ticket

    def add_comment(self, ticket: SandboxTicket, *, body: str | None, html_body: str | None,
                    author_id: int, public: bool) -> dict[str, Any] | None:
        if body is None and html_body is None:
            return None
        if html_body is None:
            html_body = f'<div class="zd-comment" dir="auto"><p dir="auto">{html.escape(body or "")}</p></div>'
        plain = body if body is not None else _plain(html_body)
        comment = {"id": next(self._comment_ids), "type": "Comment", "author_id": author_id,
                   "body": plain, "html_body": html_body, "plain_body": plain, "public": public,
                   "attachments": [], "audit_id": next(self._other_ids),
                   "via": {"channel": ticket.via}, "created_at": _iso(time.time()), "metadata": {}}
        ticket.comments.append(comment)
        return comment

    def requester_comment(self, ticket: SandboxTicket, body: str) -> dict[str, Any]:
        """The customer writes again (through the web form)."""
        comment = self.add_comment(ticket, body=body, html_body=None, author_id=ticket.requester_id,
                                   public=True)
        ticket.touch()
        if ticket.status in ("pending", "solved"):
            ticket.status = "open"
        self._after_change(ticket, update_type="Change", actor_id=ticket.requester_id,
                           comment=comment, tags_before=list(ticket.tags), via="web_form")
        return comment  # type: ignore[return-value]

    def _role(self, user_id: int | None) -> str:
        role = self.users.get(user_id or 0, {}).get("role", "end-user")
        return {"end-user": "end_user"}.get(role, role)

    def _after_change(self, ticket: SandboxTicket, *, update_type: str, actor_id: int | None,
                      comment: dict[str, Any] | None, tags_before: list[str] | None,
                      via: str | None = None) -> None:
        """Run triggers and event subscriptions for one change, like Zendesk after a save."""
        role = self._role(actor_id)
        via = via or ticket.via
        context = {"update_type": update_type, "role": role, "tags": list(ticket.tags),
                   "comment_public": None if comment is None else comment["public"],
                   "current_via_id": VIA_IDS.get(via, 5), "via_id": VIA_IDS.get(ticket.via, 5),
                   "status": ticket.status, "priority": ticket.priority, "group_id": ticket.group_id}
        for trigger in sorted(self.triggers.values(), key=lambda t: t["position"]):
            if not trigger["active"] or not trigger_fires(trigger, context):
                continue
            for action in trigger["actions"]:
                if action.get("field") != "notification_webhook":
                    continue
                webhook_id, template = action["value"][0], action["value"][1]
                webhook = self.webhooks.get(webhook_id)
                if webhook and webhook["status"] == "active":
                    self.sender.send(webhook["endpoint"], self.webhook_secrets[webhook_id],
                                     render(template, self, ticket).encode("utf-8"),
                                     webhook_id=webhook_id)
        events: list[tuple[str, dict[str, Any]]] = []
        if update_type == "Create":
            events.append(("ticket.created", {}))
        if comment is not None:
            author = self.users.get(comment["author_id"], {})
            events.append(("ticket.comment_added", {"comment": {
                "id": str(comment["id"]), "body": comment["plain_body"],
                "is_public": comment["public"],
                "author": {"id": str(comment["author_id"]), "name": author.get("name", ""),
                           "is_staff": author.get("role") in ("agent", "admin")}}}))
        if tags_before is not None and set(tags_before) != set(ticket.tags):
            events.append(("ticket.tags_changed", {"tags": {
                "added": sorted(set(ticket.tags) - set(tags_before)),
                "removed": sorted(set(tags_before) - set(ticket.tags))}}))
        for webhook_id, webhook in self.webhooks.items():
            if webhook["status"] != "active":
                continue
            for kind, event in events:
                if f"zen:event-type:{kind}" in webhook["subscriptions"]:
                    self.sender.send(webhook["endpoint"], self.webhook_secrets[webhook_id],
                                     event_envelope(self, ticket, kind, event),
                                     webhook_id=webhook_id)
        requester_wrote = comment is not None and comment["author_id"] == ticket.requester_id
        if self.webhook_target and self.webhook_secret and (update_type == "Create" or requester_wrote):
            requester = self.users.get(ticket.requester_id, {})
            self.sender.send(self.webhook_target, self.webhook_secret, {
                "event": "created" if update_type == "Create" else "comment",
                "ticket_id": str(ticket.id), "requester_locale": requester.get("locale", ""),
                "via": "Web Form" if via == "web_form" else "Web Service"},
                webhook_id="sandbox-direct")

    # ------------------------------------------------------------ rate limits

    def _window(self, calls: collections.deque[float], limit: int, window: float,
                now: float) -> tuple[int, int]:
        """(remaining after this call or -1 if over, seconds until the window frees a slot)."""
        while calls and calls[0] <= now - window:
            calls.popleft()
        resets = int(math.ceil(calls[0] + window - now)) if calls else int(window)
        if len(calls) >= limit:
            return -1, max(1, resets)
        calls.append(now)
        return limit - len(calls), max(1, resets)


ZENDESK_STATE = web.AppKey("zendesk_state", ZendeskState)


def create_app(*, webhook_target: str | None = None, webhook_secret: str | None = None,
               faults: Faults | None = None, token_ttl: float = 3600,
               account_rate_per_minute: int = 700, ticket_updates_per_minute: int = 100,
               per_ticket_updates: int = 30,
               webhook_timeout: float = 12.0) -> web.Application:
    faults = faults or Faults()
    state = ZendeskState(faults=faults, token_ttl=token_ttl,
                         account_rate_per_minute=account_rate_per_minute,
                         ticket_updates_per_minute=ticket_updates_per_minute,
                         per_ticket_updates=per_ticket_updates, webhook_target=webhook_target,
                         webhook_secret=webhook_secret, webhook_timeout=webhook_timeout)
    app = web.Application(middlewares=[fault_middleware(faults, state.log), _auth_middleware(state),
                                       _rate_limit_middleware(state)])
    app[ZENDESK_STATE] = state
    add_control_routes(app, faults, state.log)
    add_api_routes(app, state)

    async def close_sender(_: web.Application) -> None:
        await state.sender.close()

    app.on_cleanup.append(close_sender)
    return app


async def run_sandbox(host: str = "127.0.0.1", port: int = 9001,
                      **kwargs: Any) -> tuple[web.AppRunner, ZendeskState]:
    """Start the sandbox; returns the runner (call `await runner.cleanup()`) and its state."""
    app = create_app(**kwargs)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, app[ZENDESK_STATE]


# ------------------------------------------------------------------ middlewares


def _auth_middleware(state: ZendeskState) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        user: dict[str, Any] | None = None
        if header.startswith("Bearer "):
            expires = state.access_tokens.get(header[7:].strip())
            if expires is None or expires <= time.time():
                return web.json_response(
                    {"error": "invalid_token", "error_description": "The access token provided is "
                     "expired, revoked, malformed or invalid for other reasons."}, status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="Zendesk", error="invalid_token"'})
            user = state.user_by_email(OAUTH_USER_EMAIL) or state.create_user(
                name="OAuth admin", email=OAUTH_USER_EMAIL, role="admin")
        elif header.startswith("Basic "):
            try:
                email, _, token = base64.b64decode(header[6:]).decode("utf-8").partition("/token:")
            except (ValueError, UnicodeDecodeError):
                email, token = "", ""
            if email and token == SANDBOX_TOKEN:
                user = state.user_by_email(email) or state.create_user(
                    name=email.split("@")[0], email=email, role="admin")
        if user is None:
            return web.json_response({"error": "Couldn't authenticate you"}, status=401)
        request[ACTING_USER] = user
        return await handler(request)

    return middleware


def _rate_limit_middleware(state: ZendeskState) -> Any:
    ticket_update = re.compile(r"^/api/v2/tickets/(\d+)$")

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        now = time.time()
        limit = state.account_rate_per_minute
        remaining, resets = state._window(state._account_calls, limit, 60, now)
        headers = {"ratelimit-limit": str(limit), "ratelimit-remaining": str(max(0, remaining)),
                   "ratelimit-reset": str(resets), "x-rate-limit": str(limit),
                   "x-rate-limit-remaining": str(max(0, remaining))}
        if remaining < 0:
            return web.json_response({"error": "APIRateLimitExceeded", "description":
                                      "Number of allowed API requests per minute exceeded"},
                                     status=429, headers={**headers, "Retry-After": str(resets)})
        match = ticket_update.match(request.path)
        if request.method == "PUT" and match:
            ticket_id = int(match.group(1))
            updates_limit = state.ticket_updates_per_minute
            left, reset = state._window(state._update_calls, updates_limit, 60, now)
            headers["zendesk-rate-limit-tickets-update"] = (
                f"total={updates_limit}; remaining={max(0, left)}; resets={reset}")
            calls = state._ticket_update_calls.setdefault(ticket_id, collections.deque())
            per_left, per_reset = (left, reset) if left < 0 else state._window(
                calls, state.per_ticket_updates, PER_TICKET_WINDOW_SECONDS, now)
            headers["zendesk-ratelimit-per-ticket-updates"] = (
                f"total={state.per_ticket_updates}; remaining={max(0, per_left)}; resets={per_reset}")
            if left < 0 or per_left < 0:
                return web.Response(
                    status=429, content_type="text/html", headers={**headers, "Retry-After": str(
                        reset if left < 0 else per_reset)},
                    text="Rate limit for ticket updates exceeded, please wait before updating "
                         "this ticket again")
        response = await handler(request)
        response.headers.update(headers)
        return response

    return middleware
