"""Which children to apply and which to delete (pure)."""

from __future__ import annotations

from typing import Any

from drivetrain.kube.children import HASH_ANNOTATION, owned, plan

OWNER = {
    "apiVersion": "drivetrain.dev/v1alpha1",
    "kind": "GraphDeployment",
    "metadata": {"name": "chat", "namespace": "ml", "uid": "u-1"},
}


def obj(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def test_owned_children_carry_label_controller_reference_namespace_and_hash() -> None:
    (child,) = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    meta = child["metadata"]
    assert meta["labels"]["drivetrain.dev/graph"] == "chat"
    assert meta["namespace"] == "ml"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "drivetrain.dev/v1alpha1",
            "kind": "GraphDeployment",
            "name": "chat",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["annotations"][HASH_ANNOTATION]


def test_the_hash_follows_the_desired_content() -> None:
    (a,) = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    (b,) = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    (c,) = owned([obj("Deployment", "chat-w", replicas=2)], OWNER)
    hash_of = lambda o: o["metadata"]["annotations"][HASH_ANNOTATION]  # noqa: E731
    assert hash_of(a) == hash_of(b) != hash_of(c)


def test_live_children_matching_the_desired_hash_are_not_written() -> None:
    desired = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    live = [{**desired[0], "status": {"readyReplicas": 1}}]
    p = plan(desired, live, "u-1")
    assert p.writes == 0
    assert p.unchanged == live


def test_a_changed_or_missing_child_is_applied() -> None:
    old = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    new = owned([obj("Deployment", "chat-w", replicas=2), obj("Service", "chat-w")], OWNER)
    p = plan(new, old, "u-1")
    assert [o["kind"] for o in p.apply] == ["Deployment", "Service"]
    assert p.delete == []


def test_children_no_longer_desired_are_deleted_when_this_graph_controls_them() -> None:
    live = owned([obj("Deployment", "chat-w"), obj("LeaderWorkerSet", "chat-x")], OWNER)
    desired = owned([obj("LeaderWorkerSet", "chat-w")], OWNER)
    p = plan(desired, live, "u-1")
    assert sorted((o["kind"], o["metadata"]["name"]) for o in p.delete) == [
        ("Deployment", "chat-w"),
        ("LeaderWorkerSet", "chat-x"),
    ]


def test_objects_of_another_owner_or_of_unknown_kinds_are_never_deleted() -> None:
    foreign = owned(
        [obj("Deployment", "chat-old")], {**OWNER, "metadata": {**OWNER["metadata"], "uid": "u-0"}}
    )
    labelled_by_hand = [
        {
            **obj("Deployment", "chat-hand"),
            "metadata": {"name": "chat-hand", "labels": {"drivetrain.dev/graph": "chat"}},
        }
    ]
    unknown = owned([obj("Secret", "chat-s")], OWNER)
    p = plan([], foreign + labelled_by_hand + unknown, "u-1")
    assert p.delete == []


def test_persistent_volume_claims_are_not_pruned() -> None:
    live = owned([obj("PersistentVolumeClaim", "models")], OWNER)
    assert plan([], live, "u-1").delete == []


def live_copy(desired: dict[str, Any], uid: str, generation: int) -> dict[str, Any]:
    meta = {**desired["metadata"], "uid": uid, "generation": generation}
    return {**desired, "metadata": meta}


def test_a_child_whose_spec_someone_else_changed_is_applied_again() -> None:
    desired = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    live = [live_copy(desired[0], "c-1", generation=3)]  # we applied generation 2
    assert [o["kind"] for o in plan(desired, live, "u-1", {"c-1": 2}).apply] == ["Deployment"]


def test_a_child_not_applied_by_this_process_is_adopted_not_rewritten() -> None:
    desired = owned([obj("Deployment", "chat-w", replicas=1)], OWNER)
    live = [live_copy(desired[0], "c-1", generation=9)]
    assert plan(desired, live, "u-1", {}).writes == 0
    assert plan(desired, live, "u-1", {"c-1": 9}).writes == 0
