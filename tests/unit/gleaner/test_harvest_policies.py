"""Which harvesting policy a request runs under, and which policies are known."""

from __future__ import annotations

import pytest

from gleaner.harvest_policies import (
    DEFAULT_HARVEST_POLICY,
    HARVEST_POLICIES,
    OFF,
    THESIS,
    check_policy,
    resolve_policy,
)


def test_the_known_policies():
    assert HARVEST_POLICIES == ("off", "thesis", "libra", "gleaner", "gleaner-idle", "openwhisk")
    assert (OFF, THESIS, DEFAULT_HARVEST_POLICY) == ("off", "thesis", "thesis")


def test_the_registry_says_what_each_policy_does():
    from gleaner.harvest_policies import (
        BORROWING_POLICIES,
        LIVE_POLICIES,
        PLANNED_POLICIES,
        SAFEGUARD_POLICIES,
        SHARES_POLICIES,
        policy_named,
    )

    assert {"gleaner", "gleaner-idle"} == LIVE_POLICIES and {"gleaner-idle"} == BORROWING_POLICIES
    assert {"libra", "gleaner", "gleaner-idle"} == SAFEGUARD_POLICIES and {"openwhisk"} == SHARES_POLICIES
    assert {"thesis", "libra", "gleaner", "gleaner-idle"} == PLANNED_POLICIES
    assert policy_named("openwhisk").sizing == "user" and policy_named("gleaner").sizing == "work"
    with pytest.raises(ValueError, match="known: off, thesis"):
        policy_named("greedy")


@pytest.mark.parametrize(
    ("policy", "harvest", "setting", "expected"),
    [
        # the request's own policy wins over everything
        ("off", True, True, "off"),
        ("thesis", False, False, "thesis"),
        ("off", None, True, "off"),
        ("thesis", None, False, "thesis"),
        # then its harvest switch, over the setting
        (None, True, False, "thesis"),
        (None, False, True, "off"),
        # then the global setting
        (None, None, True, "thesis"),
        (None, None, False, "off"),
    ],
)
def test_resolve_policy_precedence(policy, harvest, setting, expected):
    assert resolve_policy(policy, harvest, setting) == expected


def test_the_setting_names_what_harvesting_means():
    assert resolve_policy(None, None, True, "libra") == "libra"
    assert resolve_policy(None, True, False, "thesis") == "thesis"
    assert resolve_policy(None, None, False, "libra") == "off"


@pytest.mark.parametrize(("policy", "harvest"), [("off", True), ("gleaner", False), ("libra", False)])
def test_a_contradiction_is_refused(policy, harvest):
    from gleaner.harvest_policies import requested_policy

    with pytest.raises(ValueError, match="contradicts"):
        requested_policy(policy, harvest)


@pytest.mark.parametrize("policy", HARVEST_POLICIES)
def test_check_policy_returns_a_known_policy(policy):
    assert check_policy(policy) == policy


@pytest.mark.parametrize("policy", ["greedy", "", "Thesis", "OFF", " off"])
def test_check_policy_names_the_known_ones(policy):
    with pytest.raises(ValueError) as info:
        check_policy(policy)
    message = str(info.value)
    assert repr(policy) in message
    assert "known: off, thesis" in message
