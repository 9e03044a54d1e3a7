"""One exit-code table for every command: the README's, checked against real processes.

Every command registered in the CLI must appear below with a usage error (2) and an invalid
input (1); a new command without cases fails ``test_every_command_is_covered``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer

from drivetrain.cli import output
from drivetrain.cli.main import app
from tests.cli.helpers import run_cli
from tests.paths import REPO

NO_CLUSTER = {"KUBECONFIG": "/nonexistent/kubeconfig", "KUBERNETES_SERVICE_HOST": ""}
LWS = {"LWS_LEADER_ADDRESS": "rl-0.rl.ml", "LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}
MISSING = "/nonexistent/graph.yaml"
GRAPH = str(REPO / "examples" / "agg.yaml")
RUN = str(REPO / "examples" / "rl" / "run.yaml")


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def cases(port: int) -> dict[str, list[tuple[int, list[str], dict[str, str]]]]:
    """command -> (expected code, args, extra env)."""
    model = ["--model-name", "m", "--discovery", "memory://"]
    return {
        "render": [
            (2, ["render"], {}),
            (2, ["render", "-f", GRAPH, "--render-children"], {}),
            (0, ["render", "-f", RUN, "--render-children"], {}),
            (1, ["render", "-f", MISSING], {}),
            (0, ["render", "-f", GRAPH], {}),
        ],
        "validate": [
            (2, ["validate", "--nope"], {}),
            (0, ["validate", "-f", RUN], {}),
            (1, ["validate", "-f", MISSING], {}),
            (0, ["validate", "-f", GRAPH], {}),
        ],
        "verify": [(2, ["verify", "--nope"], {}), (1, ["verify", "-f", MISSING], {})],
        "crd": [(2, ["crd", "--nope"], {}), (0, ["crd"], {})],
        "frontend": [
            (2, ["frontend", "--router", "fastest", "--discovery", "memory://"], {}),
            (
                1,
                [
                    "frontend",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--discovery",
                    "memory://",
                ],
                {},
            ),
        ],
        "worker": [
            (2, ["worker", "--engine", "nope", *model], {}),
            (1, ["worker", "--engine", "mocker", "--model-path", "/nonexistent", *model], {}),
        ],
        "up": [(2, ["up", "--nope"], {}), (1, ["up", "-f", MISSING], {})],
        "operator": [(2, ["operator", "--nope"], {}), (1, ["operator"], NO_CLUSTER)],
        "apply": [(2, ["apply"], {}), (1, ["apply", "-f", MISSING], {})],
        "status": [
            (2, ["status"], {}),
            (2, ["status", "g", "--rlrun", "--dynamo"], {}),
            (1, ["status", "g"], NO_CLUSTER),
            (1, ["status", "g", "--rlrun"], NO_CLUSTER),
        ],
        "delete": [(2, ["delete"], {}), (1, ["delete", "g", "--rlrun"], NO_CLUSTER)],
        "snapshot": [
            (2, ["snapshot", "restore", "--containers", "main"], {}),
            (
                1,
                ["snapshot", "checkpoint", "--manifest", MISSING, "--annotations", "stdout"],
                {},
            ),
        ],
        "distenv": [
            (2, ["distenv", "--json", "--print"], {}),
            (1, ["distenv", "--json"], {**LWS, "LWS_GROUP_SIZE": "3x"}),
            (0, ["distenv", "--json"], LWS),
            (127, ["distenv", "--", "no-such-program-here"], {}),
            (126, ["distenv", "--", "/etc"], {}),
            (7, ["distenv", "--", "sh", "-c", "exit 7"], {}),
        ],
    }


def test_every_command_is_covered() -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert commands == set(cases(0))


def test_the_readme_table_is_the_cli_table() -> None:
    readme = (REPO / "README.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", readme, flags=re.M)}
    constants = {
        output.EXIT_OK,
        output.EXIT_INVALID,
        output.EXIT_USAGE,
        output.EXIT_CANNOT_RUN,
        output.EXIT_NOT_FOUND,
    }
    assert documented == constants


def test_every_command_exits_as_the_table_says(busy_port: int) -> None:
    flat = [
        (command, code, args, env)
        for command, rows in cases(busy_port).items()
        for code, args, env in rows
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda row: run_cli(*row[2], env=row[3]), flat))
    wrong = [
        f"{' '.join(args)}: expected {code}, got {result.returncode}: {result.stderr[-300:]}"
        for (_, code, args, _), result in zip(flat, results, strict=True)
        if result.returncode != code
    ]
    assert not wrong, "\n".join(wrong)
    tracebacks = [
        " ".join(row[2]) for row, r in zip(flat, results, strict=True) if "Traceback" in r.stderr
    ]
    assert not tracebacks, tracebacks


def test_usage_errors_and_failures_write_nothing_to_stdout(tmp_path: Path) -> None:
    for args in (["render", "-f", MISSING], ["render", "--nope"]):
        result = run_cli(*args)
        assert result.stdout == "", args
