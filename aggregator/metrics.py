"""Prometheus metrics for the daemon. The only prometheus_client importer.

Each Metrics object has its own registry, so tests (and two daemons in one
process) never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from aggregator.errors import AggregatorError
from aggregator.models import PollReport


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.polls = Counter(
            "aggregator_polls", "Feed polls by outcome", ["outcome"], registry=self.registry
        )
        self.errors = Counter(
            "aggregator_poll_errors", "Feed polls that failed", registry=self.registry
        )
        self.items = Counter(
            "aggregator_items", "Items stored, by new or updated", ["kind"], registry=self.registry
        )
        self.links = Counter(
            "aggregator_links",
            "New items by their place in a story",
            ["relation"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "aggregator_poll_duration_seconds",
            "Time to fetch, parse, link and store one feed",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60),
            registry=self.registry,
        )

    def observe(self, report: PollReport) -> None:
        self.polls.labels(report.outcome.value).inc()
        if report.error:
            self.errors.inc()
        self.items.labels("new").inc(report.items_new)
        self.items.labels("updated").inc(report.items_updated)
        for relation, count in report.relations:
            self.links.labels(relation).inc(count)
        self.duration.observe(report.duration)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve /metrics on host:port in a background thread; returns the bound port."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise AggregatorError(f"cannot serve metrics on {host}:{port}: {e.strerror}") from e
        return int(server.server_address[1])
