"""Prometheus metrics of one app: requests by route/method/status and a latency histogram."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from tokenward.policy import Policy, PolicyHolder
from tokenward.policy.decisionlog import DecisionLog

if TYPE_CHECKING:
    from tokenward.changefeed import ChangeFeed
    from tokenward.storage import Database

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Buckets for a service whose hot path is sub-millisecond.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BUCKET_LABELS = [*map(floatToGoString, _BUCKETS), "+Inf"]


class _RequestStats:
    """Request counts and latency histograms as plain dicts and lists, rendered at scrape time.

    prometheus_client's Counter and Histogram take a lock and walk the buckets on every update
    (≈ 2 µs a request, a tenth of a ``/verify``); this is one dict update and one ``bisect``.
    Updated from the event loop only; a scrape works on copies.
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        # route -> count per bucket (the last one is +Inf), then the sum of durations
        self.latency: dict[str, list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = [0.0] * (len(_BUCKETS) + 2)
        hist[bisect_left(_BUCKETS, seconds)] += 1
        hist[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "tokenward_http_requests", "HTTP requests served.", labels=["route", "method", "status"]
        )
        for (route, method, status), count in list(self.counts.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "tokenward_http_request_duration_seconds", "Time to serve a request.", labels=["route"]
        )
        for route, hist in list(self.latency.items()):
            snapshot, cumulative, buckets = list(hist), 0.0, []
            for label, in_bucket in zip(_BUCKET_LABELS, snapshot[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((label, cumulative))
            latency.add_metric([route], buckets, snapshot[-1])
        yield latency


class _SqlStatements:
    """``tokenward_sql_statements_total``: read from the database's own counter at scrape time."""

    def __init__(self) -> None:
        self.database: Database | None = None

    def collect(self) -> Iterator[Metric]:
        if self.database is None:
            return
        counter = CounterMetricFamily(
            "tokenward_sql_statements", "SQL statements sent to the database since start (COMMIT/ROLLBACK included)."
        )
        counter.add_metric([], self.database.statements)
        yield counter


class _ChangeFeedStats:
    """The change feed's position, lag, entries applied, resets and holes, read from the feed at scrape time."""

    def __init__(self) -> None:
        self.feed: ChangeFeed | None = None

    def collect(self) -> Iterator[Metric]:
        feed = self.feed
        if feed is None:
            return
        position = GaugeMetricFamily(
            "tokenward_changes_position", "The highest change-log seq this instance has applied."
        )
        position.add_metric([], feed.position)
        yield position
        lag = GaugeMetricFamily(
            "tokenward_changes_lag_seconds",
            "Seconds since the last successful read of the change log started (0 when not following).",
        )
        lag.add_metric([], feed.lag)
        yield lag
        applied = CounterMetricFamily("tokenward_changes_applied", "Change-log entries applied since start.")
        applied.add_metric([], feed.applied)
        yield applied
        resets = CounterMetricFamily(
            "tokenward_changes_resets", "Times the feed dropped the credentials held in memory since start."
        )
        resets.add_metric([], feed.resets)
        yield resets
        holes = GaugeMetricFamily(
            "tokenward_changes_holes", "Skipped seqs still awaited (a transaction that has not committed yet)."
        )
        holes.add_metric([], len(feed.holes))
        yield holes


class Metrics:
    """A registry per app, so several apps (tests, workers) never share counters by accident."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = _RequestStats()
        self.registry.register(self._requests)
        self.observe = self._requests.observe
        self._sql = _SqlStatements()
        self.registry.register(self._sql)
        self._changes = _ChangeFeedStats()
        self.registry.register(self._changes)
        self.info = Gauge(
            "tokenward_info",
            "Constant 1, labelled with what this instance runs.",
            ["version", "server_name"],
            registry=self.registry,
        )
        self.policy = Gauge(
            "tokenward_policy_info",
            "Constant 1, labelled with the policy version in force.",
            ["version", "dialect"],
            registry=self.registry,
        )
        self.policy_reloads = Gauge(
            "tokenward_policy_reloads", "Policy reloads since start, by outcome.", ["outcome"], registry=self.registry
        )

    def watch_policy(self, holder: PolicyHolder) -> None:
        """Keep the policy gauges in step with ``holder`` (set now, and after every swap)."""

        def update(policy: Policy) -> None:
            self.policy.clear()
            self.policy.labels(policy.version, policy.dialect).set(1)

        if holder.loaded:
            update(holder.policy)
        holder.on_swap(update)
        self.policy_reloads.labels("applied").set_function(lambda: holder.reloads)
        self.policy_reloads.labels("refused").set_function(lambda: holder.failures)

    def watch_decision_log(self, log: DecisionLog) -> None:
        """Questions the decision log saw, kept (sampled) and dropped (its sink fell behind)."""
        gauge = Gauge(
            "tokenward_decision_log_decisions",
            "Policy decisions the decision log saw, kept and dropped since start.",
            ["outcome"],
            registry=self.registry,
        )
        gauge.labels("seen").set_function(lambda: log.seen)
        gauge.labels("kept").set_function(lambda: log.kept)
        gauge.labels("dropped").set_function(lambda: log.dropped)

    def watch_database(self, database: Database) -> None:
        """Export how many SQL statements ``database`` has sent (``tokenward_sql_statements_total``)."""
        self._sql.database = database

    def watch_changes(self, feed: ChangeFeed) -> None:
        """Export ``feed``'s position, lag, entries applied, resets and holes (``tokenward_changes_*``)."""
        self._changes.feed = feed

    def render(self) -> bytes:
        return generate_latest(self.registry)
