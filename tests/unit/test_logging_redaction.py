"""The redaction processor with the real structlog configuration."""

from __future__ import annotations

import io
import json
import logging

import pytest

from plugin import logging as cr_logging
from plugin.errors import PayloadError


@pytest.fixture
def logs():
    stream = io.StringIO()
    cr_logging.configure(level="debug", fmt="json", stream=stream)
    cr_logging.redactor.add_secrets(["tenant-secret-abcdef"])
    yield stream
    cr_logging.configure(level="info", fmt="json")


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_content_fields_are_dropped_whatever_their_value(logs):
    cr_logging.get_logger().info("x", text="I feel awful", description="d", subject="s",
                                 html_body="<p>h</p>", ticket="12", tier="high")
    (entry,) = lines(logs)
    assert entry["ticket"] == "12" and entry["tier"] == "high"
    for key in ("text", "description", "subject", "html_body"):
        assert entry[key] == cr_logging.REDACTED


def test_secrets_and_emails_are_masked_inside_values_and_nested(logs):
    cr_logging.get_logger().warning("y", detail="auth tenant-secret-abcdef for jo@example.com",
                                    nested={"a": ["tenant-secret-abcdef"], "body": "b"})
    (entry,) = lines(logs)
    assert "tenant-secret-abcdef" not in json.dumps(entry)
    assert "jo@example.com" not in json.dumps(entry)
    assert entry["nested"]["body"] == cr_logging.REDACTED


def test_exceptions_are_reduced_to_type_and_our_reason(logs):
    try:
        raise ValueError("library message quoting a body: I feel awful")
    except ValueError:
        cr_logging.get_logger().exception("boom")
    try:
        raise PayloadError("unreadable payload")
    except PayloadError:
        cr_logging.get_logger().error("bad", exc_info=True)
    first, second = lines(logs)
    assert first["error_type"] == "ValueError" and "awful" not in json.dumps(first)
    assert second["error_reason"] == "unreadable payload"


def test_stdlib_loggers_go_through_the_same_redaction(logs):
    logging.getLogger("aiohttp.server").warning("token tenant-secret-abcdef from x@y.example.org")
    text = logs.getvalue()
    assert "tenant-secret-abcdef" not in text and "x@y.example.org" not in text
    assert "[redacted]" in text


def test_context_vars_carry_ids(logs):
    with cr_logging.bound(tenant="acme", ticket="7", job="j1"):
        cr_logging.get_logger().info("z")
    (entry,) = lines(logs)
    assert (entry["tenant"], entry["ticket"], entry["job"]) == ("acme", "7", "j1")


def test_a_module_logger_follows_each_reconfiguration():
    # Module loggers are built once per configure() (structlog's proxy rebuilt one per line).
    log = cr_logging.get_logger("careroute.test")
    first, second = io.StringIO(), io.StringIO()
    try:
        cr_logging.configure(level="info", fmt="json", stream=first)
        log.info("to_first")
        log.debug("filtered_out")
        cr_logging.configure(level="debug", fmt="json", stream=second)
        log.info("to_second")
        log.debug("now_kept")
        assert log.is_enabled_for(logging.DEBUG)
    finally:
        cr_logging.configure(level="info", fmt="json")
    assert [line["event"] for line in lines(first)] == ["to_first"]
    assert [line["event"] for line in lines(second)] == ["to_second", "now_kept"]
