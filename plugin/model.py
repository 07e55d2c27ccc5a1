"""The shared vocabulary: plain, immutable data passed between the pure core and the edges.

Nothing here does I/O. Ticket text lives only in `Ticket.text` (and `Ticket.subject`); every other
type is safe to log, audit or export because it carries ids, tiers, rule ids and spans — never text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

Tier = Literal["none", "concern", "high", "imminent"]
TIERS: tuple[Tier, ...] = ("none", "concern", "high", "imminent")
ACTION_TIERS: tuple[Tier, ...] = ("concern", "high", "imminent")

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")

Vendor = Literal["zendesk", "freshdesk"]
VENDORS: tuple[Vendor, ...] = ("zendesk", "freshdesk")

# What a webhook delivery asks for. "created": a new ticket; "comment": a later end-user message
# (screened too; it can only escalate); "feedback": an agent changed CareRoute's tags.
EventKind = Literal["created", "comment", "feedback"]

FLAGS = ("third_party", "negated", "historical", "hypothetical")


def tier_rank(tier: str) -> int:
    """Position of a tier in none < concern < high < imminent (unknown → ValueError)."""
    return TIERS.index(tier)  # type: ignore[arg-type]


def priority_rank(priority: str | None) -> int:
    """low < normal < high < urgent; no priority ranks below low."""
    if priority is None:
        return -1
    return PRIORITIES.index(priority)  # type: ignore[arg-type]


def max_tier(a: str, b: str) -> Tier:
    return a if tier_rank(a) >= tier_rank(b) else b  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Signal:
    """One rule that fired: which rule, what it means, and where (offsets into the original text)."""

    rule: str
    category: str
    language: str
    start: int
    end: int
    weight: float
    # Scope modifiers that applied to this match (subset of FLAGS).
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Assessment:
    tier: Tier
    score: float
    signals: tuple[Signal, ...] = ()
    flags: frozenset[str] = frozenset()
    language: str = "und"

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.rule for s in self.signals))

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.category for s in self.signals))


NO_RISK = Assessment(tier="none", score=0.0)


@dataclass(frozen=True, slots=True)
class TicketRef:
    """What a webhook delivery tells us: which ticket, which delivery, and optional hints.

    The webhook is a doorbell: the text is always read through the API, never from here.
    """

    vendor: Vendor
    tenant_id: str
    ticket_id: str
    delivery_id: str
    event: EventKind = "created"
    # The end-user comment / conversation that triggered a follow-up screen, if known.
    comment_id: str | None = None
    # Requester locale, via/channel, brand… as given by the payload. Ids and codes only.
    hints: Mapping[str, str] = field(default_factory=dict)
    # Feedback deliveries: the ticket's current tags as sent by the vendor.
    tags: tuple[str, ...] = ()

    @property
    def dedupe_key(self) -> str:
        """Same ticket through two webhook routes → the same key, so it is screened once.

        New tickets dedupe on the ticket; follow-up messages on ticket + comment; feedback on the
        delivery (each tag change is its own event).
        """
        base = f"{self.vendor}:{self.tenant_id}:{self.ticket_id}"
        if self.event == "created":
            return f"{base}:created"
        if self.event == "comment":
            return f"{base}:comment:{self.comment_id or self.delivery_id}"
        return f"{base}:feedback:{self.delivery_id}"


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket as read from the vendor API. `text` is the customer's words to screen."""

    vendor: Vendor
    tenant_id: str
    ticket_id: str
    text: str
    subject: str = ""
    tags: tuple[str, ...] = ()
    priority: Priority | None = None
    group_id: int | None = None
    assignee_id: int | None = None
    status: str = "open"
    # Opaque concurrency stamp: Zendesk `updated_at` (for `updated_stamp`), Freshdesk `updated_at`.
    updated_stamp: str | None = None
    requester_id: str | None = None
    requester_locale: str | None = None
    requester_time_zone: str | None = None
    # Job ids found in CareRoute notes already on the ticket (idempotency markers).
    note_markers: frozenset[str] = frozenset()
    # The comment / conversation this screen is about, when it is a follow-up message.
    comment_id: str | None = None

    def __repr__(self) -> str:  # never let text reach a log through repr()
        return (
            f"Ticket(vendor={self.vendor!r}, tenant_id={self.tenant_id!r}, "
            f"ticket_id={self.ticket_id!r}, tags={self.tags!r}, priority={self.priority!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write to one ticket. Empty (`is_empty`) means: write nothing."""

    tier: Tier
    add_tags: tuple[str, ...] = ()
    priority: Priority | None = None
    group_id: int | None = None
    note_html: str | None = None
    macro_id: int | None = None
    # Apply the macro through the API (Zendesk) instead of only suggesting it in the note.
    apply_macro: bool = False
    unassign: bool = False
    # Assign to this agent (wellbeing rota in the trained group); None leaves the assignee.
    assignee_id: int | None = None
    # Public reply to the customer; only for imminent and only where the tenant enabled it.
    auto_reply_html: str | None = None
    # Job id written into the note (hidden) so a retry can see the note is already there.
    marker: str | None = None
    # Audit metadata for the vendor (ids, tier, score; never text).
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not (
            self.add_tags
            or self.priority
            or self.group_id is not None
            or self.note_html
            or (self.macro_id is not None and self.apply_macro)
            or self.unassign
            or self.assignee_id is not None
            or self.auto_reply_html
        )

    def actions(self) -> tuple[str, ...]:
        """Names of the actions in this plan, for audit rows and logs."""
        names = []
        if self.add_tags:
            names.append("tags")
        if self.priority:
            names.append("priority")
        if self.group_id is not None:
            names.append("group")
        if self.note_html:
            names.append("note")
        if self.macro_id is not None and self.apply_macro:
            names.append("macro")
        if self.unassign:
            names.append("unassign")
        if self.assignee_id is not None:
            names.append("assign")
        if self.auto_reply_html:
            names.append("auto_reply")
        return tuple(names)


EMPTY_PLAN = Plan(tier="none")


@dataclass(frozen=True, slots=True)
class Decision:
    """One audit row: what CareRoute decided and did for one job. No ticket text, ever."""

    tenant_id: str
    vendor: Vendor
    ticket_id: str
    delivery_id: str
    job_id: str
    event: EventKind
    tier: Tier
    score: float
    rule_ids: tuple[str, ...]
    categories: tuple[str, ...]
    flags: tuple[str, ...]
    language: str
    actions: tuple[str, ...]
    outcome: str  # applied | nothing_to_do | already_handled | terminal:<reason> | feedback:<kind>
    received_at: float
    decided_at: float
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    # ISO 3166 country whose resources were shown (from locale / time zone / tenant default).
    country: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a vendor response said about the caller's budget (all optional)."""

    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None
    retry_after: float | None = None


# The note CareRoute writes carries the job id as this literal text (hidden in the HTML), so a
# retried job can find its own note in the ticket's comments / conversations and not post twice.
NOTE_MARKER_PREFIX = "careroute-job:"
_MARKER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def note_marker(job_id: str) -> str:
    return f"{NOTE_MARKER_PREFIX}{job_id}"


def find_note_markers(body: str) -> frozenset[str]:
    """Job ids of CareRoute markers found in a comment / note body (HTML or plain)."""
    found = set()
    start = body.find(NOTE_MARKER_PREFIX)
    while start != -1:
        i = start + len(NOTE_MARKER_PREFIX)
        j = i
        while j < len(body) and body[j] in _MARKER_CHARS:
            j += 1
        if j > i:
            found.add(body[i:j])
        start = body.find(NOTE_MARKER_PREFIX, j)
    return frozenset(found)
