"""Attack surface of `careroute serve` (a subprocess): fuzzing, signatures, timing-safe checks.

Proves:
- hypothesis-generated webhook requests (any vendor / tenant segment, body bytes, content types,
  signature / token headers, query strings, each carrying a canary) never get a 5xx, never hang,
  never kill the process, and every refusal is a 4xx `{"error": <short reason>}` without the canary;
- schemathesis, driven by plugin/handlers/openapi.yaml (positive and negative cases for every
  operation), finds no 5xx and no answer outside the document;
- wrong secret, another tenant's secret, stale and future timestamps, missing headers and an empty
  body are refused with 401; a replayed delivery creates no second job (202 duplicate within the
  signature window, 401 after it); the same holds for Freshdesk's three credential styles;
- both verifiers decide through `hmac.compare_digest` alone (flipping its answer flips theirs).
"""

from __future__ import annotations

import base64
import hmac
import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_support import (
    ServiceProcess,
    freshdesk_delivery,
    freshdesk_tenant_table,
    query,
    write_tenants,
    zendesk_delivery,
    zendesk_tenant_table,
)
from plugin.freshdesk import webhook as fd_webhook
from plugin.handlers.http import OPENAPI_PATH
from plugin.zendesk import webhook as zd_webhook

ZD_SECRET, ZD_OTHER = "fuzz-zd-secret-31415926", "fuzz-zd-other-27182818"
FD_SECRET, FD_OTHER = "fuzz-fd-secret-16180339", "fuzz-fd-other-14142135"
CANARY = "ECHO-CANARY-93"
NOWHERE = "http://127.0.0.1:9"  # accepted jobs fail to fetch and back off: not this file's topic


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    tenants = write_tenants(root / "tenants.toml", [
        zendesk_tenant_table("acme", NOWHERE, ZD_SECRET),
        zendesk_tenant_table("other", NOWHERE, ZD_OTHER),
        freshdesk_tenant_table("fdacme", NOWHERE, FD_SECRET),
        freshdesk_tenant_table("fdother", NOWHERE, FD_OTHER)])
    process = ServiceProcess(root / "data", tenants, env={
        "CAREROUTE_WORKER_CONCURRENCY": "1", "CAREROUTE_RETRY_BASE_SECONDS": "30",
        "CAREROUTE_MAX_ATTEMPTS": "1", "CAREROUTE_BODY_LIMIT_BYTES": "8192"},
        log_path=root / "service.log").start()
    yield process
    assert process.proc.poll() is None, "the service survived the whole module"
    assert process.stop() == 0
    assert "Traceback" not in process.logs()


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.url, timeout=5) as client:
        yield client


def _assert_refusal_is_clean(reply: httpx.Response) -> None:
    assert reply.status_code < 500, reply.status_code
    assert CANARY not in reply.text
    if reply.status_code >= 400 and reply.headers.get("content-type", "").startswith(
            "application/json"):
        body = reply.json()
        assert set(body) == {"error"} and 0 < len(body["error"]) < 60, body
    elif reply.status_code >= 400:  # aiohttp's router: a path no route matches ("404: Not Found")
        assert reply.status_code in (404, 405) and len(reply.text) < 60, reply.text


# ------------------------------------------------------------------ hypothesis

_segment = st.text(st.characters(codec="utf-8", exclude_characters="/?#%"), min_size=1,
                   max_size=30).map(lambda s: s.strip() or "x")
_content_types = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                  "text/plain", "application/x-www-form-urlencoded",
                                  "application/vnd.api+json", "", "application/json;;"])
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4), max_leaves=10)


