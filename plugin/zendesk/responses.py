"""Reading Zendesk API responses: rate-limit headers, error bodies, tickets, comments, users.

Pure functions over headers and decoded JSON, so the recorded real responses in
reference/fixtures/zendesk can be fed straight through them in tests.
Nothing here copies response text into an exception message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

from ..errors import (
    ConflictError,
    PermanentVendorError,
    RateLimitedError,
    TicketClosedError,
    TransientVendorError,
    VendorError,
)
from ..model import PRIORITIES, RateLimitInfo

# Account-wide limit headers, in every spelling Zendesk has used (zendesk.md §3).
_ACCOUNT_SPELLINGS = (
    ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"),
    ("rate-limit", "rate-limit-remaining", "rate-limit-reset"),
    ("x-rate-limit", "x-rate-limit-remaining", None),
)
# Per-endpoint headers in `total=…; remaining=…; resets=…` form that bind the whole account.
# The per-ticket header is left out: one busy ticket must not stall the tenant's other tickets.
PER_TICKET_HEADER = "zendesk-ratelimit-per-ticket-updates"
_ENDPOINT_HEADER = re.compile(r"^zendesk-rate-?limit-")
DEFAULT_RETRY_AFTER = 60.0

# Error codes we may name in a message (they come from Zendesk, never from ticket text).
_KNOWN_CODES = frozenset({
    "RecordNotFound", "RecordInvalid", "TooManyValues", "invalid_token", "Forbidden",
    "APIRateLimitExceeded", "UpdateConflict", "InvalidEndpoint", "Unauthorized",
})


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value.strip()))
    except ValueError:
        return None


def parse_endpoint_limit(value: str) -> RateLimitInfo:
    """`total=30; remaining=29; resets=468` → RateLimitInfo."""
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, _, number = item.partition("=")
        parts[key.strip().lower()] = number.strip()
    resets = _int(parts.get("resets"))
    return RateLimitInfo(limit=_int(parts.get("total")), remaining=_int(parts.get("remaining")),
                         reset_seconds=float(resets) if resets is not None else None)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (an integer, or an HTTP date when `now` is given)."""
    if value is None or not value.strip():
        return None
    number = _int(value)
    if number is not None:
        return float(max(0, number))
    if now is None:
        return None
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def _fraction(info: RateLimitInfo) -> float:
    if info.limit and info.remaining is not None:
        return info.remaining / info.limit
    return 1.0


def rate_limit_info(headers: Mapping[str, str], *, now: float | None = None) -> RateLimitInfo:
    """The tightest account-level budget the response reports (all fields optional)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    candidates: list[RateLimitInfo] = []
    for limit_key, remaining_key, reset_key in _ACCOUNT_SPELLINGS:
        if limit_key in lowered or remaining_key in lowered:
            reset = _int(lowered.get(reset_key)) if reset_key else None
            candidates.append(RateLimitInfo(
                limit=_int(lowered.get(limit_key)), remaining=_int(lowered.get(remaining_key)),
                reset_seconds=float(reset) if reset is not None else None))
            break
    for name, value in lowered.items():
        if _ENDPOINT_HEADER.match(name) and name != PER_TICKET_HEADER:
            candidates.append(parse_endpoint_limit(value))
    retry_after = parse_retry_after(lowered.get("retry-after"), now)
    if not candidates:
        return RateLimitInfo(retry_after=retry_after)
    tightest = min(candidates, key=_fraction)
    return RateLimitInfo(limit=tightest.limit, remaining=tightest.remaining,
                         reset_seconds=tightest.reset_seconds, retry_after=retry_after)


def per_ticket_limit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    for name, value in headers.items():
        if name.lower() == PER_TICKET_HEADER:
            return parse_endpoint_limit(value)
    return None


# ------------------------------------------------------------------ errors


def error_code(body: Any) -> str | None:
    """The `error` code of a body; `error` may be a string or an object (`title`/`code`)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("code") or error.get("title")
    if isinstance(error, str):
        return error
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        return code if isinstance(code, str) else None
    return None


def _mentions_closed(body: Any) -> bool:
    """True for 422 "Status closed prevents ticket update" (found in `details` or `description`)."""
    if not isinstance(body, dict):
        return False
    texts: list[str] = []
    details = body.get("details")
    if isinstance(details, dict):
        for items in details.values():
            if isinstance(items, list):
                texts.extend(str(i.get("description", "")) for i in items if isinstance(i, dict))
    if isinstance(body.get("description"), str):
        texts.append(body["description"])
    return any("closed prevents" in text.lower() for text in texts)


