"""Agent feedback read from a ticket's tags (pure).

An agent tells CareRoute it was wrong by tags, in the helpdesk they already use:
- removing the tier tag (the marker stays) or adding `{prefix}_not_crisis` → "false_positive";
- adding `{prefix}_missed` to a ticket CareRoute did not flag → "missed".
"""

from __future__ import annotations

from .config import TenantConfig
from .model import Ticket, TicketRef


def feedback_kind(ref: TicketRef, ticket: Ticket, tenant: TenantConfig) -> str | None:
    tags = set(ticket.tags)
    prefix = tenant.tag_prefix
    if f"{prefix}_not_crisis" in tags:
        return "false_positive"
    if f"{prefix}_missed" in tags:
        return "missed"
    if tenant.marker_tag in tags and not tags.intersection(tenant.tier_tags):
        return "false_positive"
    return None
