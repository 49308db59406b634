"""The create arguments of action containers, their network and the host firewall
rules, as pure data (the real containers: tests/integration/test_security_containers.py)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import docker.errors
import pytest

from gleaner.errors import DockerError
from gleaner.settings import Settings, SettingsError, load_settings
from invoker_agent import host_firewall
from invoker_agent.docker_engine import (
    ACTION_USER,
    PROXY_TOKEN_ENV,
    DockerEngine,
    bridge_name,
    bridge_of,
    container_options,
    network_mismatch,
    network_name,
    network_options,
    token_in,
)

SETTINGS = Settings()


def test_hardened_container_options() -> None:
    opts = container_options(SETTINGS, cpu=0.5, memory_mb=256, token="tok")
    hc = opts.host_config
    assert opts.user == ACTION_USER and not opts.user.startswith("0")
    assert hc["cap_drop"] == ["ALL"] and "cap_add" not in hc
    assert hc["security_opt"] == ["no-new-privileges"]
    assert hc["pids_limit"] == SETTINGS.container_pids_limit
    assert hc["read_only"] is True
    assert hc["tmpfs"] == {"/tmp": f"rw,nosuid,nodev,size={SETTINGS.container_tmpfs_mb}m,mode=1777"}
    assert hc["mem_limit"] == hc["memswap_limit"] == 256 * 2**20
    assert hc["cpu_quota"] == 50_000 and hc["cpu_period"] == 100_000
    assert hc["network_mode"] == "gleaner-actions"
    assert "privileged" not in hc and "binds" not in hc and "port_bindings" not in hc  # no docker.sock
    assert opts.environment == {PROXY_TOKEN_ENV: "tok", "HOME": "/tmp", "TMPDIR": "/tmp"}


def test_settings_size_the_limits() -> None:
    s = dataclasses.replace(SETTINGS, container_pids_limit=64, container_tmpfs_mb=8)
    hc = container_options(s, cpu=1, memory_mb=128, token="t").host_config
    assert hc["pids_limit"] == 64
    assert "size=8m" in hc["tmpfs"]["/tmp"]


def test_hardening_off_is_dockers_defaults_on_the_default_bridge() -> None:
    s = dataclasses.replace(SETTINGS, action_hardening=False)
    opts = container_options(s, cpu=1, memory_mb=128, token="t")
    assert opts.user is None
    assert set(opts.host_config) == {
        "cpu_period",
        "cpu_quota",
        "cpu_shares",
        "mem_limit",
        "memswap_limit",
        "network_mode",
        "init",
    }
    assert opts.host_config["network_mode"] == network_name(s) == "bridge"
    assert opts.environment == {PROXY_TOKEN_ENV: "t"}  # the proxy still answers its invoker only


def test_the_actions_network() -> None:
    opts = network_options(SETTINGS)
    assert opts["name"] == "gleaner-actions" and opts["driver"] == "bridge"
    assert opts["options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert opts["internal"] is False  # outbound on by default, as OpenWhisk
    assert network_options(dataclasses.replace(SETTINGS, action_outbound=False))["internal"] is True
    name = opts["options"]["com.docker.network.bridge.name"]
    assert name == bridge_name("gleaner-actions") and len(name) <= 15  # a Linux interface name


def _attrs(**over: object) -> dict[str, object]:
    attrs: dict[str, object] = {
        "Id": "0123456789abcdef",
        "Driver": "bridge",
        "Internal": False,
        "Options": {"com.docker.network.bridge.enable_icc": "false"},
    }
    attrs.update(over)
    return attrs


def test_an_existing_network_is_checked_against_the_settings() -> None:
    assert network_mismatch(_attrs(), SETTINGS) is None
    assert "talk to each other" in (network_mismatch(_attrs(Options={}), SETTINGS) or "")
    assert "driver" in (network_mismatch(_attrs(Driver="overlay"), SETTINGS) or "")
    no_out = dataclasses.replace(SETTINGS, action_outbound=False)
    assert "OUTBOUND" in (network_mismatch(_attrs(), no_out) or "")
    assert network_mismatch(_attrs(Internal=True), no_out) is None


def test_bridge_interface_of_a_network() -> None:
    assert bridge_of(_attrs()) == "br-0123456789ab"
    assert bridge_of(_attrs(Options={"com.docker.network.bridge.name": "gl-x"})) == "gl-x"


def test_token_in_a_containers_environment() -> None:
    assert token_in(["PATH=/bin", f"{PROXY_TOKEN_ENV}=a=b"]) == "a=b"
    assert token_in(["PATH=/bin"]) == ""


@pytest.mark.parametrize("network", ["bridge", "host", "none", ""])
def test_hardened_containers_refuse_dockers_builtin_networks(network: str) -> None:
    with pytest.raises(SettingsError, match="network of their own"):
        load_settings({}, container_network=network)
    load_settings({}, container_network=network or "x", action_hardening=False)  # the benchmark's "before"


def test_settings_from_the_environment() -> None:
    s = load_settings(
        {
            "GLEANER_ACTION_HARDENING": "false",
            "GLEANER_ACTION_OUTBOUND": "off",
            "GLEANER_CONTAINER_PIDS_LIMIT": "100",
            "GLEANER_CONTAINER_TMPFS_MB": "16",
        }
    )
    assert (s.action_hardening, s.action_outbound, s.container_pids_limit, s.container_tmpfs_mb) == (
        False,
        False,
        100,
        16,
    )
    with pytest.raises(SettingsError):
        load_settings({}, container_pids_limit=1)


def test_firewall_rules_let_answers_in_and_reject_the_rest() -> None:
    rules = host_firewall.chain_rules()
    assert rules[0] == ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]
    assert rules[1] == ["-j", host_firewall.ALLOW_CHAIN]
    assert rules[-1][-3:] == ["REJECT", "--reject-with", "icmp-port-unreachable"]  # everything else
    assert all("ACCEPT" not in rule for rule in rules)  # exceptions live in the allow chain only
    text = host_firewall.restore_text()
    assert text.startswith(f"*filter\n:{host_firewall.CHAIN} - [0:0]\n")  # declared: flushed, then filled
    assert text.endswith("COMMIT\n")
    assert host_firewall.input_jump("gl-abc") == ["-i", "gl-abc", "-j", host_firewall.CHAIN]
    assert host_firewall.allow_rule(4242) == ["-p", "tcp", "--dport", "4242", "-j", "ACCEPT"]


class FakeNetworkApi:
    """The three network calls of the Docker API that ensure_network makes."""

    def __init__(self, existing: dict[str, object] | None) -> None:
        self.existing = existing
        self.calls: list[str] = []

    def inspect_network(self, name: str) -> dict[str, object]:
        self.calls.append("inspect")
        if self.existing is None:
            raise docker.errors.NotFound("no such network")
        return self.existing

    def remove_network(self, net_id: str) -> None:
        self.calls.append("remove")
        self.existing = None

    def create_network(self, **kwargs: Any) -> None:
        self.calls.append("create")
        self.existing = _attrs(Internal=kwargs["internal"], Options=kwargs["options"])


def _engine(api: FakeNetworkApi, **settings: Any) -> DockerEngine:
    engine = DockerEngine.__new__(DockerEngine)  # no Docker connection: only the network logic
    engine.settings = dataclasses.replace(SETTINGS, action_host_firewall=False, **settings)
    engine.api = api  # type: ignore[assignment]
    engine._network_lock = threading.Lock()
    engine._network_ready = False
    return engine


def test_ensure_network_creates_it_once() -> None:
    api = FakeNetworkApi(None)
    engine = _engine(api)
    engine.ensure_network()
    engine.ensure_network()
    assert api.calls == ["inspect", "create", "inspect"]


def test_a_network_that_no_longer_matches_is_made_again_when_unused() -> None:
    api = FakeNetworkApi(_attrs(Internal=False))
    _engine(api, action_outbound=False).ensure_network()
    assert api.calls == ["inspect", "remove", "create", "inspect"]
    assert api.existing is not None and api.existing["Internal"] is True


def test_a_network_that_no_longer_matches_but_is_in_use_is_an_error() -> None:
    api = FakeNetworkApi(_attrs(Options={}, Containers={"abc": {}}))
    with pytest.raises(DockerError, match="docker network rm gleaner-actions"):
        _engine(api).ensure_network()
    assert "remove" not in api.calls


def test_without_hardening_no_network_is_made() -> None:
    api = FakeNetworkApi(None)
    _engine(api, action_hardening=False, container_network="bridge").ensure_network()
    assert api.calls == []


def test_a_container_is_weighed_as_asked() -> None:
    assert container_options(SETTINGS, cpu=1, memory_mb=128, token="t").host_config["cpu_shares"] == 1024
    hc = container_options(SETTINGS, cpu=2, memory_mb=256, token="t", cpu_shares=128).host_config
    assert hc["cpu_shares"] == 128 and hc["cpu_quota"] == 200_000
