"""Scripts run through a real sh with recorders standing in for the programs they start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivetrain.verify.shell import ShellCall, Toolbox, split_shell


@pytest.fixture(scope="module")
def toolbox() -> Iterator[Toolbox]:
    with Toolbox() as box:
        yield box


def run(
    toolbox: Toolbox,
    script: str,
    env: dict[str, str] | None = None,
    shell: str = "sh",
    timeout: float = 4.0,
) -> list[list[str]]:
    call = split_shell([shell, "-c", script])
    assert call is not None
    result = toolbox.run(call, env or {}, timeout=timeout)
    assert not result.timed_out, result.stderr
    return result.records


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sh", "-c", "echo hi"], ShellCall("sh", ("-c",), "echo hi", ())),
        (["/bin/bash", "-lc", "x", "name", "a"], ShellCall("bash", ("-lc",), "x", ("name", "a"))),
        (["bash", "-e", "-c", "x"], ShellCall("bash", ("-e", "-c"), "x", ())),
        (["python3", "-c", "print(1)"], None),
        (["sh", "script.sh"], None),
        (["sh", "-c"], None),
    ],
)
def test_split_shell_finds_the_inline_script(argv: list[str], expected: ShellCall | None) -> None:
    assert split_shell(argv) == expected


def test_exec_records_the_engine_with_shell_arithmetic_done(toolbox: Toolbox) -> None:
    records = run(
        toolbox,
        "exec python3 -m dynamo.sglang --node-rank $((GROVE_PCLQ_POD_INDEX + 1))",
        {"GROVE_PCLQ_POD_INDEX": "1"},
    )
    assert records == [["python3", "-m", "dynamo.sglang", "--node-rank", "2"]]


def test_quoted_arguments_keep_their_spaces_and_empty_strings(toolbox: Toolbox) -> None:
    assert run(toolbox, 'vllm serve "$M" "" --x', {"M": "a b"}) == [
        ["vllm", "serve", "a b", "", "--x"]
    ]


def test_the_script_sees_only_the_pod_env_and_the_recorders_path(toolbox: Toolbox) -> None:
    records = run(
        toolbox,
        'python3 "$PATH" "${HOSTNAME-unset}" "${FOO-unset}" "$(env | sort | tr "\\n" " ")"',
        {"FOO": "bar"},
    )
    (argv,) = records
    assert argv[1] == str(toolbox.bin)
    assert argv[2:4] == ["unset", "bar"]
    names = {pair.split("=", 1)[0] for pair in argv[4].split()}
    assert names <= {"FOO", "HOME", "PATH", "PWD", "SHLVL", "OLDPWD", "_"}


def test_absolute_program_paths_are_replaced_by_their_recorders(toolbox: Toolbox) -> None:
    records = run(
        toolbox, "/usr/sbin/sshd -D -f $HOME/.ssh/sshd_config && /opt/venv/bin/python3.12 -V"
    )
    assert records == [["sshd", "-D", "-f", "/root/.ssh/sshd_config"], ["python3.12", "-V"]]


def test_text_tools_are_real_so_computed_host_lists_come_out_right(toolbox: Toolbox) -> None:
    script = (
        "mpirun -H $LWS_LEADER_ADDRESS,$(echo \"$LWS_LEADER_ADDRESS\" | sed 's/\\./-1\\./') true"
    )
    records = run(toolbox, script, {"LWS_LEADER_ADDRESS": "g-0.g.ns"})
    assert ["mpirun", "-H", "g-0.g.ns,g-0-1.g.ns", "true"] in records


def test_mpirun_runs_its_bash_c_program_once_per_host(toolbox: Toolbox) -> None:
    records = run(toolbox, "mpirun -n 2 -H a,b bash -c 'trtllm-llmapi-launch python3 --model m'")
    assert [r[0] for r in records] == [
        "mpirun",
        "trtllm-llmapi-launch",
        "python3",
        "trtllm-llmapi-launch",
        "python3",
    ]


def test_redirects_into_home_work_because_home_is_a_sandbox(toolbox: Toolbox) -> None:
    records = run(
        toolbox, "mkdir -p $HOME/.ssh && printf 'Port 2222\\n' > $HOME/.ssh/config && sshd -D"
    )
    assert records[-1] == ["sshd", "-D"]


def test_unknown_programs_named_in_the_script_are_recorded_too(toolbox: Toolbox) -> None:
    assert run(toolbox, "my-launcher --flag 1") == [["my-launcher", "--flag", "1"]]


def test_dns_wait_loops_end_because_lookups_succeed(toolbox: Toolbox) -> None:
    script = (
        "until getent hosts leader >/dev/null; do sleep 2; done; ray start --address=leader:6379"
    )
    assert run(toolbox, script)[-1] == ["ray", "start", "--address=leader:6379"]


def test_a_script_that_never_ends_is_killed_at_the_timeout(toolbox: Toolbox) -> None:
    call = split_shell(["sh", "-c", "while true; do sleep 1; done"])
    assert call is not None
    result = toolbox.run(call, {}, timeout=0.5)
    assert result.timed_out


def test_bash_login_option_does_not_let_profile_reset_path(toolbox: Toolbox) -> None:
    call = split_shell(["bash", "-lc", "python3 -m dynamo.vllm"])
    assert call is not None
    assert toolbox.run(call, {}).records == [["python3", "-m", "dynamo.vllm"]]
