"""Wellbeing rota: share crisis tickets fairly inside the trained group, with a cap per shift.

Off unless a tenant enables it. Guidance (screening-guidance.md §5): rotation and caps on
high/imminent cases per shift for the routing group. When enabled, a crisis ticket routed to the
trained group is assigned to the member with the fewest crisis tickets this shift, the one whose
last crisis ticket is longest ago breaking ties; nobody is assigned when every member is at the
cap (the ticket waits in the group queue for a lead to pick it up, as without the rota).

    WellbeingSettings                       the tenant's `[tenants.wellbeing]` table
    settings_for(tenant) -> WellbeingSettings
    choose_agent(members, cap) -> int | None                                   (pure)
    CrisisLoad(store).rota(tenant_id, member_ids, settings, now) -> Rota      (reads the ledger)
    CrisisLoad(store).record(tenant_id, agent_id, job_id, at)                  (after a write)
    await rota_for(tenant, tier, client, load, now) -> Rota | None      (the worker's one call)

The pure parts import nothing with I/O; `CrisisLoad` talks to the store only through
`store.run`, so `policy` can import this module and stay pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the store is only used by the I/O edge below
    import sqlite3

    from .store import Store

ActionTier = Literal["concern", "high", "imminent"]


class WellbeingSettings(BaseModel):
    """Tenants file: `[tenants.wellbeing]` with `enabled = true` and optionally the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # Crisis tickets one agent receives from the rota in one shift.
    max_per_shift: int = Field(3, ge=1, le=100)
    # Length of a shift: the rota counts each agent's crisis tickets over this window.
    shift_hours: float = Field(8.0, gt=0, le=24)
    # The tiers the rota assigns (and counts).
    tiers: tuple[ActionTier, ...] = ("high", "imminent")


DISABLED = WellbeingSettings()


def settings_for(tenant: Any) -> WellbeingSettings:
    """The tenant's rota settings (`TenantConfig.wellbeing` when present), else off."""
    value = getattr(tenant, "wellbeing", None)
    if isinstance(value, WellbeingSettings):
        return value
    if isinstance(value, Mapping):
        return WellbeingSettings.model_validate(dict(value))
    return DISABLED


@dataclass(frozen=True, slots=True)
class MemberLoad:
    agent_id: int
    crisis_count: int = 0  # crisis tickets given by the rota this shift
    last_crisis_at: float | None = None  # when the last one was given (any time)


@dataclass(frozen=True, slots=True)
class Rota:
    """The trained group's members and their crisis load, as read just before planning."""

    members: tuple[MemberLoad, ...]
    cap: int

    def choose(self) -> int | None:
        return choose_agent(self.members, self.cap)


def choose_agent(members: Iterable[MemberLoad], cap: int) -> int | None:
    """Least crisis load this shift first, then least recent crisis, then lowest id (stable)."""
    eligible = [m for m in members if m.crisis_count < cap]
    if not eligible:
        return None
    best = min(eligible, key=lambda m: (m.crisis_count,
                                        -1.0 if m.last_crisis_at is None else m.last_crisis_at,
                                        m.agent_id))
    return best.agent_id


# ------------------------------------------------------------------ the ledger (I/O edge)

SCHEMA = """
CREATE TABLE IF NOT EXISTS wellbeing_assignments (
    job_id     TEXT PRIMARY KEY,   -- one assignment per job, so a retried job counts once
    tenant_id  TEXT NOT NULL,
    agent_id   INTEGER NOT NULL,
    at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS wellbeing_agent ON wellbeing_assignments (tenant_id, agent_id, at);
"""


class GroupMembers(Protocol):
    async def group_members(self, group_id: int) -> tuple[int, ...]: ...


async def rota_for(tenant: Any, tier: str, client: GroupMembers, load: "CrisisLoad",
                   now: float) -> Rota | None:
    """The rota for one ticket, or None when the tenant's rota does not apply to this tier.

    Reads the trained group's members through the vendor API (one call; crisis tickets are few)
    and their load from the ledger.
    """
    settings = settings_for(tenant)
    if not settings.enabled or tier not in settings.tiers or tenant.trained_group_id is None:
        return None
    members = await client.group_members(tenant.trained_group_id)
    return await load.rota(tenant.id, members, settings, now)


class CrisisLoad:
    """Who received which crisis ticket from the rota, in the service's SQLite store."""

    def __init__(self, store: "Store") -> None:
        self.store = store
        self._ready = False

    async def _run(self, fn):
        if not self._ready:
            await self.store.run(lambda conn: conn.executescript(SCHEMA))
            self._ready = True
        return await self.store.run(fn)

    async def rota(self, tenant_id: str, member_ids: Sequence[int], settings: WellbeingSettings,
                   now: float) -> Rota:
        since = now - settings.shift_hours * 3600

        def query(conn: "sqlite3.Connection") -> dict[int, tuple[int, float | None]]:
            rows = conn.execute(
                "SELECT agent_id, SUM(at >= ?), MAX(at) FROM wellbeing_assignments"
                " WHERE tenant_id = ? GROUP BY agent_id", (since, tenant_id)).fetchall()
            return {int(agent): (int(count or 0), last) for agent, count, last in rows}

        loads = await self._run(query)
        members = tuple(MemberLoad(agent, *loads.get(agent, (0, None)))
                        for agent in dict.fromkeys(member_ids))
        return Rota(members, settings.max_per_shift)

    async def record(self, tenant_id: str, agent_id: int, job_id: str, at: float) -> None:
        await self._run(lambda conn: conn.execute(
            "INSERT OR IGNORE INTO wellbeing_assignments (job_id, tenant_id, agent_id, at)"
            " VALUES (?,?,?,?)", (job_id, tenant_id, int(agent_id), at)))
