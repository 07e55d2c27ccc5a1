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


def _samples(registry, name: str) -> dict:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect() for sample in family.samples
            if sample.name.startswith(name) and not sample.name.endswith("_created")}


def test_webhook_path_metrics_expose_what_prometheus_client_would():
    # The webhook counters are plain numbers read at scrape time (plugin/metrics.py,
    # _LoopMetric); what a scrape shows must match prometheus_client's own Histogram, bucket
    # edges included (a value equal to a bound falls in that bound's bucket).
    from prometheus_client import CollectorRegistry, Histogram

    from plugin.metrics import LATENCY_BUCKETS

    values = [0.0, 0.001, 0.0010001, 0.0025, 0.004, 0.05, 0.7, 30.0, 61.0, 1e-9] * 3
    metrics = Metrics()
    reference_registry = CollectorRegistry()
    reference = Histogram("careroute_webhook_ack_seconds", "Time from request to 202", ["vendor"],
                          buckets=LATENCY_BUCKETS, registry=reference_registry)
    for value in values:
        metrics.ack_seconds.labels("freshdesk").observe(value)
        reference.labels("freshdesk").observe(value)
    ours = _samples(metrics.registry, "careroute_webhook_ack_seconds")
    theirs = _samples(reference_registry, "careroute_webhook_ack_seconds")
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert abs(ours[key] - value) < 1e-9, key


def test_webhook_path_metrics_check_their_label_count():
    import pytest

    metrics = Metrics()
    with pytest.raises(ValueError):
        metrics.accepted.labels("zendesk")
    metrics.rejected.labels("zendesk", "signature").inc(2)
    assert _samples(metrics.registry, "careroute_webhooks_rejected") == {
        ("careroute_webhooks_rejected_total", (("reason", "signature"), ("vendor", "zendesk"))): 2.0}
