"""Helpers for the AWS deployment tests: moto in server mode, the stack's queues and tables built
from serverless.yml's own resource definitions, a stand-in for Lambda's SQS event source, API
Gateway v2 events, and the Zendesk sandbox on its own thread (the Lambda handlers are sync).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import yaml
from aiohttp import web
from moto.server import ThreadedMotoServer

from plugin.aws.settings import AwsClients, AwsSettings
from plugin.sandbox.zendesk import ZENDESK_STATE, ZendeskState, create_app

ROOT = Path(__file__).resolve().parents[1]
SERVERLESS_YML = ROOT / "serverless.yml"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                    "AWS_REGION": "eu-west-1"}


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads serverless.yml, keeping CloudFormation short forms (!Ref, !GetAtt …) as
    {tag: value}."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)
    return {suffix: value}


_CloudFormationLoader.add_multi_constructor("!", _tagged)


def serverless_config() -> dict[str, Any]:
    return yaml.load(SERVERLESS_YML.read_text(encoding="utf-8"), Loader=_CloudFormationLoader)


def custom_value(value: Any, config: dict[str, Any]) -> Any:
    """Resolve a `${self:custom.NAME}` reference (the only variable the queue settings use)."""
    text = str(value)
    if text.startswith("${self:custom.") and text.endswith("}"):
        return config["custom"][text[len("${self:custom."):-1]]
    return value


# ------------------------------------------------------------------ moto


def start_moto() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@dataclass
class Stack:
    endpoint: str
    settings: AwsSettings
    clients: AwsClients
    env: dict[str, str]

    @property
    def sqs(self) -> Any:
        return self.clients.sqs

    @property
    def dynamodb(self) -> Any:
        return self.clients.dynamodb


def create_stack(endpoint: str, **overrides: Any) -> Stack:
    """Queues and tables as serverless.yml declares them, under fresh names, in moto."""
    config = serverless_config()
    resources = config["resources"]["Resources"]
    prefix = f"cr{uuid.uuid4().hex[:8]}"
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="eu-west-1")
    sqs = session.client("sqs", endpoint_url=endpoint)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)

    dlq_props = resources["DeadLetterQueue"]["Properties"]
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-dlq", Attributes={
        "MessageRetentionPeriod": str(dlq_props["MessageRetentionPeriod"])})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    queue_props = resources["JobsQueue"]["Properties"]
    queue_url = sqs.create_queue(QueueName=f"{prefix}-jobs", Attributes={
        "VisibilityTimeout": str(custom_value(queue_props["VisibilityTimeout"], config)),
        "MessageRetentionPeriod": str(queue_props["MessageRetentionPeriod"]),
        "RedrivePolicy": json.dumps({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": int(queue_props["RedrivePolicy"]["maxReceiveCount"])}),
    })["QueueUrl"]

    names = {}
    for logical in ("JobsTable", "TenantsTable", "AuditTable", "TokensTable"):
        props = resources[logical]["Properties"]
        name = f"{prefix}-{logical}"
        dynamodb.create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                              KeySchema=props["KeySchema"], BillingMode=props["BillingMode"])
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        names[logical] = name

    env = {**FAKE_CREDENTIALS,
           "CAREROUTE_AWS_ENDPOINT_URL": endpoint,
           "CAREROUTE_AWS_JOBS_TABLE": names["JobsTable"],
           "CAREROUTE_AWS_TENANTS_TABLE": names["TenantsTable"],
           "CAREROUTE_AWS_AUDIT_TABLE": names["AuditTable"],
           "CAREROUTE_AWS_TOKENS_TABLE": names["TokensTable"],
           "CAREROUTE_AWS_QUEUE_URL": queue_url, "CAREROUTE_AWS_DLQ_URL": dlq_url,
           "CAREROUTE_AWS_SSM_PREFIX": f"/{prefix}",
           "CAREROUTE_AWS_MAX_RECEIVE_COUNT": "5",
           # Back-offs round to 0 s, so a failed message is visible again at once.
           "CAREROUTE_RETRY_BASE_SECONDS": "0.01",
           "CAREROUTE_LOG_FORMAT": "json"}
    env.update({k: str(v) for k, v in overrides.items()})
    settings = AwsSettings.from_env(env)
    return Stack(endpoint, settings, AwsClients(settings), env)


# ------------------------------------------------------------- the SQS event source


@dataclass
class FakeContext:
    seconds: float = 60.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to the function."""
    attributes = {name: {"stringValue": value["StringValue"], "stringListValues": [],
                         "binaryListValues": [], "dataType": value["DataType"]}
                  for name, value in (message.get("MessageAttributes") or {}).items()}
    return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"], "attributes": dict(message.get("Attributes") or {}),
            "messageAttributes": attributes, "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "eu-west-1"}


