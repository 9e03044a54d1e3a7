"""``drivetrain up -f run.yaml``: an RLRun's graphs, then its entrypoint, on this machine, and
``up`` exits with the entrypoint's status (subprocesses, a real frontend and mocker worker)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from drivetrain.api.rlrun_loader import load_runs_text
from drivetrain.local.rlrun import plan_run
from tests.cli.helpers import CLI, run_cli
from tests.local.procs import alive, descendants
from tests.paths import REPO
from tests.ports import free_port, free_ports

TINY = REPO / "examples" / "models" / "tiny"
GRAPH = f"""\
apiVersion: drivetrain.dev/v1alpha1
kind: GraphDeployment
metadata: {{name: NAME}}
spec:
  services:
    Frontend: {{componentType: frontend}}
    worker:
      componentType: worker
      extraPodSpec:
        mainContainer:
          args: [worker, --engine, echo, --model-name, MODEL, --model-path, {TINY}]
"""


def run_file(
    tmp_path: Path, entrypoint: str, graphs: dict[str, str] | None = None, job: str = ""
) -> Path:
    graphs = graphs or {"policy": "policy"}
    entries = ""
    for key, name in graphs.items():
        (tmp_path / f"{key}.yaml").write_text(GRAPH.replace("NAME", name).replace("MODEL", name))
        entries += f"    {key}: {{manifest: {key}.yaml}}\n"
    text = f"""\
