"""Prometheus metrics. Labels are closed sets (vendor, reason, tier, state, status, path template):
never ticket text, ids or anything a customer wrote."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

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


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Observations:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _LoopMetric:
    """A labelled counter or histogram for the webhook path, whose children are plain numbers
    read only when the registry is scraped. prometheus_client's own take a lock and run a few
    layers of Python per `inc`/`observe` (~25,000 instructions of a webhook's ~500,000 for the
    three it counts). Children must be updated from one thread — the event loop's (or a Lambda
    invocation's): that is where every webhook is received."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float] | None = None) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets) if buckets is not None else None
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values")
            child = _Count() if self.buckets is None else _Observations(self.buckets)
            self._children[values] = child
        return child

    def collect(self) -> Iterator[Any]:
        if self.buckets is None:
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, count in list(self._children.items()):
                family.add_metric(list(values), count.value)
            yield family
            return
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, seen in list(self._children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.buckets, float("inf")), seen.counts):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(list(values), buckets, seen.sum)
        yield family

    def describe(self) -> Iterator[Any]:
        # Describing with no samples lets the registry check names without a scrape.
        kind = CounterMetricFamily if self.buckets is None else HistogramMetricFamily
        yield kind(self.name, self.documentation, labels=self.labelnames)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The webhook path's own: counted as plain numbers (see _LoopMetric).
        self.received = _LoopMetric("careroute_webhooks_received", "Webhook requests received",
                                    ["vendor"])
        self.accepted = _LoopMetric("careroute_webhooks_accepted", "Webhooks accepted (202)",
                                    ["vendor", "duplicate"])
        self.ignored = _LoopMetric("careroute_webhooks_ignored",
                                   "Webhooks for events CareRoute does not act on", ["vendor"])
        self.rejected = _LoopMetric("careroute_webhooks_rejected", "Webhooks rejected",
                                    ["vendor", "reason"])
        self.ack_seconds = _LoopMetric("careroute_webhook_ack_seconds", "Time from request to 202",
                                       ["vendor"], buckets=LATENCY_BUCKETS)
        for loop_metric in (self.received, self.accepted, self.ignored, self.rejected,
                            self.ack_seconds):
            r.register(loop_metric)
        self.decisions = Counter("careroute_decisions_total", "Screening decisions by tier",
                                 ["vendor", "tier", "outcome"], registry=r)
        self.job_failures = Counter("careroute_job_failures_total", "Job attempts that failed",
                                    ["vendor", "kind"], registry=r)
        self.vendor_calls = Counter("careroute_vendor_calls_total", "Calls to vendor APIs",
                                    ["vendor", "method", "path", "status"], registry=r)
        self.routed_seconds = Histogram("careroute_webhook_to_routed_seconds",
                                        "Time from webhook to ticket updated", ["vendor", "tier"],
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.vendor_seconds = Histogram("careroute_vendor_call_seconds", "Vendor call latency",
                                        ["vendor", "method", "path"], buckets=LATENCY_BUCKETS,
                                        registry=r)
        self.screen_seconds = Histogram("careroute_screen_seconds", "Screening time",
                                        buckets=LATENCY_BUCKETS, registry=r)
        for name in ("decisions", "job_failures", "vendor_calls", "routed_seconds",
                     "vendor_seconds"):
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
