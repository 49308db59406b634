from __future__ import annotations

import os

from benchmarks.idle import _broker_port, cpu_seconds, segments_by_pid, shares


def test_shares_are_cores_per_part_over_the_window() -> None:
    before = {"kafka": 10.0, "gateway": 2.0, "gone": 1.0}
    after = {"kafka": 13.0, "gateway": 2.5}
    assert shares(before, after, 10.0) == {"kafka": 0.3, "gateway": 0.05}


def test_this_process_has_a_cpu_time_and_a_missing_one_has_none() -> None:
    spent = cpu_seconds(os.getpid())
    assert spent is not None and spent >= 0.0
    assert cpu_seconds(2**22 + 12345) is None


SS = """State Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess
ESTAB 0 0 127.0.0.1:41796 127.0.0.1:9092 users:(("python",pid=1530,fd=14))
\t bbr rtt:0.43/0.205 bytes_sent:445 segs_out:23 segs_in:13 data_segs_out:11 data_segs_in:11
ESTAB 0 0 127.0.0.1:41838 127.0.0.1:9092 users:(("python",pid=1545,fd=13))
\t bbr rtt:0.96/0.415 segs_out:105 data_segs_out:52 data_segs_in:52
ESTAB 0 0 127.0.0.1:41850 127.0.0.1:9092 users:(("python",pid=1545,fd=18))
\t bbr rtt:0.96/0.415 segs_out:9 data_segs_out:4 data_segs_in:4
ESTAB 0 0 127.0.0.1:41860 127.0.0.1:9092
\t bbr rtt:0.96/0.415 segs_out:9 data_segs_out:7 data_segs_in:7
"""


def test_kafka_requests_are_summed_per_process_from_ss() -> None:
    # a socket ss could not name (another user's) counts for nobody
    assert segments_by_pid(SS) == {1530: 11, 1545: 56}
    assert segments_by_pid("") == {}


def test_the_broker_port_comes_from_the_first_bootstrap_server() -> None:
    assert _broker_port("127.0.0.1:9092") == 9092
    assert _broker_port("kafka-1:19092,kafka-2:19092") == 19092
