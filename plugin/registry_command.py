"""`careroute tenants …`: manage the tenant registry in the data dir.

Each command opens the store beside a running service (SQLite WAL allows a second connection) and
never prints a secret, except a newly rotated one, once. A running service picks registry changes
made here up at its next registry reload (see plugin.zendesk.settings_sync.SettingsSync).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

from .config import ServiceSettings, TenantConfig, tenant_from_dict
from .errors import ConfigError
from .registry import ROTATABLE, TenantRegistry, generate_key
from .store import Store
from .tenants import TenantDirectory

ACTOR = "cli"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tenants", help="list, add, change, disable tenants in the registry",
        description="Manage the tenants registered in the data dir (secrets encrypted with "
                    "CAREROUTE_SECRET_KEY). Secrets are never printed, except a rotated one once.")
    commands = parser.add_subparsers(dest="tenants_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func: Callable[..., Any]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--data-dir", dest="data_dir", type=Path,
                         help="data directory (default: CAREROUTE_DATA_DIR or ./data)")
        sub.add_argument("--tenants", dest="tenants_file", type=Path,
                         help="tenants file, so its tenants can be changed through the registry")
        sub.add_argument("--insecure-dev", action="store_true",
                         help="store secrets unencrypted when no key is set (demo only)")
        sub.set_defaults(func=lambda args: _run(args, func))
        return sub

    action("list", "list registered tenants (no secrets)", _list)
    add = action("add", "register tenants from a TOML file ([tenant] or [[tenants]])", _add)
    add.add_argument("--file", required=True, type=Path, metavar="TENANT.toml")
    add.add_argument("--replace", action="store_true", help="overwrite tenants already registered")
    update = action("update", "change settings: --set key=value (dotted keys)", _update)
    update.add_argument("tenant_id", metavar="ID")
    update.add_argument("--set", dest="assignments", action="append", required=True,
                        metavar="KEY=VALUE", help="e.g. screening.high=0.7 (TOML value; repeat)")
    for name, func in (("disable", _disable), ("enable", _enable)):
        action(name, f"{name} a tenant (takes effect on the next ticket)", func) \
            .add_argument("tenant_id", metavar="ID")
    rotate = action("rotate-secret", "replace a secret and print the new value once", _rotate)
    rotate.add_argument("tenant_id", metavar="ID")
    rotate.add_argument("--which", choices=ROTATABLE, default="webhook_secret")
    key = commands.add_parser("new-key", help="print a new CAREROUTE_SECRET_KEY value")
    key.set_defaults(func=lambda _args: print(generate_key()) or 0)


def _run(args: argparse.Namespace, func: Callable[[argparse.Namespace, TenantRegistry],
                                                   Awaitable[int]]) -> int:
    settings = ServiceSettings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    directory = TenantDirectory.from_file(args.tenants_file) if args.tenants_file else None

    async def go() -> int:
        store = Store(Path(settings.data_dir) / "careroute.sqlite3")
        await store.open()  # not exclusive: the service may be running
        try:
            registry = TenantRegistry(store, secret_key=key, directory=directory,
                                      insecure_dev=args.insecure_dev)
            return await func(args, registry)
        finally:
            await store.close()

    return asyncio.run(go())


def parse_assignment(text: str) -> tuple[str, Any]:
    """`screening.high=0.7` → ("screening.high", 0.7). The value is read as TOML; anything that
    is not a TOML value is taken as a string (`tag_prefix=acme`)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {key or text!r}: expected KEY=VALUE")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def read_tenant_file(path: Path) -> list[TenantConfig]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(f"cannot read {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    tables = data.get("tenants", [])
    if "tenant" in data:
        tables = [data["tenant"], *tables]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: expected a [tenant] table or [[tenants]] tables")
    return [tenant_from_dict(table, index=i, base_dir=path.resolve().parent)
            for i, table in enumerate(tables)]


def describe(tenant: TenantConfig) -> str:
    account = tenant.subdomain or tenant.domain or tenant.base_url or "-"
    s = tenant.screening
    state = "enabled" if tenant.enabled else "disabled"
    return (f"{tenant.id:<20} {tenant.vendor:<9} {state:<8} {account:<28} "
            f"{s.concern:.2f}/{s.high:.2f}/{s.imminent:.2f}  {tenant.tag_prefix}")


async def _list(args: argparse.Namespace, registry: TenantRegistry) -> int:
    tenants = await registry.all()
    if not tenants:
        print("no tenants registered")
        return 0
    print(f"{'ID':<20} {'VENDOR':<9} {'STATE':<8} {'ACCOUNT':<28} THRESHOLDS        TAG PREFIX"
          "   LAST CHANGE")
    for tenant in tenants:
        last = await registry.changes(tenant.id, limit=1)
        when = (datetime.fromtimestamp(last[0]["at"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
                + f" by {last[0]['actor']}") if last else "-"
        print(f"{describe(tenant)}  {when}")
    return 0


async def _add(args: argparse.Namespace, registry: TenantRegistry) -> int:
    for tenant in read_tenant_file(args.file):
        await registry.add(tenant, actor=ACTOR, replace=args.replace)
        print(f"registered {tenant.id} ({tenant.vendor})")
    return 0


async def _update(args: argparse.Namespace, registry: TenantRegistry) -> int:
    changes = dict(parse_assignment(text) for text in args.assignments)
    before = await registry.changes(args.tenant_id, limit=1)
    await registry.update(args.tenant_id, changes, actor=ACTOR)
    after = await registry.changes(args.tenant_id, limit=1)
    if after and after != before:
        print(f"updated {args.tenant_id}: {', '.join(after[0]['keys'])}")
    else:
        print(f"{args.tenant_id}: nothing changed")
    return 0


async def _disable(args: argparse.Namespace, registry: TenantRegistry) -> int:
    await registry.disable(args.tenant_id, actor=ACTOR)
    print(f"disabled {args.tenant_id}")
    return 0


async def _enable(args: argparse.Namespace, registry: TenantRegistry) -> int:
    await registry.enable(args.tenant_id, actor=ACTOR)
    print(f"enabled {args.tenant_id}")
    return 0


async def _rotate(args: argparse.Namespace, registry: TenantRegistry) -> int:
    value = await registry.rotate_secret(args.tenant_id, args.which, actor=ACTOR)
    print(f"new {args.which} for {args.tenant_id} (shown once; store it now):", file=sys.stderr)
    print(value)
    if args.which == "webhook_secret":
        print("re-run `careroute provision freshdesk` so the automation rule sends it",
              file=sys.stderr)
    return 0
