"""``. distenv.sh`` from an entrypoint, as Backend.AI's entrypoint sources its script: under
dash, bash and busybox sh it exports what the Python version derives, returns (never exits
the caller) with the run script's status and message on refusal, and leaves nothing of its
own behind. The script still runs as a command (test_sh_parity, test_cli)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from drivetrain.distenv import derive, script_path, script_text
from tests.distenv.cases import BAD_CASES, JOB3, job_pod
from tests.distenv.runners import (
    need_dash,
    parse_env,
    python_outcome,
    sh_outcome,
    sh_status,
    shell_argv,
    source_and_dump,
    sourced_outcome,
)
from tests.distenv.test_sh_parity import ALL

SHELLS = ["dash", "bash", "busybox"]
WORKER = job_pod(1)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("case_id", "given"), ALL, ids=[c[0] for c in ALL])
def test_sourcing_exports_what_python_derives(shell: str, case_id: str, given: dict[str, str]):
    assert sourced_outcome(shell, given) == python_outcome(given)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("case_id", "given", "names"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_a_refusal_returns_the_run_status_and_message(
    shell: str, case_id: str, given: dict[str, str], names: str
) -> None:
    sourced = sourced_outcome(shell, given)  # asserts the caller ran on, nothing exported
    assert sourced.env is None and sourced.error is not None and names in sourced.error
    assert sourced.error == sh_outcome(given).error
    status, _, _ = source_and_dump(shell, given)
    assert status == sh_status(given) != 0


def _script_functions() -> list[str]:
    return re.findall(r"^(_dt_\w+)\(\)", script_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("given", [WORKER, {**WORKER, "JOB_COMPLETION_INDEX": "x"}])
def test_no_helper_variable_or_function_is_left_behind(shell: str, given: dict[str, str]):
    functions = _script_functions()
    assert len(functions) > 15
    entrypoint = (
        f". '{script_path()}'\n"
        "set | grep '^_dt_' || echo no-variables\n"
        f"for f in {' '.join(functions)}; do command -v $f || :; done\n"
        "echo end\n"
    )
    proc = subprocess.run(
        [*shell_argv(shell), "-c", entrypoint], env=given, capture_output=True, text=True
    )
    assert proc.stdout == "no-variables\nend\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_callers_arguments_are_not_read(shell: str) -> None:
    # dash and busybox hand a sourced file the caller's "$@"; it must not run them.
    entrypoint = f". '{script_path()}'\necho \"after $NODE_RANK\"\n"
    proc = subprocess.run(
        [*shell_argv(shell), "-c", entrypoint, "entrypoint", "--", "echo", "ran"],
        env=WORKER,
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout) == (0, "after 1\n")


@pytest.mark.parametrize("shell", SHELLS)
def test_set_eu_callers_work_and_fail_at_start_on_a_refusal(shell: str) -> None:
    status, env_text, _ = source_and_dump(shell, WORKER, prelude="set -eu")
    assert status == 0
    assert parse_env(env_text, WORKER) == {**WORKER, **derive(WORKER)}
    bad = {**WORKER, "JOB_COMPLETION_INDEX": "x"}
    entrypoint = f"set -e\n. '{script_path()}'\necho trained\n"
    proc = subprocess.run(
        [*shell_argv(shell), "-c", entrypoint], env=bad, capture_output=True, text=True
    )
    assert proc.returncode == sh_status(bad) != 0
    assert proc.stdout == ""
    assert proc.stderr == f"distenv: {sh_outcome(bad).error}\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_callers_ifs_and_a_function_scope_change_nothing(shell: str) -> None:
    expected = {**WORKER, **derive(WORKER)}
    _, env_text, _ = source_and_dump(shell, WORKER, prelude="IFS=,")
    assert parse_env(env_text, WORKER) == expected
    entrypoint = f"setup() {{ . '{script_path()}'; }}\nsetup\nexec env -0\n"
    proc = subprocess.run(
        [*shell_argv(shell), "-c", entrypoint], env=WORKER, capture_output=True, text=True
    )
    assert parse_env(proc.stdout, WORKER) == expected


def test_a_shell_variable_the_caller_set_is_kept_and_exported() -> None:
    entrypoint = f"MASTER_ADDR=10.0.0.5\n. '{script_path()}'\nexec env -0\n"
    proc = subprocess.run(
        [need_dash(), "-c", entrypoint],
        env=JOB3 | {"JOB_COMPLETION_INDEX": "2"},
        capture_output=True,
        text=True,
    )
    env = parse_env(proc.stdout, {})
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "10.0.0.5"
    assert env["JAX_COORDINATOR_ADDRESS"] == "10.0.0.5:29500"


def test_a_renamed_copy_still_runs_as_a_command(tmp_path) -> None:
    # What tells a run from a source is the file's own second line, not its name.
    copy = tmp_path / "setup_dist_environ.sh"
    shutil.copy(script_path(), copy)
    proc = subprocess.run(
        [need_dash(), str(copy), "--", "sh", "-c", 'echo "ran $NODE_RANK"'],
        env=WORKER,
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stdout) == (0, "ran 1\n")
