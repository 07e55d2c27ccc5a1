"""The Freshdesk sandbox's account: records, Freshdesk's rules for them, outbound webhooks.

Kept apart from the HTTP routes (plugin/sandbox/freshdesk.py) so each file holds one idea: this one
is what Freshdesk *does* — replace-tags updates, integer enums, validation with the documented error
bodies, automation rules (performer, events, a subset of conditions), placeholder rendering with
Freshdesk's quoting, deliveries with retries at compressed intervals — and the per-minute window.
"""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp

from plugin.freshdesk.webhook import COMMENT_BODY, CREATE_BODY, FEEDBACK_BODY, TOKEN_HEADER
from plugin.sandbox.common import Faults, RequestLog

ADMIN_KEY = "sandbox-key"
AGENT_KEY = "sandbox-agent-key"
DOMAIN = "sandbox.freshdesk.com"
SOURCE_NAMES = {1: "Email", 2: "Portal", 3: "Phone", 7: "Chat", 9: "Feedback Widget",
                10: "Outbound Email"}
STATUS_NAMES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed", 6: "Waiting on Customer",
                7: "Waiting on Third Party"}
PRIORITY_NAMES = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
TICKET_FIELDS = {"subject", "description", "email", "requester_id", "name", "priority", "status",
                 "source", "tags", "group_id", "responder_id", "type", "custom_fields"}
UPDATE_FIELDS = TICKET_FIELDS - {"email", "name"}
PERFORMER_AGENT, PERFORMER_CUSTOMER, PERFORMER_ANY = 1, 2, 3


def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def html_to_text(value: str) -> str:
    text = re.sub(r"(?i)<br\s*/?>|</(div|p|li|blockquote)>", "\n", value)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def render_placeholders(template: str, values: dict[str, str]) -> str:
    """Freshdesk's rendering as observed: newlines JSON-escaped, `"` and `\\` left alone."""
    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1).strip(), "")
        return value.replace("\r", "").replace("\n", "\\n").replace("\t", "\\t")
    return re.sub(r"\{\{\s*([a-z_.]+)\s*\}\}", one, template)


@dataclass
class Delivery:
    rule: str
    url: str
    auth: str  # basic | header | token | api_key | none
    attempt: int
    status: int  # HTTP status; 0 when the connection failed
    at: float
    body: str


class ApiError(Exception):
    def __init__(self, status: int, body: Any = None) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def invalid(field_name: str, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, {"description": "Validation failed",
                          "errors": [{"field": field_name, "message": message, "code": code}]})


