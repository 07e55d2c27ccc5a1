"""The seams between the worker and a helpdesk vendor, and the registry of vendors.

Each vendor package provides:
- `plugin.<vendor>.webhook`: `verify(headers, raw, secret, now, *, query)` → None or SignatureError;
  `parse(raw, *, tenant_id, headers, query)` → TicketRef or PayloadError. Pure functions.
  `headers` and `query` are plain dicts; header names are lower-case.
- `plugin.<vendor>.client.make_client(tenant, context)` → a `VendorClient`.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Awaitable, Callable, Mapping, Protocol

from .config import TenantConfig
from .model import Plan, Ticket, TicketRef
from .ratelimit import RateBudget


class StepJournal(Protocol):
    """Per-job record of steps already done, so a retried job never repeats an effect."""

    async def get(self, step: str) -> Mapping[str, Any] | None: ...

    async def put(self, step: str, data: Mapping[str, Any]) -> None: ...


@dataclass
class OAuthTokens:
    access_token: str
    refresh_token: str | None
    expires_at: float | None  # unix time


class TokenStore(Protocol):
    """Where rotated OAuth tokens are kept (they outlive the tenants file's values)."""

    async def load(self, tenant_id: str) -> OAuthTokens | None: ...

    async def save(self, tenant_id: str, tokens: OAuthTokens) -> None: ...


class MemoryTokenStore:
    """TokenStore for one process without persistence (tests, `replay`)."""

    def __init__(self) -> None:
        self._tokens: dict[str, OAuthTokens] = {}

    async def load(self, tenant_id: str) -> OAuthTokens | None:
        return self._tokens.get(tenant_id)

    async def save(self, tenant_id: str, tokens: OAuthTokens) -> None:
        self._tokens[tenant_id] = tokens


class MemoryJournal:
    """StepJournal in memory (tests, `replay`)."""

    def __init__(self) -> None:
        self.steps: dict[str, Mapping[str, Any]] = {}

    async def get(self, step: str) -> Mapping[str, Any] | None:
        return self.steps.get(step)

    async def put(self, step: str, data: Mapping[str, Any]) -> None:
        self.steps[step] = dict(data)


@dataclass
class ClientContext:
    """What the service hands a vendor client besides the tenant's config."""

    budget: RateBudget
    token_store: TokenStore = field(default_factory=MemoryTokenStore)
    timeout_seconds: float = 15.0
    # Called with (method, path-template, status, seconds) after each vendor call (metrics).
    on_call: Callable[[str, str, int, float], None] | None = None


Replan = Callable[[Ticket], Plan]


class VendorClient(Protocol):
    async def fetch(self, ref: TicketRef) -> Ticket:
        """Read the ticket (and the comment for follow-ups): text, tags, stamp, requester."""

    async def apply(self, ref: TicketRef, ticket: Ticket, plan: Plan, *, replan: Replan,
                    journal: StepJournal) -> tuple[str, ...]:
        """Write the plan exactly once; on a concurrent change re-read, `replan`, retry.

        Returns the names of the actions actually written. Raises errors from plugin.errors.
        """

    async def aclose(self) -> None: ...


ClientFactory = Callable[[TenantConfig, ClientContext], VendorClient]


@functools.cache
def webhook_module(vendor: str) -> ModuleType:
    """The vendor's webhook module (imported once: this runs on every webhook)."""
    if vendor not in ("zendesk", "freshdesk"):
        raise KeyError(vendor)
    return importlib.import_module(f"plugin.{vendor}.webhook")


def client_factory(vendor: str) -> ClientFactory:
    if vendor not in ("zendesk", "freshdesk"):
        raise KeyError(vendor)
    return importlib.import_module(f"plugin.{vendor}.client").make_client


AsyncCallback = Callable[..., Awaitable[None]]
