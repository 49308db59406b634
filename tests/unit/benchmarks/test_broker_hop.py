"""``gleaner bench broker``'s pure parts: settings copies, percentiles, the tables, the
verdict and the S3 request counts read from SeaweedFS's metrics. No process is started."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from benchmarks import broker_hop as bh
from gleaner.settings import Settings

METRICS = """\
# HELP SeaweedFS_s3_request_seconds Bucketed histogram of s3 request processing time.
# TYPE SeaweedFS_s3_request_seconds histogram
SeaweedFS_s3_request_seconds_bucket{bucket="tansu",type="PUT",le="0.005"} 10
SeaweedFS_s3_request_seconds_sum{bucket="tansu",type="PUT"} 0.5
SeaweedFS_s3_request_seconds_count{bucket="tansu",type="PUT"} 200
SeaweedFS_s3_request_seconds_sum{bucket="tansu",type="GET"} 0.1
SeaweedFS_s3_request_seconds_count{bucket="tansu",type="GET"} 100
SeaweedFS_s3_request_seconds_sum{bucket="",type="LIST"} 0.2
SeaweedFS_s3_request_seconds_count{bucket="",type="LIST"} 5
go_goroutines 293
process_cpu_seconds_total 1.5e+01
not a sample line
"""


def test_a_bench_broker_gets_its_own_ports_and_state_and_keeps_the_rest(tmp_path: Path) -> None:
    base = Settings(kafka_fetch_wait_max_ms=7, topic_prefix="x.")
    s = bh.bench_settings(base, tmp_path / "s3", "s3", 29093, 28333)
    assert (s.kafka_bootstrap, s.kafka_storage, s.kafka_s3_port) == ("127.0.0.1:29093", "s3", 28333)
    assert s.state_dir == tmp_path / "s3" and s.topic_prefix == ""
    assert s.kafka_fetch_wait_max_ms == 7  # the hot path's client settings are the caller's
    assert base.kafka_bootstrap == "127.0.0.1:9092"  # a copy


def test_the_ports_checked_are_every_one_the_bench_listens_on() -> None:
    ports = bh.ports_needed((29092, 29093), 28333)
    assert {29092, 29093, 28333, 28334, 28337, 28338, 38333, 38337} <= set(ports)
    assert 28333 + bh.METRICS_OFFSET in ports
    assert not {9092, 8333, 6379, 5984, 3233} & set(ports)  # never the stack's defaults


def test_summary_uses_the_shared_percentile_and_keeps_first_and_timeouts() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1..100 ms
    s = bh.summarize("s3", samples, first_ms=40.0, timeouts=2, acks=[1.0, 2.0, 3.0])
    assert (s.n, s.p50, s.max, s.first_ms, s.timeouts) == (100, 50.5, 100.0, 40.0, 2)
    assert s.ack_p50 == 2.0 and s.ack_p99 == pytest.approx(2.98)
    assert s.p90 == pytest.approx(90.1) and s.p99 == pytest.approx(99.01)
    empty = bh.summarize("s3", [], timeouts=3)
    assert empty.n == 0 and math.isnan(empty.p50) and empty.timeouts == 3 and math.isnan(empty.ack_p50)


def test_the_hop_table_has_a_ratio_row_against_memory() -> None:
    memory = bh.HopStats("memory", 300, 2.0, 3.0, 5.0, 6.0, 1.5, 0, 0.5, 1.0)
    s3 = bh.HopStats("s3", 300, 14.0, 30.0, 100.0, 4200.0, math.nan, 1, 5.0, 9.0)
    lines = bh.hop_table([memory, s3])
    assert len({line.count("|") for line in lines}) == 1  # every row has every column
    assert lines[2] == "| memory | 300 | 2.00 | 3.00 | 5.00 | 6.00 | 0.50 | 1.00 | 1.50 | 0 |"
    assert lines[3] == "| s3 | 300 | 14.00 | 30.00 | 100.00 | 4200.00 | 5.00 | 9.00 | - | 1 |"
    assert lines[4] == "| s3 / memory | | 7.0x | 10.0x | 20.0x | 700.0x | 10.0x | 9.0x | | |"
    assert len(bh.hop_table([s3])) == 3  # no baseline, no ratio row


def test_the_verdict_needs_both_the_ratio_and_the_tail() -> None:
    memory = bh.HopStats("memory", 300, 2.0, 3.0, 5.0, 6.0)
    assert bh.verdict(memory, bh.HopStats("s3", 300, 4.0, 6.0, 50.0, 60.0)).startswith("met: ")
    slow = bh.verdict(memory, bh.HopStats("s3", 300, 4.1, 6.0, 20.0, 60.0))
    assert slow.startswith("missed: ") and "2.0x memory (missed" in slow
    tail = bh.verdict(memory, bh.HopStats("s3", 300, 3.0, 6.0, 51.0, 60.0))
    assert tail.startswith("missed: ") and "p99 51.00 ms (missed" in tail
    lost = bh.verdict(memory, bh.HopStats("s3", 299, 3.0, 6.0, 20.0, 60.0, timeouts=1))
    assert lost.startswith("missed: ") and "1 hops timed out" in lost
    assert bh.verdict(memory, bh.HopStats("s3", 0, math.nan, math.nan, math.nan, math.nan)) == "not measured"


def test_prometheus_text_is_parsed_by_name_and_labels() -> None:
    m = bh.parse_prometheus(METRICS)
    assert m['SeaweedFS_s3_request_seconds_count{bucket="tansu",type="PUT"}'] == 200
    assert m["process_cpu_seconds_total"] == 15.0
    assert m["go_goroutines"] == 293
    assert not any(k.startswith("#") or k.startswith("not") for k in m)


def test_store_requests_are_per_hop_on_the_bucket_with_their_mean_time() -> None:
    after = bh.parse_prometheus(METRICS)
    before = {
        'SeaweedFS_s3_request_seconds_count{bucket="tansu",type="PUT"}': 0.0,
        'SeaweedFS_s3_request_seconds_sum{bucket="tansu",type="PUT"}': 0.0,
        'SeaweedFS_s3_request_seconds_count{bucket="tansu",type="GET"}': 0.0,
        'SeaweedFS_s3_request_seconds_sum{bucket="tansu",type="GET"}': 0.0,
    }
    rows = bh.store_requests(before, after, hops=100)
    assert [(r.kind, r.per_hop, r.avg_ms) for r in rows] == [("PUT", 2.0, 2.5), ("GET", 1.0, 1.0)]
    assert rows[0].ms_per_hop == 5.0  # most time per hop first; the bucket-less LIST is not Tansu's
    assert bh.store_requests(before, after, hops=0) == []
    assert bh.store_requests(after, after, hops=100) == []  # nothing happened
    table = bh.requests_table(rows)
    assert table[2] == "| PUT | 2.00 | 2.50 | 5.00 |"
    assert table[-1] == "| all | 3.00 | | 6.00 |"


def test_idle_cost_is_a_share_of_one_core() -> None:
    assert bh.cpu_percent(10.0, 10.35, 10.0) == pytest.approx(3.5)
    assert bh.cpu_percent(10.0, 9.0, 10.0) == 0.0  # a restarted process does not go negative
    assert math.isnan(bh.cpu_percent(1.0, 2.0, 0.0))
    lines = bh.idle_table([bh.IdleCost("s3: seaweedfs", 3.46, 151.6)])
    assert lines[2] == "| s3: seaweedfs | 3.5 | 152 |"


def test_store_env_arguments_are_key_value() -> None:
    assert bh.parse_kv(["GOGC=200", "A=b=c"]) == {"GOGC": "200", "A": "b=c"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        bh.parse_kv(["GOGC"])


def test_the_cli_parses_store_flags_that_start_with_a_dash() -> None:
    p = argparse.ArgumentParser()
    bh.add_arguments(p)
    args = p.parse_args(["--store-flag=-s3.cacheCapacityMB=16", "--store-env", "GOGC=200", "-n", "10"])
    assert args.store_flag == ["-s3.cacheCapacityMB=16"] and args.store_env == ["GOGC=200"]
    assert (args.hops, args.fetch_wait_ms, args.kafka_ports, args.s3_port) == (10, None, "29092,29093", 28333)


def test_the_drift_table_shows_the_p50_of_each_part_of_the_hops_in_order() -> None:
    growing = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 10.0, 12.0]
    assert bh.by_part(growing, 4) == [1.0, 2.0, 3.0, 11.0]
    assert bh.by_part([1.0, 2.0], 4) == []
    lines = bh.drift_table({"memory": [1.0] * 8, "s3": growing}, backlog=100)
    assert (
        lines[0]
        == "| broker | p50, log from 100 | p50, log from 102 | p50, log from 104 | p50, log from 106 |"
    )
    assert lines[2] == "| memory | 1.00 | 1.00 | 1.00 | 1.00 |"
    assert lines[3] == "| s3 | 1.00 | 2.00 | 3.00 | 11.00 |"
    assert bh.drift_table({"s3": [1.0]}, backlog=0) == []
    assert bh.drift_table({"memory": [1.0] * 8, "s3": []}, backlog=0)[3] == "| s3 | - | - | - | - |"
