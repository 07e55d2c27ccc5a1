"""Freshdesk automation-rule webhooks: authenticate and parse (pure, no I/O).

Freshdesk does not sign webhooks: the "Trigger webhook" action has no secret or HMAC field. A
tenant's `webhook_secret` therefore travels with each request in one of three ways, all compared
in constant time:

1. header `X-CareRoute-Token: <secret>` (the rule's custom headers, where the UI offers them);
2. HTTP Basic auth with any user name and the secret as the password (the rule's
   "Requires authentication");
3. `?token=<secret>` in the URL: the weakest. A URL is not treated as a secret by anything on its
   way: it lands in proxy, load-balancer and web-server access logs, in monitoring tools and
   browser history, and Freshdesk's rule editor shows it in clear to every admin who opens the
   rule. Use it only where the account offers neither headers nor authentication.

The rule bodies are designed here (`CREATE_BODY`, `COMMENT_BODY`, `FEEDBACK_BODY`). Every
placeholder is quoted, so `ticket_id` arrives as a string and an empty value as "". Freshdesk
escapes newlines but not quotes inside placeholder values, so a subject or comment containing `"`
can break the JSON: `parse` then recovers the ticket id with a regular expression (the webhook is
a doorbell; the text is read through the API) and marks the hints `{"recovered": "true"}`.

Freshdesk sends no delivery id and retries failed deliveries at +5, +30 and +60 minutes, so the
delivery id is derived from what a retry repeats byte for byte: the ticket id, the event, and for
a follow-up message a digest of the latest public comment (no placeholder gives a conversation id
or an update time). The digest is a one-way hash; the comment text itself is dropped here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from typing import Any, Mapping

from plugin.errors import PayloadError, SignatureError
from plugin.model import EventKind, TicketRef

TOKEN_HEADER = "x-careroute-token"
TOKEN_QUERY = "token"

# Bodies of the three automation rules ("Advanced" content, JSON encoding). The order matters:
# fields that may break the JSON (free text) come last, so the id and event can be recovered.
CREATE_BODY = (
    '{"event": "created", "ticket_id": "{{ticket.id}}", "source": "{{ticket.source}}", '
    '"portal": "{{ticket.portal_name}}"}'
)
COMMENT_BODY = (
    '{"event": "comment", "ticket_id": "{{ticket.id}}", "source": "{{ticket.source}}", '
    '"portal": "{{ticket.portal_name}}", "latest_comment": "{{ticket.latest_public_comment}}"}'
)
FEEDBACK_BODY = '{"event": "feedback", "ticket_id": "{{ticket.id}}", "tags": "{{ticket.tags}}"}'

_EVENTS: dict[str, EventKind] = {
    "created": "created", "ticket_created": "created",
    "comment": "comment", "customer_reply": "comment",
    "feedback": "feedback",
}
# Deliveries a rule may send that carry nothing to screen: answered 202 {"ignored": true}.
_IGNORED_EVENTS = frozenset({"agent_reply", "note_added", "ticket_updated", "test", "ping"})
# Body field → hint name (the worker reads `requester_locale` when the contact has none).
_HINT_KEYS = {"source": "source", "portal": "portal", "language": "requester_locale",
              "requester_language": "requester_locale"}
_MAX_HINT = 64
_TICKET_ID = re.compile(r"^\d{1,20}$")
_RECOVER_ID = re.compile(rb'"ticket_id"\s*:\s*"?\s*(\d{1,20})\s*"?')
_RECOVER_EVENT = re.compile(rb'"event"\s*:\s*"([a-z_]{1,32})"')
_RECOVER_TAGS = re.compile(rb'"tags"\s*:\s*"([^"\\]{0,2000})"')


class IgnorableEvent(Exception):
    """A delivery that is authentic and readable but asks for nothing (e.g. an agent's reply)."""

    def __init__(self, reason: str = "event ignored") -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------- verify


def _basic_password(value: str) -> bytes | None:
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    _, sep, password = decoded.partition(b":")
    return password if sep else None


def verify(headers: Mapping[str, str], raw: bytes, secret: str, now: float, *,
           query: Mapping[str, str] | None = None) -> None:
    """Accept the request if any of the three credentials equals the tenant's secret.

    `raw` and `now` are unused: there is no signature and no timestamp to check.
    """
    del raw, now
    expected = secret.encode("utf-8")
    if not expected:
        raise SignatureError("webhook secret not configured")
    candidates: list[bytes] = []
    if TOKEN_HEADER in headers:
        candidates.append(headers[TOKEN_HEADER].strip().encode("utf-8"))
    if "authorization" in headers:
        password = _basic_password(headers["authorization"])
        if password is not None:
            candidates.append(password)
    if query and TOKEN_QUERY in query:
        candidates.append(query[TOKEN_QUERY].encode("utf-8"))
    if not candidates:
        raise SignatureError("missing webhook credentials")
    matched = False
    for candidate in candidates:  # compare every candidate: timing says nothing about which
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise SignatureError("invalid webhook credentials")


# -------------------------------------------------------------------------------- parse


def _delivery_id(tenant_id: str, ticket_id: str, event: str, discriminator: str) -> str:
    material = f"{tenant_id}\x1f{ticket_id}\x1f{event}\x1f{discriminator}".encode("utf-8")
    return "fd-" + hashlib.sha256(material).hexdigest()[:32]


def _digest(value: str | bytes) -> str:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:32]


