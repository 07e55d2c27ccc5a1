"""Tenants on AWS: configuration in a DynamoDB table, secrets in SSM parameters.

Tenants table item: {"tenant_id": "acme", "config": "<JSON: the tenant's table from a tenants
file, without its secrets>"}. Secrets are SecureString parameters, one per secret, under
    {prefix}/tenants/{tenant_id}/webhook_secret
    {prefix}/tenants/{tenant_id}/admin_token
    {prefix}/tenants/{tenant_id}/auth/token | auth/key | auth/access_token | auth/refresh_token
                                           | auth/client_secret
and are read with one GetParametersByPath per tenant. `split_tenant` turns a tenants-file table
into exactly these two parts (what `upload_tenant` writes).

A Lambda container caches each tenant for `cache_seconds` (and an unknown id for a shorter
time, so a stream of bad URLs does not become a stream of reads). Rotated OAuth tokens live in
the tokens table (`DynamoTokenStore`), as `SqliteTokenStore` does for one process.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Mapping

from ..config import TenantConfig, secret_values, tenant_from_dict
from ..errors import ConfigError
from ..logging import get_logger, redactor
from ..vendors import OAuthTokens
from .settings import AwsClients, AwsSettings, aws_call

log = get_logger("careroute.aws.tenants")

SECRET_PATHS = ("webhook_secret", "admin_token", "auth/token", "auth/key", "auth/access_token",
                "auth/refresh_token", "auth/client_secret")


def split_tenant(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A tenants-file table → (config without secrets, {relative SSM name: secret value})."""
    config = json.loads(json.dumps(dict(raw)))  # a deep, plain copy
    secrets: dict[str, str] = {}
    for path in SECRET_PATHS:
        *parents, leaf = path.split("/")
        holder = config
        for parent in parents:
            holder = holder.get(parent) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and leaf in holder:
            secrets[path] = str(holder.pop(leaf))
    return config, secrets


class DynamoTenantDirectory:
    """The tenant lookup `receive()` and the Worker use (`get(tenant_id)`, also callable)."""

    def __init__(self, settings: AwsSettings, clients: AwsClients, *, budget_shares: int = 1,
                 cache_seconds: float = 60.0, miss_cache_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clients = clients
        self.budget_shares = max(1, budget_shares)
        self.cache_seconds = cache_seconds
        self.miss_cache_seconds = miss_cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, TenantConfig | None]] = {}

    def get(self, tenant_id: str) -> TenantConfig | None:
        cached = self._cache.get(tenant_id)
        now = self.clock()
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant = self._load(tenant_id)
        ttl = self.cache_seconds if tenant is not None else self.miss_cache_seconds
        self._cache[tenant_id] = (now + ttl, tenant)
        return tenant

    __call__ = get

    def forget(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    def _load(self, tenant_id: str) -> TenantConfig | None:
        response = aws_call("tenant read", lambda: self.clients.dynamodb.get_item(
            TableName=self.settings.tenants_table, Key={"tenant_id": {"S": tenant_id}}))
        item = response.get("Item")
        if item is None or "config" not in item:
            return None
        try:
            raw = json.loads(item["config"]["S"])
        except ValueError:
            log.error("tenant_config_unreadable", tenant=tenant_id)
            return None
        raw["id"] = tenant_id
        for path, value in self._secrets(tenant_id).items():
            *parents, leaf = path.split("/")
            holder = raw
            for parent in parents:
                holder = holder.setdefault(parent, {})
            holder[leaf] = value
        try:
            # `environ={}`: on AWS every secret comes from SSM, never from `env:` references.
            tenant = tenant_from_dict(raw, environ={})
        except ConfigError as exc:  # names tenant and key, never a value
            log.error("tenant_config_invalid", tenant=tenant_id, error=exc.reason)
            return None
        redactor.add_secrets(secret_values(tenant))
        if self.budget_shares > 1:
            # N worker containers run at once; each keeps to its share of the tenant's budget.
            from ..worker import DEFAULT_REQUESTS_PER_MINUTE

            per_minute = tenant.requests_per_minute or DEFAULT_REQUESTS_PER_MINUTE[tenant.vendor]
            tenant = tenant.model_copy(
                update={"requests_per_minute": max(1, per_minute // self.budget_shares)})
        return tenant

    def _secrets(self, tenant_id: str) -> dict[str, str]:
        path = f"{self.settings.ssm_prefix}/tenants/{tenant_id}"
        found: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Path": path, "Recursive": True, "WithDecryption": True}
            if token:
                kwargs["NextToken"] = token
            response = aws_call("tenant secrets read",
                                lambda: self.clients.ssm.get_parameters_by_path(**kwargs))
            for parameter in response.get("Parameters", []):
                relative = parameter["Name"][len(path):].strip("/")
                if relative in SECRET_PATHS:
                    found[relative] = parameter["Value"]
            token = response.get("NextToken")
            if not token:
                return found


def upload_tenant(settings: AwsSettings, clients: AwsClients, raw: Mapping[str, Any], *,
                  overwrite_secrets: bool = True) -> list[str]:
    """Write one tenants-file table: config to the tenants table, secrets to SSM SecureStrings.

    Returns the SSM parameter names written (never their values).
    """
    config, secrets = split_tenant(raw)
    tenant_id = str(config.pop("id"))
    names = []
    for relative, value in secrets.items():
        name = f"{settings.ssm_prefix}/tenants/{tenant_id}/{relative}"
        aws_call("tenant secret write", lambda: clients.ssm.put_parameter(
            Name=name, Value=value, Type="SecureString", Overwrite=overwrite_secrets))
        names.append(name)
    aws_call("tenant write", lambda: clients.dynamodb.put_item(
        TableName=settings.tenants_table,
        Item={"tenant_id": {"S": tenant_id},
              "config": {"S": json.dumps(config, separators=(",", ":"), sort_keys=True)}}))
    return names


class DynamoTokenStore:
    """plugin.vendors.TokenStore on the tokens table: rotated OAuth tokens survive containers."""

    def __init__(self, settings: AwsSettings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients

    async def load(self, tenant_id: str) -> OAuthTokens | None:
        response = await asyncio.to_thread(aws_call, "token read", lambda: (
            self.clients.dynamodb.get_item(TableName=self.settings.tokens_table,
                                           Key={"tenant_id": {"S": tenant_id}},
                                           ConsistentRead=True)))
        item = response.get("Item")
        if item is None:
            return None
        refresh = item.get("refresh_token")
        tokens = OAuthTokens(access_token=item["access_token"]["S"],
                             refresh_token=refresh["S"] if refresh else None,
                             expires_at=float(item["token_expires_at"]["N"])
                             if "token_expires_at" in item else None)
        redactor.add_secrets([tokens.access_token, tokens.refresh_token or ""])
        return tokens

    async def save(self, tenant_id: str, tokens: OAuthTokens) -> None:
        redactor.add_secrets([tokens.access_token, tokens.refresh_token or ""])
        item: dict[str, Any] = {"tenant_id": {"S": tenant_id},
                                "access_token": {"S": tokens.access_token},
                                "updated_at": {"N": repr(time.time())}}
        if tokens.refresh_token:
            item["refresh_token"] = {"S": tokens.refresh_token}
        if tokens.expires_at is not None:
            # Not `expires_at`: that name is the TTL attribute of the other tables.
            item["token_expires_at"] = {"N": repr(float(tokens.expires_at))}
        await asyncio.to_thread(aws_call, "token write", lambda: self.clients.dynamodb.put_item(
            TableName=self.settings.tokens_table, Item=item))
