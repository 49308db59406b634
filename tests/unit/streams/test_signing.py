"""Who may write an event: the platform signature and a tenant's credential (pure parts),
and the consume runner's refusal of what neither proves."""

from __future__ import annotations

import pytest

from gleaner.settings import Settings
from streams.kafka.client import Record
from streams.kafka.deadletter import DeadLetters
from streams.kafka.runner import ConsumeRunner, Handler, RunnerConfig, Ticket
from streams.kafka.signing import (
    AUTH_HEADER,
    SIGNATURE_HEADER,
    Signer,
    namespace_not_proven,
    normalize_headers,
    tenant_credential,
    tenant_headers,
    tenant_not_proven,
)
from streams.kafka.testing import MemorySink, MemorySource

SIGNER = Signer(b"s" * 32)
OTHER = Signer(b"o" * 32)
SETTINGS = Settings()


def test_a_signature_holds_for_its_topic_key_and_value_only():
    headers = normalize_headers(SIGNER.headers("invocations", "k", b"v"))
    assert SIGNER.rejects("invocations", b"k", b"v", headers) is None  # str and bytes keys agree
    assert SIGNER.rejects("invocations", b"k", b"v2", headers)
    assert SIGNER.rejects("invoker.invoker0", b"k", b"v", headers)  # not moved to another topic
    assert SIGNER.rejects("invocations", b"k2", b"v", headers)
    assert SIGNER.rejects("invocations", None, b"v", headers)  # no key is not an empty key


def test_the_fields_split_one_way_only():
    # ("ab", "c") and ("a", "bc") must not sign alike.
    assert SIGNER.signature("t", "ab", b"c") != SIGNER.signature("t", "a", b"bc")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ((), "unsigned event on t"),
        (((SIGNATURE_HEADER, b"0" * 64),), "forged event on t"),
        (normalize_headers(OTHER.headers("t", None, b"v")), "forged event on t"),  # another platform's secret
        ((*SIGNER.headers("t", None, b"v"), (SIGNATURE_HEADER, b"x")), "forged event on t"),  # two of them
    ],
)
def test_unsigned_forged_and_doubled_signatures_are_refused_with_why(headers, why):
    assert why in str(SIGNER.rejects("t", None, b"v", headers))


def test_headers_from_every_client_normalize_to_one_shape():
    assert normalize_headers(None) == ()
    assert normalize_headers([("a", b"1")]) == (("a", b"1"),)
    assert normalize_headers((("a", b"1"),)) == (("a", b"1"),)
    assert normalize_headers({"a": b"1"}) == (("a", b"1"),)  # Faust's event.headers
    assert normalize_headers([("a", "1"), ("b", None), ("c",), 7]) == (("a", b"1"),)


def test_a_tenant_credential_travels_in_its_header():
    headers = normalize_headers(tenant_headers("u:k"))
    assert headers == ((AUTH_HEADER, b"u:k"),)
    assert tenant_credential(headers) == "u:k"
    assert tenant_credential(((AUTH_HEADER, b"\xff"),)) is None
    assert tenant_credential(((AUTH_HEADER, b"a:b"), (AUTH_HEADER, b"c:d"))) is None
    with pytest.raises(ValueError):
        tenant_headers("no-colon")


def test_a_namespace_is_proven_only_by_a_valid_key_of_it():
    assert namespace_not_proven("a", "u:k", "a") is None
    assert namespace_not_proven("a", None, None) == (
        f"namespace a not proven: no credential (a '{AUTH_HEADER}' header with its uuid:key)"
    )
    assert (
        namespace_not_proven("a", "u:k", None) == "namespace a not proven: the credential is not a valid key"
    )
    assert namespace_not_proven("a", "u:k", "b") == (
        "namespace a not proven: the credential does not belong to namespace a"
    )


def test_on_an_entry_topic_an_unsigned_event_goes_on_but_a_bad_signature_does_not():
    own = normalize_headers(SIGNER.headers("invocations", b"k", b"v"))
    tenants = normalize_headers(tenant_headers("u:k"))
    assert SIGNER.entry_rejects("invocations", b"k", b"v", own) is None
    assert SIGNER.entry_rejects("invocations", b"k", b"v", tenants) is None  # the tenant's is proven later
    assert SIGNER.entry_rejects("invocations", b"k", b"v", ()) is None
    forged = normalize_headers(OTHER.headers("invocations", b"k", b"v"))
    assert SIGNER.entry_rejects("invocations", b"k", b"v", forged) == SIGNER.rejects(
        "invocations", b"k", b"v", forged
    )
    assert "forged event" in (SIGNER.entry_rejects("invocations", b"k", b"v", forged) or "")


def test_a_tenants_event_is_proven_by_the_key_it_carries():
    keys = {"u:k": "a"}
    asked: list[str] = []

    def authenticate(credential: str) -> str | None:
        asked.append(credential)
        return keys.get(credential)

    headers = normalize_headers(tenant_headers("u:k"))
    assert tenant_not_proven("a", headers, authenticate) is None
    assert tenant_not_proven("b", headers, authenticate) == namespace_not_proven("b", "u:k", "a")
    assert tenant_not_proven("a", (), authenticate) == namespace_not_proven("a", None, None)
    assert asked == ["u:k", "u:k"]  # no credential: no key store read
    assert tenant_not_proven("a", headers, None) == namespace_not_proven("a", "u:k", None)


