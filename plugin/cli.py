"""The `careroute` command. Each subcommand is a thin shell over the modules that do the work."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .config import ServiceSettings, TenantConfig, load_tenants
from .errors import CareRouteError, ConfigError


def _settings(args: argparse.Namespace) -> ServiceSettings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "tenants_file"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return ServiceSettings(**overrides)


def _tenant(args: argparse.Namespace, settings: ServiceSettings) -> TenantConfig:
    if settings.tenants_file is None:
        raise ConfigError("no tenants file: pass --tenants FILE or set CAREROUTE_TENANTS_FILE")
    tenants = load_tenants(settings.tenants_file)
    if args.tenant not in tenants:
        raise ConfigError(f"tenant {args.tenant!r} is not in {settings.tenants_file}")
    return tenants[args.tenant]


# ------------------------------------------------------------------ serve

def cmd_serve(args: argparse.Namespace) -> int:
    from .handlers.http import serve
    from .logging import configure
    from .tenants import TenantDirectory

    settings = _settings(args)
    configure(level=settings.log_level, fmt=settings.log_format)
    # Without a tenants file the service serves the tenants in its registry (marketplace installs).
    tenants = (TenantDirectory.from_file(settings.tenants_file) if settings.tenants_file
               else TenantDirectory())
    serve(settings, tenants)
    return 0


# ---------------------------------------------------------------- sandbox

def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox.run import run_sandboxes

    asyncio.run(run_sandboxes(host=args.host, zendesk_port=args.zendesk_port,
                              freshdesk_port=args.freshdesk_port,
                              webhook_target=args.webhook_target))
    return 0


# ------------------------------------------------------------------- demo

def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(once=args.once, data_dir=args.data_dir, view_port=args.view_port)


# ----------------------------------------------------------------- replay

def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay_file

    settings = _settings(args)
    tenant = _tenant(args, settings)
    if tenant.vendor != args.vendor:
        raise ConfigError(f"tenant {tenant.id!r} is a {tenant.vendor} tenant, not {args.vendor}")
    result = asyncio.run(replay_file(Path(args.file), tenant))
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else result["rendered"])
    return 0


# -------------------------------------------------------------- provision

def cmd_provision(args: argparse.Namespace) -> int:
    from .provisioning import provision_tenant

    settings = _settings(args)
    tenant = _tenant(args, settings)
    if tenant.vendor != args.vendor:
        raise ConfigError(f"tenant {tenant.id!r} is a {tenant.vendor} tenant, not {args.vendor}")
    lines = asyncio.run(provision_tenant(tenant, args.service_url, dry_run=args.dry_run,
                                         data_dir=Path(settings.data_dir)))
    for line in lines:
        print(line)
    return 0


# ------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="careroute", description="Crisis-aware triage for Zendesk and Freshdesk tickets.")
    parser.add_argument("--version", action="version", version=f"careroute {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the webhook service and its workers")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", dest="data_dir", type=Path)
    serve.add_argument("--tenants", dest="tenants_file", type=Path, help="tenants TOML file")
    serve.set_defaults(func=cmd_serve)

    sandbox = sub.add_parser("sandbox", help="run the local Zendesk and Freshdesk emulators")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--zendesk-port", type=int, default=9001)
    sandbox.add_argument("--freshdesk-port", type=int, default=9002)
    sandbox.add_argument("--webhook-target", help="service base URL the emulators send webhooks to")
    sandbox.set_defaults(func=cmd_sandbox)

    demo = sub.add_parser("demo", help="sandboxes + service + sample tickets, then a results table")
    demo.add_argument("--once", action="store_true", help="exit after the results table")
    demo.add_argument("--data-dir", dest="data_dir", type=Path,
                      help="keep the demo's store here (default: a fresh temporary folder)")
    demo.add_argument("--view-port", type=int, default=8090, help="port of the agent view")
    demo.set_defaults(func=cmd_demo)

    from .screening.command import register as register_screen
    register_screen(sub)

    from .calibrate import register as register_calibrate
    from .feedback_report import register as register_feedback
    from .registry_command import register as register_tenants
    register_tenants(sub)
    register_calibrate(sub)
    register_feedback(sub)
    from .aws.command import register as register_aws
    register_aws(sub)

    replay = sub.add_parser("replay", help="show the plan for a saved webhook payload (writes nothing)")
    replay.add_argument("file", help="a saved webhook body, or {\"webhook\": …, \"ticket\": …}")
    replay.add_argument("--vendor", required=True, choices=["zendesk", "freshdesk"])
    replay.add_argument("--tenant", required=True)
    replay.add_argument("--tenants", dest="tenants_file", type=Path)
    replay.add_argument("--json", action="store_true", help="print the plan as JSON")
    replay.set_defaults(func=cmd_replay)

    provision = sub.add_parser("provision", help="create the webhook, triggers/rules and macros")
    provision.add_argument("vendor", choices=["zendesk", "freshdesk"])
    provision.add_argument("--tenant", required=True)
    provision.add_argument("--service-url", required=True)
    provision.add_argument("--tenants", dest="tenants_file", type=Path)
    provision.add_argument("--data-dir", dest="data_dir", type=Path)
    provision.add_argument("--dry-run", action="store_true", help="print what would be done")
    provision.set_defaults(func=cmd_provision)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CareRouteError as exc:
        print(f"careroute: {exc.reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
