"""The metrics module: one naming scheme, labels, and a port per component."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gleaner import metrics
from gleaner.settings import Settings


def test_every_metric_is_named_gleaner_and_documented() -> None:
    names = {
        name: metric
        for metric in vars(metrics).values()
        if hasattr(metric, "_name") and hasattr(metric, "_documentation")
        for name in [metric._name]
    }
    assert set(names) >= {
        "gleaner_activations",
        "gleaner_activation_duration_seconds",
        "gleaner_hop_seconds",
        "gleaner_harvest_decisions",
        "gleaner_resizes",
        "gleaner_permits_free_cores",
        "gleaner_permits_waiting",
        "gleaner_cold_starts",
        "gleaner_deadletters",
        "gleaner_http_requests",
    }
    assert all(m._documentation for m in names.values())


def test_status_labels_follow_the_record_status_code() -> None:
    assert [metrics.status_label(c) for c in range(4)] == list(metrics.STATUS_LABELS)
    assert metrics.status_label(7) == "internal_error"
    assert metrics.status_label(None) == "internal_error"


def test_ports_are_fixed_offsets_from_the_base() -> None:
    s = Settings(metrics_port_base=9400)
    assert metrics.metrics_port(s, "gateway") == 9400
    assert metrics.metrics_port(s, "records") == 9404
    assert metrics.metrics_port(s, "supervisor") == 9405
    assert metrics.metrics_port(s, "invoker") == 9410
    assert metrics.metrics_port(s, "invoker0") == 9410
    assert metrics.metrics_port(s, "invoker3") == 9413
    assert metrics.metrics_address(s, "placement") == "http://127.0.0.1:9401/metrics"
    ports = {metrics.metrics_port(s, c) for c in metrics.COMPONENT_OFFSETS}
    assert len(ports) == len(metrics.COMPONENT_OFFSETS)
    with pytest.raises(ValueError):
        metrics.metrics_port(s, "nobody")


def test_a_zero_base_turns_metrics_off() -> None:
    s = Settings(metrics_port_base=0)
    assert metrics.metrics_port(s, "gateway") is None
    assert metrics.metrics_address(s, "invoker2") is None
    assert metrics.serve_metrics(s, "gateway") is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_server_serves_the_exposition_format() -> None:
    port = _free_port()
    s = Settings(metrics_port_base=port - metrics.COMPONENT_OFFSETS["records"])
    assert metrics.serve_metrics(s, "records") == port
    metrics.COLD_STARTS.labels("invoker9").inc()
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    cold = families["gleaner_cold_starts"]
    assert any(x.labels == {"invoker": "invoker9"} and x.value >= 1 for x in cold.samples)


def test_a_port_in_use_is_not_fatal() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = Settings(metrics_port_base=port)
        assert metrics.serve_metrics(s, "gateway") is None


def test_consumer_lag_is_read_from_librdkafka_statistics() -> None:
    stats = {
        "topics": {
            "invocations": {
                "partitions": {
                    "0": {"consumer_lag": 3},
                    "1": {"consumer_lag": -1},  # not known yet
                    "-1": {"consumer_lag": 0},  # librdkafka's internal UA partition
                }
            },
            "activations.completed": {"partitions": {"2": {"consumer_lag": 0}}},
        }
    }
    assert sorted(metrics.consumer_lags(stats)) == [
        ("activations.completed", "2", 0),
        ("invocations", "0", 3),
    ]
    assert list(metrics.consumer_lags({})) == []


def test_a_statistics_document_sets_the_lag_gauge() -> None:
    from prometheus_client import REGISTRY

    from streams.kafka.client import _record_lag

    _record_lag("g-test", '{"topics": {"t-lag": {"partitions": {"0": {"consumer_lag": 7}}}}}')
    _record_lag("g-test", "not json")  # ignored, never raised into librdkafka's poll
    labels = {"group": "g-test", "topic": "t-lag", "partition": "0"}
    assert REGISTRY.get_sample_value("gleaner_consumer_lag", labels) == 7
