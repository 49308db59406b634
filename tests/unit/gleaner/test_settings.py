import pytest

from gleaner.errors import SettingsError
from gleaner.settings import ENV_VARS, PLACEMENT_POLICIES, load_settings
from streams.placement.policies import PLACEMENT_POLICY_FACTORIES


def test_environment_overrides_and_types():
    s = load_settings(
        {
            "GLEANER_KAFKA_BOOTSTRAP": "kafka:9092",
            "GLEANER_GATEWAY_PORT": "8080",
            "GLEANER_CPU_MAX": "8",
            "GLEANER_TOPIC_PREFIX": "t.",
        }
    )
    assert s.kafka_bootstrap == "kafka:9092" and s.gateway_port == 8080 and s.cpu_max == 8.0
    assert s.invoker_topic("i1") == "t.invoker.i1"


def test_secrets_are_masked():
    s = load_settings({"GLEANER_COUCHDB_PASSWORD": "hunter2"})
    shown = s.masked()
    assert shown["couchdb_password"] == "***" and "hunter2" not in str(shown)
    assert "123zO3" not in str(shown)


@pytest.mark.parametrize(
    "env",
    [
        {"GLEANER_GATEWAY_PORT": "abc"},
        {"GLEANER_CPU_WINDOW_MS": "50"},
        {"GLEANER_CPU_MIN": "4", "GLEANER_CPU_MAX": "2"},
        {"GLEANER_PLACEMENT_POLICY": "random"},
    ],
)
def test_bad_settings_are_refused(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_every_variable_is_listed():
    assert "GLEANER_REDIS_URL" in ENV_VARS and ENV_VARS["GLEANER_INVOKER_ID"] == "invoker_id"


def test_the_placement_policy_is_a_setting_named_as_placement_names_it():
    assert load_settings({}).placement_policy == "greedy-jsq"
    assert load_settings({"GLEANER_PLACEMENT_POLICY": "greedy-round-robin"}).placement_policy == (
        "greedy-round-robin"
    )
    assert set(PLACEMENT_POLICIES) == set(PLACEMENT_POLICY_FACTORIES)


def test_what_the_gateway_accepts_must_fit_in_one_kafka_event():
    with pytest.raises(SettingsError, match="max_payload_bytes"):
        load_settings({"GLEANER_MAX_PAYLOAD_BYTES": str(8 * 2**20)})
    assert load_settings({}).max_payload_bytes < load_settings({}).kafka_message_max_bytes
