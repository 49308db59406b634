"""``--policy off,thesis`` of ``gleaner replay`` and ``gleaner eval``
(gleaner.harvest_policies.policies_from)."""

from __future__ import annotations

import pytest

from gleaner.errors import BadRequest
from gleaner.harvest_policies import policies_from


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("off,thesis", ["off", "thesis"]),
        ("thesis,off", ["thesis", "off"]),  # order kept: the first is the baseline
        ("thesis", ["thesis"]),
        (" off , thesis ", ["off", "thesis"]),
        ("off,,thesis,", ["off", "thesis"]),
    ],
)
def test_policies_from(raw, expected):
    assert policies_from(raw) == expected


@pytest.mark.parametrize("raw", ["", " ", ",", " , "])
def test_no_policy_is_a_bad_request(raw):
    with pytest.raises(BadRequest, match="at least one policy"):
        policies_from(raw)


@pytest.mark.parametrize("raw", ["greedy", "off,greedy", "off,Thesis"])
def test_an_unknown_policy_is_a_bad_request(raw):
    with pytest.raises(BadRequest, match="unknown harvesting policy") as info:
        policies_from(raw)
    assert "known: off, thesis" in str(info.value)


@pytest.mark.parametrize("raw", ["off,off", "off,thesis,off", "thesis, thesis"])
def test_a_policy_named_twice_is_a_bad_request(raw):
    with pytest.raises(BadRequest, match="twice"):
        policies_from(raw)
