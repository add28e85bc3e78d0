"""Prometheus metrics of the connector: one counter per outcome, one registry per process (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    """The connector's own metrics, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.notifications = Counter(
            "connector_notifications",
            "Notifications received, by payload format and outcome",
            ["format", "outcome"],
            registry=registry,
        )
        self.readings = Counter(
            "connector_readings",
            "Readings by outcome: accepted, duplicate, late, rejected, conflict",
            ["outcome"],
            registry=registry,
        )
        self.windows_closed = Counter("connector_windows_closed", "Windows closed", registry=registry)
        self.ack_latency = Histogram(
            "connector_ack_latency_seconds",
            "Time from receiving a notification to answering it (readings committed)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.write_hold = Histogram(
            "connector_store_write_hold_seconds",
            "How long each write transaction held the SQLite store's write lock (which /notify's commits "
            "wait for), by process role: http, worker, ledger, closer, all",
            ["role"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.batch_size = Histogram(
            "connector_ingest_batch_notifications",
            "Notifications committed together in one store transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
