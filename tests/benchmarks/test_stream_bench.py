"""The stream benchmark's own logic: the guard's limits, aiperf's export, the padded tokenizer.

The benchmark itself (real stacks, aiperf) runs by hand (`make bench-stream`); these pin the
parts that decide what it reports and when the guard fails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.paths import REPO


def load_bench() -> ModuleType:
    path = REPO / "benchmarks" / "stream" / "bench.py"
    spec = importlib.util.spec_from_file_location("stream_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stream_bench"] = module
    spec.loader.exec_module(module)
    return module


bench = load_bench()
BASELINE: dict[str, Any] = {"ratios": {"c16": {"rps_ratio": 2.0, "ttft_p50_ratio": 0.4}}}


def test_ratios_within_the_limits_pass() -> None:
    # 15 % below 2.0 is 1.7; 25 % above 0.4 is 0.5: both edges still pass.
    assert bench.guard({"c16": {"rps_ratio": 1.71, "ttft_p50_ratio": 0.49}}, BASELINE) == []


def test_a_req_per_second_ratio_drop_of_more_than_15_percent_fails() -> None:
    failures = bench.guard({"c16": {"rps_ratio": 1.69, "ttft_p50_ratio": 0.4}}, BASELINE)
    assert len(failures) == 1 and "req/s ratio 1.69 < 1.70" in failures[0]


def test_a_ttft_ratio_rise_of_more_than_25_percent_fails() -> None:
    failures = bench.guard({"c16": {"rps_ratio": 2.0, "ttft_p50_ratio": 0.51}}, BASELINE)
    assert len(failures) == 1 and "TTFT p50 ratio 0.51 > 0.50" in failures[0]


def test_a_recorded_scenario_missing_from_the_run_fails() -> None:
    assert bench.guard({}, BASELINE) == ["c16: not measured in this run"]


def test_ratios_are_taken_within_each_round_then_the_median() -> None:
    rows = [
        {"round": 1, "system": "dynamo", "scenario": "c16", "rps": 100.0, "ttft_p50": 50.0},
        {"round": 1, "system": "drivetrain", "scenario": "c16", "rps": 300.0, "ttft_p50": 10.0},
        {"round": 2, "system": "dynamo", "scenario": "c16", "rps": 50.0, "ttft_p50": 100.0},
        {"round": 2, "system": "drivetrain", "scenario": "c16", "rps": 100.0, "ttft_p50": 40.0},
        {"round": 3, "system": "dynamo", "scenario": "c16", "rps": 80.0, "ttft_p50": 50.0},
        {"round": 3, "system": "drivetrain", "scenario": "c16", "rps": 200.0, "ttft_p50": 15.0},
    ]
    ratio = bench.ratios(rows, "drivetrain")["c16"]
    assert ratio["rps_ratio"] == pytest.approx(2.5)  # median of 3.0, 2.0, 2.5
    assert ratio["ttft_p50_ratio"] == pytest.approx(0.3)  # median of 0.2, 0.4, 0.3


def test_errors_count_failed_and_missing_requests() -> None:
    scenario = bench.Scenario("c16", 16, 64, 400, True)
    export = {
        "request_count": {"avg": 396},
        "error_summary": [{"count": 3}],
        "request_throughput": {"avg": 10.0},
        "time_to_first_token": {"p50": 5.0, "p99": 9.0},
    }
    summary = bench.summarise(export, scenario)
    assert summary["errors"] == 4  # 3 reported, 1 never completed
    assert summary["rps"] == 10.0 and summary["ttft_p99"] == 9.0
    assert summary["reads"] != summary["reads"]  # NaN: not in this export


def test_the_padded_tokenizer_decodes_every_id_up_to_2048(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenizers import Tokenizer

    tiny = REPO / "examples" / "models" / "tiny"
    stacks = sys.modules["stacks"]  # where padded_tokenizer lives (bench-kv uses it too)
    monkeypatch.setattr(stacks, "WORK", tmp_path)
    monkeypatch.setattr(stacks, "tiny_model_dir", lambda: tiny)
    folder = bench.padded_tokenizer()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == 2048
    assert tokenizer.decode([100]) == Tokenizer.from_file(str(tiny / "tokenizer.json")).decode(
        [100]
    )
    assert tokenizer.decode([334, 2047]) == " w334 w2047"
    assert '"vocab_size": 2048' in (folder / "config.json").read_text()
