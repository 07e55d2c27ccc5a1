"""Zendesk webhooks: signature check and payload reading. Pure: no I/O.

Signature (zendesk.md §1.2): base64(HMAC-SHA256(key=secret as UTF-8, msg=timestamp + raw body)),
sent in `x-zendesk-webhook-signature`, the timestamp (ISO 8601 UTC) in
`x-zendesk-webhook-signature-timestamp`. Older docs sign body + timestamp: that is wrong.

Two payload shapes reach us:

Trigger webhooks carry the JSON body CareRoute's triggers render (provision.py). Ids and codes only;
text is always read through the API:
    {"event": "created",  "ticket_id": "{{ticket.id}}", "requester_locale": "…", "via": "…"}
    {"event": "comment",  "ticket_id": "{{ticket.id}}", "requester_locale": "…", "via": "…"}
    {"event": "feedback", "ticket_id": "{{ticket.id}}", "current_tags": "{{ticket.tags}}"}
A bare {"ticket_id": …} counts as "created".

Event webhooks carry Zendesk's envelope (`type`, `id`, `subject`, `detail`, `event`), string ids
and upper-case enums:
    zen:event-type:ticket.created        → created
    zen:event-type:ticket.comment_added  → comment (end-user authors only; staff → IgnorableEvent)
    zen:event-type:ticket.tags_changed   → feedback with the ticket's current tags
Any other event type → IgnorableEvent (the service answers 202 "ignored").
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import re
from datetime import datetime
from typing import Any, Mapping

from ..errors import PayloadError, SignatureError
from ..model import TicketRef

SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"
INVOCATION_HEADER = "x-zendesk-webhook-invocation-id"
MAX_CLOCK_SKEW_SECONDS = 300.0

# Zendesk signs `POST /api/v2/webhooks/test` requests for a webhook that does not exist yet with
# this documented secret (base64 of "this_secret_is_for_testing_only", used as given, not decoded).
DOCUMENTED_TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="

EVENT_PREFIX = "zen:event-type:"
TRIGGER_EVENTS = ("created", "comment", "feedback")

# Hints we keep from trigger bodies, and the characters a hint value may hold (codes, not text).
_HINT_KEYS = ("requester_locale", "via", "brand_id", "requester_id")
_HINT_VALUE = re.compile(r"^[A-Za-z0-9 _.:/()&+-]{1,64}$")
_TAG = re.compile(r"^[^\s\"'<>]{1,80}$")
_TICKET_ID = re.compile(r"^[1-9][0-9]{0,19}$")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class IgnorableEvent(Exception):
    """A verified delivery CareRoute has nothing to do for (the service answers 202, ignored).

    `reason` is short and never contains payload text.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------ signature


def sign(secret: str, timestamp: str, raw: bytes) -> str:
    """The signature Zendesk sends for `raw` at `timestamp` (the header value, as sent):
    base64 of HMAC-SHA256(secret, timestamp + body)."""
    inner_pad, outer_pad = _hmac_pads(secret)
    inner = inner_pad.copy()
    inner.update(timestamp.encode("utf-8"))
    inner.update(raw)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    return binascii.b2a_base64(outer.digest(), newline=False).decode("ascii")


@functools.lru_cache(maxsize=256)
def _hmac_pads(secret: str) -> tuple[Any, Any]:
    """SHA-256 states that have already absorbed the key's inner and outer pads (RFC 2104).
    Copying them per delivery costs about half of OpenSSL's one-shot HMAC, which sets the key up
    again on every call; the states live as long as the tenant's secret already does."""
    key = secret.encode("utf-8")
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_SHA256_BLOCK, b"\0")
    return (hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD)))


_SHA256_BLOCK = 64
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


# Zendesk stamps to the second, so under load thousands of deliveries share one stamp: keep the
# last few parsed (an invalid stamp raises and is never cached).
@functools.lru_cache(maxsize=64)
def _timestamp_seconds(value: str) -> float:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError("invalid timestamp") from None
    if moment.tzinfo is None:
        raise SignatureError("invalid timestamp")
    return moment.timestamp()


