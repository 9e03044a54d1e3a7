"""The contract of engine injection: each injected value in the form its place can read.

* exec-form args (no shell runs) carry kubelet references ``$(VAR)``, never ``${VAR}``;
* scripts a shell evaluates carry ``${VAR}`` and ``$((...))``, never a kubelet ``$(VAR)``;
* and the result really runs: scripts parse, and run through a real ``sh`` with the engine
  replaced by a recorder, they give every rank the leader's address and its own rank.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drivetrain.render import engines
from drivetrain.render.deployers import GroveDeployer, LWSDeployer, MultinodeDeployer
from drivetrain.render.engines import EngineContext, trtllm
from drivetrain.render.engines.detect import is_shell_form
from tests.ports import free_port

KUBELET_REF = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)")

# (engine, container, gpus per pod): each a multinode group that needs flags.
COMMANDS: list[tuple[str, dict[str, Any], int]] = [
    ("sglang", {"command": ["python3", "-m", "dynamo.sglang"], "args": ["--tp", "16"]}, 8),
    ("sglang", {"command": ["python3"], "args": ["-m", "sglang.launch_server", "--tp", "16"]}, 8),
    ("sglang", {"args": ["python3", "-m", "dynamo.sglang", "--tp", "16"]}, 8),
    ("sglang", {"command": ["sh", "-c"], "args": ["python3 -m dynamo.sglang --tp 16 | tee l"]}, 8),
    ("vllm", {"command": ["python3", "-m", "dynamo.vllm"], "args": ["-tp", "16"]}, 8),
    ("vllm", {"command": ["vllm"], "args": ["serve", "Qwen/Qwen3-0.6B", "-tp", "16"]}, 8),
    ("vllm", {"command": ["/bin/bash", "-lc"], "args": ["vllm serve m -tp 16 && echo done"]}, 8),
    ("vllm", {"command": ["python3", "-m", "dynamo.vllm"], "args": ["-dp", "16"]}, 8),
    ("vllm", {"command": ["sh", "-c"], "args": ["python3 -m dynamo.vllm -dp 16"]}, 8),
]
DEPLOYERS: list[MultinodeDeployer] = [LWSDeployer(), GroveDeployer()]
ROLES = ("leader", "worker")


def ctx(deployer: MultinodeDeployer, role: str, gpus: int = 8, **kw: Any) -> EngineContext:
    return EngineContext(
        deployer=deployer,
        role=role,  # type: ignore[arg-type]
        node_count=3,
        service_name="Decode",
        graph_name="g",
        gpus_limit=gpus,
        **kw,
    )


CASES = list(itertools.product(COMMANDS, DEPLOYERS, ROLES))


def case_id(case: tuple[Any, ...]) -> str:
    (engine, container, _), deployer, role = case
    form = "script" if is_shell_form(container.get("command", [])) else "exec"
    return f"{engine}-{form}-{' '.join(container.get('args', []))[:24]}-{deployer.kind}-{role}"


def scripts_of(container: dict[str, Any]) -> list[str]:
    """The scripts a shell will evaluate in this container (command or args)."""
    command, args = container.get("command") or [], container.get("args") or []
    if is_shell_form(command):
        return command[2:3] or args[:1]
    if not command and is_shell_form(args):
        return args[2:3]
    return []


def exec_args(container: dict[str, Any]) -> list[str]:
    if scripts_of(container):
        return []
    return [*(container.get("command") or []), *(container.get("args") or [])]


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_injected_values_take_the_form_their_place_reads(case: tuple[Any, ...]) -> None:
    (engine, container, gpus), deployer, role = case
    out = engines.update_container(engine, container, ctx(deployer, role, gpus))
    assert out != container, "a multinode group must get flags"
    for arg in exec_args(out):
        assert "${" not in arg and "$((" not in arg, arg
    for script in scripts_of(out):
        assert not KUBELET_REF.search(script), script
        assert "$$" not in script  # the kubelet would turn it into "$" before sh runs
        subprocess.run(["sh", "-n", "-c", script], check=True)


def test_the_users_own_kubelet_references_stay_as_written() -> None:
    container = {"command": ["python3", "-m", "dynamo.sglang"], "args": ["--model", "$(MODEL)"]}
    out = engines.update_container("sglang", container, ctx(GroveDeployer(), "worker"))
    (script,) = out["args"]
    # Quoted for the shell; the kubelet still substitutes it first, as it did before.
    assert script.startswith("exec python3 -m dynamo.sglang --model '$(MODEL)' --dist-init-addr")


def test_update_container_returns_a_new_dict_and_leaves_its_input_alone() -> None:
    container = {"command": ["python3"], "args": ["-m", "dynamo.vllm", "-tp", "16"]}
    for engine in ("vllm", "sglang", "trtllm"):
        out = engines.update_container(engine, container, ctx(LWSDeployer(), "worker"))
        assert out is not container
    assert container == {"command": ["python3"], "args": ["-m", "dynamo.vllm", "-tp", "16"]}


def test_single_node_containers_are_returned_unchanged() -> None:
    container = {"command": ["python3"], "args": ["-m", "dynamo.vllm"], "readinessProbe": {}}
    single = EngineContext(LWSDeployer(), "main", 1, "w", "g", gpus_limit=1)
    for engine in ("vllm", "sglang", "trtllm"):
        assert engines.update_container(engine, container, single) == container


# --------------------------------------------------------------------------- placement


def test_script_flags_go_right_after_the_engine_token() -> None:
    container = {"command": ["sh", "-c"], "args": ["cd /w && vllm serve m -tp 16 | tee log"]}
    out = engines.update_container("vllm", container, ctx(LWSDeployer(), "leader"))
    (script,) = out["args"]
    assert script.startswith("cd /w && vllm serve --distributed-executor-backend mp --nnodes 3 ")
    assert script.endswith("--node-rank 0 m -tp 16 | tee log")


def test_a_script_in_the_command_itself_gets_the_flags_there() -> None:
    container = {"command": ["sh", "-c", "python3 -m dynamo.sglang --x", "argv0"]}
    out = engines.update_container("sglang", container, ctx(LWSDeployer(), "leader"))
    assert out["command"][0:2] == ["sh", "-c"] and out["command"][3] == "argv0"
    assert out["command"][2].startswith("python3 -m dynamo.sglang --dist-init-addr ")
    assert out["command"][2].endswith(" --node-rank 0 --x")


def test_args_only_command_keeps_the_image_entrypoint_when_a_shell_is_needed() -> None:
    container = {"args": ["python3", "-m", "dynamo.sglang"]}
    out = engines.update_container("sglang", container, ctx(GroveDeployer(), "worker"))
    assert "command" not in out
    assert out["args"][:2] == ["sh", "-c"]
    assert out["args"][2].startswith("exec python3 -m dynamo.sglang --dist-init-addr ")


def test_a_launcher_drivetrain_cannot_see_into_is_left_alone() -> None:
    container = {"command": ["/opt/run.sh"], "args": ["--engine", "sglang"]}
    out = engines.update_container("sglang", container, ctx(LWSDeployer(), "worker"))
    assert out == container


# --------------------------------------------------------------------------- running it


def recorder_path(tmp_path: Path) -> Path:
    """A PATH directory whose engine programs print their argv, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3", "vllm"):
        program = bin_dir / name
        program.write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@"\n')
        program.chmod(0o755)
    return bin_dir


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """``$(VAR)`` for defined names, ``$$`` to ``$`` (the kubelet's rules, enough here)."""

    def one(m: re.Match[str]) -> str:
        return "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\((\w+)\)", one, text)


