"""The AWS deployment end to end against moto's server mode and the Zendesk sandbox: the real
Lambda handlers, real SQS redrive, DynamoDB conditional writes, SSM secrets."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from plugin.aws.command import register as register_aws_command
from plugin.aws.enqueue import SqsEnqueuer, job_message, message_attributes
from plugin.aws.tenants import upload_tenant
from plugin.aws.wellbeing import DynamoCrisisLoad
from plugin.handlers import aws_lambda
from plugin.model import TicketRef
from plugin.queue import ref_to_json
from plugin.sandbox.zendesk import TRAINED_GROUP_ID
from plugin.wellbeing import MemberLoad, WellbeingSettings
from tests.aws_support import (Stack, ThreadedZendesk, all_items, create_stack,
                               drain_messages, http_event, poll_once, start_moto)
from tests.backbone_support import CANARY_TEXT, signed_headers, trigger_body
from tests.zendesk_support import AGENT_EMAIL, customer_ticket

SECRET = "zd-lambda-secret-0123456789"
FRESHDESK_SECRET = "fd-lambda-secret-0123456789"
# Crisis words for the screener, with the canary that must never leave the helpdesk.
CRISIS_TEXT = ("I do not want to be alive anymore and I keep thinking about ending my life "
               f"tonight. {CANARY_TEXT}")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def zendesk() -> Iterator[ThreadedZendesk]:
    sandbox = ThreadedZendesk().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    stack = create_stack(moto_endpoint)
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    aws_lambda.reset_runtime()
    yield stack
    aws_lambda.reset_runtime()


def add_zendesk_tenant(stack: Stack, zendesk: ThreadedZendesk, tenant_id: str = "acme",
                       **extra: Any) -> None:
    upload_tenant(stack.settings, stack.clients, {
        "id": tenant_id, "vendor": "zendesk", "base_url": zendesk.url, "webhook_secret": SECRET,
        "auth": {"kind": "api_token", "email": AGENT_EMAIL, "token": "sandbox-token"},
        "trained_group_id": TRAINED_GROUP_ID, **extra})


def deliver(ticket_id: int | str, *, invocation: str, secret: str = SECRET,
            tenant_id: str = "acme") -> tuple[int, dict[str, Any]]:
    body = trigger_body(ticket_id, event="created")
    headers = signed_headers(body, secret, invocation=invocation)
    event = http_event("zendesk", tenant_id, body, headers)
    response = aws_lambda.receive_handler(event, None)
    return response["statusCode"], json.loads(response["body"])


def ticket_updates(zendesk: ThreadedZendesk, ticket_id: int) -> list[Any]:
    return zendesk.call(lambda: [e for e in zendesk.state.log.entries
                                 if e.method == "PUT" and e.path == f"/api/v2/tickets/{ticket_id}"])


def assert_no_ticket_text(stack: Stack) -> None:
    canary = CANARY_TEXT.split()[0]
    items = list(all_items(stack))
    assert items, "the stack stored nothing at all"
    for table, item in items:
        assert canary not in json.dumps(item), f"ticket text reached {table}"
    for queue_url in (stack.settings.queue_url, stack.settings.dlq_url):
        for message in drain_messages(stack, queue_url):
            assert canary not in json.dumps(message), "ticket text reached SQS"


def test_duplicate_delivery_is_one_message_and_one_ticket_update(stack: Stack,
                                                                  zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    ticket_id = zendesk.call(lambda: customer_ticket(zendesk.state, CRISIS_TEXT))

    assert deliver(ticket_id, invocation="inv-1") == (202, {"accepted": True, "duplicate": False})
    # The same ticket again (a vendor retry, or the second webhook route): no second job.
    assert deliver(ticket_id, invocation="inv-2") == (202, {"accepted": True, "duplicate": True})
    queued = drain_messages(stack, stack.settings.queue_url)
    assert len(queued) == 1
    message = json.loads(queued[0]["Body"])
    assert json.loads(message["ref"])["ticket_id"] == str(ticket_id)

    poll = poll_once(stack, aws_lambda.worker_handler)
    assert len(poll.records) == 1 and poll.failed_ids == []
    ticket = zendesk.call(lambda: zendesk.state.tickets[ticket_id])
    assert {"careroute_imminent", "careroute_screened"} <= set(ticket.tags)
    assert ticket.group_id == TRAINED_GROUP_ID
    assert len(ticket_updates(zendesk, ticket_id)) == 1

    # A late redelivery after the work is done is still a duplicate: nothing new to do.
    assert deliver(ticket_id, invocation="inv-3") == (202, {"accepted": True, "duplicate": True})
    assert poll_once(stack, aws_lambda.worker_handler).records == []
    assert len(ticket_updates(zendesk, ticket_id)) == 1

    audit = stack.dynamodb.scan(TableName=stack.settings.audit_table)["Items"]
    assert [(a["ticket_id"]["S"], a["tier"]["S"], a["outcome"]["S"]) for a in audit] == [
        (str(ticket_id), "imminent", "applied")]
    assert json.loads(audit[0]["rule_ids"]["S"]), "the audit names the rules that fired"
    journal = [item for _, item in all_items(stack)
               if item.get("pk", {}).get("S", "").startswith("journal#")]
    assert {i["step"]["S"] for i in journal} >= {"plan", "update"}
    assert_no_ticket_text(stack)


def test_wellbeing_rota_ledger_spreads_crisis_tickets_across_containers(
        stack: Stack, zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk, wellbeing={"enabled": True, "max_per_shift": 1})
    assignees = []
    for number in range(4):
        ticket_id = zendesk.call(lambda: customer_ticket(zendesk.state, CRISIS_TEXT))
        assert deliver(ticket_id, invocation=f"inv-rota-{number}")[0] == 202
        # A fresh container each time: the load can only come from the DynamoDB ledger.
        aws_lambda.reset_runtime()
        assert poll_once(stack, aws_lambda.worker_handler).failed_ids == []
        assignees.append(zendesk.call(lambda: zendesk.state.tickets[ticket_id].assignee_id))
    assert None not in assignees[:3] and len(set(assignees[:3])) == 3
    assert assignees[3] is None  # everyone at the cap: the ticket waits in the group queue
    ledger = [item for _, item in all_items(stack)
              if item.get("pk", {}).get("S", "").startswith("rota#acme#")]
    assert sorted(int(i["pk"]["S"].rsplit("#", 1)[1]) for i in ledger) == sorted(assignees[:3])
    assert all(len(i["assignments"]["M"]) == 1 for i in ledger)

    # A retried job records its assignment once (as the SQLite ledger's primary key ensures).
    load = DynamoCrisisLoad(stack.settings, stack.clients)
    now = time.time()
    asyncio.run(load.record("beta", 7, "job-1", now))
    asyncio.run(load.record("beta", 7, "job-1", now + 5))
    rota = asyncio.run(load.rota("beta", [7, 8], WellbeingSettings(enabled=True), now + 10))
    assert rota.members == (MemberLoad(7, 1, now), MemberLoad(8, 0, None))


def test_bad_signature_is_401_and_stores_nothing(stack: Stack, zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    status, body = deliver(12345, invocation="inv-bad", secret="not-the-secret-000000")
    assert status == 401 and body == {"error": "invalid signature"}
    assert drain_messages(stack, stack.settings.queue_url) == []
    assert stack.dynamodb.scan(TableName=stack.settings.jobs_table)["Items"] == []
    # An unknown tenant is a plain 404 that says nothing more.
    assert deliver(12345, invocation="inv-x", tenant_id="nobody")[0] == 404


def test_freshdesk_token_in_the_query_string_is_read(stack: Stack) -> None:
    upload_tenant(stack.settings, stack.clients, {
        "id": "globex", "vendor": "freshdesk", "domain": "globex.freshdesk.com",
        "webhook_secret": FRESHDESK_SECRET, "auth": {"kind": "api_key", "key": "fd-api-key-1"}})
    body = json.dumps({"event": "created", "ticket_id": "77", "source": "2",
                       "portal": "Globex"}).encode()
    headers = {"Content-Type": "application/json"}
    ok = aws_lambda.receive_handler(http_event("freshdesk", "globex", body, headers,
                                               raw_query=f"token={FRESHDESK_SECRET}"), None)
    assert ok["statusCode"] == 202, ok["body"]
    wrong = aws_lambda.receive_handler(http_event("freshdesk", "globex", body, headers,
                                                  raw_query="token=guess"), None)
    assert wrong["statusCode"] == 401
    assert len(drain_messages(stack, stack.settings.queue_url)) == 1


def test_poison_record_fails_alone(stack: Stack, zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    ticket_id = zendesk.call(lambda: customer_ticket(zendesk.state, "Where is my parcel? "
                                                     + CANARY_TEXT))
    assert deliver(ticket_id, invocation="inv-ok")[0] == 202
    poison_id = stack.sqs.send_message(QueueUrl=stack.settings.queue_url,
                                       MessageBody="{not json")["MessageId"]
    ghost = TicketRef(vendor="zendesk", tenant_id="ghost", ticket_id="9", delivery_id="d-9")
    stack.sqs.send_message(QueueUrl=stack.settings.queue_url,
                           MessageBody=job_message("0000000000000000ghost001", ref_to_json(ghost),
                                                   time.time()),
                           MessageAttributes=message_attributes())

    poll = poll_once(stack, aws_lambda.worker_handler)
    assert len(poll.records) == 3
    assert poll.failed_ids == [poison_id]
    # The good job ran to the end; the unknown tenant's job went to the DLQ with its reason.
    audit = stack.dynamodb.scan(TableName=stack.settings.audit_table)["Items"]
    assert [(a["ticket_id"]["S"], a["outcome"]["S"]) for a in audit] == [
        (str(ticket_id), "nothing_to_do")]
    dead = drain_messages(stack, stack.settings.dlq_url)
    assert [m["MessageAttributes"]["reason"]["StringValue"] for m in dead] == [
        "tenant not configured or disabled"]
    assert json.loads(json.loads(dead[0]["Body"])["ref"])["tenant_id"] == "ghost"
    # Only the poison record is still held (in flight until its visibility timeout ends).
    counts = stack.sqs.get_queue_attributes(
        QueueUrl=stack.settings.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0",
                      "ApproximateNumberOfMessagesNotVisible": "1"}


def test_repeated_failure_lands_in_the_dead_letter_queue(stack: Stack,
                                                         zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    ticket_id = zendesk.call(lambda: customer_ticket(zendesk.state, CRISIS_TEXT))
    assert deliver(ticket_id, invocation="inv-dlq")[0] == 202
    zendesk.call(lambda: zendesk.state.faults.update({"error_rate": 1.0}))
    try:
        receive_counts = []
        for _ in range(8):
            poll = poll_once(stack, aws_lambda.worker_handler)
            if not poll.records:
                break
            assert poll.failed_ids == [poll.records[0]["messageId"]]
            receive_counts.append(int(poll.records[0]["attributes"]["ApproximateReceiveCount"]))
    finally:
        zendesk.call(lambda: zendesk.state.faults.update({"error_rate": 0.0}))
    # Five receives failed; at the sixth, SQS's redrive moved the message instead.
    assert receive_counts == [1, 2, 3, 4, 5]
    dead = drain_messages(stack, stack.settings.dlq_url)
    assert len(dead) == 1
    job_id = json.loads(dead[0]["Body"])["job_id"]
    mark = stack.dynamodb.get_item(TableName=stack.settings.jobs_table,
                                   Key={"pk": {"S": f"dead#{job_id}"}})["Item"]
    assert mark["reason"]["S"].startswith("retries exhausted")
    assert ticket_updates(zendesk, ticket_id) == []
    assert_no_ticket_text(stack)


def test_rate_limit_defers_without_spending_receives(stack: Stack,
                                                     zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    ticket_id = zendesk.call(lambda: customer_ticket(zendesk.state, CRISIS_TEXT))
    assert deliver(ticket_id, invocation="inv-429")[0] == 202
    zendesk.call(lambda: zendesk.state.faults.update({"rate_limit_rate": 1.0, "retry_after": 1}))
    try:
        first = poll_once(stack, aws_lambda.worker_handler)
    finally:
        zendesk.call(lambda: zendesk.state.faults.update({"rate_limit_rate": 0.0}))
    assert len(first.records) == 1 and first.failed_ids == []
    # The copy waits out Retry-After (DelaySeconds) and starts again at one receive.
    deadline = time.time() + 10
    second = poll_once(stack, aws_lambda.worker_handler)
    while not second.records and time.time() < deadline:
        time.sleep(0.2)
        second = poll_once(stack, aws_lambda.worker_handler)
    assert len(second.records) == 1 and second.failed_ids == []
    assert second.records[0]["attributes"]["ApproximateReceiveCount"] == "1"
    assert second.records[0]["messageAttributes"]["prior_attempts"]["stringValue"] == "0"
    assert json.loads(second.records[0]["body"])["job_id"] == json.loads(first.records[0]["body"])[
        "job_id"]
    assert len(ticket_updates(zendesk, ticket_id)) == 1


def test_claim_left_pending_by_a_failed_send_is_sent_by_the_retry(stack: Stack,
                                                                  zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    ref = TicketRef(vendor="zendesk", tenant_id="acme", ticket_id="4242", delivery_id="inv-a")
    broken = SqsEnqueuer(dataclasses.replace(stack.settings,
                                             queue_url=stack.settings.queue_url + "-gone"),
                         stack.clients)
    with pytest.raises(Exception) as failed:
        broken.enqueue(ref, time.time())
    assert type(failed.value).__name__ == "StoreUnavailableError"
    claim = stack.dynamodb.get_item(TableName=stack.settings.jobs_table,
                                    Key={"pk": {"S": f"dedupe#{ref.dedupe_key}"}})["Item"]
    assert claim["state"]["S"] == "pending"

    # The vendor's retry (after our 503) finds the claim resendable and sends the same job.
    result = SqsEnqueuer(stack.settings, stack.clients).enqueue(ref, time.time())
    assert result.job_id == claim["job_id"]["S"] and not result.duplicate
    queued = drain_messages(stack, stack.settings.queue_url)
    assert [json.loads(m["Body"])["job_id"] for m in queued] == [result.job_id]
    assert SqsEnqueuer(stack.settings, stack.clients).enqueue(ref, time.time()).duplicate


def test_claim_of_a_live_request_answers_503_and_of_a_dead_one_is_taken_over(
        stack: Stack, zendesk: ThreadedZendesk) -> None:
    add_zendesk_tenant(stack, zendesk)
    ref = TicketRef(vendor="zendesk", tenant_id="acme", ticket_id="5151", delivery_id="inv-b")
    now = time.time()
    stack.dynamodb.put_item(TableName=stack.settings.jobs_table, Item={
        "pk": {"S": f"dedupe#{ref.dedupe_key}"}, "state": {"S": "pending"},
        "job_id": {"S": "00000000000000000000live"}, "ref": {"S": ref_to_json(ref)},
        "received_at": {"N": repr(now)}, "claimed_at": {"N": repr(now)},
        "expires_at": {"N": str(int(now + 3600))}})
    status, body = deliver(5151, invocation="inv-b2")
    assert status == 503 and body == {"error": "temporarily unavailable"}
    assert drain_messages(stack, stack.settings.queue_url) == []

    later = SqsEnqueuer(stack.settings, stack.clients, clock=lambda: now + 30)
    result = later.enqueue(ref, now + 30)
    assert result.job_id == "00000000000000000000live" and not result.duplicate
    assert len(drain_messages(stack, stack.settings.queue_url)) == 1



def test_tenants_file_pushed_with_the_command_serves_webhooks(stack: Stack, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("INITECH_HOOK_SECRET", SECRET)
    tenants_file = tmp_path / "tenants.toml"
    tenants_file.write_text(
        '[[tenants]]\nid = "initech"\nvendor = "zendesk"\nsubdomain = "initech"\n'
        'webhook_secret = "env:INITECH_HOOK_SECRET"\n'
        'auth = { kind = "api_token", email = "bot@initech.example", token = "zd-api-token-42" }\n'
        '[tenants.screening]\nconcern = 0.3\nhigh = 0.55\nimminent = 0.8\n', encoding="utf-8")
    parser = argparse.ArgumentParser()
    register_aws_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["aws-tenants", "push", str(tenants_file),
                              "--tenants-table", stack.settings.tenants_table,
                              "--ssm-prefix", stack.settings.ssm_prefix])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert f"{stack.settings.ssm_prefix}/tenants/initech/auth/token" in printed
    assert SECRET not in printed and "zd-api-token-42" not in printed

    item = stack.dynamodb.get_item(TableName=stack.settings.tenants_table,
                                   Key={"tenant_id": {"S": "initech"}})["Item"]
    assert SECRET not in item["config"]["S"] and "zd-api-token-42" not in item["config"]["S"]
    assert json.loads(item["config"]["S"])["screening"]["high"] == 0.55
    status, body = deliver(31337, invocation="inv-i", tenant_id="initech")
    assert (status, body) == (202, {"accepted": True, "duplicate": False})