class RateWindow:
    """Per-account calls per minute, in fixed one-minute windows, like Freshdesk's."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.clock = per_minute, clock
        self.started, self.used = clock(), 0

    def _roll(self) -> None:
        if self.clock() - self.started >= 60:
            self.started, self.used = self.clock(), 0

    def take(self, credits: int) -> bool:
        self._roll()
        if self.used + credits > self.limit:
            return False
        self.used += credits
        return True

    @property
    def remaining(self) -> int:
        self._roll()
        return max(0, self.limit - self.used)

    def retry_after(self) -> int:
        return max(1, math.ceil(60 - (self.clock() - self.started)))


class FreshdeskState:
    def __init__(self, *, rate_per_minute: int, webhook_target: str | None,
                 webhook_secret: str | None, faults: Faults, log: RequestLog) -> None:
        self.faults, self.log = faults, log
        self.rate = RateWindow(rate_per_minute)
        self.webhook_target, self.webhook_secret = webhook_target, webhook_secret
        self.keys = {ADMIN_KEY: 1, AGENT_KEY: 2}  # API key → agent id
        self.admins = {1}
        self.agents = {1: "Sandbox Admin", 2: "Sandbox Agent"}
        self.groups = {1: {"id": 1, "name": "Support", "description": "First line"},
                       2: {"id": 2, "name": "Wellbeing response", "description": "Trained agents"}}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.conversations: dict[int, list[dict[str, Any]]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.folders: dict[int, dict[str, Any]] = {}
        self.canned: dict[int, dict[str, Any]] = {}
        self.rules: dict[int, dict[int, dict[str, Any]]] = {1: {}, 3: {}, 4: {}}
        self.deliveries: list[Delivery] = []
        self.failure_emails: list[str] = []  # "webhook failure" mails to admins, by rule name
        # Freshdesk retries at +5, +30, +60 minutes; compressed to seconds here.
        self.retry_delays: tuple[float, ...] = (0.3, 1.8, 3.6)
        self.webhook_timeout = 5.0
        # Test hook: runs after each ticket PUT (simulates a concurrent writer).
        self.on_ticket_put: Callable[[dict[str, Any]], None] | None = None
        self._ids = itertools.count(101)
        self._tasks: set[asyncio.Task[None]] = set()
        self.session: aiohttp.ClientSession | None = None

    def next_id(self) -> int:
        return next(self._ids)

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop pending deliveries (with their retries) and the outbound session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until every outbound webhook (with its retries) has finished."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())

    # ------------------------------------------------------------------ records

    def contact_for(self, email: str, name: str | None = None) -> dict[str, Any]:
        for contact in self.contacts.values():
            if contact["email"] == email.lower():
                return contact
        return self.add_contact({"email": email, "name": name or email.split("@")[0]})

    def add_contact(self, data: dict[str, Any]) -> dict[str, Any]:
        email = str(data.get("email") or "").lower()
        if not email or "@" not in email:
            raise invalid("email", "It should be in the 'valid email address' format")
        if any(c["email"] == email for c in self.contacts.values()):
            raise ApiError(409, {"description": "Validation failed", "errors": [
                {"field": "email", "message": "It should be a unique value",
                 "code": "duplicate_value"}]})
        now = now_stamp()
        contact = {"id": self.next_id(), "name": data.get("name") or email, "email": email,
                   "language": data.get("language") or "en",
                   "time_zone": data.get("time_zone") or "Eastern Time (US & Canada)",
                   "active": False, "deleted": False, "phone": None, "mobile": None,
                   "company_id": None, "created_at": now, "updated_at": now, "custom_field": {}}
        self.contacts[contact["id"]] = contact
        return contact

    def create_ticket(self, data: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(data, TICKET_FIELDS)
        if not data.get("description"):
            raise invalid("description", "It should not be blank as this is a mandatory field",
                           "missing_field")
        if data.get("requester_id") in self.contacts:
            contact = self.contacts[data["requester_id"]]
        elif data.get("email"):
            contact = self.contact_for(str(data["email"]), data.get("name"))
        else:
            raise invalid("requester_id", "Please fill at least 1 of email, requester_id fields",
                           "missing_field")
        now = now_stamp()
        ticket = {
            "id": max(self.tickets, default=0) + 1, "subject": data.get("subject") or "",
            "description": data["description"], "description_text": html_to_text(data["description"]),
            "requester_id": contact["id"], "responder_id": None, "group_id": None,
            "priority": 1, "status": 2, "source": 2, "type": None, "tags": [], "spam": False,
            "deleted": False, "cc_emails": [], "fwd_emails": [], "reply_cc_emails": [],
            "to_emails": None, "email_config_id": None, "fr_escalated": False,
            "is_escalated": False, "company_id": None, "product_id": None, "custom_fields": {},
            "attachments": [], "created_at": now, "updated_at": now, "due_by": now, "fr_due_by": now,
        }
        self._validate_update(ticket, {k: v for k, v in data.items() if k in UPDATE_FIELDS})
        ticket.update({k: v for k, v in data.items() if k in UPDATE_FIELDS and k != "description"})
        self.tickets[ticket["id"]] = ticket
        self.conversations[ticket["id"]] = []
        self.fire(1, ticket, performer=PERFORMER_CUSTOMER, changed={"created"})
        return ticket

    def _validate_update(self, ticket: dict[str, Any], data: dict[str, Any]) -> None:
        checks = {"priority": (1, 2, 3, 4), "status": (2, 3, 4, 5, 6, 7),
                  "source": tuple(SOURCE_NAMES)}
        for name, allowed in checks.items():
            if name in data and data[name] not in allowed:
                raise invalid(name, "It should be one of these values: "
                               f"'{','.join(str(a) for a in allowed)}'")
        if "tags" in data and not (isinstance(data["tags"], list)
                                   and all(isinstance(t, str) for t in data["tags"])):
            raise invalid("tags", "It should be a/an Array", "datatype_mismatch")
        if data.get("group_id") is not None and data["group_id"] not in self.groups:
            raise invalid("group_id", "There is no group matching the given group_id")
        if data.get("responder_id") is not None and data["responder_id"] not in self.agents:
            raise invalid("responder_id", "There is no agent matching the given responder_id")

    def update_ticket(self, ticket: dict[str, Any], data: dict[str, Any], agent: int) -> None:
        reject_unknown(data, UPDATE_FIELDS)
        self._validate_update(ticket, data)
        before = dict(ticket)
        ticket.update(data)  # tags: the whole array is replaced
        if "description" in data:
            ticket["description_text"] = html_to_text(ticket["description"])
        changed = {k for k in data if before.get(k) != ticket.get(k)}
        if changed:
            ticket["updated_at"] = now_stamp()
            self.fire(4, ticket, performer=PERFORMER_AGENT, changed=changed)

    def add_conversation(self, ticket: dict[str, Any], body: str, *, private: bool,
                         incoming: bool, user_id: int) -> dict[str, Any]:
        now = now_stamp()
        conversation = {"id": self.next_id(), "ticket_id": ticket["id"], "body": body,
                        "body_text": html_to_text(body), "private": private, "incoming": incoming,
                        "source": 2 if private else 0, "user_id": user_id, "support_email": None,
                        "to_emails": [], "from_email": None, "cc_emails": None,
                        "bcc_emails": None, "attachments": [], "created_at": now,
                        "updated_at": now}
        self.conversations[ticket["id"]].append(conversation)
        ticket["updated_at"] = now
        return conversation

    # ---------------------------------------------------------------- webhooks

    def placeholders(self, ticket: dict[str, Any]) -> dict[str, str]:
        contact = self.contacts.get(ticket["requester_id"], {})
        public = [c for c in self.conversations.get(ticket["id"], []) if not c["private"]]
        group = self.groups.get(ticket.get("group_id") or 0, {})
        return {
            "ticket.id": str(ticket["id"]), "ticket.subject": ticket["subject"],
            "ticket.description": ticket["description"],
            "ticket.url": f"https://{DOMAIN}/helpdesk/tickets/{ticket['id']}",
            "ticket.portal_url": f"https://{DOMAIN}/support/tickets/{ticket['id']}",
            "ticket.portal_name": "Sandbox Support", "helpdesk_name": "Sandbox Support",
            "ticket.status": STATUS_NAMES.get(ticket["status"], ""),
            "ticket.priority": PRIORITY_NAMES.get(ticket["priority"], ""),
            "ticket.source": SOURCE_NAMES.get(ticket["source"], ""),
            "ticket.tags": ",".join(ticket["tags"]),
            "ticket.requester.name": contact.get("name", ""),
            "ticket.requester.email": contact.get("email", ""),
            "ticket.group.name": group.get("name", ""),
            "ticket.agent.name": self.agents.get(ticket.get("responder_id") or 0, ""),
            "ticket.latest_public_comment": public[-1]["body"] if public else "",
        }

    def fire(self, rule_type: int, ticket: dict[str, Any], *, performer: int,
             changed: set[str]) -> None:
        """Run the automation rules of one type against a ticket event."""
        for rule in list(self.rules[rule_type].values()):
            if rule.get("active", True) and _rule_matches(rule, ticket, performer, changed):
                for action in rule.get("actions", []):
                    if action.get("field_name") == "trigger_webhook":
                        self._send(rule.get("name", ""), action, ticket)
        if self.webhook_target and self.webhook_secret:
            implicit = None
            if rule_type == 1:
                implicit = CREATE_BODY
            elif performer == PERFORMER_CUSTOMER and "reply_sent" in changed:
                implicit = COMMENT_BODY
            elif performer == PERFORMER_AGENT and "tags" in changed:
                implicit = FEEDBACK_BODY
            if implicit:
                self._send("webhook_target", {
                    "url": self.webhook_target, "request_type": "POST", "content_type": "JSON",
                    "content_layout": "2", "content": implicit,
                    "custom_headers": {TOKEN_HEADER: self.webhook_secret}}, ticket)

    def _send(self, rule_name: str, action: dict[str, Any], ticket: dict[str, Any]) -> None:
        values = self.placeholders(ticket)  # rendered now, as Freshdesk does when the rule runs
        if str(action.get("content_layout", "2")) == "1":
            fields = action.get("content") or ["id"]
            body = json.dumps({"freshdesk_webhook": {
                f"ticket_{f}": values.get(f"ticket.{f}", "") for f in fields}})
        else:
            body = render_placeholders(str(action.get("content") or ""), values)
        task = asyncio.get_running_loop().create_task(self._deliver(rule_name, action, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, rule_name: str, action: dict[str, Any], body: str) -> None:
        headers = {"Content-Type": "application/json"}
        auth = "token" if "token=" in str(action.get("url", "")) else "none"
        if isinstance(action.get("auth_header"), dict):
            user = action["auth_header"].get("username", "")
            password = action["auth_header"].get("password", "")
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{user}:{password}".encode()).decode()
            auth = "basic"
        elif action.get("api_key"):
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{action['api_key']}:X".encode()).decode()
            auth = "api_key"
        if isinstance(action.get("custom_headers"), dict) and action["custom_headers"]:
            headers.update({str(k): str(v) for k, v in action["custom_headers"].items()})
            auth = "header" if auth == "none" or auth == "token" else auth
        delays = (0.0, *self.retry_delays)
        for attempt, delay in enumerate(delays, start=1):
            await asyncio.sleep(delay)
            if not self.rate.take(1):  # webhooks spend the account's API budget too
                await asyncio.sleep(self.retry_delays[-1] if self.retry_delays else 0)
            status = await self._post(action, headers, body)
            self.deliveries.append(Delivery(rule_name, str(action.get("url")), auth, attempt,
                                            status, time.time(), body))
            if 200 <= status < 300:
                return
        self.failure_emails.append(rule_name)

    async def _post(self, action: dict[str, Any], headers: dict[str, str], body: str) -> int:
        assert self.session is not None
        try:
            async with self.session.request(
                    str(action.get("request_type") or "POST"), str(action["url"]),
                    data=body.encode("utf-8"), headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0


def reject_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    for name in data:
        if name not in allowed:
            raise invalid(name, "Unexpected/invalid field in request", "invalid_field")


def _rule_matches(rule: dict[str, Any], ticket: dict[str, Any], performer: int,
                  changed: set[str]) -> bool:
    """The subset of Freshdesk's rule semantics the sandbox models: performer, events, conditions."""
    wanted_performer = (rule.get("performer") or {}).get("type", PERFORMER_ANY)
    if wanted_performer not in (PERFORMER_ANY, performer):
        return False
    events = {e.get("field_name") for e in rule.get("events") or [] if isinstance(e, dict)}
    if events and not events & changed:
        return False
    for group in rule.get("conditions") or []:
        results = [_condition(p, ticket) for p in group.get("properties") or []]
        if results and not (any(results) if group.get("match_type") == "any" else all(results)):
            return False
    return True


def _condition(prop: dict[str, Any], ticket: dict[str, Any]) -> bool:
    name, operator, value = prop.get("field_name"), prop.get("operator"), prop.get("value")
    actual = ticket.get(name)
    values = value if isinstance(value, list) else [value]
    if name == "source":
        names = {SOURCE_NAMES.get(actual, ""), actual}
        hit = any(v in names for v in values)
    elif name == "tags":
        hit = bool(set(values) & set(actual or []))
    else:
        hit = actual in values
    if operator in ("in", "is", "contains_any_of", "contains"):
        return hit
    if operator in ("not_in", "is_not", "does_not_contain"):
        return not hit
    return False
