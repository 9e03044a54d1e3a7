"""The one resolution of a pod's workload containers (``drivetrain.podcontainers``)."""

from __future__ import annotations

from drivetrain import podcontainers as pc


def test_main_is_found_by_name_wherever_it_is() -> None:
    spec = {"containers": [{"name": "sidecar"}, {"name": "main"}, {"name": "other"}]}
    assert pc.main_container_index(spec) == 1
    assert pc.main_container(spec) is spec["containers"][1]
    assert pc.main_container_name(spec) == "main"


def test_without_a_container_named_main_the_first_is_main() -> None:
    spec = {"containers": [{"name": "server"}, {"name": "proxy"}]}
    assert pc.main_container_index(spec) == 0
    assert pc.main_container_name(spec) == "server"


def test_a_pod_without_containers_has_no_main() -> None:
    for spec in ({}, {"containers": []}, {"containers": None}):
        assert pc.main_container_index(spec) is None
        assert pc.main_container(spec) is None
        assert pc.workload_containers(spec) == []


def test_workload_containers_are_the_engines_of_a_failover_pod_in_order() -> None:
    spec = {"containers": [{"name": "log"}, {"name": "engine-1"}, {"name": "engine-0"}]}
    assert [c["name"] for c in pc.workload_containers(spec)] == ["engine-0", "engine-1"]
    assert pc.ENGINE_NAMES == ("engine-0", "engine-1")
    plain = {"containers": [{"name": "log"}, {"name": "main"}]}
    assert [c["name"] for c in pc.workload_containers(plain)] == ["main"]


def test_the_failover_contract_is_spelled_once() -> None:
    assert (pc.FAILOVER_LOCK_FLAG, pc.FAILOVER_LOCK_PATH) == ("--failover-lock", "/failover/lock")
    assert pc.FAILOVER_LOCK_PATH.startswith(pc.FAILOVER_DIR + "/")
