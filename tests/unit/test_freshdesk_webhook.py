"""Freshdesk webhook: the three ways to present the secret, and parsing of the rule bodies."""

from __future__ import annotations

import base64
import json

import pytest

from plugin.errors import PayloadError, SignatureError
from plugin.freshdesk.webhook import (
    COMMENT_BODY,
    CREATE_BODY,
    FEEDBACK_BODY,
    IgnorableEvent,
    parse,
    verify,
)

SECRET = "tenant-a-secret-0123456789"
OTHER_TENANT_SECRET = "tenant-b-secret-9876543210"
BODY = b'{"event": "created", "ticket_id": "42"}'


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def render(template: str, **values: str) -> bytes:
    """Fill placeholders the way Freshdesk does: newlines escaped, quotes left as they are."""
    out = template
    for name, value in values.items():
        out = out.replace("{{" + name + "}}", value.replace("\n", "\\n"))
    return out.encode()


# ---------------------------------------------------------------------------- verify


@pytest.mark.parametrize("headers,query", [
    ({"x-careroute-token": SECRET}, None),
    ({"authorization": basic("freshdesk", SECRET)}, None),
    ({"authorization": basic("", SECRET)}, None),
    ({}, {"token": SECRET}),
])
def test_each_way_of_presenting_the_secret_is_accepted(headers, query):
    assert verify(headers, BODY, SECRET, 0.0, query=query) is None


@pytest.mark.parametrize("headers,query", [
    ({"x-careroute-token": "wrong"}, None),
    ({"authorization": basic("freshdesk", "wrong")}, None),
    ({}, {"token": "wrong"}),
    ({"x-careroute-token": OTHER_TENANT_SECRET}, None),
    ({"authorization": basic("freshdesk", OTHER_TENANT_SECRET)}, None),
    ({}, {"token": OTHER_TENANT_SECRET}),
    ({"authorization": basic(SECRET, "X")}, None),  # the secret as user name is not the password
    ({"authorization": "Bearer " + SECRET}, None),
    ({"authorization": "Basic not-base64!!"}, None),
])
def test_wrong_or_other_tenants_secret_is_refused(headers, query):
    with pytest.raises(SignatureError) as caught:
        verify(headers, BODY, SECRET, 0.0, query=query)
    assert caught.value.http_status == 401
    assert SECRET not in caught.value.reason and OTHER_TENANT_SECRET not in caught.value.reason


def test_missing_credentials_are_refused():
    with pytest.raises(SignatureError, match="missing"):
        verify({"content-type": "application/json"}, BODY, SECRET, 0.0, query={})


def test_one_wrong_credential_beside_a_right_one_still_passes():
    headers = {"x-careroute-token": "stale", "authorization": basic("u", SECRET)}
    verify(headers, BODY, SECRET, 0.0)


def test_an_empty_configured_secret_accepts_nothing():
    with pytest.raises(SignatureError):
        verify({"x-careroute-token": ""}, BODY, "", 0.0)


# ----------------------------------------------------------------------------- parse


def test_create_rule_body_with_quoted_id_and_hints():
    raw = render(CREATE_BODY, **{"ticket.id": "6541", "ticket.source": "Email",
                                 "ticket.portal_name": "Acme Support"})
    ref = parse(raw, tenant_id="acme", headers={})
    assert (ref.vendor, ref.tenant_id, ref.ticket_id, ref.event) == ("freshdesk", "acme", "6541",
                                                                     "created")
    assert ref.hints == {"source": "Email", "portal": "Acme Support"}
    assert ref.comment_id is None


def test_language_hint_becomes_requester_locale():
    raw = b'{"event": "created", "ticket_id": "9", "language": "pt-BR", "portal": "{{x}}"}'
    assert parse(raw, tenant_id="acme", headers={}).hints == {"requester_locale": "pt-BR"}


def test_empty_values_and_unrendered_placeholders_are_not_hints():
    raw = render(CREATE_BODY, **{"ticket.id": "7", "ticket.source": ""})
    ref = parse(raw, tenant_id="acme", headers={})
    assert ref.ticket_id == "7"
    assert ref.hints == {}  # "" dropped; "{{ticket.portal_name}}" left unrendered is dropped too


def test_integer_ticket_id_and_html_description_are_accepted():
    raw = json.dumps({"event": "ticket_created", "ticket_id": 88,
                      "description_html": "<div>Hello<br>there</div>\n\n"}).encode()
    ref = parse(raw, tenant_id="acme", headers={})
    assert ref.ticket_id == "88" and ref.event == "created"
    assert "Hello" not in repr(ref)


