"""plugin.zendesk.webhook: signature verification and payload parsing (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.errors import PayloadError, SignatureError
from plugin.zendesk.webhook import (
    DOCUMENTED_TEST_SECRET,
    IgnorableEvent,
    parse,
    sign,
    verify,
)

TS = "2026-05-04T09:12:44Z"
NOW = datetime(2026, 5, 4, 9, 12, 44, tzinfo=timezone.utc).timestamp()
BODY = b'{"event": "created", "ticket_id": "5158"}'
# Computed once with Python's hmac for the documented test secret (used as UTF-8, not decoded).
KNOWN_SIGNATURE = "d1vxyff0F6O5bXn2lTk1hkxR7MK4CWMcKXQujMQUNzU="


def headers(signature: str, timestamp: str = TS, **extra: str) -> dict[str, str]:
    return {"x-zendesk-webhook-signature": signature,
            "x-zendesk-webhook-signature-timestamp": timestamp, **extra}


# ------------------------------------------------------------------ verify


def test_documented_test_secret_known_vector_verifies() -> None:
    assert sign(DOCUMENTED_TEST_SECRET, TS, BODY) == KNOWN_SIGNATURE
    verify(headers(KNOWN_SIGNATURE), BODY, DOCUMENTED_TEST_SECRET, NOW)


def test_signature_matches_an_independent_hmac() -> None:
    secret = "s3cr3t-from-signing-secret-endpoint"
    expected = base64.b64encode(
        hmac.new(secret.encode(), TS.encode() + BODY, hashlib.sha256).digest()).decode()
    verify(headers(expected), BODY, secret, NOW + 12)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(
    st.binary(max_size=80),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=8).flatmap(lambda value: st.sampled_from([
                     json.dumps(value).encode(), b"  " + json.dumps(value).encode() + b"\n",
                     b"\xef\xbb\xbf" + json.dumps(value).encode(),
                     json.dumps(value).encode("utf-16"), json.dumps(value).encode() + b" x"]))))
def test_bodies_are_read_exactly_as_json_loads_reads_them(body: bytes) -> None:
    from plugin.zendesk.webhook import _decode_json

    try:
        expected = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        with pytest.raises((ValueError, UnicodeDecodeError)):
            _decode_json(body)
        return
    assert _decode_json(body) == expected


@settings(max_examples=300, deadline=None)
@given(secret=st.text(min_size=1, max_size=150), timestamp=st.text(max_size=30),
       body=st.binary(max_size=300))
def test_sign_is_hmac_sha256_for_any_secret_and_body(secret: str, timestamp: str,
                                                     body: bytes) -> None:
    # sign() keeps the key's padded hash states per secret (RFC 2104 by hand): it must agree
    # with the standard library's HMAC for every key length, short, block-sized and longer.
    expected = base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body,
                                         hashlib.sha256).digest()).decode()
    assert sign(secret, timestamp, body) == expected
    assert sign(secret, timestamp, body) == expected  # the cached states are not consumed


@pytest.mark.parametrize("wrong", [
    # the key base64-decoded (the secret looks like base64 but is used as given)
    base64.b64encode(hmac.new(base64.b64decode(DOCUMENTED_TEST_SECRET), TS.encode() + BODY,
                              hashlib.sha256).digest()).decode(),
    # hex digest instead of base64
    hmac.new(DOCUMENTED_TEST_SECRET.encode(), TS.encode() + BODY, hashlib.sha256).hexdigest(),
    # a "." between timestamp and body (the Stripe habit)
    base64.b64encode(hmac.new(DOCUMENTED_TEST_SECRET.encode(), TS.encode() + b"." + BODY,
                              hashlib.sha256).digest()).decode(),
])
def test_common_signing_mistakes_are_rejected(wrong: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify(headers(wrong), BODY, DOCUMENTED_TEST_SECRET, NOW)
    assert info.value.reason == "invalid signature"


OLD_DOC_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
OLD_DOC_BODY = b'{"say": "hello"}'
OLD_DOC_TS = "2021-07-25T10:00:00Z"
OLD_DOC_NOW = datetime(2021, 7, 25, 10, 0, 30, tzinfo=timezone.utc).timestamp()


def test_old_doc_vector_signs_body_then_timestamp_and_is_rejected() -> None:
    # The older docs page signs BODY + TIMESTAMP; Zendesk sends TIMESTAMP + BODY.
    old_vector = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="
    with pytest.raises(SignatureError):
        verify(headers(old_vector, OLD_DOC_TS), OLD_DOC_BODY, OLD_DOC_SECRET, OLD_DOC_NOW)
    # The same inputs in the current order (recomputed, see zendesk.md §1.2) verify.
    verify(headers("Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk=", OLD_DOC_TS), OLD_DOC_BODY,
           OLD_DOC_SECRET, OLD_DOC_NOW)


def test_body_must_be_the_raw_bytes() -> None:
    reserialised = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    with pytest.raises(SignatureError):
        verify(headers(KNOWN_SIGNATURE), reserialised, DOCUMENTED_TEST_SECRET, NOW)


def test_empty_body_verifies() -> None:
    signature = sign("k", TS, b"")
    verify(headers(signature), b"", "k", NOW)


@pytest.mark.parametrize("offset, ok", [(-300, True), (300, True), (-301, False), (301, False),
                                        (-86400, False), (3600, False)])
def test_timestamp_window_is_five_minutes_both_ways(offset: float, ok: bool) -> None:
    if ok:
        verify(headers(KNOWN_SIGNATURE), BODY, DOCUMENTED_TEST_SECRET, NOW - offset)
    else:
        with pytest.raises(SignatureError) as info:
            verify(headers(KNOWN_SIGNATURE), BODY, DOCUMENTED_TEST_SECRET, NOW - offset)
        assert info.value.reason == "stale timestamp"


@pytest.mark.parametrize("given", [
    {},
    {"x-zendesk-webhook-signature": KNOWN_SIGNATURE},
    {"x-zendesk-webhook-signature-timestamp": TS},
    {"x-zendesk-webhook-signature": "", "x-zendesk-webhook-signature-timestamp": TS},
])
def test_missing_headers(given: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as info:
        verify(given, BODY, DOCUMENTED_TEST_SECRET, NOW)
    assert info.value.reason == "missing signature"


def test_unix_seconds_timestamp_is_not_accepted() -> None:
    unix = str(int(NOW))
    with pytest.raises(SignatureError) as info:
        verify(headers(sign("k", unix, BODY), unix), BODY, "k", NOW)
    assert info.value.reason == "invalid timestamp"


def test_title_case_headers_are_found() -> None:
    verify({"X-Zendesk-Webhook-Signature": KNOWN_SIGNATURE,
            "X-Zendesk-Webhook-Signature-Timestamp": TS}, BODY, DOCUMENTED_TEST_SECRET, NOW)


def test_no_secret_never_passes() -> None:
    with pytest.raises(SignatureError):
        verify(headers(sign("", TS, BODY)), BODY, "", NOW)


def test_reasons_do_not_echo_the_signature_or_body() -> None:
    with pytest.raises(SignatureError) as info:
        verify(headers("AAAA" + KNOWN_SIGNATURE[4:]), BODY, DOCUMENTED_TEST_SECRET, NOW)
    assert KNOWN_SIGNATURE[4:] not in str(info.value) and "5158" not in str(info.value)


# ------------------------------------------------------------------ parse: trigger bodies

INVOCATION = {"x-zendesk-webhook-invocation-id": "01HANA2B5D5W9XSJS3NE5SQA1J"}


def test_trigger_created_with_hints() -> None:
    raw = json.dumps({"event": "created", "ticket_id": "5158", "requester_locale": "en-US",
                      "via": "Web Form", "brand_id": "8447346621310"}).encode()
    ref = parse(raw, tenant_id="acme", headers=INVOCATION)
    assert (ref.vendor, ref.tenant_id, ref.ticket_id, ref.event) == ("zendesk", "acme", "5158", "created")
    assert ref.delivery_id == "01HANA2B5D5W9XSJS3NE5SQA1J"
    assert dict(ref.hints) == {"requester_locale": "en-US", "via": "Web Form",
                               "brand_id": "8447346621310"}
    assert ref.dedupe_key == "zendesk:acme:5158:created"


def test_bare_ticket_id_counts_as_created_and_numbers_are_accepted() -> None:
    ref = parse(b'{"ticket_id": 42}', tenant_id="acme", headers=INVOCATION)
    assert (ref.ticket_id, ref.event) == ("42", "created")


def test_unrendered_placeholders_and_free_text_are_dropped_from_hints() -> None:
    raw = json.dumps({"ticket_id": "7", "requester_locale": "{{ticket.requester.locale}}",
                      "via": 'I said "help" <b>now</b>', "description": "words"}).encode()
    ref = parse(raw, tenant_id="acme", headers=INVOCATION)
    assert dict(ref.hints) == {}


def test_trigger_comment_without_comment_id_dedupes_per_delivery() -> None:
    raw = b'{"event": "comment", "ticket_id": "7", "requester_locale": "de"}'
    first = parse(raw, tenant_id="acme", headers={"x-zendesk-webhook-invocation-id": "A1"})
    again = parse(raw, tenant_id="acme", headers={"x-zendesk-webhook-invocation-id": "A1"})
    later = parse(raw, tenant_id="acme", headers={"x-zendesk-webhook-invocation-id": "B2"})
    assert first.event == "comment" and first.comment_id is None
    assert first.dedupe_key == again.dedupe_key != later.dedupe_key


def test_trigger_feedback_carries_current_tags() -> None:
    raw = b'{"event": "feedback", "ticket_id": "7", "current_tags": "billing careroute_screened vip"}'
    ref = parse(raw, tenant_id="acme", headers=INVOCATION)
    assert ref.event == "feedback"
    assert ref.tags == ("billing", "careroute_screened", "vip")


def test_missing_delivery_id_is_derived_from_the_body() -> None:
    first = parse(b'{"ticket_id": "9"}', tenant_id="acme", headers={})
    second = parse(b'{"ticket_id": "9"}', tenant_id="acme", headers={})
    assert first.delivery_id == second.delivery_id and first.delivery_id.startswith("body-")


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty body"),
    (b"ticket_id=5", "body is not JSON"),
    (b"[1, 2]", "body is not a JSON object"),
    (b'{"hello": "world"}', "not a Zendesk ticket delivery"),
    (b'{"ticket_id": ""}', "no valid ticket id"),
    (b'{"ticket_id": "{{ticket.id}}"}', "no valid ticket id"),
    (b'{"ticket_id": "12; drop"}', "no valid ticket id"),
    (b'{"ticket_id": true}', "no valid ticket id"),
    (b'{"ticket_id": "5", "event": "deleted"}', "unknown event"),
    (b'\xff\xfe{', "body is not JSON"),
])
def test_bad_bodies(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse(raw, tenant_id="acme", headers=INVOCATION)
    assert info.value.reason == reason


def test_payload_error_never_echoes_the_body() -> None:
    secret_text = "my private words about hurting"
    raw = json.dumps({"ticket_id": secret_text}).encode()
    with pytest.raises(PayloadError) as info:
        parse(raw, tenant_id="acme", headers=INVOCATION)
    assert "private" not in str(info.value)


# ------------------------------------------------------------------ parse: event webhooks


def event(kind: str, detail: dict | None = None, body: dict | None = None) -> bytes:
    return json.dumps({
        "type": f"zen:event-type:{kind}", "account_id": 22129848,
        "id": "cbe4028c-7239-495d-b020-f22348516046", "time": "2025-01-08T10:12:07.672717030Z",
        "zendesk_event_version": "2022-11-06", "subject": "zen:ticket:5158",
        "detail": {"id": "5158", "brand_id": "8447346621310", "requester_id": "8447388090494",
                   "priority": "NORMAL", "status": "NEW", "tags": ["web"],
                   "via": {"channel": "web_form"}, **(detail or {})},
        "event": body or {}}).encode()


def test_event_ticket_created() -> None:
    ref = parse(event("ticket.created"), tenant_id="acme", headers={})
    assert (ref.ticket_id, ref.event) == ("5158", "created")
    assert ref.delivery_id == "cbe4028c-7239-495d-b020-f22348516046"
    assert dict(ref.hints) == {"via": "web_form", "brand_id": "8447346621310",
                               "requester_id": "8447388090494"}


def test_both_routes_share_a_dedupe_key_for_a_new_ticket() -> None:
    by_trigger = parse(b'{"ticket_id": "5158"}', tenant_id="acme", headers=INVOCATION)
    by_event = parse(event("ticket.created"), tenant_id="acme",
                     headers={"x-zendesk-webhook-invocation-id": "01HOTHER"})
    assert by_trigger.dedupe_key == by_event.dedupe_key
    assert by_trigger.delivery_id != by_event.delivery_id


def test_invocation_header_wins_over_event_id() -> None:
    ref = parse(event("ticket.created"), tenant_id="acme", headers=INVOCATION)
    assert ref.delivery_id == INVOCATION["x-zendesk-webhook-invocation-id"]


def test_event_ticket_id_from_subject_when_detail_has_none() -> None:
    raw = json.loads(event("ticket.created"))
    del raw["detail"]["id"]
    ref = parse(json.dumps(raw).encode(), tenant_id="acme", headers={})
    assert ref.ticket_id == "5158"


def test_end_user_comment_is_a_comment_event_deduped_per_comment() -> None:
    body = {"comment": {"id": "33144692244499", "body": "text", "is_public": True,
                        "author": {"id": "8447388090494", "is_staff": False, "name": "Sam"}}}
    ref = parse(event("ticket.comment_added", body=body), tenant_id="acme", headers={})
    assert (ref.event, ref.comment_id) == ("comment", "33144692244499")
    assert ref.dedupe_key == "zendesk:acme:5158:comment:33144692244499"


def test_staff_comment_is_ignorable() -> None:
    body = {"comment": {"id": "1", "is_public": True, "author": {"id": "2", "is_staff": True}}}
    with pytest.raises(IgnorableEvent) as info:
        parse(event("ticket.comment_added", body=body), tenant_id="acme", headers={})
    assert info.value.reason == "not an end-user comment"


def test_tags_changed_is_feedback_with_current_tags() -> None:
    ref = parse(event("ticket.tags_changed", {"tags": ["careroute_screened", "vip"]},
                      {"tags": {"added": ["vip"], "removed": ["careroute_high"]}}),
                tenant_id="acme", headers={})
    assert ref.event == "feedback" and ref.tags == ("careroute_screened", "vip")


def test_other_event_types_are_ignorable() -> None:
    with pytest.raises(IgnorableEvent):
        parse(event("ticket.status_changed"), tenant_id="acme", headers={})
    with pytest.raises(IgnorableEvent):
        parse(json.dumps({"type": "zen:event-type:user.deleted", "detail": {}}).encode(),
              tenant_id="acme", headers={})


def test_event_without_detail_or_comment_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        parse(json.dumps({"type": "zen:event-type:ticket.created"}).encode(), tenant_id="acme",
              headers={})
    with pytest.raises(PayloadError):
        parse(event("ticket.comment_added"), tenant_id="acme", headers={})


def test_webhook_module_is_pure() -> None:
    """No network, server or storage library is imported by verify/parse."""
    import ast
    import inspect

    import plugin.zendesk.webhook as module

    tree = ast.parse(inspect.getsource(module))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= {"__future__", "base64", "binascii", "hashlib", "functools", "hmac", "json", "re",
                        "datetime", "typing"}
