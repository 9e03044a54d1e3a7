"""verify_manifests over hand-written LWS, Grove and Deployment workloads: what passes, and that
each class of multinode mistake fails naming the pod, the container and the token."""

from __future__ import annotations

from rich.console import Console

from drivetrain.verify import VerifyReport, verify_manifests
from tests.verify.manifests import (
    SGLANG,
    container,
    lws,
    pod_template,
    sglang_grove,
    sglang_lws,
)


def ranks(report: VerifyReport, workload: str) -> list[tuple[str, int | None]]:
    return [(p.pod, p.rank) for p in report.processes if p.workload == workload]


def problem_text(report: VerifyReport) -> str:
    return "\n".join(str(p) for p in report.problems)


def test_lws_sglang_in_exec_form_passes_for_every_rank_of_two_groups() -> None:
    report = verify_manifests([sglang_lws()])
    assert report.ok, problem_text(report)
    assert ranks(report, "LeaderWorkerSet/g-worker") == [
        ("g-worker-0", 0),
        ("g-worker-0-1", 1),
        ("g-worker-0-2", 2),
        ("g-worker-1", 0),
        ("g-worker-1-1", 1),
        ("g-worker-1-2", 2),
    ]


def test_lws_workers_get_their_own_groups_leader_address() -> None:
    report = verify_manifests([sglang_lws()])
    worker = next(p for p in report.processes if p.pod == "g-worker-1-2")
    assert worker.argv[worker.argv.index("--dist-init-addr") + 1] == "g-worker-1.g-worker.dyn:29500"


def test_grove_sglang_with_shell_arithmetic_rank_passes() -> None:
    report = verify_manifests([sglang_grove(sg_replicas=2)])
    assert report.ok, problem_text(report)
    group1 = [(p.pod, p.rank) for p in report.processes if "-worker-1-" in p.pod]
    assert group1 == [
        ("g-0-worker-1-worker-ldr-0", 0),
        ("g-0-worker-1-worker-wkr-0", 1),
        ("g-0-worker-1-worker-wkr-1", 2),
    ]
    worker = next(p for p in report.processes if p.pod == "g-0-worker-1-worker-wkr-1")
    assert worker.source == "shell"
    assert "g-0-worker-1-worker-ldr-0.g-0.dyn.svc.cluster.local:29500" in worker.argv


def test_dynamo_bug_bare_lws_leader_address_in_exec_args_fails_naming_the_token() -> None:
    bad = [
        "--dist-init-addr",
        "$LWS_LEADER_ADDRESS:29500",
        "--nnodes",
        "3",
        "--node-rank",
        "$(LWS_WORKER_INDEX)",
    ]
    report = verify_manifests([sglang_lws(worker_args=bad)])
    assert not report.ok
    found = [p for p in report.problems if p.token == "$LWS_LEADER_ADDRESS:29500"]
    assert {p.pod for p in found} == {
        "g-worker-0-1",
        "g-worker-0-2",
        "g-worker-1-1",
        "g-worker-1-2",
    }
    assert all(p.container == "main" for p in found)
    assert "'$L' survives into the final argv" in str(found[0])


def test_braced_reference_in_exec_args_fails() -> None:
    report = verify_manifests(
        [sglang_lws(worker_args=["--dist-init-addr", "${LWS_LEADER_ADDRESS}"])]
    )
    assert any(p.token == "${LWS_LEADER_ADDRESS}" for p in report.problems)


def test_hard_coded_worker_rank_fails_as_a_duplicate() -> None:
    args = ["--dist-init-addr", "$(LWS_LEADER_ADDRESS):29500", "--nnodes", "3", "--node-rank", "1"]
    report = verify_manifests([sglang_lws(worker_args=args)])
    assert any(
        p.pod == "g-worker-0-2" and p.token == "--node-rank 1" and "also claimed" in p.message
        for p in report.problems
    ), problem_text(report)


def test_grove_rank_off_by_one_fails() -> None:
    report = verify_manifests([sglang_grove(worker_rank="$GROVE_PCLQ_POD_INDEX")])
    assert any(
        p.pod == "g-0-worker-0-worker-wkr-0" and p.token == "--node-rank 0" for p in report.problems
    ), problem_text(report)


def test_rank_outside_the_group_fails() -> None:
    report = verify_manifests([sglang_grove(worker_rank="$((GROVE_PCLQ_POD_INDEX + 2))")])
    assert any(p.token == "--node-rank 3" and "not in 0..2" in p.message for p in report.problems)


def test_nnodes_that_disagree_with_the_group_size_fail() -> None:
    args = [
        "--dist-init-addr",
        "$(LWS_LEADER_ADDRESS):29500",
        "--nnodes",
        "2",
        "--node-rank",
        "$(LWS_WORKER_INDEX)",
    ]
    report = verify_manifests([sglang_lws(worker_args=args)])
    assert any(p.token == "--nnodes 2" for p in report.problems)