@st.composite
def webhook_requests(draw):
    vendor = draw(st.sampled_from(["zendesk", "freshdesk", "ZENDESK", draw(_segment)]))
    tenant = draw(st.sampled_from(["acme", "other", "fdacme", "fdother", draw(_segment)]))
    shape = draw(st.sampled_from(["json", "bytes", "trigger"]))
    if shape == "json":
        body = json.dumps({"payload": draw(_json_like), "note": CANARY}).encode()
    elif shape == "trigger":
        body = json.dumps({"ticket_id": draw(st.one_of(st.integers(), st.text(max_size=25))),
                           "event": draw(st.text(max_size=12)), "via": CANARY}).encode()
    else:
        body = draw(st.binary(max_size=300)) + CANARY.encode()
    headers = {"Content-Type": draw(_content_types)}
    if draw(st.booleans()):
        stamp = draw(st.sampled_from([time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      CANARY, "2020-01-01T00:00:00Z", ""]))
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = stamp
        headers["X-Zendesk-Webhook-Signature"] = draw(st.sampled_from(
            [zd_webhook.sign(ZD_SECRET, stamp, body), CANARY, base64.b64encode(b"x" * 32).decode()]))
    if draw(st.booleans()):
        headers["X-CareRoute-Token"] = draw(st.sampled_from([CANARY, FD_OTHER, "", "é"]))
    if draw(st.booleans()):
        headers["Authorization"] = draw(st.sampled_from(
            [f"Basic {base64.b64encode(f'u:{CANARY}'.encode()).decode()}", f"Bearer {CANARY}",
             "Basic !!!", CANARY]))
    params = {"token": CANARY} if draw(st.booleans()) else {}
    return f"/webhooks/{vendor}/{tenant}", body, headers, params


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=webhook_requests())
def test_fuzzed_webhooks_get_a_clean_4xx_or_202(http, request):
    path, body, headers, params = request
    try:
        reply = http.post(path, content=body, params=params,
                          headers={k: v.encode("utf-8") for k, v in headers.items()})
    except httpx.InvalidURL:
        return  # httpx refuses to send it: nothing reached the service
    _assert_refusal_is_clean(reply)
    if reply.status_code == 202:  # only a correctly signed Zendesk body for acme gets through
        assert path == "/webhooks/zendesk/acme"


def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(http, service):
    schemathesis = pytest.importorskip("schemathesis")  # in the dev extra (pyproject)
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_path(str(OPENAPI_PATH))
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.method.upper() == "POST":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(base_url=service.url, timeout=5)
                assert response.status_code < 500, (operation.label, response.status_code)
                if response.status_code >= 400:
                    assert set(response.json()) == {"error"}
                case.validate_response(response)

            run()
            checked += 1
    assert checked >= 8  # 6 operations, both webhooks also negatively


# ------------------------------------------------------------------ signatures

def _zd(http, body, headers, tenant="acme"):
    return http.post(f"/webhooks/zendesk/{tenant}", content=body, headers=headers)


def test_zendesk_signature_refusals(http, service):
    ok_body, ok_headers = zendesk_delivery(ZD_SECRET, 5001, invocation="sig-ok")
    cases = {
        "wrong secret": zendesk_delivery("not-the-secret-1234", 5002),
        "other tenant's secret": zendesk_delivery(ZD_OTHER, 5003),
        "stale (6 min old)": zendesk_delivery(ZD_SECRET, 5004, at=time.time() - 360),
        "future (6 min ahead)": zendesk_delivery(ZD_SECRET, 5005, at=time.time() + 360),
        "body changed after signing": (ok_body.replace(b"5001", b"5006"), ok_headers),
    }
    for name, (body, headers) in cases.items():
        reply = _zd(http, body, headers)
        assert reply.status_code == 401, name
        _assert_refusal_is_clean(reply)
    for missing in ("X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"):
        body, headers = zendesk_delivery(ZD_SECRET, 5007)
        del headers[missing]
        assert _zd(http, body, headers).status_code == 401, missing
    body, headers = zendesk_delivery(ZD_SECRET, 5008)
    assert _zd(http, b"", {**headers, "X-Zendesk-Webhook-Signature": zd_webhook.sign(
        ZD_SECRET, headers["X-Zendesk-Webhook-Signature-Timestamp"], b"")}).status_code in (400, 401)
    assert _zd(http, b"", headers).status_code == 401
    # A delivery signed for acme is no good on other's path, and vice versa.
    assert _zd(http, ok_body, ok_headers, tenant="other").status_code == 401

    first = _zd(http, ok_body, ok_headers)
    replay = _zd(http, ok_body, ok_headers)
    assert first.json() == {"accepted": True, "duplicate": False}
    assert replay.status_code == 202 and replay.json()["duplicate"] is True
    jobs = query(service.db_path, "SELECT COUNT(*) FROM jobs WHERE json_extract(ref,"
                 " '$.ticket_id') IN ('5001','5002','5003','5004','5005','5006','5007','5008')")
    assert jobs == [(1,)], "only the one good delivery made a job; its replay made none"
    old_body, old_headers = zendesk_delivery(ZD_SECRET, 5001, invocation="sig-ok",
                                             at=time.time() - 400)
    assert _zd(http, old_body, old_headers).status_code == 401, "a replay after the window"


