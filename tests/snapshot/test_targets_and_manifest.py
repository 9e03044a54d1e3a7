"""Which containers and which pod: every rule of the target list and of the pod, and each
refusal with its message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drivetrain.snapshot.errors import SnapshotError
from drivetrain.snapshot.manifest import Pod, Target, load_manifest, resolve
from drivetrain.snapshot.targets import parse_targets, resolve_targets
from drivetrain.snapshot_protocol import TARGET_CONTAINERS_ANNOTATION as TARGETS


def test_names_are_trimmed_and_kept_in_order() -> None:
    assert parse_targets(" engine-0 , engine-1 ", "--containers") == ["engine-0", "engine-1"]
    assert parse_targets("", "--containers") == []
    assert parse_targets(None, "--containers") == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "a,,b",
            "--containers: target containers must be non-empty names separated by commas (got 'a,,b')",
        ),
        (
            "a, ",
            "--containers: target containers must be non-empty names separated by commas (got 'a, ')",
        ),
        ("a,b,a", "--containers: target containers name a more than once (got 'a,b,a')"),
        ("a, a", "--containers: target containers name a more than once (got 'a, a')"),
    ],
)
def test_empty_and_duplicate_names_are_refused(raw: str, message: str) -> None:
    with pytest.raises(SnapshotError) as err:
        parse_targets(raw, "--containers")
    assert str(err.value) == message


def restore_targets(flag: str | None, annotation: str | None) -> list[str]:
    annotations = {TARGETS: annotation} if annotation is not None else {}
    return resolve_targets(flag, "--containers", annotations, "pod.yaml", at_least=1, at_most=None)


def test_the_flag_and_the_annotation_must_agree_when_both_are_given() -> None:
    assert restore_targets("engine-0,engine-1", None) == ["engine-0", "engine-1"]
    assert restore_targets(None, "engine-0,engine-1") == ["engine-0", "engine-1"]
    assert restore_targets("engine-0, engine-1", "engine-0,engine-1") == ["engine-0", "engine-1"]
    with pytest.raises(SnapshotError) as err:
        restore_targets("engine-1,engine-0", "engine-0,engine-1")
    assert str(err.value) == (
        "--containers 'engine-1,engine-0' does not match pod.yaml: "
        f"metadata.annotations[{TARGETS}] 'engine-0,engine-1'; give one or the other"
    )


def test_a_bad_annotation_is_named_as_the_pods() -> None:
    with pytest.raises(SnapshotError, match=rf"pod.yaml: metadata.annotations\[{TARGETS}\]: "):
        restore_targets(None, "main,main")


def test_no_target_at_all_is_refused() -> None:
    with pytest.raises(SnapshotError) as err:
        restore_targets(None, None)
    assert str(err.value) == (
        f"no target container: give --containers or set {TARGETS} on the pod (pod.yaml)"
    )


def test_a_checkpoint_targets_exactly_one_container() -> None:
    def checkpoint(flag: str | None, annotation: str | None) -> list[str]:
        annotations = {TARGETS: annotation} if annotation else {}
        return resolve_targets(flag, "--container", annotations, "p.yaml", at_least=1, at_most=1)

    assert checkpoint("main", None) == ["main"]
    with pytest.raises(SnapshotError) as err:
        checkpoint(None, "engine-0,engine-1")
    assert str(err.value) == (
        f"p.yaml: metadata.annotations[{TARGETS}]: expected exactly 1 target container(s), "
        "got 2 (engine-0,engine-1)"
    )
    with pytest.raises(SnapshotError, match="--container: expected exactly 1"):
        checkpoint("a,b", None)


# ---- the pod -----------------------------------------------------------------------------------


def pod(*containers: dict, **meta: object) -> Pod:
    return Pod(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", **meta},
            "spec": {"containers": list(containers)},
        },
        "pod.yaml",
    )


def container(name: str, subpath: str | None = None) -> dict:
    mount = {"name": "snapshot-control", "mountPath": "/snapshot-control"}
    if subpath is not None:
        mount["subPath"] = subpath
    return {"name": name, "image": "x", "volumeMounts": [mount]}


def test_each_target_has_its_own_control_folder() -> None:
    p = pod(
        {"name": "sidecar", "image": "y"},
        container("engine-0", "engine-0"),
        container("engine-1", "engine-1"),
    )
    assert resolve(p, ["engine-0", "engine-1"]) == [
        Target("engine-0", "engine-0", None),
        Target("engine-1", "engine-1", None),
    ]


def test_the_container_id_comes_from_the_pods_status() -> None:
    p = pod(container("main", "main"))
    body = dict(p.body)
    body["status"] = {"containerStatuses": [{"name": "main", "containerID": "containerd://abc"}]}
    assert resolve(Pod(body, "pod.yaml"), ["main"]) == [Target("main", "main", "containerd://abc")]


def test_a_single_target_may_use_the_volumes_root_two_may_not() -> None:
    assert resolve(pod(container("main")), ["main"]) == [Target("main", "", None)]
    with pytest.raises(SnapshotError) as err:
        resolve(
            pod(container("engine-0"), container("engine-1", "engine-1")), ["engine-0", "engine-1"]
        )
    assert str(err.value) == (
        "pod.yaml: spec.containers[0] (engine-0).volumeMounts[snapshot-control].subPath: "
        "expected 'engine-0', got '' (each target container needs its own control folder)"
    )


@pytest.mark.parametrize(
    ("containers", "names", "message"),
    [
        (
            [container("main", "main")],
            ["engine-0"],
            "pod.yaml: spec.containers: no container named 'engine-0' (it has main)",
        ),
        (
            [{"name": "main", "image": "x"}],
            ["main"],
            "pod.yaml: spec.containers[0] (main).volumeMounts: the snapshot-control volume is "
            "not mounted (expected a mount with subPath 'main')",
        ),
        (
            [container("main", "other")],
            ["main"],
            "pod.yaml: spec.containers[0] (main).volumeMounts[snapshot-control].subPath: "
            "expected 'main', got 'other' (each target container needs its own control folder)",
        ),
    ],
)
def test_pods_that_break_the_protocol_are_refused(
    containers: list[dict], names: list[str], message: str
) -> None:
    with pytest.raises(SnapshotError) as err:
        resolve(pod(*containers), names)
    assert str(err.value) == message


def test_manifest_files_must_hold_one_pod(tmp_path: Path) -> None:
    good = tmp_path / "pod.yaml"
    good.write_text(yaml.safe_dump(pod(container("main", "main")).body))
    assert load_manifest(good).name == "p"
    cases = {
        "missing.yaml": None,
        "deploy.yaml": "kind: Deployment\nmetadata: {name: d}\n",
        "two.yaml": "kind: Pod\n---\nkind: Pod\n",
        "bad.yaml": "kind: [Pod\n",
    }
    messages = {}
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(SnapshotError) as err:
            load_manifest(path)
        messages[name] = str(err.value)
    assert (
        messages["missing.yaml"]
        == f"{tmp_path}/missing.yaml: cannot read the manifest: No such file or directory"
    )
    assert (
        messages["deploy.yaml"] == f"{tmp_path}/deploy.yaml: kind: expected Pod, got 'Deployment'"
    )
    assert (
        messages["two.yaml"]
        == f"{tmp_path}/two.yaml: expected one Pod document, found 2 document(s)"
    )
    assert messages["bad.yaml"].startswith(f"{tmp_path}/bad.yaml: not YAML: ")
