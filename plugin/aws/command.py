"""`careroute aws-tenants push TENANTS.toml`: a tenants file → the AWS deployment's tenants table
(config) and SSM SecureString parameters (secrets). Validates every tenant first; prints the
parameter names it wrote, never a value.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ..config import TenantConfig, load_tenants


def tenant_to_raw(tenant: TenantConfig) -> dict[str, Any]:
    """A validated tenant → a tenants-file table with its secrets in clear (for SSM)."""
    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple, frozenset, set)):
            return [plain(v) for v in value]
        return value

    return plain(tenant.model_dump(mode="python"))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "aws-tenants", help="push tenants to the AWS deployment (DynamoDB config, SSM secrets)")
    actions = parser.add_subparsers(dest="aws_action", required=True, metavar="ACTION")
    push = actions.add_parser("push", help="validate a tenants file and upload every tenant")
    push.add_argument("file", type=Path, help="tenants TOML file (env:/file: secrets resolved)")
    push.add_argument("--stage", default="dev", help="serverless stage (default: dev)")
    push.add_argument("--tenants-table", help="default: careroute-STAGE-tenants")
    push.add_argument("--ssm-prefix", help="default: /careroute/STAGE")
    push.add_argument("--region", help="AWS region (default: the AWS CLI's)")
    push.set_defaults(func=run_push)


def run_push(args: argparse.Namespace) -> int:
    from .settings import AwsClients, AwsSettings
    from .tenants import upload_tenant

    tenants = load_tenants(args.file)  # ConfigError names tenant and key, never a value
    settings = AwsSettings(
        jobs_table="", audit_table="", tokens_table="", queue_url="", dlq_url="",
        tenants_table=args.tenants_table or f"careroute-{args.stage}-tenants",
        ssm_prefix=(args.ssm_prefix or f"/careroute/{args.stage}").rstrip("/"),
        region=args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        endpoint_url=os.environ.get("CAREROUTE_AWS_ENDPOINT_URL") or None)
    clients = AwsClients(settings)
    for tenant in tenants.values():
        names = upload_tenant(settings, clients, tenant_to_raw(tenant))
        print(f"{tenant.id}: config → {settings.tenants_table}; secrets → {', '.join(names)}")
    return 0
