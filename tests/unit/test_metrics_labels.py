"""plugin.metrics: labelled children are cached, and counts still reach the exposition."""

from __future__ import annotations

from plugin.metrics import Metrics


def test_labelled_children_are_reused_and_counted():
    metrics = Metrics()
    first = metrics.received.labels("zendesk")
    assert metrics.received.labels("zendesk") is first
    assert metrics.received.labels("freshdesk") is not first
    first.inc()
    metrics.received.labels("zendesk").inc()
    metrics.accepted.labels("zendesk", "false").inc()
    metrics.ack_seconds.labels("zendesk").observe(0.002)
    text = metrics.render().decode()
    assert 'careroute_webhooks_received_total{vendor="zendesk"} 2.0' in text
    assert 'careroute_webhooks_accepted_total{duplicate="false",vendor="zendesk"} 1.0' in text
    assert 'careroute_webhook_ack_seconds_count{vendor="zendesk"} 1.0' in text
