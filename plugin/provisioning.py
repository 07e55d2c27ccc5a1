"""`careroute provision`: run a vendor's idempotent provisioning for one tenant, report each step.

Zendesk generates the webhook signing secret; it is written to `{data_dir}/secrets/<tenant>.
webhook_secret` (mode 0600) so the tenants file can say `webhook_secret = "file:…"` — it is never
printed. Freshdesk uses the tenant's own secret, which provisioning puts in the rule's Basic auth.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import TenantConfig
from .vendors import MemoryTokenStore


def store_secret(data_dir: Path, tenant_id: str, secret: str) -> Path:
    folder = data_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{tenant_id}.webhook_secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return path


async def provision_tenant(tenant: TenantConfig, service_url: str, *, dry_run: bool,
                           data_dir: Path) -> list[str]:
    """Provision `tenant`; returns the lines to show (steps, then manual steps or next steps)."""
    from .ratelimit import RateBudget
    from .vendors import ClientContext

    context = ClientContext(budget=RateBudget(tenant.requests_per_minute or 200,
                                              headroom=tenant.rate_headroom),
                            token_store=MemoryTokenStore())
    lines: list[str] = []
    if tenant.vendor == "zendesk":
        from .zendesk.provision import provision

        result = await provision(tenant, service_url, dry_run=dry_run, context=context)
        lines += result.steps
        if result.webhook_secret and not dry_run:
            path = store_secret(Path(data_dir), tenant.id, result.webhook_secret)
            if result.webhook_secret != tenant.webhook_secret.get_secret_value():
                lines.append(f"The webhook's signing secret was saved to {path}.")
                lines.append(f'Set webhook_secret = "file:{path.resolve()}" for tenant '
                             f"{tenant.id!r} in the tenants file, then restart the service.")
    else:
        from .freshdesk.provision import provision

        result = await provision(tenant, service_url, dry_run=dry_run, context=context)
        lines += result.steps
        if result.manual_steps:
            lines.append("Some steps need doing by hand in Freshdesk:")
            lines += [f"  {step}" for step in result.manual_steps]
    if dry_run:
        lines.append("(dry run: nothing was changed)")
    return lines