def test_redelivery_has_the_same_delivery_id_and_dedupe_key():
    raw = render(CREATE_BODY, **{"ticket.id": "12", "ticket.source": "Portal"})
    first = parse(raw, tenant_id="acme", headers={})
    again = parse(raw, tenant_id="acme", headers={})
    other_ticket = parse(render(CREATE_BODY, **{"ticket.id": "13"}), tenant_id="acme", headers={})
    other_tenant = parse(raw, tenant_id="globex", headers={})
    assert first.delivery_id == again.delivery_id
    assert first.dedupe_key == again.dedupe_key == "freshdesk:acme:12:created"
    assert len({first.delivery_id, other_ticket.delivery_id, other_tenant.delivery_id}) == 3


def test_customer_reply_dedupes_per_comment():
    reply_one = render(COMMENT_BODY, **{"ticket.id": "12",
                                        "ticket.latest_public_comment": "<div>first</div>"})
    reply_two = render(COMMENT_BODY, **{"ticket.id": "12",
                                        "ticket.latest_public_comment": "<div>second</div>"})
    one, one_again, two = (parse(r, tenant_id="acme", headers={})
                           for r in (reply_one, reply_one, reply_two))
    assert one.event == "comment" and one.comment_id is None
    assert one.dedupe_key == one_again.dedupe_key
    assert one.dedupe_key != two.dedupe_key
    assert "first" not in one.delivery_id and "first" not in repr(one)


def test_conversation_id_when_given_is_the_comment_id():
    raw = b'{"event": "comment", "ticket_id": "5", "conversation_id": "9001"}'
    ref = parse(raw, tenant_id="acme", headers={})
    assert ref.comment_id == "9001"
    assert ref.dedupe_key == "freshdesk:acme:5:comment:9001"


def test_simple_layout_is_understood():
    raw = json.dumps({"freshdesk_webhook": {"ticket_id": 31,
                                            "ticket_latest_public_comment": "hi"}}).encode()
    assert parse(raw, tenant_id="acme", headers={}).ticket_id == "31"


def test_feedback_carries_current_tags():
    raw = render(FEEDBACK_BODY, **{"ticket.id": "77",
                                   "ticket.tags": "billing,careroute_not_crisis, careroute_screened"})
    ref = parse(raw, tenant_id="acme", headers={})
    assert ref.event == "feedback"
    assert ref.tags == ("billing", "careroute_not_crisis", "careroute_screened")
    changed = parse(render(FEEDBACK_BODY, **{"ticket.id": "77", "ticket.tags": "billing"}),
                    tenant_id="acme", headers={})
    assert changed.dedupe_key != ref.dedupe_key


def test_quote_in_a_value_breaks_json_but_the_ticket_is_recovered():
    raw = render(COMMENT_BODY, **{"ticket.id": "4242", "ticket.source": "Email",
                                  "ticket.latest_public_comment": 'she said "enough" today'})
    with pytest.raises(ValueError):
        json.loads(raw)
    ref = parse(raw, tenant_id="acme", headers={})
    assert ref.ticket_id == "4242" and ref.event == "comment"
    assert ref.hints == {"recovered": "true"}
    assert parse(raw, tenant_id="acme", headers={}).delivery_id == ref.delivery_id


def test_broken_json_without_a_ticket_id_is_refused_without_echo():
    raw = b'{"event": "created", "subject": "my "private" words", "ticket_id": ""}'
    with pytest.raises(PayloadError) as caught:
        parse(raw, tenant_id="acme", headers={})
    assert caught.value.reason == "malformed JSON body"
    assert "private" not in str(caught.value)


@pytest.mark.parametrize("raw,reason", [
    (b"", "empty body"),
    (b"[1, 2]", "body is not a JSON object"),
    (b'{"event": "created"}', "ticket_id missing or not a number"),
    (b'{"ticket_id": "abc"}', "ticket_id missing or not a number"),
    (b'{"ticket_id": "{{ticket.id}}"}', "ticket_id placeholder was not rendered"),
    (b'{"ticket_id": "1", "event": "exploded"}', "unknown event"),
    (b"\xff\xfe{}", "body is not UTF-8"),
])
def test_unusable_bodies_give_a_short_reason(raw, reason):
    with pytest.raises(PayloadError) as caught:
        parse(raw, tenant_id="acme", headers={})
    assert caught.value.reason == reason and caught.value.http_status == 400


@pytest.mark.parametrize("raw", [
    b'{"event": "agent_reply", "ticket_id": "3"}',
    b'{"event": "comment", "ticket_id": "3", "latest_comment": ""}',
    b'{"event": "comment", "ticket_id": "3", "latest_comment": "{{ticket.latest_public_comment}}"}',
])
def test_ignorable_events(raw):
    with pytest.raises(IgnorableEvent):
        parse(raw, tenant_id="acme", headers={})


def test_webhook_module_is_pure():
    import plugin.freshdesk.webhook as module

    source = open(module.__file__, encoding="utf-8").read()
    for banned in ("import httpx", "import aiohttp", "import sqlite3", "import boto3"):
        assert banned not in source
