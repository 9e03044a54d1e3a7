"""Readiness from child status fields: a rollout in progress is pending, never ready."""

from __future__ import annotations

from typing import Any

import pytest

from drivetrain.kube.readiness import (
    child_status,
    failed_status,
    graph_status,
    status_changed,
    status_patch,
)


def workload(kind: str = "Deployment", desired: int = 3, generation: int = 2, **status: Any):
    return {
        "kind": kind,
        "metadata": {"name": "w", "generation": generation},
        "spec": {"replicas": desired},
        "status": status,
    }


def test_a_deployment_with_every_replica_updated_and_ready_is_ready() -> None:
    s = child_status(
        workload(observedGeneration=2, replicas=3, updatedReplicas=3, readyReplicas=3),
        "Deployment",
        "w",
    )
    assert s.is_ready and s.reason == ""
    assert (s.replicas, s.ready, s.updated) == (3, 3, 3)


def test_a_generation_the_controller_has_not_observed_is_not_ready() -> None:
    s = child_status(
        workload(observedGeneration=1, replicas=3, updatedReplicas=3, readyReplicas=3),
        "Deployment",
        "w",
    )
    assert not s.is_ready
    assert "generation 2 not observed" in s.reason


def test_old_ready_pods_do_not_make_a_rollout_ready() -> None:
    # Mid-rollout: all 3 pods ready, but only 1 runs the new template.
    s = child_status(
        workload(observedGeneration=2, replicas=3, updatedReplicas=1, readyReplicas=3),
        "Deployment",
        "w",
    )
    assert not s.is_ready
    assert s.reason == "1/3 replicas updated"


def test_surplus_old_replicas_still_running_are_not_ready() -> None:
    s = child_status(
        workload(observedGeneration=2, replicas=4, updatedReplicas=3, readyReplicas=3),
        "Deployment",
        "w",
    )
    assert not s.is_ready
    assert "1 old replica(s)" in s.reason


def test_updated_but_not_ready_replicas_are_not_ready() -> None:
    s = child_status(
        workload(observedGeneration=2, replicas=3, updatedReplicas=3, readyReplicas=2),
        "LeaderWorkerSet",
        "w",
    )
    assert not s.is_ready
    assert s.reason == "2/3 replicas ready"


def test_a_podcliqueset_counts_available_replicas() -> None:
    obj = workload("PodCliqueSet", desired=1, observedGeneration=2, replicas=1, updatedReplicas=1)
    assert not child_status(obj, "PodCliqueSet", "g").is_ready
    obj["status"]["availableReplicas"] = 1
    assert child_status(obj, "PodCliqueSet", "g").is_ready


def test_a_missing_child_is_not_ready() -> None:
    s = child_status(None, "Deployment", "w")
    assert not s.is_ready and s.reason == "not created yet"


def test_graph_status_names_every_child_that_is_not_ready() -> None:
    ready_obj = workload(
        desired=1, observedGeneration=2, replicas=1, updatedReplicas=1, readyReplicas=1
    )
    ready = child_status(ready_obj, "Deployment", "a")
    waiting = child_status(None, "LeaderWorkerSet", "b")
    status = graph_status({"fe": ready, "worker": waiting}, 7, {})
    assert status["state"] == "pending"
    assert status["observedGeneration"] == 7
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "False", "ResourcesNotReady")
    assert cond["message"] == "not ready: LeaderWorkerSet b: not created yet"
    assert status["services"]["fe"]["componentName"] == "a"


def test_all_ready_is_successful() -> None:
    obj = workload(desired=1, observedGeneration=2, replicas=1, updatedReplicas=1, readyReplicas=1)
    status = graph_status({"fe": child_status(obj, "Deployment", "a")}, 1, {})
    assert status["state"] == "successful"
    assert status["conditions"][0]["status"] == "True"


def test_an_unchanged_condition_keeps_its_transition_time_so_nothing_is_rewritten() -> None:
    first = failed_status("InvalidSpec", "bad", 1, {})
    first["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    again = failed_status("InvalidSpec", "bad", 1, first)
    assert not status_changed(first, again)


@pytest.mark.parametrize("previous_services", [{"gone": {}, "kept": {}}])
def test_status_patch_nulls_services_that_went_away(previous_services: dict) -> None:
    patch = status_patch({"services": previous_services}, {"services": {"kept": {"replicas": 1}}})
    assert patch["services"] == {"kept": {"replicas": 1}, "gone": None}


def job(parallelism: int = 2, completions: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"name": "t", "generation": 1},  # a Job's status has no observedGeneration
        "spec": {"parallelism": parallelism, "completions": completions},
        "status": status,
    }


def test_a_running_trainer_job_is_ready_when_all_its_pods_are() -> None:
    assert child_status(job(ready=2, active=2), "Job", "t").is_ready
    waiting = child_status(job(ready=1, active=2), "Job", "t")
    assert (waiting.is_ready, waiting.reason) == (False, "1/2 pods ready")


def test_a_succeeded_trainer_counts_as_done_not_down() -> None:
    done = child_status(
        job(succeeded=2, ready=0, conditions=[{"type": "Complete", "status": "True"}]), "Job", "t"
    )
    assert done.is_ready and done.succeeded
    status = graph_status({"trainer": done}, 1, {})
    assert status["state"] == "successful"
    assert status["services"]["trainer"]["succeeded"] is True


def test_a_failed_trainer_job_is_not_ready_and_says_why() -> None:
    failed = child_status(
        job(
            failed=1,
            conditions=[
                {
                    "type": "Failed",
                    "status": "True",
                    "message": "Job has reached the specified backoff limit",
                }
            ],
        ),
        "Job",
        "t",
    )
    assert not failed.is_ready
    assert failed.reason == "failed: Job has reached the specified backoff limit"
