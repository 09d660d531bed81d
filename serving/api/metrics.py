"""Prometheus metrics, one registry per app (two apps in one process never share counters)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    errors: Counter
    model: Gauge
    stages: Histogram  # POST /v1/events, by stage: where an event's time goes

    @classmethod
    def create(cls) -> Metrics:
        reg = CollectorRegistry()
        return cls(
            registry=reg,
            requests=Counter("riskgraph_requests", "requests by route and status",
                             ["route", "method", "status"], registry=reg),
            latency=Histogram("riskgraph_request_seconds", "request latency by route",
                              ["route", "method"], buckets=BUCKETS, registry=reg),
            errors=Counter("riskgraph_errors", "error answers by route and kind",
                           ["route", "kind"], registry=reg),
            model=Gauge("riskgraph_model_info", "the loaded model version (value 1)",
                        ["version"], registry=reg),
            stages=Histogram("riskgraph_event_stage_seconds",
                             "POST /v1/events: time per stage of the request",
                             ["stage"], buckets=STAGE_BUCKETS, registry=reg),
        )  # fmt: skip
