"""Configuration: service settings from the environment, tenants from a TOML file.

`ServiceSettings` reads `CAREROUTE_*` variables. `TenantConfig` is one helpdesk account; the tenants
file format is in DESIGN.md ("Tenants file"). Any secret may be written `env:NAME`. Validation
errors are `ConfigError`s that name the tenant and the key and never echo a value.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .model import ACTION_TIERS, Priority, Tier
from .wellbeing import WellbeingSettings

ENV_PREFIX = "env:"
FILE_PREFIX = "file:"


class ServiceSettings(BaseSettings):
    """Process-wide settings (env prefix `CAREROUTE_`)."""

    model_config = SettingsConfigDict(env_prefix="CAREROUTE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("./data")
    tenants_file: Path | None = None
    # Public base URL of this service (OAuth redirect, provisioning), e.g. https://careroute.example
    public_url: str | None = None
    worker_concurrency: int = Field(4, ge=1, le=256)
    # With several tenants, the share of the workers one tenant may hold at once (the rest stay
    # free for the others when its helpdesk is slow); rounded down, at least one worker.
    worker_tenant_share: float = Field(0.75, gt=0, le=1)
    body_limit_bytes: int = Field(256 * 1024, ge=1024)
    # Slow or greedy clients: time to send a request head / a body, open connections.
    head_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(10.0, gt=0)
    max_connections: int = Field(512, ge=1)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Queue behaviour
    lease_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(8, ge=1)
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(600.0, gt=0)
    # Extra wait before an enqueue commit; webhooks arriving during a commit share the next one.
    group_commit_ms: float = Field(0.0, ge=0)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    # Vendor HTTP timeouts
    vendor_timeout_seconds: float = Field(15.0, gt=0)
    # Key (urlsafe base64, 32 bytes) used to encrypt tenant secrets stored in the registry.
    secret_key: SecretStr | None = None
    # Bearer token marketplace installs present to register a tenant (Freshworks install handler).
    registration_token: SecretStr | None = None
    # Zendesk OAuth client for marketplace installs (the /oauth/zendesk/… flow).
    zendesk_oauth_client_id: str | None = None
    zendesk_oauth_client_secret: SecretStr | None = None
    # Overrides https://{subdomain}.zendesk.com for the OAuth flow (sandbox, tests).
    zendesk_oauth_base_url: str | None = None
    # Zendesk marketplace app identity, sent as X-Zendesk-Marketplace-* on server-side calls.
    zendesk_marketplace_name: str | None = None
    zendesk_marketplace_organization_id: str | None = None
    zendesk_marketplace_app_id: str | None = None
    # How often app settings (thresholds…) are read back from Zendesk installations.
    settings_sync_seconds: float = Field(300.0, gt=0)


# ---------------------------------------------------------------- tenant model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OAuthAuth(_Strict):
    kind: Literal["oauth"]
    access_token: SecretStr
    refresh_token: SecretStr | None = None
    client_id: str
    client_secret: SecretStr
    # Unix time at which the access token expires, if known.
    expires_at: float | None = None


class ApiTokenAuth(_Strict):
    kind: Literal["api_token"]
    email: str
    token: SecretStr


class ApiKeyAuth(_Strict):
    kind: Literal["api_key"]
    key: SecretStr


Auth = Annotated[Union[OAuthAuth, ApiTokenAuth, ApiKeyAuth], Field(discriminator="kind")]


class Thresholds(_Strict):
    """Score at which each tier starts. Must rise: concern < high < imminent, all in [0, 1]."""

    concern: float = Field(0.35, ge=0, le=1)
    high: float = Field(0.60, ge=0, le=1)
    imminent: float = Field(0.85, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if not (self.concern < self.high < self.imminent):
            raise ValueError("thresholds must rise: concern < high < imminent")
        return self

    def tier_for(self, score: float) -> Tier:
        if score >= self.imminent:
            return "imminent"
        if score >= self.high:
            return "high"
        if score >= self.concern:
            return "concern"
        return "none"


class TierActions(_Strict):
    """What one tier does. The tier tag and the marker tag are always added for a flagged ticket."""

    tags: tuple[str, ...] = ()  # extra tags besides the tier tag
    note: bool = False
    priority: Priority | None = None
    # An explicit group wins; otherwise `route_to_trained_group` sends the ticket to the tenant's
    # trained_group_id; 0 leaves the group alone.
    group_id: int | None = None
    route_to_trained_group: bool = False
    macro_id: int | None = None
    apply_macro: bool = False
    unassign: bool = False
    auto_reply: bool = False


def _default_actions() -> dict[str, TierActions]:
    return {
        "concern": TierActions(),
        "high": TierActions(note=True, priority="high", route_to_trained_group=True),
        "imminent": TierActions(note=True, priority="urgent", route_to_trained_group=True),
    }


class ActionsByTier(_Strict):
    concern: TierActions = Field(default_factory=lambda: _default_actions()["concern"])
    high: TierActions = Field(default_factory=lambda: _default_actions()["high"])
    imminent: TierActions = Field(default_factory=lambda: _default_actions()["imminent"])

    @model_validator(mode="after")
    def _auto_reply_only_imminent(self) -> "ActionsByTier":
        for tier in ("concern", "high"):
            if getattr(self, tier).auto_reply:
                raise ValueError(f"auto_reply is allowed only for imminent, not {tier}")
        return self

    def for_tier(self, tier: str) -> TierActions:
        if tier not in ACTION_TIERS:
            raise KeyError(tier)
        return getattr(self, tier)


class CustomResource(_Strict):
    """A tenant's own resource (an EAP line, a company protocol link), shown beside crisis lines."""

    country: str = "*"  # ISO 3166 alpha-2, or "*" for every country
    service: str
    phone: str | None = None
    sms: str | None = None
    chat_url: str | None = None
    url: str | None = None
    hours: str | None = None
    languages: tuple[str, ...] = ()
    replaces_directory: bool = False  # True: override the directory for this country