def test_worker_pointing_at_another_host_fails() -> None:
    args = [
        "--dist-init-addr",
        "g-worker-0.g-worker.dyn:29500",
        "--nnodes",
        "3",
        "--node-rank",
        "$(LWS_WORKER_INDEX)",
    ]
    report = verify_manifests([sglang_lws(worker_args=args)])
    # right for group 0, wrong for group 1: its workers would join group 0's leader
    wrong = {p.pod for p in report.problems if "does not name the leader" in p.message}
    assert wrong == {"g-worker-1-1", "g-worker-1-2"}


def test_grove_worker_pointing_at_the_worker_clique_fails() -> None:
    host = "$GROVE_PCSG_NAME-$GROVE_PCSG_INDEX-worker-wkr-0.$GROVE_HEADLESS_SERVICE"
    report = verify_manifests([sglang_grove(leader_host=host)])
    assert any(
        "does not name the leader pod g-0-worker-0-worker-ldr-0" in p.message
        for p in report.problems
    ), problem_text(report)


def test_vllm_data_parallel_start_ranks_must_be_local_size_times_rank() -> None:
    def manifest(multiplier: int) -> dict:
        dp = [
            "--data-parallel-hybrid-lb",
            "--data-parallel-size",
            "12",
            "--data-parallel-size-local",
            "4",
            "--data-parallel-address",
            "$(LWS_LEADER_ADDRESS)",
        ]
        vllm = ["python3", "-m", "dynamo.vllm"]
        leader = container(vllm, [*dp, "--data-parallel-start-rank", "0"])
        script = (
            f"exec python3 -m dynamo.vllm {' '.join(dp).replace('$(', '${').replace(')', '}')}"
            f" --data-parallel-start-rank $(( {multiplier} * LWS_WORKER_INDEX ))"
        )
        return lws(leader, container(["sh", "-c"], [script]), replicas=1)

    good = verify_manifests([manifest(4)])
    assert good.ok, problem_text(good)
    bad = verify_manifests([manifest(2)])
    assert any(
        p.pod == "g-worker-0-1" and "--data-parallel-start-rank" in p.token for p in bad.problems
    ), problem_text(bad)


def _trtllm(hosts: str) -> dict:
    leader_script = (
        "mkdir -p $HOME/.ssh && printf 'Port 2222\\n' > $HOME/.ssh/config && "
        f"mpirun --oversubscribe -n 16 -H {hosts} -x PATH bash -c "
        "'trtllm-llmapi-launch python3 -m dynamo.trtllm --model-path m'"
    )
    worker_script = "mkdir -p $HOME/.ssh && /usr/sbin/sshd -D -f $HOME/.ssh/sshd_config"
    return lws(
        container(["/bin/sh", "-c"], [leader_script]),
        container(["/bin/sh", "-c"], [worker_script]),
        size=2,
        replicas=1,
    )


def test_trtllm_mpirun_host_list_naming_every_pod_passes() -> None:
    hosts = "$(LWS_LEADER_ADDRESS),$(echo \"$LWS_LEADER_ADDRESS\" | sed 's/\\./-1\\./')"
    report = verify_manifests([_trtllm(hosts)])
    assert report.ok, problem_text(report)
    programs = [(p.pod, p.argv[0]) for p in report.processes]
    assert ("g-worker-0-1", "sshd") in programs
    assert ("g-worker-0", "python3") in programs  # run by the mpirun recorder


def test_trtllm_mpirun_host_list_missing_a_worker_fails() -> None:
    report = verify_manifests([_trtllm("$(LWS_LEADER_ADDRESS)")])
    assert any("missing from the host list" in p.message for p in report.problems)


def test_ray_worker_joining_a_wrong_head_fails() -> None:
    head = container(["/bin/sh", "-c"], ["ray start --head --port=6379 && python3 -m dynamo.vllm"])
    worker = container(["/bin/sh", "-c"], ["ray start --address=somewhere:6379 --block"])
    report = verify_manifests([lws(head, worker, size=2, replicas=1)])
    assert [p.token for p in report.problems] == ["ray start --address somewhere"]


def test_a_script_that_never_ends_fails_cleanly_naming_the_container() -> None:
    waiting = container(["sh", "-c"], ["while true; do sleep 5; done; exec python3 -m dynamo.vllm"])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "g-planner", "namespace": "dyn"},
        "spec": {"template": pod_template(waiting)},
    }
    report = verify_manifests([deployment], timeout=0.5)
    (problem,) = report.problems
    assert problem.pod.startswith("g-planner-") and problem.container == "main"
    assert "did not finish within 0.5s" in problem.message


def test_init_containers_are_checked_too() -> None:
    init = {"name": "wait", "image": "busybox", "command": ["nc", "-z", "$LEADER_HOST", "29500"]}
    tpl = pod_template(container(["python3", "-m", "dynamo.frontend"]), initContainers=[init])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "g-frontend"},
        "spec": {"template": tpl},
    }
    report = verify_manifests([deployment])
    (problem,) = report.problems
    assert (problem.container, problem.token) == ("wait", "$LEADER_HOST")


