"""The Zendesk sandbox's outgoing webhooks: triggers, event subscriptions, signing, retries.

Mirrors zendesk.md §1: headers `X-Zendesk-Webhook-*` with an ISO timestamp and
base64(HMAC-SHA256(secret, timestamp + body)); one invocation id across attempts, a fresh
timestamp and signature per attempt; retries only for 409 (up to 3), 429/503 with Retry-After
under 60 s, and timeouts (up to 5, 12 s each by default). Everything else is not retried.

The signing code is written out here on purpose (not imported from plugin.zendesk.webhook), so
the sandbox checks the service's verifier instead of sharing its bugs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from .zendesk import SandboxTicket, ZendeskState

ACCOUNT_ID = 90210
WEBHOOK_TIMEOUT_SECONDS = 12.0
MAX_CONFLICT_RETRIES = 3
MAX_TIMEOUT_RETRIES = 5
MAX_THROTTLE_RETRIES = 5
EVENT_VERSION = "2022-11-06"

# Trigger conditions and actions the sandbox understands; anything else is refused at creation.
CONDITION_FIELDS = frozenset({"update_type", "role", "comment_is_public", "current_tags",
                              "current_via_id", "via_id", "status", "priority", "group_id"})
ACTION_FIELDS = frozenset({"notification_webhook", "set_tags", "current_tags", "remove_tags",
                           "priority", "group_id", "status"})
VIA_IDS = {"web_form": 0, "email": 4, "api": 5, "web": 0}
VIA_NAMES = {"web_form": "Web Form", "email": "Mail", "api": "Web Service", "web": "Web Form"}
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    """A ULID-shaped id (Zendesk webhook and invocation ids look like this)."""
    stamp = int(time.time() * 1000)
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[stamp % 32])
        stamp //= 32
    return "".join(reversed(chars)) + "".join(secrets.choice(_CROCKFORD) for _ in range(16))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ triggers


def condition_holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    field, operator, value = condition.get("field"), condition.get("operator"), condition.get("value")
    if field == "current_tags":
        wanted = set(str(value or "").split())
        present = bool(wanted & set(context["tags"]))
        return present if operator == "includes" else not present
    if field == "comment_is_public":
        public = context["comment_public"]
        actual = "not_relevant" if public is None else ("true" if public else "false")
        if value in ("not_relevant",):
            return True
        return actual == str(value).lower()
    if field == "role":
        role = context["role"]
        matches = role == value or (value == "agent" and role == "admin")
        return matches if operator == "is" else not matches
    actual = context.get(field)
    matches = str(actual) == str(value) if value is not None else actual is None
    return matches if operator in ("is", None) else not matches


def trigger_fires(trigger: dict[str, Any], context: dict[str, Any]) -> bool:
    conditions = trigger.get("conditions") or {}
    every = conditions.get("all") or []
    some = conditions.get("any") or []
    return (all(condition_holds(c, context) for c in every)
            and (not some or any(condition_holds(c, context) for c in some)))


def render(template: str, state: "ZendeskState", ticket: "SandboxTicket") -> str:
    """Textual placeholder substitution, like Zendesk (no JSON escaping; unknown → empty)."""
    requester = state.users.get(ticket.requester_id, {})
    values = {
        "ticket.id": str(ticket.id),
        "ticket.status": ticket.status.capitalize(),
        "ticket.priority": (ticket.priority or "").capitalize(),
        "ticket.tags": " ".join(ticket.tags),
        "ticket.via": VIA_NAMES.get(ticket.via, "Web Service"),
        "ticket.brand.id": str(ticket.brand_id),
        "ticket.title": ticket.subject,
        "ticket.description": ticket.comments[0]["plain_body"] if ticket.comments else "",
        "ticket.requester.id": str(ticket.requester_id),
        "ticket.requester.locale": requester.get("locale", ""),
        "ticket.requester.time_zone": requester.get("time_zone", ""),
        "ticket.requester.email": requester.get("email", ""),
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


# ------------------------------------------------------------------ event envelopes


def _ticket_detail(state: "ZendeskState", ticket: "SandboxTicket") -> dict[str, Any]:
    def sid(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "actor_id": sid(ticket.last_actor_id), "assignee_id": sid(ticket.assignee_id),
        "brand_id": str(ticket.brand_id), "created_at": ticket.created_at,
        "custom_status": "1", "description": ticket.comments[0]["plain_body"] if ticket.comments else "",
        "external_id": None, "form_id": "1", "group_id": sid(ticket.group_id), "id": str(ticket.id),
        "is_public": True, "organization_id": None, "priority": (ticket.priority or "").upper() or None,
        "requester_id": str(ticket.requester_id), "status": ticket.status.upper(),
        "subject": ticket.subject, "submitter_id": str(ticket.requester_id),
        "tags": list(ticket.tags), "type": None, "updated_at": ticket.updated_at,
        "via": {"channel": ticket.via},
    }


def event_envelope(state: "ZendeskState", ticket: "SandboxTicket", kind: str,
                   event: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "type": f"zen:event-type:{kind}", "account_id": ACCOUNT_ID, "id": str(uuid.uuid4()),
        "time": now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
        "zendesk_event_version": EVENT_VERSION, "subject": f"zen:ticket:{ticket.id}",
        "detail": _ticket_detail(state, ticket), "event": event,
    }


# ------------------------------------------------------------------ sending


class WebhookSender:
    """Sends deliveries in background tasks and records every attempt in `attempts`."""

    def __init__(self, *, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self.attempts: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def send(self, url: str, secret: str, payload: Any, *, webhook_id: str) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        task = asyncio.get_running_loop().create_task(self._deliver(url, secret, body, webhook_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every delivery (with its retries) has finished."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.01, deadline - time.monotonic()))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[Any, float | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                await resp.read()
                retry_after = resp.headers.get("Retry-After")
                try:
                    seconds = float(retry_after) if retry_after is not None else None
                except ValueError:
                    seconds = None
                return resp.status, seconds
        except asyncio.TimeoutError:
            return "timeout", None
        except aiohttp.ClientError:
            return "connection_error", None

    async def _deliver(self, url: str, secret: str, body: bytes, webhook_id: str) -> None:
        invocation_id = ulid()
        conflicts = timeouts = throttles = 0
        while True:
            timestamp = iso_now()
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Zendesk Webhook",
                "X-Zendesk-Account-Id": str(ACCOUNT_ID),
                "X-Zendesk-Webhook-Id": webhook_id,
                "X-Zendesk-Webhook-Invocation-Id": invocation_id,
                "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
                "X-Zendesk-Webhook-Signature": signature(secret, timestamp, body),
            }
            status, retry_after = await self._post(url, body, headers)
            self.attempts.append({"url": url, "webhook_id": webhook_id,
                                  "invocation_id": invocation_id, "status": status,
                                  "at": time.time(), "body": body.decode("utf-8", "replace")})
            if status == 409 and conflicts < MAX_CONFLICT_RETRIES:
                conflicts += 1
                continue
            if (status in (429, 503) and retry_after is not None and retry_after < 60
                    and throttles < MAX_THROTTLE_RETRIES):
                throttles += 1
                await asyncio.sleep(retry_after)
                continue
            if status == "timeout" and timeouts < MAX_TIMEOUT_RETRIES:
                timeouts += 1
                continue
            return
