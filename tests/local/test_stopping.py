"""How `up` stops: each process's drain, and a --grace (before SIGKILL) that outlasts them all."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from drivetrain import envnames
from drivetrain.api.loader import load_text
from drivetrain.local.plan import plan_graph
from drivetrain.local.run import UpOptions, plan_file
from drivetrain.local.stopping import (
    GRACE_MARGIN_S,
    StopTimingError,
    effective_drain,
    grace_for,
    with_drain,
)
from tests.paths import REPO

AGG = REPO / "examples" / "agg.yaml"


def agg_specs():  # type: ignore[no-untyped-def]
    (graph,) = load_text(AGG.read_text(), "agg.yaml").graphs
    return plan_graph(graph, port=8000, discovery="file:///tmp/x", cwd=Path("/srv"))


def test_every_process_gets_ups_drain_unless_it_sets_its_own() -> None:
    specs = with_drain(agg_specs(), 7)
    assert {s.env[envnames.DRAIN_TIMEOUT] for s in specs} == {"7"}
    assert [effective_drain(s) for s in specs] == [7.0, 7.0, 7.0]
    # A process's own flag wins over the env (as the frontend and worker read them).
    own = dataclasses.replace(specs[1], argv=[*specs[1].argv, "--drain-timeout=12"])
    assert effective_drain(own) == 12.0
    # A graph that sets the variable keeps it.
    preset = dataclasses.replace(specs[0], env={**specs[0].env, envnames.DRAIN_TIMEOUT: "3"})
    assert with_drain([preset], 7)[0].env[envnames.DRAIN_TIMEOUT] == "3"


def test_grace_defaults_to_the_longest_drain_plus_a_margin() -> None:
    specs = with_drain(agg_specs(), 4)
    longest = dataclasses.replace(specs[2], argv=[*specs[2].argv, "--drain-timeout", "9"])
    assert grace_for([*specs[:2], longest], None) == 9 + GRACE_MARGIN_S
    assert grace_for(specs, 30) == 30


def test_a_grace_not_longer_than_a_drain_is_refused_naming_the_process() -> None:
    specs = with_drain(agg_specs(), 5)
    with pytest.raises(StopTimingError, match=r"--grace 5: .* longest drain \(5 s, "):
        grace_for(specs, 5)
    bad = dataclasses.replace(specs[1], argv=[*specs[1].argv, "--drain-timeout", "soon"])
    with pytest.raises(StopTimingError, match="MockerWorker/0: --drain-timeout: expected seconds"):
        grace_for([bad], None)


def test_plan_file_refuses_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(StopTimingError):
        plan_file(UpOptions(file=AGG, grace=2.0, drain_timeout=5.0), "file:///tmp/x", tmp_path)
    specs = plan_file(UpOptions(file=AGG, grace=2.0, drain_timeout=0.5), "file:///tmp/x", tmp_path)
    assert len(specs) == 3


def test_up_with_a_grace_shorter_than_the_drain_exits_2_with_one_line() -> None:
    args = ["up", str(AGG), "--grace", "3", "--drain-timeout", "5"]
    result = subprocess.run(
        [sys.executable, "-m", "drivetrain.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "error: --grace 3: processes get SIGKILL after it" in result.stderr
    assert "Traceback" not in result.stderr