def test_field_refs_reach_exec_args_with_the_pods_values() -> None:
    main = container(
        SGLANG,
        ["--host", "$(POD_IP)"],
        env=[{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    )
    report = verify_manifests(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {"template": pod_template(main)},
            }
        ]
    )
    (proc,) = report.processes
    assert proc.argv[-1].startswith("10.244.")


def test_table_prints_final_argv_per_role_and_rank() -> None:
    console = Console(record=True, width=400)
    verify_manifests([sglang_lws()]).render_table(console)
    text = console.export_text()
    assert "g-worker worker" in text
    assert "--dist-init-addr g-worker-1.g-worker.dyn:29500 --nnodes 3 --node-rank 2" in text
    assert "verify: 6 process(es), ok" in text


def test_a_hung_script_is_reported_once_per_template_not_once_per_rank() -> None:
    leader = container(SGLANG, ["--node-rank", "0"])
    worker = container(["sh", "-c"], ["while :; do sleep 1; done"])
    report = verify_manifests([lws(leader, worker, size=4, replicas=1)], timeout=0.3)
    assert [(p.pod, p.container) for p in report.problems if "did not finish" in p.message] == [
        ("g-worker-0-1", "main")
    ]


def test_an_undefined_reference_that_a_secret_might_define_is_warned_about() -> None:
    main = container(SGLANG, ["--token", "$(HF_TOKEN)"], envFrom=[{"secretRef": {"name": "hf"}}])
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": pod_template(main)},
    }
    report = verify_manifests([deployment])
    assert [p.token for p in report.problems] == ["$(HF_TOKEN)"]
    assert any("secret/hf" in w for w in report.warnings)


def _grove_with_wait_for_leader(init: dict) -> dict:
    manifest = sglang_grove()
    worker = manifest["spec"]["template"]["cliques"][2]
    worker["spec"]["podSpec"]["initContainers"] = [init]
    return manifest


def test_wait_for_leader_init_with_shell_syntax_leader_host_passes() -> None:
    script = (
        'export LEADER_HOST="${GROVE_PCSG_NAME}-${GROVE_PCSG_INDEX}-worker-ldr-0.'
        '${GROVE_HEADLESS_SERVICE}" && exec python3 /scripts/wait-for-leader.py'
    )
    init = {"name": "wait-for-leader", "image": "x", "command": ["sh", "-c", script]}
    report = verify_manifests([_grove_with_wait_for_leader(init)])
    assert report.ok, problem_text(report)
    waits = [p for p in report.processes if p.container == "wait-for-leader"]
    assert waits[0].init
    assert waits[0].env == {"LEADER_HOST": "g-0-worker-0-worker-ldr-0.g-0.dyn.svc.cluster.local"}


def test_leader_host_env_referencing_grove_vars_fails_because_grove_appends_its_env() -> None:
    # $(VAR) in an env value sees only earlier entries; Grove's come after the user's.
    leader = "$(GROVE_PCSG_NAME)-$(GROVE_PCSG_INDEX)-worker-ldr-0.$(GROVE_HEADLESS_SERVICE)"
    init = {
        "name": "wait-for-leader",
        "image": "x",
        "command": ["python3", "/scripts/wait-for-leader.py"],
        "env": [{"name": "LEADER_HOST", "value": leader}],
    }
    report = verify_manifests([_grove_with_wait_for_leader(init)])
    assert any(
        p.container == "wait-for-leader" and p.token == f"LEADER_HOST={leader}"
        for p in report.problems
    ), problem_text(report)


def test_leader_host_env_naming_another_pod_fails() -> None:
    init = {
        "name": "wait-for-leader",
        "image": "x",
        "command": ["sh", "-c", "LEADER_HOST=elsewhere exec python3 /scripts/wait-for-leader.py"],
    }
    report = verify_manifests([_grove_with_wait_for_leader(init)])
    assert [p.token for p in report.problems] == ["env LEADER_HOST elsewhere"] * 2


def test_data_parallel_size_must_be_what_the_pods_run_together() -> None:
    dp = ["--data-parallel-hybrid-lb", "--data-parallel-size-local", "4"]
    leader = container(
        ["vllm", "serve"], [*dp, "--data-parallel-size", "16", "--data-parallel-start-rank", "0"]
    )
    worker = container(
        ["sh", "-c"],
        [
            f"exec vllm serve {' '.join(dp)} --data-parallel-size 16 "
            "--data-parallel-start-rank $((4 * LWS_WORKER_INDEX))"
        ],
    )
    report = verify_manifests([lws(leader, worker, size=3, replicas=1)])
    assert {p.token for p in report.problems} == {"--data-parallel-size 16"}