apiVersion: drivetrain.dev/v1alpha1
kind: RLRun
metadata: {{name: local}}
spec:
  graphs:
{entries}  ray:
    cluster:
      spec:
        headGroupSpec:
          rayStartParams: {{}}
          template: {{spec: {{containers: [{{name: ray-head, image: rayproject/ray:2.52.0}}]}}}}
    job:
      entrypoint: {json.dumps(entrypoint)}
{textwrap.indent(job, "      ")}"""
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def up(path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    port = str(free_ports(2))  # a run may have two graphs, each a frontend: port, port + 1
    return run_cli(
        "up", "-f", str(path), "--port", port, env={"OPENAI_BASE_URL": None}, timeout=timeout
    )


def entrypoint_lines(output: str) -> list[str]:
    return [
        line.split("| ", 1)[1] for line in output.splitlines() if line.startswith("entrypoint/0")
    ]


def test_the_entrypoint_runs_once_the_graph_serves_and_its_status_is_ups(tmp_path: Path) -> None:
    script = (
        'python3 -c "import json, os, urllib.request; '
        "print(json.load(urllib.request.urlopen(os.environ['OPENAI_BASE_URL'] + '/models'))['data'][0]['id'])\"; "
        'echo "$DRIVETRAIN_FRONTEND_URL $RL_STEPS $PWD"; exit 7'
    )
    path = run_file(tmp_path, script, job="env: {RL_STEPS: 3}\n")
    result = up(path)
    assert result.returncode == 7, result.stdout + result.stderr
    model, urls = entrypoint_lines(result.stdout)
    assert model == "policy", "the frontend served the graph's model when the entrypoint ran"
    url, steps, cwd = urls.split()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
    assert (steps, cwd) == ("3", str(tmp_path)), "the run's env, in the run file's folder"
    assert "the entrypoint exited with status 7; stopping everything" in result.stdout


def test_a_program_that_is_not_found_or_cannot_run_exits_as_a_shell_says(tmp_path: Path) -> None:
    (tmp_path / "not-executable.sh").write_text("echo hi\n")
    assert up(run_file(tmp_path, "surely-not-a-program --x")).returncode == 127
    assert up(run_file(tmp_path, "./not-executable.sh")).returncode == 126


def test_several_graphs_get_a_variable_each(tmp_path: Path) -> None:
    script = 'echo "$DRIVETRAIN_FRONTEND_URL_POLICY $DRIVETRAIN_FRONTEND_URL_REWARD_MODEL ${OPENAI_BASE_URL:-none}"'
    path = run_file(tmp_path, script, {"policy": "policy", "reward-model": "judge"})
    result = up(path)
    assert result.returncode == 0, result.stdout + result.stderr
    (line,) = entrypoint_lines(result.stdout)
    policy, judge, openai = line.split()
    assert policy != judge and openai == "none"
    assert "policy.Frontend/0" in result.stdout and "reward-model.Frontend/0" in result.stdout


def test_the_log_file_keeps_a_failing_programs_output_and_status(tmp_path: Path) -> None:
    path = run_file(tmp_path, "echo to the log; exit 4", job="logFile: logs/driver.log\n")
    result = up(path)
    assert result.returncode == 4
    assert (tmp_path / "logs" / "driver.log").read_text() == "to the log\n"


def test_a_signal_stops_everything_and_up_says_so(tmp_path: Path) -> None:
    path = run_file(tmp_path, "echo started; sleep 60")
    log = tmp_path / "up.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*CLI, "up", "-f", str(path), "--port", str(free_port())],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while (
            "entrypoint/0   | started" not in log.read_text()
            and "entrypoint/0 | started" not in log.read_text()
        ):
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        children = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not [pid for pid in children if alive(pid)]


def test_the_plan_reads_each_graph_in_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    path = run_file(tmp_path, "true")
    text = path.read_text().replace("manifest: policy.yaml", "manifest: graphs/policy.yaml")
    (tmp_path / "policy.yaml").rename(tmp_path / "graphs" / "policy.yaml")
    (run,) = load_runs_text(text, str(path), tmp_path).runs
    plan = plan_run(run, port=9100, host="127.0.0.1", discovery="memory://x")
    assert {s.cwd for s in plan.specs} == {str(tmp_path / "graphs")}
    assert plan.entrypoint is not None and plan.entrypoint.cwd == str(tmp_path)
    assert plan.frontends == {"policy": "http://127.0.0.1:9100/v1"}
    assert plan.entrypoint.env["OPENAI_BASE_URL"] == "http://127.0.0.1:9100/v1"
    assert plan.entrypoint.env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_the_frontends_get_a_free_admin_port_and_the_token_the_entrypoint_gets(
    tmp_path: Path,
) -> None:
    """The RL API under ``up`` (docs/rl.md): no fixed 8002 on one machine, one token."""
    path = run_file(tmp_path, "true")
    (run,) = load_runs_text(path.read_text(), str(path), tmp_path).runs
    plan = plan_run(run, port=9100, host="127.0.0.1", discovery="memory://x", admin_token="t0k")
    (frontend,) = [s for s in plan.specs if s.port is not None]
    admin_port = int(frontend.argv[frontend.argv.index("--admin-port") + 1])
    assert admin_port != 8002 and frontend.env["DRIVETRAIN_ADMIN_TOKEN"] == "t0k"
    assert plan.entrypoint is not None
    assert plan.entrypoint.env["DRIVETRAIN_ADMIN_URL"] == f"http://127.0.0.1:{admin_port}"
    assert plan.entrypoint.env["DRIVETRAIN_ADMIN_TOKEN"] == "t0k"


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("openai") is None,
    reason="the example's loop needs CPU torch and openai (scripts/test-deps.sh installs torch)",
)
def test_the_rl_example_runs_to_exit_0() -> None:
    """`make demo-rl`, on a free port."""
    result = up(REPO / "examples" / "rl" / "run.yaml", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = entrypoint_lines(result.stdout)
    assert lines[0].startswith("training against tiny at http://127.0.0.1:")
    steps = [line.split(":")[0] for line in lines if line.startswith("step ")]
    assert steps == ["step 0", "step 1", "step 2"]
    # After each step the fleet commits the new weights (the RL API, docs/rl.md), and the
    # loop checks that the next step's rollouts report that version (else it exits 2).
    committed = [line.split()[1] for line in lines if line.strip().startswith("weights ")]
    assert committed == ["step-1", "step-2", "step-3"]
    assert lines[-1].startswith("done: 3 steps")
