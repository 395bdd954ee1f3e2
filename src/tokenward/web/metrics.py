"""Prometheus metrics of one app: requests by route/method/status and a latency histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tokenward.policy import Policy, PolicyHolder

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Buckets for a service whose hot path is sub-millisecond.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """A registry per app, so several apps (tests, workers) never share counters by accident."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tokenward_http_requests", "HTTP requests served.", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "tokenward_http_request_duration_seconds",
            "Time to serve a request.",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
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

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            # labels() takes a lock and builds a tuple each call; the label set is small and bounded
            # (route templates x methods x statuses), so keep the children.
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