def test_freshdesk_credential_refusals(http, service):
    def post(tenant, headers=None, params=None, body=None):
        raw, base = freshdesk_delivery("unused", 6001)
        base.pop("X-CareRoute-Token")
        return http.post(f"/webhooks/freshdesk/{tenant}", content=raw if body is None else body,
                         headers={**base, **(headers or {})}, params=params)

    basic = lambda secret: "Basic " + base64.b64encode(f"freshdesk:{secret}".encode()).decode()  # noqa: E731
    refused = {
        "no credentials": post("fdacme"),
        "wrong header token": post("fdacme", {"X-CareRoute-Token": "wrong-token-000"}),
        "other tenant's token": post("fdacme", {"X-CareRoute-Token": FD_OTHER}),
        "basic with wrong password": post("fdacme", {"Authorization": basic("nope-nope")}),
        "wrong URL token": post("fdacme", params={"token": FD_OTHER}),
        "own secret on other's path": post("fdother", {"X-CareRoute-Token": FD_SECRET}),
        "empty body": post("fdacme", {"X-CareRoute-Token": "wrong"}, body=b""),
    }
    for name, reply in refused.items():
        assert reply.status_code == 401, name
        _assert_refusal_is_clean(reply)
    for accepted in (post("fdacme", {"X-CareRoute-Token": FD_SECRET}),
                     post("fdacme", {"Authorization": basic(FD_SECRET)}),
                     post("fdacme", params={"token": FD_SECRET})):
        assert accepted.status_code == 202
    assert query(service.db_path, "SELECT COUNT(*) FROM jobs WHERE tenant_id='fdacme'") == [(1,)]
    assert post("fdacme", {"X-CareRoute-Token": FD_SECRET}, body=b"").status_code == 400


# ------------------------------------------------------------------ timing-safe comparison

@pytest.mark.parametrize("verdict", [True, False])
def test_verifiers_decide_through_compare_digest_only(monkeypatch, verdict):
    calls = []

    def forced(a, b):
        calls.append((type(a).__name__, type(b).__name__))
        return verdict

    monkeypatch.setattr(hmac, "compare_digest", forced)
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    body = b'{"ticket_id": "1"}'
    signature = zd_webhook.sign(ZD_SECRET, stamp, body) if not verdict else "AAAA"
    headers = {"x-zendesk-webhook-signature": signature,
               "x-zendesk-webhook-signature-timestamp": stamp}
    fd_headers = {"x-careroute-token": FD_SECRET if not verdict else "wrong"}

    def outcome(check) -> bool:
        try:
            check()
            return True
        except Exception:  # noqa: BLE001 — SignatureError
            return False

    # A wrong credential passes when compare_digest says True; a right one fails when it says
    # False: nothing else (==, startswith…) takes part in the decision.
    assert outcome(lambda: zd_webhook.verify(headers, body, ZD_SECRET, now)) is verdict
    assert outcome(lambda: fd_webhook.verify(fd_headers, body, FD_SECRET, now)) is verdict
    assert len(calls) >= 2
