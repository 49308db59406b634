"""What of the platform an action container's environment holds (__OW_API_HOST and
nothing secret), where __OW_API_HOST points, and the one port the host firewall opens
for it (the real containers: tests/integration/test_action_env.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from gleaner.settings import Settings
from invoker_agent import host_firewall
from invoker_agent.docker_engine import (
    API_HOST_ENV,
    PROXY_TOKEN_ENV,
    bridge_api_host,
    container_options,
)

SETTINGS = Settings()


def _network(**ipam: Any) -> dict[str, Any]:
    return {"Name": "gleaner-actions", "Driver": "bridge", "IPAM": {"Config": [ipam]}}


def test_a_container_gets_the_api_host_and_its_proxy_secret_and_nothing_else() -> None:
    opts = container_options(SETTINGS, cpu=0.5, memory_mb=256, token="tok", api_host="http://172.18.0.1:3233")
    assert opts.environment == {
        PROXY_TOKEN_ENV: "tok",  # wiped by the proxy before any user code runs
        API_HOST_ENV: "http://172.18.0.1:3233",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
    }
    plain = dataclasses.replace(SETTINGS, action_hardening=False)
    opts = container_options(plain, cpu=1, memory_mb=128, token="t", api_host="http://172.17.0.1:3233")
    assert opts.environment == {PROXY_TOKEN_ENV: "t", API_HOST_ENV: "http://172.17.0.1:3233"}


def test_the_api_host_is_the_bridges_own_address_and_the_gateways_port() -> None:
    s = dataclasses.replace(SETTINGS, gateway_port=4000)
    assert (
        bridge_api_host(_network(Subnet="172.18.0.0/16", Gateway="172.18.0.1"), s) == "http://172.18.0.1:4000"
    )
    # No gateway recorded: Docker gives the bridge the subnet's first address.
    assert bridge_api_host(_network(Subnet="10.9.0.0/24"), s) == "http://10.9.0.1:4000"
    # IPv6 configs are skipped: the actions network's proxy address is IPv4.
    two = {"IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"}, {"Gateway": "172.20.0.1"}]}}
    assert bridge_api_host(two, s) == "http://172.20.0.1:4000"
    # Nothing known: the clients' address, rather than nothing.
    assert bridge_api_host({}, s) == s.api_host


def test_a_setting_names_another_api_host() -> None:
    s = dataclasses.replace(SETTINGS, action_api_host="https://api.example.org")
    assert bridge_api_host(_network(Gateway="172.18.0.1"), s) == "https://api.example.org"


def test_the_firewall_opens_the_gateways_port_alone() -> None:
    rules = host_firewall.chain_rules([3233, 3233])
    assert rules[0] == ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]
    assert rules[1] == ["-p", "tcp", "--dport", "3233", "-j", "RETURN"]  # once, TCP only
    assert rules[2:] == host_firewall.chain_rules()[1:]  # then as before: the allow chain, reject
    text = host_firewall.restore_text([3233])
    assert f"-A {host_firewall.CHAIN} -p tcp --dport 3233 -j RETURN\n" in text
    assert text.count("--dport") == 1