def test_derived_ids_are_stable_and_differ_per_secret_and_part():
    first = SIGNER.derive("payload-ref", "ns", "act")
    assert first == SIGNER.derive("payload-ref", "ns", "act") and len(first) == 64
    assert first != OTHER.derive("payload-ref", "ns", "act")
    assert first != SIGNER.derive("payload-ref", "ns2", "act")


# --- the runner is the first check -------------------------------------------------------------


class Seen(Handler):
    def __init__(self) -> None:
        self.seen: list[Record] = []

    def handle(self, record: Record, ticket: Ticket) -> None:
        self.seen.append(record)


def runner(tenant_entry: bool = False) -> tuple[ConsumeRunner, MemorySource, MemorySink, Seen]:
    source, sink, handler = MemorySource(), MemorySink(), Seen()
    config = RunnerConfig(commit_interval_s=0, signer=SIGNER, tenant_entry=tenant_entry)
    return (
        ConsumeRunner("t", source, sink, DeadLetters(SETTINGS, sink), handler, config),
        source,
        sink,
        handler,
    )


def turns(r: ConsumeRunner, n: int) -> None:
    for _ in range(n):
        r.run_once()


def test_the_runner_passes_signed_events_and_dead_letters_unsigned_and_forged_ones():
    r, source, sink, handler = runner()
    source.push("t", b"signed", signer=SIGNER)
    source.push("t", b"unsigned")
    source.push("t", b"forged", headers=normalize_headers(OTHER.headers("t", None, b"forged")))
    source.push("t", b"tenant", headers=normalize_headers(tenant_headers("u:k")))  # not an entry topic
    turns(r, 5)
    assert [rec.value for rec in handler.seen] == [b"signed"]
    letters = sink.on(SETTINGS.deadletter_topic)
    assert [(letter["payload"], letter["reason"].split(":")[0]) for letter in letters] == [
        ("unsigned", "unsigned event on t"),
        ("forged", "forged event on t"),
        ("tenant", "unsigned event on t"),
    ]
    assert source.committed(("t", 0)) == 4  # the stream went on past every one


def test_an_entry_topic_passes_unsigned_events_to_its_handler_but_never_a_bad_signature():
    r, source, sink, handler = runner(tenant_entry=True)
    source.push("t", b"tenant", headers=normalize_headers(tenant_headers("u:k")))
    source.push("t", b"forged", headers=((SIGNATURE_HEADER, b"0" * 64),))
    turns(r, 3)
    assert [rec.value for rec in handler.seen] == [b"tenant"]
    assert "forged event on t" in sink.on(SETTINGS.deadletter_topic)[0]["reason"]


def test_a_runner_for_the_settings_checks_signatures(tmp_path):
    config = RunnerConfig.for_settings(Settings(state_dir=tmp_path))
    assert config.signer is not None and not config.tenant_entry


def test_an_id_derived_from_a_kafka_position_is_stable_but_not_the_public_uuid5():
    from streams.events import derived_activation_id

    first = SIGNER.position_id("invocations", 2, 17)
    assert first == SIGNER.position_id("invocations", 2, 17) and len(first) == 32
    assert first != SIGNER.position_id("invocations", 2, 18)
    stamped = SIGNER.position_id("invocations", 2, 17, 1_700_000_000_000)
    assert stamped == SIGNER.position_id("invocations", 2, 17, 1_700_000_000_000)  # a redelivery
    assert stamped != SIGNER.position_id("invocations", 2, 17, 1_700_000_360_000)  # offset reused
    assert first != OTHER.position_id("invocations", 2, 17)
    assert first != derived_activation_id("invocations", 2, 17)  # anyone could compute that one


# --- SASL on an Apache Kafka ----------------------------------------------------------------------


def test_plaintext_adds_nothing_and_sasl_adds_librdkafkas_login():
    from streams.kafka.client import security_config

    assert security_config(Settings()) == {}
    login = Settings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_username="gleaner",
        kafka_sasl_password="pw",
        kafka_ssl_ca_location="/ca.pem",
    )
    assert security_config(login) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "gleaner",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca.pem",
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"kafka_security_protocol": "SSL-ISH"},
        {"kafka_security_protocol": "SASL_PLAINTEXT"},  # no user
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_username": "u",
            "kafka_sasl_mechanism": "MD5",
        },
    ],
)
def test_a_wrong_sasl_setting_is_refused_with_what_to_set(bad):
    from gleaner.errors import SettingsError
    from streams.kafka.client import security_config

    with pytest.raises(SettingsError, match="GLEANER_KAFKA_"):
        security_config(Settings(**bad))


def test_the_predictor_logs_in_as_the_other_clients_do():
    from streams.predictor_stream.app import broker_credentials

    assert broker_credentials(Settings()) is None
    creds = broker_credentials(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="gleaner", kafka_sasl_password="pw"
        )
    )
    assert creds is not None and (creds.username, creds.password) == ("gleaner", "pw")
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.protocol.value == "SASL_PLAINTEXT"


def test_a_replay_counts_only_signed_results():
    from streams.replay.stack import SignedOnly

    source = MemorySource()
    source.push("dag.results", b"forged")
    source.push("dag.results", b"real", signer=SIGNER)
    listener = SignedOnly(source, SIGNER)  # type: ignore[arg-type]
    got = [listener.poll(0), listener.poll(0)]
    assert [r.value if r else None for r in got] == [None, b"real"]
    listener.close()
    assert source.closed