def _unrendered(value: str) -> bool:
    return "{{" in value and "}}" in value


def _ticket_id(value: Any) -> str:
    if isinstance(value, bool):
        raise PayloadError("ticket_id missing or not a number")
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str):
        stripped = value.strip()
        if _unrendered(stripped):
            raise PayloadError("ticket_id placeholder was not rendered")
        if _TICKET_ID.match(stripped) and int(stripped) > 0:
            return str(int(stripped))
    raise PayloadError("ticket_id missing or not a number")


def _event(value: Any) -> EventKind:
    if value is None or value == "":
        return "created"
    if not isinstance(value, str):
        raise PayloadError("event must be a string")
    name = value.strip().lower()
    if name in _IGNORED_EVENTS:
        raise IgnorableEvent(f"event {name} ignored")
    if name not in _EVENTS:
        raise PayloadError("unknown event")
    return _EVENTS[name]


def _hints(body: Mapping[str, Any]) -> dict[str, str]:
    """Short codes only (source, portal, locale); unrendered or empty placeholders dropped."""
    hints: dict[str, str] = {}
    for key, name in _HINT_KEYS.items():
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            continue
        value = " ".join(value.split())[:_MAX_HINT]
        if value and not _unrendered(value) and value.isprintable():
            hints[name] = value
    return hints


def split_tags(value: Any) -> tuple[str, ...]:
    """`{{ticket.tags}}` renders as one string (comma-separated); a JSON list is accepted too."""
    if isinstance(value, list):
        items = [str(v) for v in value if isinstance(v, (str, int))]
    elif isinstance(value, str):
        if _unrendered(value):
            return ()
        items = value.split(",")
    else:
        return ()
    return tuple(dict.fromkeys(t.strip() for t in items if t.strip()))


def _unwrap(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """Freshdesk's "Simple" layout nests fields under `freshdesk_webhook` with `ticket_` prefixes."""
    inner = body.get("freshdesk_webhook")
    if isinstance(inner, dict):
        flat = {k.removeprefix("ticket_"): v for k, v in inner.items()}
        flat.setdefault("event", body.get("event", "created"))
        return flat
    return body


def _ref(tenant_id: str, ticket_id: str, event: EventKind, *, discriminator: str,
         hints: dict[str, str], comment_id: str | None = None,
         tags: tuple[str, ...] = ()) -> TicketRef:
    return TicketRef(
        vendor="freshdesk", tenant_id=tenant_id, ticket_id=ticket_id,
        delivery_id=_delivery_id(tenant_id, ticket_id, event, discriminator),
        event=event, comment_id=comment_id, hints=hints, tags=tags,
    )


def _recover(raw: bytes, tenant_id: str) -> TicketRef:
    """Placeholder text broke the JSON: keep the delivery if the ticket id is still readable."""
    found = _RECOVER_ID.search(raw)
    if not found:
        raise PayloadError("malformed JSON body")
    ticket_id = str(int(found.group(1)))
    if ticket_id == "0":
        raise PayloadError("malformed JSON body")
    event_match = _RECOVER_EVENT.search(raw)
    event = _event(event_match.group(1).decode("ascii") if event_match else None)
    hints = {"recovered": "true"}
    if event == "created":
        return _ref(tenant_id, ticket_id, event, discriminator="", hints=hints)
    tags: tuple[str, ...] = ()
    if event == "feedback":
        tags_match = _RECOVER_TAGS.search(raw)
        if tags_match:
            tags = split_tags(tags_match.group(1).decode("utf-8", "replace"))
    # A retry repeats the same bytes, so the raw body identifies this delivery.
    return _ref(tenant_id, ticket_id, event, discriminator=_digest(raw), hints=hints, tags=tags)


def parse(raw: bytes, *, tenant_id: str, headers: Mapping[str, str],
          query: Mapping[str, str] | None = None) -> TicketRef:
    """The rule's JSON body → TicketRef. PayloadError (short reason, never the body) if unusable."""
    del headers, query  # the body alone says what happened
    if not raw.strip():
        raise PayloadError("empty body")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8") from None
    except ValueError:
        return _recover(raw, tenant_id)
    if not isinstance(body, dict):
        raise PayloadError("body is not a JSON object")
    body = _unwrap(body)
    event = _event(body.get("event"))
    ticket_id = _ticket_id(body.get("ticket_id", body.get("id")))
    hints = _hints(body)
    if event == "created":
        return _ref(tenant_id, ticket_id, event, discriminator="", hints=hints)
    if event == "feedback":
        tags = split_tags(body.get("tags"))
        return _ref(tenant_id, ticket_id, event, discriminator="\x1e".join(sorted(tags)),
                    hints=hints, tags=tags)
    conversation = body.get("conversation_id")
    if conversation is not None and str(conversation).strip().isdigit():
        comment_id = str(int(str(conversation).strip()))
        return _ref(tenant_id, ticket_id, event, discriminator=comment_id, hints=hints,
                    comment_id=comment_id)
    comment = body.get("latest_comment", body.get("latest_public_comment"))
    if not isinstance(comment, str) or not comment.strip() or _unrendered(comment):
        raise IgnorableEvent("update without a customer comment")
    return _ref(tenant_id, ticket_id, event, discriminator=_digest(comment), hints=hints)
