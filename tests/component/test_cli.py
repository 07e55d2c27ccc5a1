"""The `careroute` command: replay (per language, offline), provision (against the sandbox),
serve (a real process with only a data dir and a tenants file)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from plugin.cli import main
from plugin.config import load_tenants
from plugin.provisioning import provision_tenant
from tests.zendesk_support import running_sandbox

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "replay"

TENANTS = """
[[tenants]]
id = "acme-zendesk"
vendor = "zendesk"
subdomain = "acme"
webhook_secret = "replay-secret-zd"
auth = {{ kind = "api_token", email = "bot@acme.example", token = "replay-token" }}
trained_group_id = 77
default_country = "US"
{extra}

[[tenants]]
id = "acme-freshdesk"
vendor = "freshdesk"
domain = "acme.freshdesk.com"
webhook_secret = "replay-secret-fd"
auth = {{ kind = "api_key", key = "replay-key" }}
trained_group_id = 2
"""


def tenants_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tenants.toml"
    path.write_text(TENANTS.format(extra=extra), encoding="utf-8")
    return path


@pytest.mark.parametrize("sample, tier, country, must_show", [
    ("en-zendesk", "imminent", "GB", "116 123"),
    ("es-zendesk", "high", "MX", "careroute_high"),
    ("de-freshdesk", "concern", "DE", "careroute_concern"),
    ("fr-freshdesk", "high", "FR", "third_party"),
    ("it-freshdesk", "high", "IT", "careroute_high"),
    ("pt-zendesk", "none", "BR", "nothing to write"),
    ("nl-zendesk", "none", "NL", "nothing to write"),
])
def test_replay_shows_the_plan_with_the_country_resources(tmp_path, capsys, sample, tier,
                                                          country, must_show):
    vendor = sample.split("-")[1]
    args = ["replay", str(EXAMPLES / f"{sample}.json"), "--vendor", vendor,
            "--tenant", f"acme-{vendor}", "--tenants", str(tenants_file(tmp_path))]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"tier {tier}" in out and f"country {country}" in out
    assert must_show in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["assessment"]["tier"] == tier and data["country"] == country
    if tier in ("high", "imminent"):
        assert data["plan"]["group_id"] == (77 if vendor == "zendesk" else 2)
        assert "careroute-job:replay" in data["plan"]["note_html"]


def test_replay_rejects_bad_input_clearly(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"webhook": {"ticket_id": "not-a-number"}, "ticket": {"text": "x"}}')
    code = main(["replay", str(bad), "--vendor", "zendesk", "--tenant", "acme-zendesk",
                 "--tenants", str(tenants_file(tmp_path))])
    assert code == 2 and "careroute:" in capsys.readouterr().err
    assert main(["replay", str(bad), "--vendor", "freshdesk", "--tenant", "acme-zendesk",
                 "--tenants", str(tenants_file(tmp_path))]) == 2
    assert "not freshdesk" in capsys.readouterr().err


async def test_provision_saves_the_signing_secret_privately_and_is_idempotent(tmp_path):
    async with running_sandbox() as box:
        path = tenants_file(tmp_path, extra=f'base_url = "{box.url}"').read_text()
        path = path.replace('token = "replay-token"', 'token = "sandbox-token"')
        path = path.replace("bot@acme.example", "agent@sandbox.test")
        (tmp_path / "tenants.toml").write_text(path)
        tenant = load_tenants(tmp_path / "tenants.toml")["acme-zendesk"]
        dry = await provision_tenant(tenant, "https://careroute.example", dry_run=True,
                                     data_dir=tmp_path / "data")
        assert dry[-1] == "(dry run: nothing was changed)" and not box.state.webhooks
        first = await provision_tenant(tenant, "https://careroute.example", dry_run=False,
                                       data_dir=tmp_path / "data")
        secret_file = tmp_path / "data" / "secrets" / "acme-zendesk.webhook_secret"
        secret = secret_file.read_text().strip()
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert secret and not any(secret in line for line in first)
        assert any(line.startswith('Set webhook_secret = "file:') for line in first)
        again = await provision_tenant(tenant, "https://careroute.example", dry_run=False,
                                       data_dir=tmp_path / "data")
        assert not any(line.startswith("create") for line in again)
        assert len(box.state.webhooks) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_with_only_a_data_dir_and_a_tenants_file(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREROUTE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plugin.cli", "serve", "--port", str(port),
         "--data-dir", str(tmp_path / "data"), "--tenants", str(tenants_file(tmp_path))],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        ready = None
        while time.time() < deadline and ready is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None and ready.status_code == 200
        reply = httpx.post(f"http://127.0.0.1:{port}/webhooks/zendesk/acme-zendesk",
                           content=b'{"ticket_id": "1"}',
                           headers={"Content-Type": "application/json"})
        assert reply.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert b"service_stopped" in err
    assert b"replay-secret-zd" not in err