def error_for(status: int, body: Any, headers: Mapping[str, str], *,
              now: float | None = None) -> VendorError:
    """Map a failed response to our exception tree. Messages are ours; codes only if known."""
    code = error_code(body)
    named = f" ({code})" if code in _KNOWN_CODES else ""
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"), now)
        return RateLimitedError(f"zendesk rate limit{named}",
                                retry_after=DEFAULT_RETRY_AFTER if retry_after is None else retry_after)
    if status == 409:
        return ConflictError(f"zendesk update conflict{named}", status=409)
    if status == 422 and _mentions_closed(body):
        return TicketClosedError("ticket is closed", status=422)
    if status >= 500:
        return TransientVendorError(f"zendesk server error {status}", status=status)
    if status in (401, 403):
        return PermanentVendorError(f"zendesk refused the credentials {status}{named}", status=status)
    if status == 404:
        return PermanentVendorError(f"zendesk record not found{named}", status=404)
    return PermanentVendorError(f"zendesk rejected the request {status}{named}", status=status)


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class CommentRecord:
    id: str
    author_id: str | None
    public: bool
    plain_text: str
    html: str

    def __repr__(self) -> str:  # keep text out of logs
        return f"CommentRecord(id={self.id!r}, author_id={self.author_id!r}, public={self.public})"


def _id(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value)
    return text if text and text != "0" else None


def _int_id(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", False) else None
    except (TypeError, ValueError):
        return None


def parse_ticket(body: Any) -> dict[str, Any]:
    """`{"ticket": {...}}` → the fields CareRoute uses."""
    ticket = body.get("ticket") if isinstance(body, dict) else None
    if not isinstance(ticket, dict) or "id" not in ticket:
        raise TransientVendorError("zendesk ticket response unreadable")
    priority = ticket.get("priority")
    priority = priority.lower() if isinstance(priority, str) else None
    tags = ticket.get("tags") if isinstance(ticket.get("tags"), list) else []
    return {
        "id": str(ticket["id"]),
        "subject": ticket.get("subject") or "",
        "description": ticket.get("description") or "",
        "tags": tuple(str(t) for t in tags),
        "priority": priority if priority in PRIORITIES else None,
        "group_id": _int_id(ticket.get("group_id")),
        "assignee_id": _int_id(ticket.get("assignee_id")),
        "status": str(ticket.get("status") or "open").lower(),
        "updated_at": ticket.get("updated_at"),
        "requester_id": _id(ticket.get("requester_id")),
    }


def parse_comments(body: Any) -> tuple[list[CommentRecord], str | None]:
    """A comments page → (comments, next page URL or None)."""
    items = body.get("comments") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise TransientVendorError("zendesk comments response unreadable")
    comments = []
    for item in items:
        if not isinstance(item, dict) or "id" not in item:
            continue
        plain = item.get("plain_body")
        if not isinstance(plain, str):
            plain = item.get("body") if isinstance(item.get("body"), str) else ""
        html = item.get("html_body") if isinstance(item.get("html_body"), str) else ""
        comments.append(CommentRecord(id=str(item["id"]), author_id=_id(item.get("author_id")),
                                      public=bool(item.get("public", True)), plain_text=plain,
                                      html=html))
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    links = body.get("links") if isinstance(body.get("links"), dict) else {}
    next_url = body.get("next_page")  # offset pagination
    if meta.get("has_more") and isinstance(links.get("next"), str):
        next_url = links["next"]
    return comments, next_url if isinstance(next_url, str) and next_url else None


def parse_user(body: Any) -> dict[str, Any]:
    """`{"user": {...}}` → locale and IANA time zone (`iana_time_zone` preferred)."""
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        raise TransientVendorError("zendesk user response unreadable")
    zone = user.get("iana_time_zone")
    if not isinstance(zone, str) or "/" not in zone:
        fallback = user.get("time_zone")
        zone = fallback if isinstance(fallback, str) and "/" in fallback else None
    locale = user.get("locale")
    return {"id": _id(user.get("id")), "locale": locale if isinstance(locale, str) else None,
            "time_zone": zone, "role": user.get("role")}


def parse_macro_result(body: Any) -> dict[str, Any]:
    """`{"result": {"ticket": {...}}}` from macro apply → the ticket as the macro would leave it."""
    result = body.get("result") if isinstance(body, dict) else None
    ticket = result.get("ticket") if isinstance(result, dict) else None
    if not isinstance(ticket, dict):
        raise TransientVendorError("zendesk macro response unreadable")
    return ticket


def parse_oauth_tokens(body: Any) -> tuple[str, str | None, float | None]:
    """Token endpoint answer → (access token, refresh token, expires_in seconds)."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise PermanentVendorError("zendesk token response unreadable")
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    return (body["access_token"], refresh if isinstance(refresh, str) else None,
            float(expires_in) if isinstance(expires_in, (int, float)) else None)
