"""Prometheus metrics. Labels are closed sets (vendor, reason, tier, state, status, path template):
never ticket text, ids or anything a customer wrote."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _CachedLabels:
    """A labelled metric whose `.labels(...)` children are kept: prometheus_client validates the
    values and takes a lock on every `labels()` call, and several run on every webhook. Label
    values are closed sets (module docstring), so the cache stays small."""

    __slots__ = ("_metric", "_children")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter("careroute_webhooks_received_total", "Webhook requests received",
                                ["vendor"], registry=r)
        self.accepted = Counter("careroute_webhooks_accepted_total", "Webhooks accepted (202)",
                                ["vendor", "duplicate"], registry=r)
        self.ignored = Counter("careroute_webhooks_ignored_total",
                               "Webhooks for events CareRoute does not act on", ["vendor"], registry=r)
        self.rejected = Counter("careroute_webhooks_rejected_total", "Webhooks rejected",
                                ["vendor", "reason"], registry=r)
        self.decisions = Counter("careroute_decisions_total", "Screening decisions by tier",
                                 ["vendor", "tier", "outcome"], registry=r)
        self.job_failures = Counter("careroute_job_failures_total", "Job attempts that failed",
                                    ["vendor", "kind"], registry=r)
        self.vendor_calls = Counter("careroute_vendor_calls_total", "Calls to vendor APIs",
                                    ["vendor", "method", "path", "status"], registry=r)
        self.ack_seconds = Histogram("careroute_webhook_ack_seconds",
                                     "Time from request to 202", ["vendor"],
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.routed_seconds = Histogram("careroute_webhook_to_routed_seconds",
                                        "Time from webhook to ticket updated", ["vendor", "tier"],
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.vendor_seconds = Histogram("careroute_vendor_call_seconds", "Vendor call latency",
                                        ["vendor", "method", "path"], buckets=LATENCY_BUCKETS,
                                        registry=r)
        self.screen_seconds = Histogram("careroute_screen_seconds", "Screening time",
                                        buckets=LATENCY_BUCKETS, registry=r)
        for name in ("received", "accepted", "ignored", "rejected", "decisions", "job_failures",
                     "vendor_calls", "ack_seconds", "routed_seconds", "vendor_seconds"):
            setattr(self, name, _CachedLabels(getattr(self, name)))
        self._job_counts: Callable[[], Mapping[str, int]] | None = None

    def watch_jobs(self, snapshot: Callable[[], Mapping[str, int]]) -> None:
        """Expose job counts by state from a cached snapshot (refreshed by the service)."""
        self._job_counts = snapshot
        metrics = self

        class _JobsCollector:
            def collect(self):  # noqa: D401 - prometheus collector protocol
                family = GaugeMetricFamily("careroute_jobs", "Jobs by state", labels=["state"])
                for state, count in (metrics._job_counts() if metrics._job_counts else {}).items():
                    family.add_metric([state], count)
                yield family

        self.registry.register(_JobsCollector())

    def vendor_call_recorder(self, vendor: str) -> Callable[[str, str, int, float], None]:
        def record(method: str, path: str, status: int, seconds: float) -> None:
            self.vendor_calls.labels(vendor, method, path, str(status)).inc()
            self.vendor_seconds.labels(vendor, method, path).observe(seconds)

        return record

    def render(self) -> bytes:
        return generate_latest(self.registry)
