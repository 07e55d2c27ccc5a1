"""Packages serverless.yml with the Serverless Framework v3 and checks the CloudFormation it makes.

The framework is installed once into the repository's node_modules (package.json pins
serverless 3.40.0; `npm ci` from package-lock.json) and reused by later runs. Packaging needs no
login and no AWS credentials. Skipped only where npm is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.aws_support import custom_value, serverless_config

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
FRAMEWORK_VERSION = "3.40.0"


def _installed_version() -> str | None:
    manifest = NODE_MODULES / "serverless" / "package.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("version")


def _quiet_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"HOME": str(home), "CI": "1", "SLS_TELEMETRY_DISABLED": "1",
                "SLS_NOTIFICATIONS_MODE": "off", "SLS_DEPRECATION_DISABLE": "*"})
    return env


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot run the Serverless Framework "
                    "to package the stack")
    if _installed_version() != FRAMEWORK_VERSION:
        # One-time install into ./node_modules (kept out of git); later runs reuse it.
        command = [npm, "ci" if (ROOT / "package-lock.json").exists() else "install",
                   "--no-audit", "--no-fund"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
    assert _installed_version() == FRAMEWORK_VERSION

    service = tmp_path_factory.mktemp("serverless-service")
    shutil.copy(ROOT / "serverless.yml", service / "serverless.yml")
    shutil.copytree(ROOT / "plugin", service / "plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (service / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
    # The framework caches its compiled config schema under ~/.serverless (~10 s to rebuild):
    # keep that HOME beside the install so later runs start warm.
    home = NODE_MODULES / ".cache" / "careroute-serverless-home"
    home.mkdir(parents=True, exist_ok=True)
    # What `npx serverless@3.40.0 package` runs, minus npx's own start-up.
    framework = service / "node_modules" / ".bin" / "serverless"
    result = subprocess.run([str(framework), "package"], cwd=service,
                            env=_quiet_env(home), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    built = service / ".serverless" / "cloudformation-template-update-stack.json"
    return json.loads(built.read_text(encoding="utf-8"))


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][f"{name.capitalize()}LambdaFunction"]["Properties"]


def test_queue_has_a_dead_letter_queue_after_five_receives(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    assert set(queues) == {"JobsQueue", "DeadLetterQueue"}
    redrive = queues["JobsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 5
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert "RedrivePolicy" not in queues["DeadLetterQueue"]["Properties"]


def test_visibility_timeout_is_at_least_six_worker_timeouts(template: dict[str, Any]) -> None:
    visibility = template["Resources"]["JobsQueue"]["Properties"]["VisibilityTimeout"]
    worker_timeout = _function(template, "worker")["Timeout"]
    assert isinstance(visibility, int) and isinstance(worker_timeout, int)
    assert visibility >= 6 * worker_timeout


def test_worker_reads_batches_and_reports_item_failures(template: dict[str, Any]) -> None:
    mappings = _resources(template, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1
    mapping = next(iter(mappings.values()))["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert mapping["FunctionName"] == {"Fn::GetAtt": ["WorkerLambdaFunction", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10
    worker = _function(template, "worker")
    reserved = worker["ReservedConcurrentExecutions"]
    assert 1 <= reserved <= 20
    # The pollers stop at the same cap instead of being throttled.
    assert mapping["ScalingConfig"]["MaximumConcurrency"] <= reserved
    assert worker["Environment"]["Variables"]["CAREROUTE_AWS_WORKER_SHARES"] == str(reserved)
    assert worker["Handler"] == "plugin/handlers/aws_lambda.worker_handler"
    assert worker["Runtime"] == "python3.11"


def test_http_api_routes_webhooks_to_the_receive_function(template: dict[str, Any]) -> None:
    routes = _resources(template, "AWS::ApiGatewayV2::Route")
    assert [r["Properties"]["RouteKey"] for r in routes.values()] == [
        "POST /webhooks/{vendor}/{tenant_id}"]
    receive = _function(template, "receive")
    assert receive["Handler"] == "plugin/handlers/aws_lambda.receive_handler"
    assert receive["Environment"]["Variables"]["CAREROUTE_AWS_QUEUE_URL"] == {"Ref": "JobsQueue"}
    assert "ReservedConcurrentExecutions" not in receive  # webhooks are never throttled by us


def test_tables_are_on_demand_and_expire_jobs_and_audit(template: dict[str, Any]) -> None:
    tables = _resources(template, "AWS::DynamoDB::Table")
    assert set(tables) == {"JobsTable", "TenantsTable", "AuditTable", "TokensTable"}
    for table in tables.values():
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["Properties"]["SSESpecification"]["SSEEnabled"] is True
    for name in ("JobsTable", "AuditTable"):
        ttl = tables[name]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": "expires_at", "Enabled": True}
    for name in ("TenantsTable", "TokensTable"):
        assert "TimeToLiveSpecification" not in tables[name]["Properties"]


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"]
            for s in policy["PolicyDocument"]["Statement"]]


def test_iam_is_one_role_per_function_without_wildcard_actions(template: dict[str, Any]) -> None:
    roles = _resources(template, "AWS::IAM::Role")
    assert set(roles) == {"ReceiveRole", "WorkerRole"}
    assert _function(template, "receive")["Role"] == {"Fn::GetAtt": ["ReceiveRole", "Arn"]}
    assert _function(template, "worker")["Role"] == {"Fn::GetAtt": ["WorkerRole", "Arn"]}
    for role in roles.values():
        for statement in _statements(role):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [
                statement["Action"]]
            assert all("*" not in action for action in actions), actions
            assert statement["Resource"] != "*"
    receive_actions = {a for s in _statements(roles["ReceiveRole"]) for a in s["Action"]}
    # The receive function never touches the audit, the tokens or the dead-letter queue.
    assert receive_actions == {"logs:CreateLogStream", "logs:PutLogEvents", "dynamodb:PutItem",
                               "dynamodb:GetItem", "dynamodb:UpdateItem",
                               "ssm:GetParametersByPath", "sqs:SendMessage"}
    audit_writers = [s for s in _statements(roles["WorkerRole"])
                     if s["Resource"] == {"Fn::GetAtt": ["AuditTable", "Arn"]}]
    assert [s["Action"] for s in audit_writers] == [["dynamodb:PutItem"]]


def test_secrets_come_from_ssm_under_the_stage_prefix(template: dict[str, Any]) -> None:
    config = serverless_config()
    prefix = custom_value("${self:custom.ssmPrefix}", config).replace("${sls:stage}", "dev")
    for name in ("receive", "worker"):
        variables = _function(template, name)["Environment"]["Variables"]
        assert variables["CAREROUTE_AWS_SSM_PREFIX"] == prefix
        # Only resource names and knobs: no secret is ever put in the environment.
        literal = {k: v for k, v in variables.items() if isinstance(v, str)}
        assert set(literal) <= {"CAREROUTE_LOG_FORMAT", "CAREROUTE_AWS_SSM_PREFIX",
                                "CAREROUTE_AWS_MAX_RECEIVE_COUNT", "CAREROUTE_AWS_WORKER_SHARES",
                                "CAREROUTE_AWS_RESEND_AFTER_SECONDS"}, literal
