"""The Backend.AI conformance vectors hold for the Python and the sh version alike; the three
that record the reference script's behaviour on malformed input are refused instead."""

from __future__ import annotations

from typing import Any

import pytest

from tests.distenv.cases import BACKENDAI, VECTORS_FILE, vectors
from tests.distenv.runners import Outcome, python_outcome, sh_outcome
from tests.paths import shared

#: Vector id -> the variable drivetrain's error names (documented in docs/distenv.md).
REFUSED = {
    "ba-leading-comma": "BACKENDAI_CLUSTER_HOSTS",  # empty first host -> empty MASTER_ADDR
    "ba-hosts-empty-size-2": "BACKENDAI_CLUSTER_HOSTS",  # no hosts -> "worker":[]
    "ba-nonnumeric-size-proceeds": "BACKENDAI_CLUSTER_SIZE",  # "abc" passed the guard
}

VERSIONS = {"python": python_outcome, "sh": sh_outcome}


def _ids(vs: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vs]


BA = vectors(BACKENDAI)
HOLD = [v for v in BA if v["id"] not in REFUSED]
BAD = [v for v in BA if v["id"] in REFUSED]


@pytest.fixture(autouse=True)
def _vectors_present() -> None:
    shared("vectors", VECTORS_FILE.name)


def test_the_backendai_vector_set_is_the_one_documented() -> None:
    assert len(BA) == 14
    assert set(REFUSED) <= set(_ids(BA))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("vector", HOLD, ids=_ids(HOLD))
def test_backendai_vector_holds(vector: dict[str, Any], version: str) -> None:
    outcome: Outcome = VERSIONS[version](vector["given"])
    assert outcome.error is None, outcome.error
    assert outcome.env is not None
    for name, value in vector["expect"].items():
        assert outcome.env.get(name) == value, name
    for name in vector.get("expect_absent", []):
        assert name not in outcome.env, name


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("vector", BAD, ids=_ids(BAD))
def test_backendai_malformed_vector_is_refused_naming_the_variable(
    vector: dict[str, Any], version: str
) -> None:
    outcome = VERSIONS[version](vector["given"])
    assert outcome.env is None
    assert outcome.error is not None and REFUSED[vector["id"]] in outcome.error


def test_single_container_sessions_get_nothing_at_all() -> None:
    for vector in BA:
        if vector["id"].startswith("ba-skip-"):
            assert python_outcome(vector["given"]).env == vector["given"]
