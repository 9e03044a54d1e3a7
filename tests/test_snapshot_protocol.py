"""The checkpoint/restore protocol's names and rules (``drivetrain.snapshot_protocol``)."""

from __future__ import annotations

import pytest

from drivetrain import snapshot_protocol as sp


def test_target_containers_are_comma_separated_and_trimmed() -> None:
    assert sp.split_target_containers(" engine-0 , engine-1") == ["engine-0", "engine-1"]
    assert sp.format_target_containers(["engine-0", "engine-1"]) == "engine-0,engine-1"
    assert sp.target_containers_problem(["engine-0", "engine-1"], exactly_one=False) is None
    assert sp.target_containers_problem(["main"], exactly_one=True) is None


@pytest.mark.parametrize(
    ("value", "exactly_one", "message"),
    [
        ("", False, "non-empty names"),
        ("main,", False, "non-empty names"),
        ("a,,b", False, "non-empty names"),
        ("engine-0,engine-0", False, "name engine-0 more than once"),
        ("engine-0,engine-1", True, "a checkpoint targets exactly one container (got 2"),
    ],
)
def test_bad_target_lists_are_refused(value: str, exactly_one: bool, message: str) -> None:
    problem = sp.target_containers_problem(
        sp.split_target_containers(value), exactly_one=exactly_one
    )
    assert problem is not None and message in problem


def test_status_keys_are_per_container() -> None:
    assert sp.restore_status_key("engine-1") == "nvidia.com/snapshot-restore-status.engine-1"
    assert sp.restore_container_id_key("main") == "nvidia.com/snapshot-restore-container-id.main"


def test_checkpoint_location() -> None:
    assert sp.checkpoint_location("/checkpoints/", "abc", "2") == "/checkpoints/abc/versions/2"


@pytest.mark.parametrize(
    ("argv", "shell"),
    [
        (["sh", "-c", "python3 -m x"], "sh"),
        (["/bin/bash", "-lc", "exec x"], "bash"),
        (["bash", "-e", "-c", "x"], "bash"),
        (["busybox", "sh", "-c", "x"], "sh"),
        (["/usr/bin/dash", "-ec", "x"], "dash"),
        (["python3", "-m", "dynamo.vllm"], None),
        (["sh", "/scripts/run.sh"], None),  # a script file, not -c
        (["bash", "--login", "script.sh"], None),
        (["cuda-checkpoint", "--launch-job", "sh", "-c", "x"], None),
        ([], None),
    ],
)
def test_shell_entrypoints(argv: list[str], shell: str | None) -> None:
    assert sp.shell_entrypoint(argv) == shell


def test_the_exec_form_problem_names_the_container() -> None:
    problem = sp.exec_form_problem("engine-0", ["/bin/sh", "-c"], ["python3 -m dynamo.vllm"])
    assert problem is not None and problem.startswith("container engine-0 starts through a shell")
    assert sp.exec_form_problem("main", [], ["sh", "-c", "x"]) is not None  # args as argv
    assert sp.exec_form_problem("main", ["python3"], ["-m", "x"]) is None
