"""Tenants file loading and service settings: clear errors that name tenant and key, no secret echoed."""

from __future__ import annotations

import pytest

from plugin.config import ServiceSettings, load_tenants, secret_values, tenant_from_dict
from plugin.errors import ConfigError

SECRET = "s3cr3t-value-never-shown"

GOOD = f"""
[[tenants]]
id = "acme"
vendor = "zendesk"
subdomain = "acme"
webhook_secret = "env:ACME_SECRET"
auth = {{ kind = "oauth", access_token = "{SECRET}-a", refresh_token = "{SECRET}-r", client_id = "careroute", client_secret = "{SECRET}-c" }}
trained_group_id = 360001234567

[tenants.screening]
concern = 0.3
high = 0.55
imminent = 0.8

[tenants.actions.high]
note = true
priority = "high"
group_id = 42

[[tenants]]
id = "globex"
vendor = "freshdesk"
domain = "globex.freshdesk.com"
webhook_secret = "file:globex.secret"
auth = {{ kind = "api_key", key = "{SECRET}-k" }}
"""


def write(tmp_path, text, name="tenants.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_loads_the_documented_format(tmp_path):
    (tmp_path / "globex.secret").write_text("from-a-file\n")
    tenants = load_tenants(write(tmp_path, GOOD), environ={"ACME_SECRET": "from-env"})
    acme, globex = tenants["acme"], tenants["globex"]
    assert acme.webhook_secret.get_secret_value() == "from-env"
    assert globex.webhook_secret.get_secret_value() == "from-a-file"
    assert acme.screening.tier_for(0.56) == "high" and acme.screening.tier_for(0.29) == "none"
    assert acme.actions.high.group_id == 42
    assert acme.actions.imminent.priority == "urgent"  # defaults exist for every tier
    assert acme.actions.concern.note is False
    assert acme.api_base_url == "https://acme.zendesk.com"
    assert globex.api_base_url == "https://globex.freshdesk.com"
    assert acme.tier_tag("high") == "careroute_high" and acme.marker_tag == "careroute_screened"
    assert SECRET not in repr(acme) and SECRET not in str(acme.model_dump())
    assert f"{SECRET}-c" in secret_values(acme)


@pytest.mark.parametrize("patch, key", [
    ({"screening": {"concern": 0.7, "high": 0.6}}, "screening"),
    ({"screening": {"concern": -0.1}}, "screening.concern"),
    ({"actions": {"severe": {"note": True}}}, "actions.severe"),
    ({"actions": {"high": {"priority": "asap"}}}, "actions.high.priority"),
    ({"actions": {"high": {"auto_reply": True}}}, "actions"),
    ({"vendor": "helpscout"}, "vendor"),
    ({"auth": {"kind": "api_key", "key": SECRET}}, "(tenant)"),
    ({"subdomain": None}, "(tenant)"),
    ({"tag_prefix": "Care Route!"}, "tag_prefix"),
    ({"default_country": "Germany"}, "default_country"),
    ({"auto_reply": {"business_hours": "9-5"}}, "auto_reply.business_hours"),
    ({"auto_reply": {"time_zone": "Mars/Olympus"}}, "auto_reply.time_zone"),
    ({"auto_reply": {"business_days": [0, 8]}}, "auto_reply.business_days"),
])
def test_invalid_config_names_tenant_and_key_and_hides_secrets(patch, key):
    raw = {"id": "acme", "vendor": "zendesk", "subdomain": "acme", "webhook_secret": SECRET,
           "auth": {"kind": "api_token", "email": "a@acme.test", "token": SECRET}}
    raw.update(patch)
    with pytest.raises(ConfigError) as caught:
        tenant_from_dict(raw)
    message = caught.value.reason
    assert message.startswith("tenant 'acme': ")
    assert key in message
    assert SECRET not in message


def test_missing_environment_variable_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"tenant 'acme': webhook_secret: environment variable "
                                          r"ACME_SECRET is not set"):
        load_tenants(write(tmp_path, GOOD), environ={})


def test_unreadable_secret_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"tenant 'globex': webhook_secret: cannot read"):
        load_tenants(write(tmp_path, GOOD), environ={"ACME_SECRET": "x"})


def test_duplicate_ids_and_bad_files(tmp_path):
    dup = GOOD.replace('id = "globex"', 'id = "acme"')
    (tmp_path / "globex.secret").write_text("x")
    with pytest.raises(ConfigError, match="duplicate tenant id"):
        load_tenants(write(tmp_path, dup), environ={"ACME_SECRET": "x"})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_tenants(write(tmp_path, "[[tenants]\nid=", "bad.toml"))
    with pytest.raises(ConfigError, match="not found"):
        load_tenants(tmp_path / "missing.toml")


def test_freshdesk_domain_must_be_freshdesk():
    with pytest.raises(ConfigError, match="freshdesk.com"):
        tenant_from_dict({"id": "x", "vendor": "freshdesk", "domain": "evil.example.com",
                          "webhook_secret": "s", "auth": {"kind": "api_key", "key": "k"}})


def test_service_settings_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAREROUTE_PORT", "9123")
    monkeypatch.setenv("CAREROUTE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAREROUTE_WORKER_CONCURRENCY", "7")
    settings = ServiceSettings()
    assert (settings.port, settings.data_dir, settings.worker_concurrency) == (9123, tmp_path, 7)
    monkeypatch.setenv("CAREROUTE_PORT", "not-a-port")
    with pytest.raises(Exception):
        ServiceSettings()
