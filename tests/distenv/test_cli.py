"""``drivetrain distenv`` as a container runs it: real processes, exit codes, no traceback."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from drivetrain.distenv import derive
from tests.cli.helpers import run_cli
from tests.distenv.cases import LWS3
from tests.distenv.runners import need_dash, sh_print

WORKER = {**LWS3, "LWS_WORKER_INDEX": "1"}


def drivetrain(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``drivetrain distenv ARGS`` with only PATH and ``env``: no variable of this machine."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return run_cli("distenv", *args, env={**base, **env}, inherit_env=False)


def test_json_prints_the_derived_variables_as_one_object() -> None:
    proc = drivetrain("--json", env=WORKER)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == derive(WORKER)


def test_json_on_a_single_node_is_an_empty_object() -> None:
    proc = drivetrain("--json", env={})
    assert (proc.returncode, json.loads(proc.stdout)) == (0, {})


def test_print_matches_the_sh_script_byte_for_byte() -> None:
    given = {**WORKER, "MASTER_ADDR": 'it\'s "mine" $HOME'}
    proc = drivetrain("--print", env=given)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == sh_print(given).stdout


def test_print_output_evaluated_by_sh_reproduces_the_values() -> None:
    given = {**WORKER, "MASTER_ADDR": "it's `id` $HOME"}
    printed = drivetrain("--print", env=given).stdout
    shown = subprocess.run(
        [need_dash(), "-c", printed + 'printf "%s\\n" "$MASTER_ADDR" "$TF_CONFIG"'],
        env={},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown == [given["MASTER_ADDR"], derive(given)["TF_CONFIG"]]


def test_command_after_double_dash_runs_with_the_env_and_its_exit_code() -> None:
    script = 'printf "%s|%s|%s\\n" "$NODE_RANK" "$1" "$2"; exit 7'
    proc = drivetrain("--", "sh", "-c", script, "sh", "two words", "--json", env=WORKER)
    assert proc.returncode == 7
    assert proc.stdout == "1|two words|--json\n"


def test_malformed_input_exits_1_with_one_line_and_runs_nothing() -> None:
    proc = drivetrain("--", "sh", "-c", "echo ran", env={**WORKER, "LWS_GROUP_SIZE": "3x"})
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "distenv: LWS_GROUP_SIZE='3x' is not a whole number (e.g. 2)\n"


@pytest.mark.parametrize("args", [(), ("--json", "--print")])
def test_exactly_one_mode_is_required(args: tuple[str, ...]) -> None:
    proc = drivetrain(*args, env={})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "exactly one of" in proc.stderr


def test_missing_command_exits_127_like_a_shell() -> None:
    proc = drivetrain("--", "no-such-command-here", env=WORKER)
    assert proc.returncode == 127
    assert proc.stderr == "distenv: no-such-command-here: command not found\n"