@dataclass
class Poll:
    records: list[dict[str, Any]]
    response: dict[str, Any] | None

    @property
    def failed_ids(self) -> list[str]:
        return [f["itemIdentifier"] for f in (self.response or {}).get("batchItemFailures", [])]


def poll_once(stack: Stack, handler: Callable[[dict[str, Any], Any], dict[str, Any]],
              *, max_messages: int = 10) -> Poll:
    """Receive one batch, call the worker handler, delete what it did not report as failed."""
    queue_url = stack.settings.queue_url
    arn = stack.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    messages = stack.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0,
        AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
    if not messages:
        return Poll([], None)
    records = [lambda_record(m, arn) for m in messages]
    response = handler({"Records": records}, FakeContext())
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for record in records:
        if record["messageId"] not in failed:
            stack.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])
    return Poll(records, response)


def drain_messages(stack: Stack, queue_url: str) -> list[dict[str, Any]]:
    """Every message currently visible in a queue (left in place: visibility 0 afterwards)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        batch = stack.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=0, AttributeNames=["All"],
                                          MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            break
        for message in batch:
            seen[message["MessageId"]] = message
    for message in seen.values():
        try:
            stack.sqs.change_message_visibility(QueueUrl=queue_url,
                                                ReceiptHandle=message["ReceiptHandle"],
                                                VisibilityTimeout=0)
        except Exception:  # noqa: BLE001 — already moved or deleted
            pass
    return list(seen.values())


def all_items(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    for table in (stack.settings.jobs_table, stack.settings.tenants_table,
                  stack.settings.audit_table, stack.settings.tokens_table):
        for item in stack.dynamodb.scan(TableName=table).get("Items", []):
            yield table, item


# ------------------------------------------------------------------ API Gateway


def http_event(vendor: str, tenant_id: str, body: bytes, headers: dict[str, str], *,
               raw_query: str = "") -> dict[str, Any]:
    """An HTTP API (payload 2.0) event as API Gateway sends it (base64 body, lower-case headers)."""
    return {
        "version": "2.0", "routeKey": "POST /webhooks/{vendor}/{tenant_id}",
        "rawPath": f"/webhooks/{vendor}/{tenant_id}", "rawQueryString": raw_query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {"http": {"method": "POST", "path": f"/webhooks/{vendor}/{tenant_id}",
                                    "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10"},
                           "stage": "$default", "requestId": uuid.uuid4().hex},
        "pathParameters": {"vendor": vendor, "tenant_id": tenant_id},
        "body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True,
    }


# ------------------------------------------------------------ Zendesk sandbox thread


@dataclass
class ThreadedZendesk:
    """The Zendesk sandbox served from its own thread and event loop."""

    url: str = ""
    state: ZendeskState | None = None
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self, **kwargs: Any) -> "ThreadedZendesk":
        ready = threading.Event()

        async def serve() -> None:
            app = create_app(**kwargs)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            self.state = app[ZENDESK_STATE]

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the sandbox's loop (its state is not shared across threads otherwise)."""
        async def wrapped() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