def run_pod(container: dict[str, Any], env: dict[str, str], tmp_path: Path) -> list[str]:
    """The engine's argv: kubelet expansion, then the argv as the kubelet would exec it."""
    argv = [kubelet_expand(a, env) for a in [*container.get("command", []), *container["args"]]]
    path = f"{recorder_path(tmp_path)}:/usr/bin:/bin"
    result = subprocess.run(
        argv, env={**env, "PATH": path}, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()[1:]


GROVE_ENV = {"GROVE_PCSG_NAME": "g-decode", "GROVE_PCSG_INDEX": "2", "GROVE_HEADLESS_SERVICE": "hs"}


@pytest.mark.parametrize("pod_index", [0, 1])
def test_grove_workers_get_their_rank_from_shell_arithmetic(pod_index: int, tmp_path) -> None:
    container = {"command": ["python3", "-m", "dynamo.sglang"], "args": ["--tp", "16"]}
    out = engines.update_container("sglang", container, ctx(GroveDeployer(), "worker"))
    env = {**GROVE_ENV, "GROVE_PCLQ_POD_INDEX": str(pod_index)}
    argv = run_pod(out, env, tmp_path)
    assert argv[argv.index("--node-rank") + 1] == str(pod_index + 1)
    assert argv[argv.index("--dist-init-addr") + 1] == "g-decode-2-decode-ldr-0.hs:29500"


@pytest.mark.parametrize("worker_index", [1, 2])
def test_lws_workers_get_their_rank_from_the_kubelet(worker_index: int, tmp_path) -> None:
    container = {"command": ["python3", "-m", "dynamo.vllm"], "args": ["-tp", "16"]}
    out = engines.update_container("vllm", container, ctx(LWSDeployer(), "worker"))
    env = {"LWS_LEADER_ADDRESS": "g-decode-0.g-decode.ns", "LWS_WORKER_INDEX": str(worker_index)}
    argv = run_pod(out, env, tmp_path)
    assert argv[argv.index("--node-rank") + 1] == str(worker_index)
    assert argv[argv.index("--master-addr") + 1] == "g-decode-0.g-decode.ns"
    assert argv[-1] == "--headless"


@pytest.mark.parametrize("worker_index", [1, 2])
def test_data_parallel_start_rank_is_computed_per_worker(worker_index: int, tmp_path) -> None:
    container = {"command": ["python3", "-m", "dynamo.vllm"], "args": ["-tp", "2", "-dp", "12"]}
    out = engines.update_container("vllm", container, ctx(LWSDeployer(), "worker", gpus=8))
    env = {"LWS_LEADER_ADDRESS": "leader.ns", "LWS_WORKER_INDEX": str(worker_index)}
    argv = run_pod(out, env, tmp_path)
    assert argv[argv.index("--data-parallel-size-local") + 1] == "4"
    assert argv[argv.index("--data-parallel-start-rank") + 1] == str(4 * worker_index)
    assert argv[argv.index("--data-parallel-address") + 1] == "leader.ns"
    assert "--data-parallel-size" not in argv  # the user's -dp 12 already says it


def test_trtllm_leader_script_parses_and_keeps_the_engine_argv(tmp_path) -> None:
    container = {
        "command": ["python3", "-m", "dynamo.trtllm"],
        "args": ["--extra", 'it\'s {"a": [1]} $HOME'],
    }
    for deployer in DEPLOYERS:
        script = trtllm.leader_script(container, ctx(deployer, "leader", gpus=4))
        subprocess.run(["sh", "-n", "-c", script], check=True)
        assert not KUBELET_REF.search(script)
        # What mpirun hands to `bash -c` on every rank:
        tail = script[script.index("bash -c ") + len("bash -c ") :]
        printed = subprocess.run(
            ["sh", "-c", f"printf '%s' {tail}"], capture_output=True, text=True, check=True
        ).stdout
        inner = subprocess.run(
            ["sh", "-c", f"printf '%s\\n' {printed.removeprefix('trtllm-llmapi-launch ')}"],
            capture_output=True, text=True, check=True, env={"HOME": "/nowhere"},
        ).stdout.splitlines()  # fmt: skip
        assert inner == ["python3", "-m", "dynamo.trtllm", "--extra", 'it\'s {"a": [1]} $HOME']


# --------------------------------------------------------------------------- wait for leader

WAIT_SCRIPT = engines.wait_leader_configmap("g", "ns")["data"]["wait-for-leader.py"]  # type: ignore[index]


def run_wait(port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WAIT_SCRIPT],
        env={**os.environ, "LEADER_HOST": "127.0.0.1", "LEADER_PORT": str(port), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_wait_script_returns_once_the_leader_accepts_connections() -> None:
    import socket

    port = free_port()
    proc = run_wait(port, WAIT_INTERVAL_SECONDS="0.05")
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(f"waiting for leader 127.0.0.1:{port}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert f"leader 127.0.0.1:{port} accepts connections" in out


def test_wait_script_gives_up_after_its_timeout() -> None:
    proc = run_wait(free_port(), WAIT_TIMEOUT_SECONDS="0", WAIT_INTERVAL_SECONDS="0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "gave up waiting for leader 127.0.0.1" in err


def test_wait_script_takes_an_unresolvable_leader_as_not_up_yet() -> None:
    proc = run_wait(free_port(), LEADER_HOST="leader.invalid", WAIT_TIMEOUT_SECONDS="0")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "gave up waiting for leader leader.invalid" in err