def _header(headers: Mapping[str, str], name: str) -> str:
    """Header `name` (lower-case), stripped; "" if absent. Deliveries already carry lower-case
    names, so the case-insensitive scan runs only for a mapping that doesn't."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return (value or "").strip()


def verify(headers: Mapping[str, str], raw: bytes, secret: str, now: float, *,
           query: Mapping[str, str] | None = None) -> None:
    """Raise SignatureError unless `raw` carries a fresh, valid Zendesk signature."""
    if not secret:
        # Never skip verification because a secret is missing.
        raise SignatureError("no secret configured")
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureError("missing signature")
    if abs(now - _timestamp_seconds(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise SignatureError("stale timestamp")
    expected = sign(secret, timestamp, raw)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise SignatureError("invalid signature")


# ------------------------------------------------------------------ payloads


def _ticket_id(value: Any) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if text.startswith("zen:ticket:"):
        text = text[len("zen:ticket:"):]
    if not _TICKET_ID.match(text):
        raise PayloadError("no valid ticket id")
    return text


def _optional_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    return text if _TICKET_ID.match(text) else None


def _hint(value: Any) -> str | None:
    """A hint value if it looks like a code; unrendered placeholders and free text are dropped."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    if not text or "{{" in text or not _HINT_VALUE.match(text):
        return None
    return text


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list):
        items = [item for item in value if isinstance(item, str)]
    else:
        return ()
    return tuple(dict.fromkeys(tag.lower() for tag in items if _TAG.match(tag)))


def _delivery_id(headers: Mapping[str, str], event_id: Any, raw: bytes) -> str:
    candidate = _header(headers, INVOCATION_HEADER)
    if not candidate and isinstance(event_id, str):
        candidate = event_id.strip()
    if candidate:
        if not _DELIVERY_ID.match(candidate):
            raise PayloadError("invalid delivery id")
        return candidate
    # No id from Zendesk (a hand-made request): derive one from the body so a resend dedupes.
    return "body-" + hashlib.sha256(raw).hexdigest()[:32]


# A decoder built once: json.loads(bytes) guesses the encoding and reaches the C scanner through
# three Python layers, about half of what reading a delivery costs.
_raw_decode = json.JSONDecoder().raw_decode


def _load(raw: bytes) -> dict[str, Any]:
    if not raw or not raw.strip():
        raise PayloadError("empty body")
    try:
        data = _decode_json(raw)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("body is not JSON") from None
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    return data


def _decode_json(raw: bytes) -> Any:
    """json.loads(raw), quicker for what Zendesk sends (UTF-8, no leading space); anything else
    goes through json.loads itself, which also accepts UTF-16/32 and a BOM."""
    try:
        text = raw.decode("utf-8")
        data, end = _raw_decode(text)
    except ValueError:  # UnicodeDecodeError is one; json.loads gives the definitive answer
        return json.loads(raw)
    if end != len(text) and text[end:].strip():
        return json.loads(raw)  # raises "Extra data"
    return data


def parse(raw: bytes, *, tenant_id: str, headers: Mapping[str, str],
          query: Mapping[str, str] | None = None) -> TicketRef:
    """Read a verified delivery. Raises PayloadError (unreadable) or IgnorableEvent (nothing to do)."""
    data = _load(raw)
    event_type = data.get("type")
    if isinstance(event_type, str) and event_type.startswith(EVENT_PREFIX):
        return _parse_event(data, event_type[len(EVENT_PREFIX):], tenant_id, headers, raw)
    if "ticket_id" in data:
        return _parse_trigger(data, tenant_id, headers, raw)
    raise PayloadError("not a Zendesk ticket delivery")


def _parse_trigger(data: dict[str, Any], tenant_id: str, headers: Mapping[str, str],
                   raw: bytes) -> TicketRef:
    event = data.get("event", "created")
    if event not in TRIGGER_EVENTS:
        raise PayloadError("unknown event")
    hints = {key: value for key in _HINT_KEYS
             if (given := data.get(key)) is not None and (value := _hint(given)) is not None}
    return TicketRef(
        vendor="zendesk",
        tenant_id=tenant_id,
        ticket_id=_ticket_id(data.get("ticket_id")),
        delivery_id=_delivery_id(headers, None, raw),
        event=event,
        comment_id=_optional_id(data.get("comment_id")) if event == "comment" else None,
        hints=hints,
        tags=_tags(data.get("current_tags")) if event == "feedback" else (),
    )


def _event_hints(detail: dict[str, Any]) -> dict[str, str]:
    hints: dict[str, str] = {}
    via = detail.get("via")
    channel = _hint(via.get("channel")) if isinstance(via, dict) else None
    if channel:
        hints["via"] = channel.lower()
    for key in ("brand_id", "requester_id"):
        value = _optional_id(detail.get(key))
        if value:
            hints[key] = value
    return hints


def _parse_event(data: dict[str, Any], kind: str, tenant_id: str, headers: Mapping[str, str],
                 raw: bytes) -> TicketRef:
    if kind not in ("ticket.created", "ticket.comment_added", "ticket.tags_changed"):
        raise IgnorableEvent("event type not used")
    detail = data.get("detail")
    if not isinstance(detail, dict):
        raise PayloadError("event without detail")
    ticket_id = _ticket_id(detail.get("id") or data.get("subject"))
    event_body = data.get("event") if isinstance(data.get("event"), dict) else {}
    common = dict(vendor="zendesk", tenant_id=tenant_id, ticket_id=ticket_id,
                  delivery_id=_delivery_id(headers, data.get("id"), raw), hints=_event_hints(detail))
    if kind == "ticket.created":
        return TicketRef(event="created", **common)
    if kind == "ticket.tags_changed":
        return TicketRef(event="feedback", tags=_tags(detail.get("tags")), **common)
    comment = event_body.get("comment")
    if not isinstance(comment, dict):
        raise PayloadError("comment event without comment")
    author = comment.get("author") if isinstance(comment.get("author"), dict) else {}
    if author.get("is_staff") in (True, "true", "TRUE", "True"):
        raise IgnorableEvent("not an end-user comment")
    return TicketRef(event="comment", comment_id=_optional_id(comment.get("id")), **common)