class AutoReply(_Strict):
    """Optional public reply for imminent tickets. Off unless enabled."""

    enabled: bool = False
    outside_business_hours_only: bool = True
    business_hours: str = "09:00-17:00"
    business_days: tuple[int, ...] = (1, 2, 3, 4, 5)  # ISO weekdays
    time_zone: str = "UTC"

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})", value)
        if not match or int(match[1]) > 23 or int(match[3]) > 24 or int(match[2]) > 59 \
                or int(match[4]) > 59:
            raise ValueError("business_hours must look like 09:00-17:00")
        return value

    @field_validator("business_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(day not in range(1, 8) for day in value):
            raise ValueError("business_days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("time_zone must be an IANA time zone such as Europe/Berlin") from None
        return value


class Marketplace(_Strict):
    name: str
    organization_id: str
    app_id: str


class TenantConfig(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    vendor: Literal["zendesk", "freshdesk"]
    subdomain: str | None = None  # Zendesk
    domain: str | None = None  # Freshdesk, e.g. acme.freshdesk.com
    base_url: str | None = None  # overrides the vendor URL (sandbox, tests)
    webhook_secret: SecretStr
    # Also accepted: a second Zendesk webhook's signing secret (trigger + event routes), or the
    # previous secret while a rotation is under way.
    other_webhook_secrets: tuple[SecretStr, ...] = ()
    auth: Auth
    enabled: bool = True
    screening: Thresholds = Field(default_factory=Thresholds)
    actions: ActionsByTier = Field(default_factory=ActionsByTier)
    trained_group_id: int | None = None
    tag_prefix: str = Field("careroute", pattern=r"^[a-z0-9][a-z0-9_]{0,30}$")
    agent_language: str = "en"
    default_country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    staff_support_url: str | None = None
    protocol_url: str | None = None
    resources: tuple[CustomResource, ...] = ()
    auto_reply: AutoReply = Field(default_factory=AutoReply)
    # Write tags/marker even for tier none (costs the customer's API budget; off by default).
    write_on_none: bool = False
    # Our share of the vendor's per-minute API budget; None → vendor default.
    requests_per_minute: int | None = Field(None, ge=1)
    # Fraction of the vendor's remaining budget left untouched (Freshdesk webhooks share it).
    rate_headroom: float = Field(0.2, ge=0, lt=1)
    marketplace: Marketplace | None = None
    # Bearer token for the admin page and the sidebar API of this tenant.
    admin_token: SecretStr | None = None
    # Optional cap on crisis tickets per agent per shift in the trained group (off by default).
    wellbeing: WellbeingSettings = Field(default_factory=WellbeingSettings)

    @model_validator(mode="after")
    def _vendor_fields(self) -> "TenantConfig":
        if self.vendor == "zendesk":
            if not self.subdomain and not self.base_url:
                raise ValueError("a zendesk tenant needs subdomain (or base_url)")
            if self.auth.kind == "api_key":
                raise ValueError("zendesk auth must be oauth or api_token")
        else:
            if not self.domain and not self.base_url:
                raise ValueError("a freshdesk tenant needs domain (or base_url)")
            if self.domain and not self.domain.endswith(".freshdesk.com"):
                raise ValueError("domain must be a *.freshdesk.com host")
            if self.auth.kind != "api_key":
                raise ValueError("freshdesk auth must be api_key")
        return self

    @field_validator("resources")
    @classmethod
    def _resource_countries(cls, value: tuple[CustomResource, ...]) -> tuple[CustomResource, ...]:
        for item in value:
            if item.country != "*" and not (len(item.country) == 2 and item.country.isupper()):
                raise ValueError("resource country must be ISO 3166 alpha-2 or '*'")
        return value

    @property
    def api_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.vendor == "zendesk":
            return f"https://{self.subdomain}.zendesk.com"
        return f"https://{self.domain}"

    def tier_tag(self, tier: str) -> str:
        return f"{self.tag_prefix}_{tier}"

    @property
    def marker_tag(self) -> str:
        return f"{self.tag_prefix}_screened"

    @property
    def tier_tags(self) -> tuple[str, ...]:
        return tuple(self.tier_tag(t) for t in ACTION_TIERS)


# ------------------------------------------------------------------ loading

def _resolve_env(value: Any, tenant: str, path: str, environ: Mapping[str, str],
                 base_dir: Path | None = None) -> Any:
    """Replace `env:NAME` with the variable's value and `file:PATH` with the file's first line
    (PATH relative to the tenants file), recursively."""
    if isinstance(value, dict):
        return {k: _resolve_env(v, tenant, f"{path}.{k}" if path else k, environ, base_dir)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, tenant, f"{path}[{i}]", environ, base_dir)
                for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if name not in environ:
            raise ConfigError(f"tenant {tenant!r}: {path}: environment variable {name} is not set")
        return environ[name]
    if isinstance(value, str) and value.startswith(FILE_PREFIX):
        file = Path(value[len(FILE_PREFIX):]).expanduser()
        if not file.is_absolute() and base_dir is not None:
            file = base_dir / file
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError:
            raise ConfigError(f"tenant {tenant!r}: {path}: cannot read secret file {file}") from None
    return value


def _describe(error: ValidationError, tenant: str) -> str:
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        # The discriminated-union tag ('oauth', …) is noise in a location.
        loc = loc.replace(".oauth", "").replace(".api_token", "").replace(".api_key", "")
        msg = item["msg"].removeprefix("Value error, ")
        parts.append(f"{loc or '(tenant)'}: {msg}")
    return f"tenant {tenant!r}: " + "; ".join(parts)


def tenant_from_dict(raw: Mapping[str, Any], *, environ: Mapping[str, str] | None = None,
                     index: int = 0, base_dir: Path | None = None) -> TenantConfig:
    """Validate one tenant table. Raises ConfigError naming tenant and key."""
    environ = os.environ if environ is None else environ
    name = str(raw.get("id") or f"#{index + 1}")
    resolved = _resolve_env(dict(raw), name, "", environ, base_dir)
    try:
        return TenantConfig.model_validate(resolved)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, name)) from None


def load_tenants(path: Path, *, environ: Mapping[str, str] | None = None) -> dict[str, TenantConfig]:
    """Read a tenants TOML file → {tenant id: TenantConfig}."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"tenants file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"tenants file {path} is not valid TOML: {exc}") from None
    tables = data.get("tenants", [])
    if not isinstance(tables, list):
        raise ConfigError(f"tenants file {path}: 'tenants' must be an array of tables ([[tenants]])")
    tenants: dict[str, TenantConfig] = {}
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            raise ConfigError(f"tenants file {path}: tenants[{index}] must be a table")
        tenant = tenant_from_dict(table, environ=environ, index=index,
                                  base_dir=Path(path).resolve().parent)
        if tenant.id in tenants:
            raise ConfigError(f"tenant {tenant.id!r}: id: duplicate tenant id")
        tenants[tenant.id] = tenant
    return tenants


def secret_values(tenant: TenantConfig) -> list[str]:
    """Every secret of a tenant, for the log redactor."""
    values = [tenant.webhook_secret.get_secret_value(),
              *(s.get_secret_value() for s in tenant.other_webhook_secrets)]
    if tenant.admin_token:
        values.append(tenant.admin_token.get_secret_value())
    auth = tenant.auth
    for name in ("access_token", "refresh_token", "client_secret", "token", "key"):
        secret = getattr(auth, name, None)
        if secret is not None:
            values.append(secret.get_secret_value())
    return [v for v in values if v]
