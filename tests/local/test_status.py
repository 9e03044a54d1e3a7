"""Readiness: the graph is served once the frontend lists every model its workers announce."""

from __future__ import annotations

import io
from dataclasses import replace

from drivetrain.local.logs import LogSink
from drivetrain.local.status import expected_models, serves_all
from tests.local.procs import python_spec


def test_expected_models_are_the_workers_model_names() -> None:
    spec = python_spec("pass")
    worker = replace(spec, models=("tiny", "big"))
    assert expected_models([spec, worker]) == {"tiny", "big"}


def test_serving_needs_every_expected_model() -> None:
    assert not serves_all({"tiny"}, {"tiny", "big"})
    assert serves_all({"tiny", "big", "other"}, {"tiny", "big"})


def test_without_known_names_any_listed_model_counts() -> None:
    assert not serves_all(set(), set())
    assert serves_all({"upstream-model"}, set())


def test_plain_log_lines_align_their_prefixes() -> None:
    out = io.StringIO()
    log = LogSink(out, colour=False)
    log.register(["Frontend/0", "MockerWorker/1"])
    log.line("Frontend/0", "hello")
    log.line("MockerWorker/1", "world")
    assert out.getvalue() == "Frontend/0     | hello\nMockerWorker/1 | world\n"


def test_coloured_log_lines_carry_ansi_styles() -> None:
    out = io.StringIO()
    log = LogSink(out, colour=True)
    log.register(["Frontend/0"])
    log.line("Frontend/0", "hello")
    assert "\x1b[" in out.getvalue() and "hello" in out.getvalue()
